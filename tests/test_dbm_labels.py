"""A DBM's label block: clamped mean-field, the class posterior against exact enumeration, the free
chains' label marginal, training with labels, and the checks of label inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from jdbn import data
from jdbn import units as U
from jdbn.models import base, centered, dbm, dbm_labels
from jdbn.samplers import gibbs as G
from jdbn.train import dbm as TD
from jdbn.train import phases as PH

LABELLED = (U.Bernoulli(),) * 3 + (U.Softmax(3),)


def _labelled(seed, scale=1.0, sizes=(6, 4, 3, 3)):
  """A 6-4-3-label(3) DBM with ``N(0, scale^2)`` weights and ``N(0, 0.5^2)`` biases."""
  units = (U.Bernoulli(),) * (len(sizes) - 1) + (U.Softmax(sizes[-1]),)
  model = dbm.init(jax.random.key(seed), sizes, units, weight_scale=scale)
  keys = jax.random.split(jax.random.key(seed + 1), len(sizes))
  return model.replace(biases=tuple(0.5 * jax.random.normal(k, (n,))
                                    for k, n in zip(keys, sizes)))


def _near_deterministic():
  """h1 copies v[:4] and h2 copies y through fields of +-15 (the h1-h2 coupling, N(0, 1), moves
  them by a few units at most): given (v, y) the hidden posterior is nearly one state, while
  p(y | v) depends on v through v[:4] W_1 y."""
  model = _labelled(30, scale=0.1)
  w0 = model.weights[0].at[jnp.arange(4), jnp.arange(4)].set(30.0)
  w1 = jax.random.normal(jax.random.key(31), (4, 3))
  w2 = model.weights[2] + 30.0 * jnp.eye(3)
  b = model.biases
  return model.replace(weights=(w0, w1, w2),
                       biases=(b[0], jnp.full((4,), -15.0), jnp.full((3,), -15.0), b[3]))


def _exact_log_p_v_y(model):
  """``log p(v, y)`` of every visible state and class, ``[n_v, n_classes]`` (float64), by summing
  the joint over the hidden layers; and the visible states ``[n_v, n_visible]``."""
  joint = base.enumerate_states(model)
  p = base.exact_probs(model)
  v_states = model.units[0].states(model.sizes[0])
  iv = np.argmax(np.all(joint[0][:, None, :] == v_states[None], -1), 1)
  iy = np.argmax(joint[-1], 1)
  n = model.sizes[-1]
  p_vy = np.bincount(iv * n + iy, weights=p, minlength=len(v_states) * n)
  return v_states, np.log(p_vy.reshape(len(v_states), n))


@pytest.mark.parametrize("sizes", [(6, 4, 3, 3), (5, 3, 4, 2, 3)])
def test_label_block_log_z_over_the_odd_layers_matches_joint_enumeration(sizes):
  """The Softmax label block enumerated (odd top layer) or summed analytically (even)."""
  model = _labelled(0, sizes=sizes)
  np.testing.assert_allclose(float(dbm.exact_log_z(model)), float(base.exact_log_z(model)),
                             rtol=1e-5)


def test_clamped_mean_field_satisfies_its_fixed_point_equations():
  model = _labelled(1, scale=1.5)
  v = (jax.random.uniform(jax.random.key(2), (20, 6)) < 0.5).astype(jnp.float32)
  y = jnp.arange(20) % 3
  res = dbm.mean_field(model, v, labels=y, tol=1e-7, max_iter=500)
  assert bool(res.converged) and 1 < int(res.n_iter) < 500
  _, q1, q2, lab = res.states
  w, a = model.weights, model.biases
  y1 = jax.nn.one_hot(y, 3)
  np.testing.assert_array_equal(lab, y1)
  np.testing.assert_array_equal(res.states[0], v)
  np.testing.assert_allclose(q1, jax.nn.sigmoid(v @ w[0] + q2 @ w[1].T + a[1]), atol=1e-6)
  np.testing.assert_allclose(q2, jax.nn.sigmoid(q1 @ w[1] + y1 @ w[2].T + a[2]), atol=1e-6)
  # one-hot labels, and jit, give the same fixed point
  again = jax.jit(lambda m, x, l: dbm.mean_field(m, x, labels=l, tol=1e-7, max_iter=500))(
      model, v, y1)
  np.testing.assert_allclose(again.states[2], q2, atol=1e-6)
  # the free mean-field differs: the label block is then a factor like any hidden layer
  free = dbm.mean_field(model, v, tol=1e-7, max_iter=500).states
  np.testing.assert_allclose(free[3], jax.nn.softmax(free[2] @ w[2] + a[3]), atol=1e-6)
  assert not np.allclose(free[2], q2, atol=1e-2)


def test_bottom_up_with_labels_gives_the_layer_below_them_both_inputs_once():
  model = _labelled(3)
  v = jnp.ones((2, 6))
  y = jnp.asarray([2, 0])
  _, q1, q2, lab = dbm.bottom_up(model, v, y)
  w, a = model.weights, model.biases
  np.testing.assert_allclose(q1, jax.nn.sigmoid(2 * v @ w[0] + a[1]), rtol=1e-6)
  np.testing.assert_allclose(q2, jax.nn.sigmoid(q1 @ w[1] + jax.nn.one_hot(y, 3) @ w[2].T + a[2]),
                             rtol=1e-6)
  np.testing.assert_array_equal(lab, jax.nn.one_hot(y, 3))
  # labels broadcast over the batch
  np.testing.assert_array_equal(dbm.bottom_up(model, v, 1)[3], jax.nn.one_hot([1, 1], 3))


def test_class_bounds_are_lower_bounds_and_the_posterior_is_exact_up_to_their_gaps():
  """``B_c - log Z <= log p(v, c)``; with gaps ``g_c``, ``|log q(c|v) - log p(c|v)| <= max g -
  min g``; and the gaps are real with these couplings (the check has something to check)."""
  model = _labelled(4, scale=1.5)
  v, log_p_vy = _exact_log_p_v_y(model)
  bounds = np.asarray(dbm_labels.class_bounds(model, jnp.asarray(v), tol=1e-7), np.float64)
  gaps = log_p_vy - (bounds - float(dbm.exact_log_z(model)))
  assert gaps.min() > -1e-4, gaps.min()
  assert gaps.mean() > 1e-2, gaps.mean()
  exact = log_p_vy - np.logaddexp.reduce(log_p_vy, axis=1, keepdims=True)
  approx = np.asarray(dbm_labels.label_log_probs(model, jnp.asarray(v), tol=1e-7))
  spread = gaps.max(1, keepdims=True) - gaps.min(1, keepdims=True)
  assert np.all(np.abs(approx - exact) <= spread + 1e-4)
  # the bound's posterior is the better of the two on average here
  mf = np.asarray(dbm_labels.label_log_probs(model, jnp.asarray(v), method="mean_field"))
  kl = lambda q: np.mean(np.sum(np.exp(exact) * (exact - q), 1))  # noqa: E731
  assert kl(approx) < kl(mf), (kl(approx), kl(mf))


def test_class_posterior_is_exact_when_the_hidden_posterior_is_nearly_deterministic():
  model = _near_deterministic()
  v, log_p_vy = _exact_log_p_v_y(model)
  exact = log_p_vy - np.logaddexp.reduce(log_p_vy, axis=1, keepdims=True)
  approx = np.asarray(dbm_labels.label_log_probs(model, jnp.asarray(v)))
  np.testing.assert_allclose(approx, exact, atol=2e-3)
  # p(y | v) moves with v, so the check is not of a trivial model
  assert np.ptp(np.exp(exact), axis=0).max() > 0.5 and len(np.unique(exact.argmax(1))) > 1
  # the free labels' mean-field locks in here (the module docstring's 31%)
  mf = np.asarray(dbm_labels.label_log_probs(model, jnp.asarray(v), method="mean_field"))
  assert np.mean(mf.argmax(1) == exact.argmax(1)) < 0.5
  pred = dbm_labels.classify(model, jnp.asarray(v).reshape(4, 16, 6), batch_size=7)
  assert pred.shape == (4, 16) and pred.dtype == jnp.int32
  np.testing.assert_array_equal(np.asarray(pred).ravel(), exact.argmax(1))


def test_free_chains_label_marginal_matches_the_exact_p_y():
  """The trainer's negative phase (persistent chains over every layer) samples the label block
  from ``p(y)``: chi-square of 4,000 independent chains after 300 sweeps."""
  model = _labelled(5, scale=1.0)
  _, log_p_vy = _exact_log_p_v_y(model)
  p_y = np.exp(np.logaddexp.reduce(log_p_vy, axis=0))
  neg = PH.persistent(300, 4000)
  chains = neg.init(jax.random.key(6), model)
  _, states = jax.jit(neg.sample)(jax.random.key(7), model, chains, None)
  labels = np.asarray(states[3])
  assert np.all(labels.sum(1) == 1)
  counts = labels.sum(0)
  assert stats.chisquare(counts, 4000 * p_y).pvalue > 1e-3, (counts / 4000, p_y)
  # the test has power: the chains' start (the base rates) is rejected
  start = np.asarray(jax.nn.softmax(model.biases[3]))
  assert stats.chisquare(counts, 4000 * start).pvalue < 1e-6, (counts / 4000, start)


def test_labelled_pcd_update_is_the_clamped_mean_field_minus_chain_statistics():
  model = _labelled(8)
  trainer = TD.pcd(optax.sgd(1.0), n_chains=7, k=2, tol=1e-7, max_iter=200, labels=True)
  state = trainer.init(jax.random.key(9), model)
  v = (jax.random.uniform(jax.random.key(10), (5, 6)) < 0.5).astype(jnp.float32)
  y = jnp.asarray([0, 2, 1, 1, 0])
  key = jax.random.key(11)
  new, info = jax.jit(trainer.update)(key, state, (v, y))
  q = dbm.mean_field(model, v, labels=y, tol=1e-7, max_iter=200).states
  neg, _ = G.chain(jax.random.split(key)[1], model, state.chains, 2)
  for l in range(3):
    want = q[l].T @ q[l + 1] / 5 - neg[l].T @ neg[l + 1] / 7
    np.testing.assert_allclose(new.params.weights[l] - model.weights[l], want, atol=2e-6)
  np.testing.assert_allclose(new.params.biases[3] - model.biases[3],
                             jnp.mean(jax.nn.one_hot(y, 3), 0) - jnp.mean(neg[3], 0), atol=2e-6)
  assert np.isfinite(float(info.recon_error)) and int(new.step) == 1


def test_training_with_labels_classifies_digits_well_below_chance():
  """Joint PCD from a random start, labels clamped in the positive phase, 40 epochs of the
  binarised digits (64-64-32-label(10)): the test error falls far below chance. Measured: 30%
  (bound) and 27% (mean-field); the same model and run trained on ``x`` alone, its label block
  free, errs on 89.9% of the test digits with either method, far above the bound of 60%."""
  train, test = data.load_digits("train"), data.load_digits("test")
  x, xt = data.binarize(train.x), data.binarize(test.x)
  units = (U.Bernoulli(),) * 3 + (U.Softmax(10),)
  model = dbm.init(jax.random.key(12), (64, 64, 32, 10), units)
  trainer = TD.pcd(optax.sgd(0.02, momentum=0.9), n_chains=100, k=5, labels=True)
  state = trainer.init(jax.random.key(13), model)
  for e in range(40):
    state, info = trainer.epoch(jax.random.fold_in(jax.random.key(14), e), state,
                                (x, train.y), 50)
  assert np.isfinite(float(info.loss))
  for method in dbm_labels.METHODS:
    err = float(np.mean(np.asarray(dbm_labels.classify(state.params, xt, method=method)) !=
                        test.y))
    assert err < 0.6, (method, err)


def test_centered_training_with_labels_runs():
  model = centered.center(dbm.init(jax.random.key(15), (6, 4, 3, 3), LABELLED),
                          jnp.full((4, 6), 0.5))
  trainer = TD.centered(optax.sgd(0.05), n_chains=10, k=1, labels=True)
  x = (jax.random.uniform(jax.random.key(16), (40, 6)) < 0.5).astype(jnp.float32)
  state, _ = trainer.epoch(jax.random.key(17), trainer.init(jax.random.key(18), model),
                           (x, jnp.arange(40) % 3), 10)
  moved = state.params.offsets[3] - model.offsets[3]  # towards the classes' frequencies
  assert float(jnp.abs(moved).max()) > 1e-4 and abs(float(jnp.sum(moved))) < 1e-6
  assert trainer.config["labels"] is True


def test_bad_labels():
  model = _labelled(0)
  v = jnp.zeros((2, 6))
  with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
    dbm.mean_field(model, v, labels=jnp.asarray([0, 3]))
  with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
    dbm.mean_field(model, v, labels=jnp.asarray([-1, 0]))
  with pytest.raises(ValueError, match="one-hot"):
    dbm.mean_field(model, v, labels=jnp.asarray([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
  with pytest.raises(ValueError, match="one-hot"):
    dbm.mean_field(model, v, labels=jnp.asarray([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]))
  with pytest.raises(ValueError, match="3 columns"):
    dbm.mean_field(model, v, labels=jnp.eye(2))
  with pytest.raises(ValueError, match="NaN"):
    dbm.mean_field(model, v, labels=jnp.asarray([[jnp.nan, 0.0, 1.0], [0.0, 0.0, 1.0]]))
  with pytest.raises(ValueError, match="NaN"):
    dbm.mean_field(model, v, labels=jnp.asarray([jnp.nan, 0.0]))
  with pytest.raises(ValueError, match="int class indices"):
    dbm.mean_field(model, v, labels=jnp.asarray([1.0, 0.0]))
  with pytest.raises(ValueError, match="batch shape"):
    dbm.mean_field(model, v, labels=jnp.asarray([0, 1, 2]))
  plain = dbm.init(jax.random.key(0), (6, 4, 3))
  for m in (plain, dbm.init(jax.random.key(0), (6, 3), (U.Bernoulli(), U.Softmax(3))),
            dbm.init(jax.random.key(0), (6, 4, 6), LABELLED[1:])):
    with pytest.raises(ValueError, match="label block"):
      dbm.mean_field(m, v, labels=jnp.asarray([0, 1]))
  with pytest.raises(ValueError, match="label block"):
    dbm_labels.classify(plain, v)
  with pytest.raises(ValueError, match="method"):
    dbm_labels.label_log_probs(model, v, method="gibbs")
  with pytest.raises(ValueError, match="method"):
    dbm_labels.classify(model, v, method="gibbs")


def test_bad_labelled_training():
  model = _labelled(0)
  x = jnp.zeros((10, 6))
  trainer = TD.pcd(optax.sgd(0.1), n_chains=4, k=1, labels=True)
  state = trainer.init(jax.random.key(0), model)
  with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
    trainer.epoch(jax.random.key(1), state, (x, jnp.full((10,), 3)), 5)
  with pytest.raises(ValueError, match="takes"):
    trainer.epoch(jax.random.key(1), state, x, 5)
  with pytest.raises(ValueError, match="batch shape"):
    trainer.epoch(jax.random.key(1), state, (x, jnp.zeros((9,), jnp.int32)), 5)
  with pytest.raises(ValueError, match="label block"):
    trainer.init(jax.random.key(0), dbm.init(jax.random.key(0), (6, 4, 3)))
  plain = TD.pcd(optax.sgd(0.1), n_chains=4, k=1)
  with pytest.raises(ValueError, match="labels=True"):
    plain.epoch(jax.random.key(1), plain.init(jax.random.key(0), model),
                (x, jnp.zeros((10,), jnp.int32)), 5)
  with pytest.raises(TypeError, match="labels"):
    TD.pcd(optax.sgd(0.1), labels="yes")


def test_class_clamped_samples_have_the_exact_class_conditional_means():
  """``jdbn sample``'s chains of a labelled DBM, the label block clamped at ``c``: the mean over
  4,000 chains of ``E[v | h1]`` after 200 sweeps is ``E[v | y = c]`` (exact, by enumeration),
  within 4.5 standard errors per pixel; the free start's means are rejected."""
  from jdbn.cli import dbm_run  # pylint: disable=import-outside-toplevel
  model = _labelled(40, scale=1.5)
  model = model.replace(weights=model.weights[:2] + (3.0 * model.weights[2],))  # labels matter
  v_states, log_p_vy = _exact_log_p_v_y(model)
  p_v_given_y = np.exp(log_p_vy - np.logaddexp.reduce(log_p_vy, axis=0))  # [n_v, 3]
  labels = dbm_run.class_rows(model, 12_000)
  assert labels.shape == (12_000,) and np.array_equal(np.bincount(labels), [4000] * 3)
  means = dbm_run.visible_samples(jax.random.key(41), model, 12_000, 200, labels)
  for c in range(3):
    got = means[labels == c]
    exact = p_v_given_y[:, c] @ v_states
    se = got.std(0) / np.sqrt(len(got))
    assert np.all(np.abs(got.mean(0) - exact) < 4.5 * se + 1e-3), (c, got.mean(0), exact)
  differs = [np.abs(p_v_given_y[:, c] @ v_states - p_v_given_y[:, 0] @ v_states).max()
             for c in range(3)]
  assert max(differs) > 0.05  # the classes' means differ, so clamping is what made them match
  assert dbm_run.class_rows(dbm.init(jax.random.key(0), (6, 4, 3)), 10) is None


def test_labelled_log_z_by_class_matches_enumeration():
  """``Z = sum_c exp(b_c) Z_c`` with the label clamped (exact), and the variational bound's AIS
  of a labelled DBM (run class by class) within its interval of the exact ``log Z``."""
  from jdbn import likelihood as L  # pylint: disable=import-outside-toplevel
  from jdbn.likelihood import dbm as LD  # pylint: disable=import-outside-toplevel
  model = _labelled(5, scale=1.5)
  exact = float(dbm.exact_log_z(model))
  by_class = [float(model.biases[-1][c] + dbm.exact_log_z(LD.class_conditioned(model, c)))
              for c in range(3)]
  np.testing.assert_allclose(np.logaddexp.reduce(by_class), exact, rtol=1e-5)
  v = jnp.asarray((np.random.default_rng(8).random((40, 6)) < 0.5).astype(np.float32))
  est = L.variational_bound(jax.random.key(9), model, v, n_chains=300,
                            betas=np.linspace(0, 1, 1001))
  assert est.ais.log_w.shape == (300,)
  assert float(est.ais.log_z_lower) <= exact <= float(est.ais.log_z_upper)
  assert abs(float(est.ais.log_z) - exact) < 0.1
