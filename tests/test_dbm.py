"""Deep Boltzmann Machines: exact log Z over the odd layers, mean-field inference, the variational
bound and AIS, checked against enumeration of every joint state of tiny models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdbn import likelihood as L
from jdbn import units as U
from jdbn.models import base, dbm


def _dbm(sizes, seed, scale=1.0, bias_scale=0.5, units=None):
  model = dbm.init(jax.random.key(seed), sizes, units, weight_scale=scale)
  keys = jax.random.split(jax.random.key(seed + 1), len(sizes))
  return model.replace(biases=tuple(bias_scale * jax.random.normal(k, (n,))
                                    for k, n in zip(keys, sizes)))


def _exact_log_p_v(model):
  """``log p(v)`` of every visible state, by summing the joint over the hidden layers (float64)."""
  joint = base.enumerate_states(model)
  p = base.exact_probs(model)
  v_states = model.units[0].states(model.sizes[0])
  idx = np.argmax(np.all(joint[0][:, None, :] == v_states[None], -1), 1)
  return v_states, np.log(np.bincount(idx, weights=p, minlength=len(v_states)))


@pytest.mark.parametrize("sizes", [(6, 4, 3), (4, 3, 3, 2)])
def test_exact_log_z_over_the_odd_layers_matches_joint_enumeration(sizes):
  model = _dbm(sizes, 0)
  np.testing.assert_allclose(float(dbm.exact_log_z(model)), float(base.exact_log_z(model)),
                             rtol=1e-5)
  np.testing.assert_allclose(float(dbm.exact_log_z(model, chunk_size=5)),
                             float(base.exact_log_z(model)), rtol=1e-5)


def test_exact_log_z_of_a_digits_sized_dbm_matches_a_float64_closed_form():
  """64-12-6: 4,096 states of h1, v and h2 summed analytically (softplus of their fields)."""
  model = _dbm((64, 12, 6), 3, scale=0.3)
  w0, w1 = (np.asarray(w, np.float64) for w in model.weights)
  a0, a1, a2 = (np.asarray(a, np.float64) for a in model.biases)
  h1 = np.asarray(U.Bernoulli().states(12), np.float64)
  log_f = (h1 @ a1 + np.logaddexp(0, a0 + h1 @ w0.T).sum(1) +
           np.logaddexp(0, a2 + h1 @ w1).sum(1))
  exact = np.logaddexp.reduce(log_f)
  np.testing.assert_allclose(float(dbm.exact_log_z(model)), exact, rtol=2e-6)


def test_mean_field_satisfies_its_fixed_point_equations():
  model = _dbm((6, 5, 4, 3), 5, scale=1.0)
  v = (jax.random.uniform(jax.random.key(6), (20, 6)) < 0.5).astype(jnp.float32)
  res = dbm.mean_field(model, v, tol=1e-7, max_iter=500)
  assert bool(res.converged) and 1 < int(res.n_iter) < 500
  q = res.states
  sig = jax.nn.sigmoid
  np.testing.assert_allclose(q[1], sig(v @ model.weights[0] + q[2] @ model.weights[1].T +
                                       model.biases[1]), atol=1e-6)
  np.testing.assert_allclose(q[2], sig(q[1] @ model.weights[1] + q[3] @ model.weights[2].T +
                                       model.biases[2]), atol=1e-6)
  np.testing.assert_allclose(q[3], sig(q[2] @ model.weights[2] + model.biases[3]), atol=1e-6)
  np.testing.assert_array_equal(q[0], v)
  capped = dbm.mean_field(model, v, tol=0.0, max_iter=3)
  assert int(capped.n_iter) == 3 and not bool(capped.converged)
  # jit gives the same fixed point
  again = jax.jit(lambda m, x: dbm.mean_field(m, x, tol=1e-7, max_iter=500))(model, v)
  np.testing.assert_allclose(again.states[1], q[1], atol=1e-6)


def test_bottom_up_pass_doubles_the_input_below_the_top():
  model = _dbm((5, 4, 3), 7)
  v = jnp.ones((2, 5))
  _, q1, q2 = dbm.bottom_up(model, v)
  np.testing.assert_allclose(q1, jax.nn.sigmoid(2 * v @ model.weights[0] + model.biases[1]),
                             rtol=1e-6)
  np.testing.assert_allclose(q2, jax.nn.sigmoid(q1 @ model.weights[1] + model.biases[2]),
                             rtol=1e-6)


def test_variational_bound_is_below_exact_log_p_and_rises_along_mean_field():
  model = _dbm((6, 4, 3), 8, scale=1.5)
  v, exact = _exact_log_p_v(model)
  log_z = dbm.exact_log_z(model)
  v = jnp.asarray(v)
  final = dbm.lower_bound(model, dbm.mean_field(model, v, tol=1e-7).states, log_z)
  assert np.all(np.asarray(final) <= exact + 1e-4)
  assert np.mean(exact - np.asarray(final)) > 1e-3  # a real gap with these couplings
  # each sweep is coordinate ascent on the bound: it never falls
  previous = dbm.lower_bound(model, dbm.bottom_up(model, v), log_z)
  for n in range(1, 8):
    now = dbm.lower_bound(model, dbm.mean_field(model, v, tol=0.0, max_iter=n).states, log_z)
    assert np.all(np.asarray(now) >= np.asarray(previous) - 1e-4)
    previous = now


def test_variational_bound_is_tight_when_the_posterior_is_nearly_deterministic():
  model = _dbm((6, 4, 3), 9, scale=0.05)
  model = model.replace(biases=(model.biases[0], 12 * jnp.sign(model.biases[1]),
                                12 * jnp.sign(model.biases[2])))
  v, exact = _exact_log_p_v(model)
  bound = dbm.lower_bound(model, dbm.mean_field(model, jnp.asarray(v)).states,
                          dbm.exact_log_z(model))
  np.testing.assert_allclose(np.asarray(bound), exact, atol=2e-3)


def test_ais_of_a_dbm_is_within_a_tenth_of_a_nat_of_exact():
  model = _dbm((6, 4, 3), 10, scale=1.5)
  x = (jax.random.uniform(jax.random.key(11), (100, 6)) < 0.4).astype(jnp.float32)
  res = L.ais(jax.random.key(12), model, n_chains=200, betas=np.linspace(0, 1, 1001),
              base_biases=L.base_rates(model, {"v": x}))
  exact = float(dbm.exact_log_z(model))
  assert abs(float(res.log_z) - exact) < 0.1
  assert float(res.log_z_lower) <= exact <= float(res.log_z_upper)


def test_entropy_of_bernoulli_and_softmax_units():
  q = jnp.asarray([0.5, 0.0, 1.0, 0.2])
  np.testing.assert_allclose(float(dbm.entropy(U.Bernoulli(), q)),
                             np.log(2) - (0.2 * np.log(0.2) + 0.8 * np.log(0.8)), rtol=1e-6)
  p = jnp.asarray([0.25, 0.25, 0.5, 1.0, 0.0, 0.0])
  np.testing.assert_allclose(float(dbm.entropy(U.Softmax(3), p)), -(2 * 0.25 * np.log(0.25) +
                                                                    0.5 * np.log(0.5)), rtol=1e-6)
  with pytest.raises(ValueError, match="Bernoulli or Softmax"):
    dbm.entropy(U.Gaussian(), q)


def test_init_from_data_sets_the_visible_biases_as_the_rbm_init_does():
  """Bernoulli visible units: the clipped log-odds of the data's means; a learned Gaussian
  sigma: the data's mean and standard deviation; the hidden biases stay 0."""
  data = np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0], [1, 0, 1]], np.float32)
  model = dbm.init(jax.random.key(0), (3, 4, 2), data=data)
  prob = np.clip(data.mean(0), 1e-3, 1 - 1e-3)
  np.testing.assert_allclose(model.biases[0], np.log(prob / (1 - prob)), rtol=1e-5)
  assert float(model.biases[0][0]) == pytest.approx(np.log(999), rel=1e-4)  # clipped, finite
  assert all(not np.any(b) for b in model.biases[1:])
  plain = dbm.init(jax.random.key(0), (3, 4, 2))
  for a, b in zip(model.weights, plain.weights):  # the same weights as without data
    np.testing.assert_array_equal(a, b)
  gauss = dbm.init(jax.random.key(0), (2, 3, 2), (U.Gaussian(True), U.Bernoulli(), U.Bernoulli()),
                   data=np.array([[0., 1.], [2., 5.]]))
  np.testing.assert_allclose(gauss.biases[0], [1.0, 3.0])
  np.testing.assert_allclose(jnp.exp(gauss.log_sigmas[0]), [1.0, 2.0], rtol=1e-6)
  with pytest.raises(ValueError, match=r"data must have shape \[n, 3\]"):
    dbm.init(jax.random.key(0), (3, 4), data=np.zeros((2, 4)))
  with pytest.raises(ValueError, match="NaN"):
    dbm.init(jax.random.key(0), (3, 4), data=np.full((2, 3), np.nan))


def test_bad_input():
  model = _dbm((6, 4, 3), 0)
  with pytest.raises(ValueError, match=r"shape \[\.\.\., 6\]"):
    dbm.mean_field(model, jnp.zeros((2, 5)))
  with pytest.raises(ValueError, match="NaN"):
    dbm.mean_field(model, jnp.full((2, 6), jnp.nan))
  with pytest.raises(ValueError, match="max_iter"):
    dbm.mean_field(model, jnp.zeros((2, 6)), max_iter=0)
  with pytest.raises(ValueError, match="init"):
    dbm.mean_field(model, jnp.zeros((2, 6)), init="top_down")
  with pytest.raises(ValueError, match="cannot be enumerated"):
    dbm.exact_log_z(dbm.init(jax.random.key(0), (3, 2, 2), (U.Bernoulli(), U.Gaussian(),
                                                            U.Bernoulli())))
  with pytest.raises(ValueError, match="more than"):
    dbm.exact_log_z(dbm.init(jax.random.key(0), (3, 30, 2)))


# ----------------------------------------------------------------------------- training


def test_dbm_pcd_update_is_the_mean_field_minus_chain_statistics():
  """One SGD step (rate 1) moves every weight by ``<s_l s_{l+1}>_q - <s_l s_{l+1}>_chains``."""
  import optax  # pylint: disable=import-outside-toplevel
  from jdbn.samplers import gibbs as G  # pylint: disable=import-outside-toplevel
  from jdbn.train import dbm as TD  # pylint: disable=import-outside-toplevel
  model = _dbm((6, 4, 3), 13)
  trainer = TD.pcd(optax.sgd(1.0), n_chains=7, k=2, tol=1e-7, max_iter=200)
  state = trainer.init(jax.random.key(14), model)
  v = (jax.random.uniform(jax.random.key(15), (5, 6)) < 0.5).astype(jnp.float32)
  key = jax.random.key(16)
  new, info = jax.jit(trainer.update)(key, state, v)
  q = dbm.mean_field(model, v, tol=1e-7, max_iter=200).states
  neg, _ = G.chain(jax.random.split(key)[1], model, state.chains, 2)
  for l in range(2):
    want = q[l].T @ q[l + 1] / 5 - neg[l].T @ neg[l + 1] / 7
    np.testing.assert_allclose(new.params.weights[l] - model.weights[l], want, atol=2e-6)
  for l in range(3):
    want = jnp.mean(q[l], 0) - jnp.mean(neg[l], 0)
    np.testing.assert_allclose(new.params.biases[l] - model.biases[l], want, atol=2e-6)
  np.testing.assert_array_equal(new.chains[0], neg[0])
  assert np.isfinite(float(info.loss)) and int(new.step) == 1


def test_dbm_training_raises_the_exact_log_likelihood():
  """PCD with mean-field on data from three prototypes (10% pixel noise): the exact mean
  log-likelihood of the data (enumeration) rises well above its value at the start."""
  import optax  # pylint: disable=import-outside-toplevel
  from jdbn.train import dbm as TD  # pylint: disable=import-outside-toplevel
  protos = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1], [1, 0, 1, 0, 1, 0]], np.float32)
  rng = np.random.default_rng(17)
  x = protos[rng.integers(0, 3, 600)]
  x = np.abs(x - (rng.random(x.shape) < 0.1)).astype(np.float32)
  model = dbm.init(jax.random.key(18), (6, 4, 3), weight_scale=0.1)
  trainer = TD.pcd(optax.sgd(0.05, momentum=0.5), n_chains=50, k=3)
  state = trainer.init(jax.random.key(19), model)

  def mean_log_p(m):
    v, log_p = _exact_log_p_v(m)
    idx = np.argmax(np.all(x[:, None, :] == v[None], -1), 1)
    return float(np.mean(log_p[idx]))

  before = mean_log_p(model)
  for e in range(15):
    state, _ = trainer.epoch(jax.random.fold_in(jax.random.key(20), e), state, x, 20)
  after = mean_log_p(state.params)
  entropy_floor = -6 * (0.1 * np.log(0.1) + 0.9 * np.log(0.9)) + np.log(3)  # H of the data
  assert after > before + 0.8, (before, after)  # uniform is -4.16, the data about -3.0
  assert after > -entropy_floor - 1.0, (after, -entropy_floor)
  report = TD.mean_field_report(state.params, x[:100], batch_size=40)
  assert report["mf_converged"] == 1.0 and report["mf_sweeps_max"] <= 30
  capped = TD.mean_field_report(state.params, x[:100], tol=0.0, max_iter=1)
  assert capped["mf_converged"] == 0.0 and capped["mf_sweeps"] == 1.0


# ----------------------------------------------------------------------------- pretraining


def test_pretraining_scales_follow_the_paper():
  from jdbn.train import dbm_pretrain as P  # pylint: disable=import-outside-toplevel
  assert [P.scales(3, l) for l in range(2)] == [(2.0, 1.0), (1.0, 2.0)]
  assert [P.scales(4, l) for l in range(3)] == [(2.0, 1.0), (2.0, 2.0), (1.0, 2.0)]
  assert P.scales(2, 0) == (1.0, 1.0)


def test_scaled_rbm_cd1_update_uses_the_doubled_recognition_input():
  """One SGD step (rate 1) of the first-layer RBM: ``v^T E[h | 2 v W] - v1^T E[h | 2 v1 W]`` with
  ``v1`` reconstructed by the single top-down input."""
  import optax  # pylint: disable=import-outside-toplevel
  from jdbn import rbm as R  # pylint: disable=import-outside-toplevel
  from jdbn.samplers import gibbs as G  # pylint: disable=import-outside-toplevel
  from jdbn.train import contrastive  # pylint: disable=import-outside-toplevel
  from jdbn.train import dbm_pretrain as P  # pylint: disable=import-outside-toplevel
  rbm = R.init(jax.random.key(21), 6, 4, weight_scale=0.5)
  model = P.ScaledRBM(rbm, 2.0, 1.0)
  trainer = contrastive.trainer(optax.sgd(1.0), P._cd_phases(1))
  v = (jax.random.uniform(jax.random.key(22), (5, 6)) < 0.5).astype(jnp.float32)
  key = jax.random.key(23)
  new, _ = trainer.update(key, trainer.init(key, model), v)
  k_pos, k_neg = jax.random.split(key)
  q = jax.nn.sigmoid(2 * v @ rbm.W + rbm.c)
  h = rbm.hidden.sample(k_pos, 2 * v @ rbm.W, rbm.c)
  v1 = G.chain(k_neg, model, (v, h), 1, schedule=((0,), (1,)))[0][0]
  q1 = jax.nn.sigmoid(2 * v1 @ rbm.W + rbm.c)
  np.testing.assert_allclose(new.params.rbm.W - rbm.W, (v.T @ q - v1.T @ q1) / 5, atol=2e-6)
  np.testing.assert_allclose(new.params.rbm.c - rbm.c, jnp.mean(q - q1, 0), atol=2e-6)
  # the reconstruction used the single top-down field
  field = model.field((v1, h), 0)
  np.testing.assert_allclose(field, h @ rbm.W.T, rtol=1e-6)


def test_greedy_pretraining_composes_a_dbm_that_fits_the_data():
  from jdbn.train import dbm_pretrain as P  # pylint: disable=import-outside-toplevel
  protos = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1], [1, 0, 1, 0, 1, 0]], np.float32)
  rng = np.random.default_rng(24)
  x = protos[rng.integers(0, 3, 600)]
  x = np.abs(x - (rng.random(x.shape) < 0.1)).astype(np.float32)
  model, histories = P.pretrain(jax.random.key(25), x, (6, 4, 3), epochs=(20, 10), batch_size=20,
                                progress=False)
  assert isinstance(model, dbm.DBM) and model.sizes == (6, 4, 3)
  assert [len(h) for h in histories] == [20, 10]
  assert histories[0][-1]["recon_error"] < histories[0][0]["recon_error"]
  v, log_p = _exact_log_p_v(model)
  idx = np.argmax(np.all(x[:, None, :] == v[None], -1), 1)
  assert float(np.mean(log_p[idx])) > -6 * np.log(2) + 0.5  # well above the uniform model
  with pytest.raises(ValueError, match="one per RBM"):
    P.pretrain(jax.random.key(0), x, (6, 4, 3), epochs=(1, 1, 1), progress=False)
  with pytest.raises(ValueError, match=r"shape \[n, 6\]"):
    P.pretrain(jax.random.key(0), x[:, :5], (6, 4, 3), epochs=1, progress=False)


def test_labelled_pretraining_composes_the_label_block_and_classifies_exactly():
  """The paper's MNIST model in miniature: the last RBM reads ``[h1, one_hot(y)]``, its label
  rows become the DBM's top layer; the composed DBM's exact ``p(y | v)`` (by enumeration) names
  each clean prototype's class, and the label units' top-down field is not doubled."""
  import optax  # pylint: disable=import-outside-toplevel
  from jdbn.models import dbm_labels  # pylint: disable=import-outside-toplevel
  from jdbn.train import dbm_pretrain as P  # pylint: disable=import-outside-toplevel
  protos = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1], [1, 0, 1, 0, 1, 0]], np.float32)
  rng = np.random.default_rng(31)
  y = rng.integers(0, 3, 600)
  x = np.abs(protos[y] - (rng.random((600, 6)) < 0.05)).astype(np.float32)
  model, histories = P.pretrain(jax.random.key(32), x, (6, 4, 3), epochs=(50, 50), batch_size=20,
                                optimizer=optax.sgd(0.1, momentum=0.5), labels=y, n_classes=3,
                                progress=False)
  assert model.sizes == (6, 4, 3, 3) and isinstance(model.units[-1], U.Softmax)
  assert [len(h) for h in histories] == [50, 50]
  # exact p(v, y) by enumerating every joint state (6 + 4 + 3 binary units, 3 labels)
  joint, p = base.enumerate_states(model), base.exact_probs(model)
  v_states = model.units[0].states(6)
  table = np.zeros((64, 3))
  np.add.at(table, (np.argmax(np.all(joint[0][:, None] == v_states[None], -1), 1),
                    np.argmax(joint[3], -1)), p)
  exact = np.argmax(table[np.argmax(np.all(x[:, None] == v_states[None], -1), 1)], -1)
  assert np.mean(exact == y) > 0.8  # chance 1/3; protos 0 and 2 differ in two pixels
  for c, proto in enumerate(protos):
    assert np.argmax(table[np.argmax(np.all(proto == v_states, -1))]) == c
  assert np.mean(np.asarray(dbm_labels.classify(model, jnp.asarray(x))) == exact) > 0.9
  # the last RBM's field into [h1, labels]: doubled for h1, single for the labels
  rbm = P.R.init(jax.random.key(33), 7, 3, U.Joint(((U.Bernoulli(), 4), (U.Softmax(3), 3))))
  h = jnp.ones((2, 3))
  field = P.ScaledRBM(rbm, 1.0, 2.0, 3).field((None, h), 0)
  np.testing.assert_allclose(field[:, :4], 2 * h @ rbm.W[:4].T, rtol=1e-6)
  np.testing.assert_allclose(field[:, 4:], h @ rbm.W[4:].T, rtol=1e-6)
  composed = P.compose([P.R.init(jax.random.key(34), 6, 4), rbm], n_labels=3)
  np.testing.assert_array_equal(composed.weights[2], rbm.W[4:].T)
  np.testing.assert_array_equal(composed.biases[3], rbm.b[4:])
  with pytest.raises(ValueError, match="at least two hidden layers"):
    P.pretrain(jax.random.key(0), x, (6, 4), epochs=1, labels=y, progress=False)
  with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
    P.pretrain(jax.random.key(0), x, (6, 4, 3), epochs=1, labels=y + 1, n_classes=3,
               progress=False)


def test_variational_bound_estimate_with_ais_matches_the_exact_bound():
  model = _dbm((6, 4, 3), 26, scale=1.5)
  v, exact = _exact_log_p_v(model)
  v = jnp.asarray(v)
  exact_bound = dbm.lower_bound(model, dbm.mean_field(model, v).states, dbm.exact_log_z(model))
  est = L.variational_bound(jax.random.key(27), model, v, n_chains=200,
                            betas=np.linspace(0, 1, 1001), batch_size=16)
  assert est.per_example.shape == (64,) and est.mean_field_converged == 1.0
  m = float(np.mean(np.asarray(exact_bound)))
  assert float(est.lower) <= m <= float(est.upper)
  assert abs(float(est.mean) - m) < 0.1
  assert m <= float(np.mean(exact))
  with pytest.raises(ValueError, match=r"shape \[n, 6\]"):
    L.variational_bound(jax.random.key(0), model, v[:0])
  with pytest.raises(TypeError, match="DBM"):
    L.variational_bound(jax.random.key(0), _block_rbm(), v)


def _block_rbm():
  from jdbn import rbm as R  # pylint: disable=import-outside-toplevel
  return R.init(jax.random.key(0), 6, 2)


# ----------------------------------------------------------------------------- fine-tuning


def test_dbm_network_starts_as_the_mean_field_update_and_trains():
  """The first hidden layer on ``[v, q_2]`` is ``h1``'s mean-field update, the second the
  bottom-up part of ``h2``'s; fine-tuning with Optax lowers the training error of a toy task."""
  import optax  # pylint: disable=import-outside-toplevel
  from jdbn.train import classifier_dbm as CD  # pylint: disable=import-outside-toplevel
  from jdbn.train import finetune  # pylint: disable=import-outside-toplevel
  model = _dbm((6, 5, 4), 30)
  rng = np.random.default_rng(31)
  x = (rng.random((200, 6)) < 0.5).astype(np.float32)
  y = (x[:, 0] + x[:, 1] > x[:, 2] + x[:, 3]).astype(np.int32)
  feats = CD.features(model, x, tol=1e-7, batch_size=64)
  q = dbm.mean_field(model, jnp.asarray(x), tol=1e-7).states
  np.testing.assert_allclose(feats[:, 6:], q[2], atol=1e-6)
  module, variables = CD.from_dbm(model, key=jax.random.key(32), n_classes=2)
  _, hidden = module.apply(variables, feats, return_hidden=True)
  np.testing.assert_allclose(hidden[0], q[1], atol=1e-5)  # q_1 is the fixed point of this map
  np.testing.assert_allclose(hidden[1], jax.nn.sigmoid(q[1] @ model.weights[1] + model.biases[2]),
                             atol=1e-5)
  from jdbn.train.classifier import error_rate  # pylint: disable=import-outside-toplevel
  e0 = error_rate(module, variables, feats, y)
  state, _ = finetune.train(jax.random.key(33), module, variables, (feats, y), (feats, y),
                            optax.sgd(0.5, momentum=0.9), epochs=30, batch_size=20,
                            progress=False)
  e1 = error_rate(module, state.best_variables, feats, y)
  assert e1 < e0 - 0.2 and e1 < 0.2, (e0, e1)
  with pytest.raises(ValueError, match="one hidden layer"):
    CD.from_dbm(_dbm((6, 5), 0), key=jax.random.key(0))
  assert CD.check_features(model, feats) is None and "10 wide" in CD.check_features(model, x)


def test_dbm_network_leaves_a_label_block_out():
  """A DBM with a label block on top: the network's hidden layers are the DBM's hidden layers,
  its features come from mean-field with the labels free, and its first layer is still ``h1``'s
  mean-field update."""
  from jdbn.train import classifier_dbm as CD  # pylint: disable=import-outside-toplevel
  labelled = _dbm((6, 5, 4, 3), 34, units=(U.Bernoulli(),) * 3 + (U.Softmax(3),))
  x = (np.random.default_rng(35).random((50, 6)) < 0.5).astype(np.float32)
  feats = CD.features(labelled, x, tol=1e-7)
  q = dbm.mean_field(labelled, jnp.asarray(x), tol=1e-7).states
  np.testing.assert_allclose(feats[:, 6:], q[2], atol=1e-6)
  module, variables = CD.from_dbm(labelled, key=jax.random.key(36), n_classes=10)
  assert module.hidden_sizes == (5, 4) and variables["params"]["output"]["kernel"].shape == (4, 10)
  _, hidden = module.apply(variables, feats, return_hidden=True)
  np.testing.assert_allclose(hidden[0], q[1], atol=1e-5)
  with pytest.raises(ValueError, match="one hidden layer.*label block"):
    CD.features(_dbm((6, 5, 3), 0, units=(U.Bernoulli(),) * 2 + (U.Softmax(3),)), x)
