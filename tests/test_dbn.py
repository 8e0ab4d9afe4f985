"""DBNs: greedy stacks, passes, generative classification, up-down, generation, likelihood bound.

Exact checks on tiny models (enumerating every hidden state), equality checks against the
plain-RBM code paths, and one small DBN pretrained on the embedded 8x8 digits, shared with
``test_finetune.py`` through :func:`pretrained` (cached, so it is trained once per session).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdbn import contrastive as C
from jdbn import data
from jdbn import dbn as D
from jdbn import likelihood
from jdbn import rbm as R
from jdbn import train as T
from jdbn import units as U

KEY = jax.random.key(0)
SIZES = [64, 64, 128]  # 8x8 pixels -> 64 -> 128, the top RBM joined by 10 label units
EPOCHS = 30
BATCH = 50
# One trainer object for every test, so that its jitted epoch is compiled once.
TRAINER = C.cd(optax.sgd(0.1, momentum=0.5))
EVAL_SIZE = 200


@functools.lru_cache(maxsize=None)
def pretrained():
  """``(dbn, history)``: the labelled 64-64-128+10 DBN pretrained on the digits' train split."""
  ds = data.load_digits("train")
  return D.pretrain(KEY, SIZES, ds.x, TRAINER, epochs=EPOCHS, batch_size=BATCH, labels=ds.y,
                    progress=False, eval_size=EVAL_SIZE)


def _random_rbm(key, n_v, n_h, visible=U.Bernoulli(), scale=1.0):
  kw, kb, kc = jax.random.split(key, 3)
  p = R.init(kw, n_v, n_h, visible, weight_scale=scale)
  return p.replace(b=0.5 * jax.random.normal(kb, (n_v,)), c=0.5 * jax.random.normal(kc, (n_h,)))


def _tiny_dbn(key, n_v=5, n_1=4, n_top=3, n_labels=0):
  """A random two-layer DBN: an RBM n_v-n_1 below a top RBM (n_1 [+ labels])-n_top."""
  k1, k2 = jax.random.split(key)
  vis = U.Bernoulli()
  if n_labels:
    vis = U.Joint(((U.Bernoulli(), n_1), (U.Softmax(n_labels), n_labels)))
  return (_random_rbm(k1, n_v, n_1), _random_rbm(k2, n_1 + n_labels, n_top, vis))


def _binary(key, shape):
  return jax.random.bernoulli(key, 0.5, shape).astype(jnp.float32)


# --------------------------------------------------------------------------- greedy stack


def test_pretrain_builds_a_labelled_stack():
  dbn, history = pretrained()
  assert [(p.n_visible, p.n_hidden) for p in dbn] == [(64, 64), (64 + 10, 128)]
  assert dbn[0].visible == U.Bernoulli()
  assert dbn[1].visible == U.Joint(((U.Bernoulli(), 64), (U.Softmax(10), 10)))
  assert D.n_labels(dbn) == 10 and D.n_penultimate(dbn) == 64
  assert D.layer_sizes(dbn) == [64, 64, 128]
  D.check(dbn)
  assert [len(h.epochs) for h in history] == [EPOCHS, EPOCHS]
  for h in history:
    assert all(np.isfinite(r["loss"]) for r in h.epochs)
    # Training reduced each layer's reconstruction error.
    assert h.epochs[-1]["recon_error"] < h.epochs[0]["recon_error"]


def test_first_layer_equals_a_plain_rbm_trained_the_same_way():
  dbn, _ = pretrained()
  x = data.load_digits("train").x
  k_init, k_train, _ = jax.random.split(jax.random.fold_in(KEY, 0), 3)
  params = R.init(k_init, 64, SIZES[1], data=x)
  state, _ = T.fit(k_train, TRAINER, params, x, epochs=EPOCHS, batch_size=BATCH, progress=False,
                   eval_size=EVAL_SIZE)
  jax.tree.map(np.testing.assert_array_equal, state.params, dbn[0])


def test_propagate_mean_and_sample():
  p = _random_rbm(jax.random.key(1), 6, 5)
  x = _binary(jax.random.key(2), (4000, 6))
  mean = np.asarray(D.propagate(None, p, x, "mean"))
  np.testing.assert_allclose(mean, jax.jit(R.hidden_mean)(p, x), rtol=1e-6)
  s = np.asarray(D.propagate(jax.random.key(3), p, x, "sample"))
  assert set(np.unique(s)) <= {0.0, 1.0}
  # Each column's sample mean is within 5 standard errors of the mean of the probabilities.
  se = np.sqrt(np.mean(mean * (1 - mean), 0) / x.shape[0])
  assert np.all(np.abs(s.mean(0) - mean.mean(0)) < 5 * se)
  with pytest.raises(ValueError, match="mean' or 'sample"):
    D.propagate(None, p, x, "mode")


def test_pretrain_rejects_mismatched_layers():
  x = data.load_digits("train").x[:100]
  with pytest.raises(ValueError, match="layers\\[0\\]"):
    D.pretrain(KEY, [60, 10], x, TRAINER, epochs=1, batch_size=10, progress=False)
  bad = (_random_rbm(KEY, 64, 8), _random_rbm(KEY, 9, 4))
  with pytest.raises(ValueError, match="hidden units"):
    D.pretrain(KEY, bad, x, TRAINER, epochs=1, batch_size=10, progress=False)
  with pytest.raises(ValueError, match="trainers has 3 entries"):
    D.pretrain(KEY, [64, 8, 4], x, [TRAINER] * 3, epochs=1, batch_size=10, progress=False)


# --------------------------------------------------------------------------- passes


@jax.jit
def _pass_outputs(dbn, v, y):
  h1 = R.hidden_mean(dbn[0], v)
  other = dbn[0].replace(W=-dbn[0].W)
  untied = D.UntiedDBN((dbn[0],), (other,), dbn[1])
  return dict(
      h1=h1, up=D.up_pass(dbn, v, labels=y), up_nolabels=D.up_pass(dbn, v),
      top=R.hidden_mean(dbn[1], jnp.concatenate([h1, jax.nn.one_hot(y, 3)], -1)),
      top_off=R.hidden_mean(dbn[1], jnp.concatenate([h1, jnp.zeros((v.shape[0], 3))], -1)),
      pen=D.penultimate(dbn, v), down=D.down_pass(dbn, h1), down_want=R.visible_mean(dbn[0], h1),
      pen_untied=D.penultimate(untied, v), down_untied=D.down_pass(untied, h1),
      down_untied_want=R.visible_mean(other, h1))


def test_up_and_down_passes_compose_the_conditionals():
  dbn = _tiny_dbn(jax.random.key(4), n_labels=3)
  v = _binary(jax.random.key(5), (7, 5))
  o = _pass_outputs(dbn, v, jnp.arange(7) % 3)
  np.testing.assert_allclose(o["up"][0], o["h1"], rtol=1e-6)
  np.testing.assert_allclose(o["up"][1], o["top"], rtol=1e-6)
  np.testing.assert_allclose(o["up_nolabels"][1], o["top_off"], rtol=1e-6)  # label units off
  np.testing.assert_allclose(o["pen"], o["h1"], rtol=1e-6)
  np.testing.assert_allclose(o["down"], o["down_want"], rtol=1e-6)
  # An untied DBN reads recognition weights going up and generative weights going down.
  np.testing.assert_allclose(o["pen_untied"], o["h1"], rtol=1e-6)
  np.testing.assert_allclose(o["down_untied"], o["down_untied_want"], rtol=1e-6)


# --------------------------------------------------------------------------- classification


def _brute_force_label_log_probs(top, pen, n_labels):
  """log p(label | pen) by summing exp(-E(pen, label, h)) over every hidden state h."""
  hs = jnp.asarray(top.hidden.states(top.n_hidden))
  out = []
  for k in range(n_labels):
    vis = jnp.concatenate([pen, jnp.broadcast_to(jax.nn.one_hot(k, n_labels), pen.shape[:-1] +
                                                 (n_labels,))], -1)
    e = R.energy(top, vis[:, None, :], hs[None, :, :])  # [n, n_h_states]
    out.append(jax.nn.logsumexp(-e, axis=1))
  logits = jnp.stack(out, -1)
  return logits - jax.nn.logsumexp(logits, -1, keepdims=True)


@jax.jit
def _classification_outputs(dbn, v):
  pen = D.penultimate(dbn, v)
  k = D.n_labels(dbn)
  joined = jnp.concatenate([jnp.repeat(pen[:, None, :], k, 1),
                            jnp.broadcast_to(jnp.eye(k), (v.shape[0], k, k))], -1)
  return dict(exact=_brute_force_label_log_probs(dbn[1], pen, k),
              log_probs=D.label_log_probs(dbn, v),
              chunked=D.label_log_probs(dbn, v, batch_size=16),
              classes=D.classify(dbn, v),
              f=D.label_free_energies(dbn[1], pen),
              f_generic=R.free_energy(dbn[1], joined))


def test_free_energy_classification_is_the_exact_posterior_over_labels():
  dbn = _tiny_dbn(jax.random.key(6), n_v=7, n_1=5, n_top=6, n_labels=4)
  v = _binary(jax.random.key(7), (50, 7))
  out = _classification_outputs(dbn, v)
  np.testing.assert_allclose(out["log_probs"], out["exact"], rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(out["classes"], jnp.argmax(out["exact"], -1))
  # The one-matrix-product shortcut equals the generic free energy of the joined state.
  np.testing.assert_allclose(out["f"], out["f_generic"], rtol=1e-5, atol=1e-5)
  # Chunked evaluation gives the same answer.
  np.testing.assert_allclose(out["chunked"], out["log_probs"], rtol=1e-6, atol=1e-6)


def test_classify_needs_label_units():
  dbn = _tiny_dbn(KEY)
  with pytest.raises(ValueError, match="no label units"):
    D.classify(dbn, jnp.zeros((2, 5)))


# --------------------------------------------------------------------------- up-down


@pytest.mark.parametrize("mean_labels", [False, True])
def test_updown_on_a_one_layer_dbn_is_the_cd_step_of_its_rbm(mean_labels):
  """With no layers below the top, wake and sleep phases are empty and an up-down update is
  exactly ``contrastive.cd(optimizer, k).update`` with key ``split(key, 3)[1]``; with
  ``mean_labels``, that of CD with the label units' mean reconstructions."""
  top = _tiny_dbn(jax.random.key(8), n_labels=3)[1]
  x = _binary(jax.random.key(9), (16, 4))
  y = jnp.arange(16) % 3
  optimizer = optax.sgd(0.1, momentum=0.9)
  mask = np.arange(top.n_visible) >= top.n_visible - 3
  updown = D.updown(optimizer, k=2, mean_labels=mean_labels)
  cd = C.cd(optimizer, k=2, mean_visible=mask if mean_labels else None)
  s_ud, s_cd = updown.init(None, (top,)), cd.init(KEY, top)
  step_ud, step_cd = jax.jit(updown.update), jax.jit(cd.update)
  for i in range(3):  # three steps, so that momentum is exercised too
    k = jax.random.fold_in(KEY, i)
    s_ud, info_ud = step_ud(k, s_ud, (x, y))
    s_cd, info_cd = step_cd(jax.random.split(k, 3)[1], s_cd,
                            jnp.concatenate([x, jax.nn.one_hot(y, 3)], -1))
    # The same operations in the same order: bitwise equal, not merely close.
    jax.tree.map(np.testing.assert_array_equal, s_ud.params.top, s_cd.params)
    for a, b in zip(jax.tree.leaves(s_ud.opt_state), jax.tree.leaves(s_cd.opt_state),
                    strict=True):
      np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(info_ud.loss, info_cd.loss)
    np.testing.assert_array_equal(info_ud.recon_error, info_cd.recon_error)
  assert s_ud.params.recognition == () and s_ud.params.generative == ()
  assert int(s_ud.step) == int(s_cd.step) == 3


def test_updown_mean_labels_errors():
  with pytest.raises(TypeError, match="mean_labels must be a bool"):
    D.updown(optax.sgd(0.1), mean_labels="yes")
  unlabelled = _tiny_dbn(KEY)
  trainer = D.updown(optax.sgd(0.1), mean_labels=True)
  with pytest.raises(ValueError, match="mean_labels needs a top RBM with label units"):
    trainer.update(KEY, trainer.init(None, unlabelled), _binary(KEY, (4, 5)))


@jax.jit
def _delta_rule_outputs(p, lower, upper):
  g_gen = jax.grad(lambda q: jnp.mean(D.generative_nll(q, lower, upper)))(p)
  g_rec = jax.grad(lambda q: jnp.mean(D.recognition_nll(q, upper, lower)))(p)
  err_v = lower - jax.nn.sigmoid(p.b + upper @ p.W.T)  # data - p(v | h)
  err_h = upper - jax.nn.sigmoid(p.c + lower @ p.W)  # h - q(h | v)
  n = lower.shape[0]
  return g_gen, g_rec, dict(gen_W=-(err_v.T @ upper) / n, gen_b=-jnp.mean(err_v, 0),
                            rec_W=-(lower.T @ err_h) / n, rec_c=-jnp.mean(err_h, 0))


def test_updown_local_losses_are_the_delta_rules():
  """The generative and recognition losses' gradients are HOT 2006's delta rules."""
  p = _random_rbm(jax.random.key(10), 6, 4)
  lower = jax.random.uniform(jax.random.key(11), (8, 6))  # probabilities, as data are
  upper = _binary(jax.random.key(12), (8, 4))
  g_gen, g_rec, want = _delta_rule_outputs(p, lower, upper)
  np.testing.assert_allclose(g_gen.W, want["gen_W"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(g_gen.b, want["gen_b"], rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(g_gen.c, 0)
  np.testing.assert_allclose(g_rec.W, want["rec_W"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(g_rec.c, want["rec_c"], rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(g_rec.b, 0)


def test_updown_epoch_unties_the_weights_and_keeps_classifying():
  dbn, _ = pretrained()
  ds, test = data.load_digits("train"), data.load_digits("test")
  trainer = D.updown(optax.sgd(0.01), k=1)
  state = trainer.init(None, dbn)
  assert state.params.recognition == state.params.generative == dbn[:1]
  state, info = trainer.epoch(KEY, state, (ds.x, ds.y), BATCH)
  assert int(state.step) == len(ds.x) // BATCH
  assert all(np.isfinite(float(v)) for v in info)
  rec, gen = state.params.recognition[0], state.params.generative[0]
  assert not np.allclose(rec.W, gen.W)  # untied: the two directions learned differently
  np.testing.assert_array_equal(rec.b, dbn[0].b)  # recognition never reads b ...
  np.testing.assert_array_equal(gen.c, dbn[0].c)  # ... nor generation c
  # Still a classifier far from chance (90% error): 297 test digits.
  err = float(jnp.mean(D.classify(state.params, test.x) != test.y))
  assert err < 0.6


def test_updown_epoch_order_is_a_scan_of_updates_over_the_given_batches():
  """``epoch(key, ..., order=o)`` is update ``i`` with ``split(split(key)[1], n)[i]`` on batch
  ``o[i]``; without ``order`` the batches are ``permutation(split(key)[0])`` cut in rows."""
  dbn = _tiny_dbn(jax.random.key(13), n_labels=3)
  x = _binary(jax.random.key(14), (30, 5))
  y = jnp.arange(30) % 3
  trainer = D.updown(optax.sgd(0.1), k=2)
  state0 = trainer.init(None, dbn)
  key_order, key_steps = jax.random.split(KEY)
  default_order = jax.random.permutation(key_order, 30).reshape(5, 6)
  balanced = data.balanced_order(jax.random.key(15), y, 6)
  step = jax.jit(trainer.update)
  for order in (default_order, balanced):
    want, infos = state0, []
    for i, k in enumerate(jax.random.split(key_steps, order.shape[0])):
      want, info = step(k, want, (x[order[i]], y[order[i]]))
      infos.append(info)
    got, info = trainer.epoch(KEY, state0, (x, y), 6, order=order)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
                 got.params, want.params)
    np.testing.assert_allclose(info.loss, np.mean([i.loss for i in infos]), rtol=1e-5)
    assert int(got.step) == order.shape[0]
  got, _ = trainer.epoch(KEY, state0, (x, y), 6)  # the default order
  want, _ = trainer.epoch(KEY, state0, (x, y), 6, order=default_order)
  jax.tree.map(np.testing.assert_array_equal, got.params, want.params)
  got, _ = trainer.epoch(KEY, state0, (x, y), 6, order="balanced")  # drawn with key_order
  want, _ = trainer.epoch(KEY, state0, (x, y), 6,
                          order=data.balanced_order(key_order, y, 6, 3))
  jax.tree.map(np.testing.assert_array_equal, got.params, want.params)


def test_updown_epoch_order_errors():
  dbn = _tiny_dbn(KEY, n_labels=3)
  x, y = _binary(KEY, (12, 5)), jnp.arange(12) % 3
  trainer = D.updown(optax.sgd(0.1))
  state = trainer.init(None, dbn)
  for bad in (jnp.zeros((2, 4), jnp.int32), jnp.zeros((6,), jnp.int32),
              jnp.zeros((2, 6), jnp.float32), jnp.zeros((0, 6), jnp.int32)):
    with pytest.raises(ValueError, match="order must be an integer array"):
      trainer.epoch(KEY, state, (x, y), 6, order=bad)
  with pytest.raises(ValueError, match="outside"):
    trainer.epoch(KEY, state, (x, y), 6, order=jnp.full((2, 6), 12))
  with pytest.raises(ValueError, match="must be None, 'balanced'"):
    trainer.epoch(KEY, state, (x, y), 6, order="sorted")
  with pytest.raises(ValueError, match="needs labelled batches"):
    D.updown(optax.sgd(0.1)).epoch(KEY, trainer.init(None, _tiny_dbn(KEY)), x, 6,
                                   order="balanced")


def test_sweep_schedule_is_the_papers_3_6_10():
  k_of = D.sweep_schedule("3:100,6:200,10")
  assert [k_of(e) for e in (0, 99, 100, 199, 200, 299, 10_000)] == [3, 3, 6, 6, 10, 10, 10]
  assert [D.sweep_schedule(5)(e) for e in (0, 7)] == [5, 5]
  assert D.sweep_schedule(" 2 : 1 , 4")(0) == 2 and D.sweep_schedule("2:1,4")(1) == 4
  for bad in ("0", "3:100,6:50,10", "3:100,6:100,10", "3:100,6:200", "3,6:200,10", "a:1,2",
              "3:0,6", "", "3:-5,1"):
    with pytest.raises(ValueError, match="sweep schedule"):
      D.sweep_schedule(bad)
  with pytest.raises(TypeError):
    D.sweep_schedule(3.0)


# --------------------------------------------------------------------------- generation


def test_generate_is_deterministic_per_key_and_keys_differ():
  dbn, _ = pretrained()
  labels = jnp.repeat(jnp.arange(10), 20)
  a = D.generate(jax.random.key(1), dbn, labels, n_steps=100)
  b = D.generate(jax.random.key(1), dbn, labels, n_steps=100)
  c = D.generate(jax.random.key(2), dbn, labels, n_steps=100)
  assert a.shape == (200, 64)
  assert np.all((np.asarray(a) >= 0) & (np.asarray(a) <= 1))
  np.testing.assert_array_equal(a, b)
  assert np.mean(np.abs(np.asarray(a) - np.asarray(c))) > 0.01
  free = D.generate(jax.random.key(1), dbn, n_steps=5, n_samples=3)  # labels run freely
  assert free.shape == (3, 64)
  with pytest.raises(ValueError, match="no label units"):
    D.generate(KEY, _tiny_dbn(KEY), jnp.zeros(2, jnp.int32), n_steps=1)


# --------------------------------------------------------------------------- likelihood bound


@jax.jit
def _exact_two_layer(dbn, v, log_z):
  """Exact log p(v), the exact variational bound and the variance of its MC integrand."""
  lower, top = dbn
  hs = jnp.asarray(U.Bernoulli().states(lower.n_hidden))  # [S, n_1]
  log_p_v_given_h = -D.generative_nll(lower, v[:, None, :], hs[None])  # [n, S]
  if D.n_labels(top):
    log_p_star = jax.nn.logsumexp(-D.label_free_energies(top, hs), -1)
  else:
    log_p_star = -R.free_energy(top, hs)
  joint = log_p_v_given_h + log_p_star[None] - log_z
  log_p = jax.nn.logsumexp(joint, 1)
  log_q = -D.recognition_nll(lower, hs[None], v[:, None, :])  # [n, S]
  q = jnp.exp(log_q)
  entropy = -jnp.sum(q * log_q, 1)
  bound = jnp.sum(q * joint, 1) + entropy
  integrand = joint + entropy[:, None]  # what one draw h ~ Q contributes
  var = jnp.sum(q * integrand**2, 1) - bound**2
  return log_p, bound, var


@pytest.mark.parametrize("n_labels", [0, 3])
def test_log_likelihood_bound_of_a_two_layer_dbn(n_labels):
  dbn = _tiny_dbn(jax.random.key(13), n_v=5, n_1=4, n_top=3, n_labels=n_labels)
  log_z = likelihood.exact_log_z(dbn[1])
  all_v = jnp.asarray(U.Bernoulli().states(5))
  log_p, bound, var = _exact_two_layer(dbn, all_v, log_z)
  # The enumeration is right: p(v) sums to one over all 32 visible states.
  np.testing.assert_allclose(jax.nn.logsumexp(log_p), 0.0, atol=1e-5)
  assert np.all(np.asarray(bound) <= np.asarray(log_p) + 1e-5)  # it is a lower bound
  n = 2000
  est = jax.jit(D.log_likelihood_bound, static_argnames="n_samples")(
      jax.random.key(14), dbn, all_v, log_z, n_samples=n)
  # Monte Carlo over Q: within 5 standard errors of the exact bound, for every v.
  se = np.sqrt(np.maximum(np.asarray(var), 0) / n)
  np.testing.assert_array_less(np.abs(np.asarray(est - bound)), 5 * se + 1e-4)


def test_log_likelihood_bound_is_exact_for_one_rbm():
  top = _random_rbm(jax.random.key(15), 5, 3)
  v = _binary(jax.random.key(16), (6, 5))
  log_z = likelihood.exact_log_z(top)
  np.testing.assert_allclose(D.log_likelihood_bound(KEY, (top,), v, log_z, n_samples=2),
                             -R.free_energy(top, v) - log_z, rtol=1e-6)


def test_labels_outside_the_label_units_are_refused():
  """Up-down and generation check label values: one_hot of 20 with 10 units is all zeros, which
  would train on, or clamp, no label at all."""
  key = jax.random.key(0)
  dbn = _tiny_dbn(key, n_labels=3)
  x = _binary(key, (6, 5))
  trainer = D.updown(optax.sgd(0.01), k=1)
  state = trainer.init(None, dbn)
  with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\), got values from 0 to 4"):
    trainer.epoch(key, state, (x, jnp.array([0, 1, 2, 4, 1, 0])), 3)
  with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
    D.generate(key, dbn, np.array([-1]), n_steps=2)
  trainer.epoch(key, state, (x, jnp.array([0, 1, 2, 2, 1, 0])), 3)  # in range: runs
  assert D.generate(key, dbn, np.array([2]), n_steps=2).shape == (1, 5)


@pytest.mark.parametrize("n_labels", [0, 3])
def test_likelihood_dbn_is_ais_on_the_top_and_the_bound_in_chunks(n_labels):
  """jdbn.likelihood.dbn: top_ais is the RBM AIS of the top on the data carried up (labels
  joined), and log_likelihood_bounds the bound of each chunk with the key fold_in(key, start)."""
  from jdbn.likelihood import dbn as LD
  dbn = _tiny_dbn(jax.random.key(21), n_v=5, n_1=4, n_top=3, n_labels=n_labels)
  x = _binary(jax.random.key(22), (7, 5))
  y = jnp.arange(7) % 3 if n_labels else None
  top_x = D.penultimate(dbn, x)
  if n_labels:
    top_x = jnp.concatenate([top_x, jax.nn.one_hot(y, 3)], -1)
  np.testing.assert_array_equal(LD.top_data(dbn, x, y), top_x)
  betas = np.linspace(0, 1, 50, dtype=np.float32)
  res = LD.top_ais(KEY, dbn, x, y, n_chains=8, betas=betas)
  ref = likelihood.ais(KEY, dbn[1], n_chains=8, betas=betas, data=top_x)
  np.testing.assert_array_equal(res.log_w, ref.log_w)
  assert abs(float(res.log_z) - float(likelihood.exact_log_z(dbn[1]))) < 0.5
  bounds = LD.log_likelihood_bounds(KEY, dbn, x, res.log_z, n_samples=3, batch_size=3)
  want = jnp.concatenate([D.log_likelihood_bound(jax.random.fold_in(KEY, i), dbn, x[i:i + 3],
                                                 res.log_z, n_samples=3) for i in (0, 3, 6)])
  np.testing.assert_allclose(bounds, want, rtol=1e-6)
  if n_labels:
    with pytest.raises(ValueError, match="label units"):
      LD.top_data(dbn, x)
