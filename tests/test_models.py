"""The block-model interface: energies, fields and free energies against autodiff and enumeration."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdbn import rbm as R
from jdbn import units as U
from jdbn.models import base, bm, dbm


def _models():
  rbm = R.init(jax.random.key(0), 5, 4, U.Gaussian(learn_sigma=True), weight_scale=0.5)
  rbm = rbm.replace(log_sigma_v=0.2 * jax.random.normal(jax.random.key(1), (5,)))
  deep = dbm.init(jax.random.key(2), (4, 3, 5, 2), weight_scale=1.0)
  gauss_deep = dbm.init(jax.random.key(3), (3, 4, 2), (U.Gaussian(), U.Bernoulli(), U.Softmax(2)),
                        weight_scale=0.5)
  lateral = bm.init(jax.random.key(4), 7, edges=[(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6)],
                    weight_scale=1.0)
  return {"rbm": rbm, "dbm": deep, "gaussian dbm": gauss_deep, "bm": lateral}


def _random_states(model, key, batch=3):
  keys = jax.random.split(key, len(model.blocks))
  out = []
  for k, b in zip(keys, model.blocks):
    phi = jax.random.normal(k, (batch, b.size))
    out.append(b.units.sample(jax.random.fold_in(k, 1), phi, jnp.zeros(b.size), None))
  return tuple(out)


@pytest.mark.parametrize("name", ["rbm", "dbm", "gaussian dbm", "bm"])
def test_field_is_minus_the_energy_gradient_of_the_scaled_state(name):
  """``phi_i = -dE/ds_i`` without the self energy: the energy is the single source of truth."""
  model = _models()[name]
  states = _random_states(model, jax.random.key(5))
  for i, b in enumerate(model.blocks):
    sigma = model.log_sigma(i)

    def interaction(x, i=i, b=b, sigma=sigma):
      s = list(states)
      s[i] = x
      return jnp.sum(model.energy(s) - b.units.energy(x, model.bias(i), sigma))

    grad = jax.grad(interaction)(states[i])
    scale = 1.0 if sigma is None else jnp.exp(-sigma)  # ds/dx for Gaussian units
    np.testing.assert_allclose(-grad / scale, model.field(states, i), rtol=1e-5, atol=1e-5)


def test_group_free_energy_is_the_rbm_free_energy():
  rbm = _models()["rbm"]
  v = jax.random.normal(jax.random.key(6), (4, 5))
  np.testing.assert_allclose(base.free_energy(rbm, (v, None), (1,)), R.free_energy(rbm, v),
                             rtol=1e-5, atol=1e-5)
  h = (jax.random.uniform(jax.random.key(7), (4, 4)) < 0.5).astype(jnp.float32)
  np.testing.assert_allclose(base.free_energy(rbm, (None, h), (0,)), R.free_energy_hidden(rbm, h),
                             rtol=1e-5, atol=1e-5)


def test_dbm_free_energy_sums_out_the_odd_layers():
  model = _models()["dbm"]
  joint = base.enumerate_states(model)
  neg_e = -np.asarray(model.energy(tuple(map(jnp.asarray, joint))), np.float64)
  even = [np.asarray(model.units[l].states(model.sizes[l])) for l in (0, 2)]
  for v, h2 in itertools.islice(itertools.product(*even), 0, None, 37):
    rows = np.all(joint[0] == v, 1) & np.all(joint[2] == h2, 1)
    exact = -np.log(np.sum(np.exp(neg_e[rows])))
    f = dbm.free_energy(model, (jnp.asarray(v), None, jnp.asarray(h2), None))
    np.testing.assert_allclose(float(f), exact, rtol=1e-5, atol=1e-5)


def test_exact_log_z_of_an_rbm_block_model_matches_likelihood_module():
  from jdbn import likelihood as L  # pylint: disable=import-outside-toplevel
  rbm = R.init(jax.random.key(8), 5, 4, weight_scale=1.0)
  np.testing.assert_allclose(float(base.exact_log_z(rbm)), float(L.exact_log_z(rbm)), rtol=1e-6)


@pytest.mark.parametrize("name", ["binary rbm", "dbm", "bm"])
def test_tempered_copy_interpolates_the_energy(name):
  """``E_beta = beta E + (1 - beta) E_base`` for linear-energy families, every block's base
  biases given (an RBM's hidden ones included)."""
  model = (R.init(jax.random.key(10), 5, 4, weight_scale=1.0) if name == "binary rbm" else
           _models()[name])
  states = _random_states(model, jax.random.key(9))
  base_b = tuple(0.3 * jnp.ones(b.size) for b in model.blocks)
  base_e = sum(b.units.energy(x, a) for b, x, a in zip(model.blocks, states, base_b))
  for beta in (0.0, 0.37, 1.0):
    tempered = model.tempered(beta, base_b)
    np.testing.assert_allclose(tempered.energy(states),
                               beta * model.energy(states) + (1 - beta) * base_e, rtol=1e-5,
                               atol=1e-5)


def test_bm_couplings_are_symmetric_on_the_graph():
  model = _models()["bm"]
  J = np.asarray(model.coupling)
  np.testing.assert_array_equal(J, J.T)
  assert np.all(np.diag(J) == 0)
  assert J[0, 4] == 0 and J[0, 1] != 0
  x = jnp.arange(7.0)
  np.testing.assert_array_equal(bm.join(model, bm.split(model, x)), x)
  seq = bm.regroup(model, "sequential")
  assert len(seq.groups) == 7
  states = bm.split(seq, x % 2)
  np.testing.assert_allclose(seq.energy(states), model.energy(bm.split(model, x % 2)))


def test_colouring_is_proper():
  rng = np.random.default_rng(0)
  adj = np.triu(rng.random((30, 30)) < 0.2, 1)
  adj = adj | adj.T
  classes = bm.colouring(adj)
  assert sorted(v for c in classes for v in c) == list(range(30))
  for c in classes:
    assert not adj[np.ix_(c, c)].any()
  lattice = [(i, i + 1) for i in range(15) if (i + 1) % 4] + [(i, i + 4) for i in range(12)]
  assert len(bm.colouring(bm.adjacency(16, lattice))) == 2


def test_weights_only_masks_the_couplings_of_every_model():
  import optax  # pylint: disable=import-outside-toplevel
  for model in _models().values():
    mask = base.weights_only(model)
    flags = jax.tree_util.tree_flatten_with_path(mask)[0]
    assert any(f for _, f in flags) and not all(f for _, f in flags)
    for path, flag in flags:
      assert flag == any(getattr(k, "name", None) in ("W", "weights") for k in path)
    decay = optax.add_decayed_weights(0.5, mask=base.weights_only)
    grads = jax.tree.map(jnp.zeros_like, model)
    updates, _ = decay.update(grads, decay.init(model), model)
    for (path, u), (_, p), (_, flag) in zip(jax.tree_util.tree_flatten_with_path(updates)[0],
                                            jax.tree_util.tree_flatten_with_path(model)[0],
                                            flags):
      np.testing.assert_allclose(u, 0.5 * p if flag else 0.0, err_msg=str(path))


def test_bm_learning_rule_is_the_exact_log_likelihood_gradient():
  """Ackley, Hinton & Sejnowski's rule for a fully visible BM, ``<s s^T>_data - <s s^T>_model``,
  as the generic trainer computes it (``jax.grad`` of ``mean E(data) - mean E(negatives)``), is
  the exact gradient of the mean log-likelihood when the negatives follow the model: with exact
  samples (drawn from the enumerated distribution) it matches ``-jax.grad`` of the exact mean
  log-likelihood within the sampling error, and the 1e-9 agreement with exact model moments
  checks the algebra."""
  from jdbn.train import contrastive  # pylint: disable=import-outside-toplevel
  from jdbn.train import phases as PH  # pylint: disable=import-outside-toplevel
  model = bm.init(jax.random.key(11), 8, weight_scale=0.7)
  model = model.replace(b=0.3 * jax.random.normal(jax.random.key(12), (8,)))
  x = (jax.random.uniform(jax.random.key(13), (64, 8)) < 0.3).astype(jnp.float32)
  data_states = bm.split(model, x)

  def mean_ll(m):
    return -jnp.mean(m.energy(bm.split(m, x))) - base.exact_log_z(m)

  exact = jax.grad(mean_ll)(model)
  joint = tuple(map(jnp.asarray, base.enumerate_states(model)))
  probs = jnp.asarray(base.exact_probs(model), jnp.float32)
  # the rule with the exact model moments: sum_x p(x) dE/dtheta, no sampling at all
  moments = jax.grad(lambda m: jnp.mean(m.energy(data_states)) -
                     jnp.sum(probs * m.energy(joint)))(model)
  np.testing.assert_allclose(-moments.W, exact.W, atol=1e-5)
  np.testing.assert_allclose(-moments.b, exact.b, atol=1e-5)
  # the trainer's estimate with n exact samples as its negatives
  n = 20_000
  idx = jax.random.choice(jax.random.key(14), probs.shape[0], (n,), p=probs)
  samples = tuple(s[idx] for s in joint)
  negative = PH.NegativePhase(lambda key, m: None, lambda key, m, chains, pos: (None, samples))
  phases = PH.Phases(lambda key, m, batch: PH.Positive(bm.split(m, batch)), negative,
                     PH.energy_score)
  est = contrastive.gradient(jax.random.key(15), phases, model, None, x)
  # each coupling's gradient is a mean of n products in [0, 1]: its standard error <= 0.5/sqrt(n)
  np.testing.assert_allclose(-est.grads.W, exact.W, atol=5 * 0.5 / np.sqrt(n))
  np.testing.assert_allclose(-est.grads.b, exact.b, atol=5 * 0.5 / np.sqrt(n))
