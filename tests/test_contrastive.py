"""CD-k and PCD: gradients against the closed form, exact log-likelihood rising on real data."""

import gzip
from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdbn import contrastive, likelihood
from jdbn.train import phases as PH
from jdbn.train import variants
from jdbn import rbm as R
from jdbn import units as U


@pytest.fixture(scope="module")
def digits():
  """The embedded 8x8 digits, binarised at 0.5: a small real dataset."""
  with resources.files("jdbn").joinpath("_assets/digits.csv.gz").open("rb") as f:
    x = np.loadtxt(gzip.open(f), delimiter=",")[:, :64] / 16.0
  return (x > 0.5).astype(np.float32)


def _mean_exact_ll(params, data):
  return float(jnp.mean(likelihood.log_likelihood(params, data, likelihood.exact_log_z(params))))


def test_gradient_is_the_classic_cd_rule():
  """grad of mean F(data) - mean F(neg) = -<v p(h|v)>_data + <v p(h|v)>_neg (Hinton 2002)."""
  p = R.init(jax.random.key(0), 6, 4, weight_scale=0.5)
  data = jax.random.bernoulli(jax.random.key(1), 0.4, (8, 6)).astype(jnp.float32)
  neg = jax.random.bernoulli(jax.random.key(2), 0.6, (5, 6)).astype(jnp.float32)
  _, g = contrastive.loss_and_grad(p, data, neg)
  ph_d, ph_n = R.hidden_mean(p, data), R.hidden_mean(p, neg)
  np.testing.assert_allclose(g.W, -data.T @ ph_d / 8 + neg.T @ ph_n / 5, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(g.b, -data.mean(0) + neg.mean(0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(g.c, -ph_d.mean(0) + ph_n.mean(0), rtol=1e-5, atol=1e-6)


def test_mean_reconstruction_is_hintons_rbm_m_step():
  """``cd(mean_visible=True)``, one step of plain SGD, is the update of Hinton's ``rbm.m`` (the
  2006 DBN and autoencoder code): positive statistics ``data' p(h|data)``, a sampled ``h``,
  reconstructions ``negdata = p(v|h)`` as probabilities, negative statistics
  ``negdata' p(h|negdata)``."""
  p = R.init(jax.random.key(0), 6, 4, weight_scale=0.5)
  data = jax.random.bernoulli(jax.random.key(1), 0.4, (8, 6)).astype(jnp.float32)
  lr, key = 0.1, jax.random.key(3)
  trainer = contrastive.cd(optax.sgd(lr), k=1, mean_visible=True)
  new, _ = jax.jit(trainer.update)(key, trainer.init(None, p), data)
  # The hidden sample is the one gibbs.sweep draws: split(split(key)[0])[0].
  h = R.sample_hidden(jax.random.split(jax.random.split(key)[0])[0], p, data)
  poshid = jax.nn.sigmoid(data @ p.W + p.c)
  negdata = jax.nn.sigmoid(h @ p.W.T + p.b)
  assert 0.05 < float(jnp.mean(negdata * (1 - negdata)))  # fractional, not a binary sample
  neghid = jax.nn.sigmoid(negdata @ p.W + p.c)
  np.testing.assert_allclose(new.params.W, p.W + lr * (data.T @ poshid - negdata.T @ neghid) / 8,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new.params.b, p.b + lr * jnp.mean(data - negdata, 0), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(new.params.c, p.c + lr * jnp.mean(poshid - neghid, 0), rtol=1e-5,
                             atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: contrastive.cd(optax.sgd(0.1, momentum=0.5), k=1),
    lambda: contrastive.pcd(optax.sgd(0.05, momentum=0.5), k=1, n_chains=20),
],
                         ids=["cd1", "pcd1"])
def test_training_raises_exact_log_likelihood(digits, make):
  """On a 64x10 RBM (log Z exact over 2^10 hidden states), training beats its starting point.

  The start is the independent-pixel model at the data's marginals (weights ~ N(0, 0.01^2)),
  and any learning of pixel correlations raises the average exact log-likelihood; we ask for a
  gain of 1 nat per image, far above float32 error in log Z (~1e-4) and an amount that a
  wrong-signed or mis-scaled gradient cannot produce.
  """
  p = R.init(jax.random.key(0), 64, 10, data=digits)
  trainer = make()
  state = trainer.init(jax.random.key(1), p)
  before = _mean_exact_ll(p, digits)
  for epoch in range(8):
    state, info = trainer.epoch(jax.random.key(10 + epoch), state, digits, 20)
  after = _mean_exact_ll(state.params, digits)
  assert np.isfinite(float(info.loss)) and float(info.recon_error) < 0.2
  assert after > before + 1.0, (before, after)


def test_epoch_equals_a_loop_of_updates(digits):
  trainer = contrastive.cd(optax.sgd(0.05), k=2)
  p = R.init(jax.random.key(0), 64, 8, data=digits)
  data = digits[:60]
  state = trainer.init(jax.random.key(1), p)
  key = jax.random.key(2)
  scanned, info = trainer.epoch(key, state, data, 20)
  # The same updates, one by one, in the order the epoch draws.
  key_perm, key_steps = jax.random.split(key)
  order = jax.random.permutation(key_perm, 60)
  keys = jax.random.split(key_steps, 3)
  update = jax.jit(trainer.update)
  losses = []
  for i in range(3):
    state, inf = update(keys[i], state, data[order[20 * i:20 * (i + 1)]])
    losses.append(inf.loss)
  np.testing.assert_allclose(scanned.params.W, state.params.W, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(info.loss, np.mean(losses), rtol=1e-5)
  assert int(scanned.step) == 3
  # Same key, same result; another key, another result.
  again, _ = trainer.epoch(key, trainer.init(jax.random.key(1), p), data, 20)
  np.testing.assert_array_equal(again.params.W, scanned.params.W)
  other, _ = trainer.epoch(jax.random.key(3), trainer.init(jax.random.key(1), p), data, 20)
  assert not np.array_equal(other.params.W, scanned.params.W)


@pytest.mark.parametrize("persistent", [False, True])
def test_epoch_without_metrics_makes_the_same_updates(digits, persistent):
  opt = optax.sgd(0.05, momentum=0.9)
  trainer = contrastive.pcd(opt, n_chains=10) if persistent else contrastive.cd(opt, k=1)
  state = trainer.init(jax.random.key(1), R.init(jax.random.key(0), 64, 8, data=digits))
  key = jax.random.key(2)
  with_info, info = trainer.epoch(key, state, digits[:200], 10)
  without, none = trainer.epoch(key, state, digits[:200], 10, metrics=False)
  assert none is None and np.isfinite(float(info.loss))
  # XLA may fuse the leaner program differently, so equal to rounding, not bit for bit.
  for a, b in zip(jax.tree.leaves(with_info), jax.tree.leaves(without)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert not np.allclose(without.params.W, state.params.W)
  with pytest.raises(TypeError, match="metrics"):
    trainer.epoch(key, state, digits[:200], 10, metrics="no")


def test_pcd_chains_persist(digits):
  trainer = contrastive.pcd(optax.sgd(0.01), n_chains=7)
  state = trainer.init(jax.random.key(0), R.init(jax.random.key(1), 64, 5))
  assert state.chains.v.shape == (7, 64)
  new, _ = jax.jit(trainer.update)(jax.random.key(2), state, digits[:10])
  assert new.chains.v.shape == (7, 64) and not np.array_equal(new.chains.v, state.chains.v)


def test_sparsity_target_lowers_hidden_activity(digits):
  p = R.init(jax.random.key(0), 64, 16, data=digits)

  def activity(**kw):
    trainer = contrastive.cd(optax.sgd(0.05, momentum=0.5), **kw)
    state = trainer.init(jax.random.key(1), p)
    for e in range(3):
      state, _ = trainer.epoch(jax.random.key(e), state, digits, 20)
    return float(R.hidden_mean(state.params, digits).mean())

  plain, sparse = activity(), activity(sparsity_target=0.02, sparsity_cost=1.0)
  assert sparse < 0.5 * plain and sparse < 0.1, (plain, sparse)


def test_gaussian_units_learn_mean_and_sigma():
  """A Gaussian-Bernoulli RBM with learned sigma and frozen zero weights learns mu and s.

  With W = 0 the model is independent Gaussians N(b, sigma^2), and the CD gradient of b and
  log sigma vanishes exactly at the data's mean and standard deviation. Freezing W and c is an
  Optax matter (``optax.multi_transform``), not the trainer's.
  """
  mu, s = np.array([2.0, -1.0, 0.5]), np.array([0.5, 1.0, 2.0])
  data = mu + s * np.asarray(jax.random.normal(jax.random.key(0), (4000, 3)))
  p = R.init(jax.random.key(1), 3, 2, U.Gaussian(learn_sigma=True))
  p = p.replace(W=jnp.zeros_like(p.W))
  labels = p.replace(W="frozen", b="train", c="frozen", log_sigma_v="train")
  opt = optax.multi_transform({"train": optax.adam(0.05), "frozen": optax.set_to_zero()},
                              labels)
  trainer = contrastive.cd(opt, k=1)
  state = trainer.init(jax.random.key(2), p)
  for e in range(15):
    state, _ = trainer.epoch(jax.random.key(3 + e), state, data, 100)
  np.testing.assert_array_equal(state.params.W, 0.0)
  # Adam's steps of 0.05 jitter around the optimum; the data's own sample moments are the target.
  assert np.all(np.abs(np.asarray(state.params.b) - data.mean(0)) < 0.1 * s + 0.05), state.params.b
  np.testing.assert_allclose(jnp.exp(state.params.log_sigma_v), data.std(0), rtol=0.1)


def test_optax_weight_decay_composes():
  """Weight decay is an optax transformation: with no data signal it shrinks the weights."""
  p = R.init(jax.random.key(0), 6, 4, weight_scale=1.0)
  trainer = contrastive.cd(optax.chain(optax.add_decayed_weights(0.5), optax.sgd(0.1)))
  state = trainer.init(jax.random.key(1), p)
  data = jnp.full((10, 6), 0.5)
  state, _ = trainer.epoch(jax.random.key(2), state, data, 10)
  assert float(jnp.abs(state.params.W).sum()) < float(jnp.abs(p.W).sum())


def test_bad_arguments():
  opt = optax.sgd(0.1)
  with pytest.raises(ValueError, match="k"):
    contrastive.cd(opt, k=0)
  with pytest.raises(TypeError, match="optax.GradientTransformation"):
    contrastive.cd(lambda g: g)
  with pytest.raises(ValueError, match="n_chains"):
    contrastive.pcd(opt, n_chains=0)
  with pytest.raises(ValueError, match="sparsity_target"):
    contrastive.cd(opt, sparsity_target=1.5)
  with pytest.raises(ValueError, match="mean_visible must be"):
    contrastive.cd(opt, mean_visible=np.array([0.5, 1.0]))
  with pytest.raises(ValueError, match="mean_visible has 3 entries for 4 visible units"):
    t = contrastive.cd(opt, mean_visible=np.array([True, False, True]))
    t.update(jax.random.key(0), t.init(None, R.init(jax.random.key(0), 4, 2)), jnp.ones((2, 4)))
  trainer = contrastive.cd(opt)
  state = trainer.init(jax.random.key(0), R.init(jax.random.key(0), 4, 2))
  with pytest.raises(ValueError, match=r"data must have shape \[n, 4\]"):
    trainer.epoch(jax.random.key(0), state, jnp.ones((10, 5)), 5)
  with pytest.raises(ValueError, match="batch_size"):
    trainer.epoch(jax.random.key(0), state, jnp.ones((10, 4)), 11)


def _reference_cd_update(key, params, batch, k, optimizer, opt_state):
  """CD-k as it was written before the generic trainer (jdbn 0.1.0's contrastive._make), from
  the RBM primitives alone: a sweep from the data, k - 1 more, grad of mean F(data) - mean F(neg)."""
  key_pos, key_neg = jax.random.split(key)
  key_h, key_v = jax.random.split(key_pos)
  h0 = R.sample_hidden(key_h, params, batch)
  v = R.sample_visible(key_v, params, h0)
  for kk in jax.random.split(key_neg, k - 1):
    kh, kv = jax.random.split(kk)
    v = R.sample_visible(kv, params, R.sample_hidden(kh, params, v))
  v = jax.lax.stop_gradient(v)
  grads = jax.grad(lambda p: jnp.mean(R.free_energy(p, batch)) - jnp.mean(R.free_energy(p, v)))(
      params)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


@pytest.mark.parametrize("k", [1, 3])
def test_generic_trainer_reproduces_the_cd_update(digits, k):
  """contrastive.cd is a constructor over contrastive.trainer; the same key gives the update of
  the hand-written CD-k rule, to float32 rounding."""
  x = digits[:40]
  params = R.init(jax.random.key(0), 64, 16, data=x)
  opt = optax.sgd(0.1, momentum=0.9)
  trainer = contrastive.cd(opt, k=k)
  generic = contrastive.trainer(opt, contrastive.Phases(contrastive.sweep_from_data(),
                                                        contrastive.from_data(k),
                                                        contrastive.free_energy_score))
  state = trainer.init(jax.random.key(1), params)
  ref_p, ref_o = params, opt.init(params)
  for i in range(3):
    key = jax.random.key(10 + i)
    state, _ = jax.jit(trainer.update)(key, state, x[10 * i:10 * i + 10])
    ref_p, ref_o = _reference_cd_update(key, ref_p, x[10 * i:10 * i + 10], k, opt, ref_o)
  gen_state = generic.init(jax.random.key(1), params)
  for i in range(3):
    gen_state, _ = jax.jit(generic.update)(jax.random.key(10 + i), gen_state,
                                           x[10 * i:10 * i + 10])
  for a, b, c in zip(jax.tree.leaves(state.params), jax.tree.leaves(ref_p),
                     jax.tree.leaves(gen_state.params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(a, c)


def test_generic_trainer_fits_a_three_layer_block_model():
  """Mean-field positive phase + persistent chains + the energy score, on a DBM-shaped model
  small enough to enumerate: the exact log-likelihood of the data rises."""
  from jdbn.models import base, dbm  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  protos = np.array([[1, 1, 0, 0, 1, 0], [0, 0, 1, 1, 0, 1]], np.float32)
  x = np.abs(protos[rng.integers(0, 2, 200)] - (rng.random((200, 6)) < 0.05)).astype(np.float32)

  def exact_ll(model):
    joint = base.enumerate_states(model)
    neg_e = -np.asarray(model.energy(tuple(map(jnp.asarray, joint))), np.float64)
    log_z = np.logaddexp.reduce(neg_e)
    idx = np.all(joint[0][:, None, :] == x[None], -1)  # [states, n]
    return np.mean([np.logaddexp.reduce(neg_e[idx[:, i]]) for i in range(len(x))]) - log_z

  model = dbm.init(jax.random.key(0), (6, 4, 3), weight_scale=0.1)
  phases = contrastive.Phases(contrastive.clamped(10), contrastive.persistent(1, 50),
                              contrastive.energy_score)
  # The rate decays to 0 as in the DBM trainer: at a constant 0.1 the persistent chains stop
  # mixing between the two modes once the model is sharp, and the likelihood oscillates by nats
  # from epoch to epoch, so the last epoch's value would be chance.
  trainer = contrastive.trainer(optax.sgd(optax.linear_schedule(0.1, 0.0, 300), momentum=0.5),
                                phases)
  state = trainer.init(jax.random.key(1), model)
  before = exact_ll(model)
  for e in range(30):
    state, info = trainer.epoch(jax.random.key(e), state, x, batch_size=20)
  after = exact_ll(state.params)
  assert np.isfinite(float(info.loss))
  assert after > before + 2.0, (before, after)  # from 6 ln 2 to near the data's -1.9 nats


def test_fast_pcd_with_fast_rate_zero_is_pcd_update_for_update():
  p = R.init(jax.random.key(40), 6, 4, weight_scale=0.5)
  x = (jax.random.uniform(jax.random.key(41), (40, 6)) < 0.4).astype(jnp.float32)
  opt = optax.sgd(0.1, momentum=0.5)
  plain, fast = contrastive.pcd(opt, n_chains=8), variants.fpcd(opt, n_chains=8, fast_rate=0.0)
  a, b = plain.init(jax.random.key(42), p), fast.init(jax.random.key(42), p)
  for step in range(5):
    key = jax.random.fold_in(jax.random.key(43), step)
    batch = x[8 * step:8 * step + 8]
    a, _ = jax.jit(plain.update)(key, a, batch)
    b, _ = jax.jit(fast.update)(key, b, batch)
  jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
  jax.tree.map(np.testing.assert_array_equal, a.chains, b.chains.chains)
  assert all(float(jnp.max(jnp.abs(f))) == 0 for f in jax.tree.leaves(b.chains.fast))


def test_fast_weights_follow_the_fast_rule_and_steer_the_chains():
  """``fast <- decay * fast - rate * grad`` after each update, and the chains sample
  ``params + fast``: with a large fast rate they leave the states PCD's chains would visit."""
  p = R.init(jax.random.key(44), 6, 4, weight_scale=0.5)
  x = (jax.random.uniform(jax.random.key(45), (8, 6)) < 0.4).astype(jnp.float32)
  opt = optax.sgd(0.0)  # regular params frozen: only the fast ones move
  fast = variants.fpcd(opt, n_chains=8, fast_rate=0.5, fast_decay=0.9)
  state = fast.init(jax.random.key(46), p)
  key = jax.random.key(47)
  est = contrastive.gradient(key, contrastive.Phases(
      contrastive.sampled_hidden, PH.fast_persistent(1, 8, optax.identity()),
      contrastive.free_energy_score), p, state.chains, x)
  new, _ = fast.update(key, state, x)
  np.testing.assert_allclose(new.chains.fast.W, -0.5 * est.grads.W, rtol=1e-6)
  again, _ = fast.update(jax.random.key(48), new, x)
  est2 = contrastive.gradient(jax.random.key(48), contrastive.Phases(
      contrastive.sampled_hidden, PH.fast_persistent(1, 8, optax.identity()),
      contrastive.free_energy_score), p, new.chains, x)
  np.testing.assert_allclose(again.chains.fast.W, 0.9 * new.chains.fast.W - 0.5 * est2.grads.W,
                             rtol=1e-5, atol=1e-7)
  with pytest.raises(ValueError, match="fast_rate"):
    variants.fpcd(opt, fast_rate=-1.0)
