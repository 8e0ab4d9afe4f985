"""Centered DBMs: the same distribution, free energy and mean-field as their uncentered
equivalents, offsets that move without changing it (checked by enumerating tiny DBMs), the
centered gradient, and training through the DBM trainer."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdbn import likelihood as L
from jdbn import rbm as R
from jdbn import units as U
from jdbn.models import base, centered as CM, dbm
from jdbn.samplers import gibbs as G
from jdbn.train import dbm as TD


def _centered(sizes, seed, scale=1.0):
  model = dbm.init(jax.random.key(seed), sizes, weight_scale=scale)
  keys = jax.random.split(jax.random.key(seed + 1), 2 * len(sizes))
  biases = tuple(0.5 * jax.random.normal(k, (n,)) for k, n in zip(keys, sizes))
  offsets = tuple(jax.random.uniform(k, (n,)) for k, n in zip(keys[len(sizes):], sizes))
  return CM.CenteredDBM(model.weights, biases, model.log_sigmas, model.units, offsets)


def _log_p_v(model, v=None):
  """``log p(v)`` of every visible state (or of the rows of ``v``) by enumerating the joint
  (float64)."""
  joint, p = base.enumerate_states(model), base.exact_probs(model)
  v_states = model.units[0].states(model.sizes[0])
  idx = np.argmax(np.all(joint[0][:, None, :] == v_states[None], -1), 1)
  log_p = np.log(np.bincount(idx, weights=p, minlength=len(v_states)))
  if v is None:
    return log_p
  return log_p[np.argmax(np.all(np.asarray(v)[:, None, :] == v_states[None], -1), 1)]


def _binary(seed, shape, p=0.4):
  return (jax.random.uniform(jax.random.key(seed), shape) < p).astype(jnp.float32)


@pytest.mark.parametrize("sizes", [(5, 4, 3), (4, 3, 3, 2)])
def test_energy_and_free_energy_are_the_uncentered_ones_less_one_constant(sizes):
  model = _centered(sizes, 0)
  flat = CM.uncentered(model)
  assert type(flat) is dbm.DBM
  const = sum(float(o @ w @ p) for o, w, p in zip(model.offsets, model.weights,
                                                   model.offsets[1:]))
  states = tuple(_binary(i, (16, n)) for i, n in enumerate(sizes))
  np.testing.assert_allclose(model.energy(states) + const, flat.energy(states), atol=2e-5)
  np.testing.assert_allclose(dbm.free_energy(model, states) + const,
                             dbm.free_energy(flat, states), atol=2e-5)
  np.testing.assert_allclose(dbm.exact_log_z(model) - const, dbm.exact_log_z(flat), atol=2e-5)
  np.testing.assert_allclose(base.exact_probs(model), base.exact_probs(flat), rtol=1e-4,
                             atol=1e-9)


def test_a_two_layer_centered_dbm_is_a_centered_rbm():
  model = _centered((5, 3), 1)
  rbm = R.RBM(model.weights[0], model.biases[0], model.biases[1], U.Bernoulli(), U.Bernoulli())
  crbm = CM.CenteredRBM(rbm, *model.offsets)
  states = (_binary(2, (8, 5)), _binary(3, (8, 3)))
  np.testing.assert_allclose(model.energy(states), crbm.energy(states), rtol=1e-6)
  flat = CM.uncentered(crbm)
  np.testing.assert_allclose(CM.uncentered(model).biases[1], flat.c, rtol=1e-6)
  np.testing.assert_allclose(CM.uncentered(model).biases[0], flat.b, rtol=1e-6)


def test_shift_keeps_exact_log_p_of_every_visible_state():
  model = _centered((4, 3, 3, 2), 4)
  new = tuple(jax.random.uniform(jax.random.key(5 + l), (n,)) for l, n in enumerate(model.sizes))
  moved = CM.shift(model, *new)
  for o, n in zip(moved.offsets, new):
    np.testing.assert_array_equal(o, n)
  np.testing.assert_allclose(_log_p_v(moved), _log_p_v(model), atol=1e-5)
  np.testing.assert_allclose(_log_p_v(moved), _log_p_v(CM.uncentered(model)), atol=1e-5)
  with pytest.raises(ValueError, match="needs 4 offsets"):
    CM.shift(model, *new[:3])


def test_center_starts_at_the_data_and_mean_field_means():
  flat = dbm.init(jax.random.key(6), (6, 4, 3), weight_scale=0.5)
  x = _binary(7, (50, 6), 0.3)
  c = CM.center(flat, x)
  q = dbm.mean_field(flat, x).states
  for o, s in zip(c.offsets, q):
    np.testing.assert_allclose(o, jnp.mean(s, 0), atol=1e-5)
  np.testing.assert_allclose(base.exact_probs(c), base.exact_probs(flat), rtol=1e-4, atol=1e-9)
  for o in CM.center(flat).offsets:
    np.testing.assert_array_equal(o, 0.5)
  with pytest.raises(ValueError, match="centering needs"):
    CM.center(dbm.init(jax.random.key(0), (4, 3), (U.Bernoulli(), U.ReLU())))


def test_mean_field_of_the_centered_dbm_is_the_uncentered_ones():
  model = _centered((6, 5, 4), 8)
  v = _binary(9, (20, 6), 0.5)
  a = dbm.mean_field(model, v, tol=1e-7, max_iter=300)
  b = dbm.mean_field(CM.uncentered(model), v, tol=1e-7, max_iter=300)
  assert bool(a.converged) and bool(b.converged)
  for qa, qb in zip(a.states, b.states):
    np.testing.assert_allclose(qa, qb, atol=2e-5)
  np.testing.assert_allclose(dbm.bottom_up(model, v)[1], dbm.bottom_up(CM.uncentered(model), v)[1],
                             rtol=1e-6)


def test_one_centered_update_moves_the_weights_by_the_centered_statistics():
  """W_l moves by <(q_l - mu_l)(q_{l+1} - mu_{l+1})> - <the same for the chains>, not by the
  plain <q_l q_{l+1}> - <...>; the biases by the plain statistics; then the offsets follow the
  positive phase's means and the biases move with them, the distribution kept."""
  model = _centered((6, 4, 3), 10, scale=0.5)
  x = _binary(11, (8, 6))
  lr, rate = 0.1, 0.2
  tr = TD.centered(optax.sgd(lr), n_chains=7, k=2, tol=1e-7, max_iter=200, offset_rate=rate)
  state = tr.init(jax.random.key(12), model)
  key = jax.random.key(13)
  new, _ = tr.update(key, state, x)
  _, k_neg = jax.random.split(key)
  pos = dbm.mean_field(model, x, tol=1e-7, max_iter=200).states
  neg = G.chain(k_neg, model, state.chains, 2)[0]
  cp, cn = ([s - o for s, o in zip(states, model.offsets)] for states in (pos, neg))
  stepped = []
  for l, w in enumerate(model.weights):
    dw = lr * (cp[l].T @ cp[l + 1] / 8 - cn[l].T @ cn[l + 1] / 7)
    plain = lr * (pos[l].T @ pos[l + 1] / 8 - neg[l].T @ neg[l + 1] / 7)
    np.testing.assert_allclose(new.params.weights[l] - w, dw, atol=1e-5)
    assert np.max(np.abs(dw - plain)) > 10 * 1e-5  # a different direction from the plain one
    stepped.append(w + dw)
  biases = tuple(a + lr * (jnp.mean(p, 0) - jnp.mean(n, 0))
                 for a, p, n in zip(model.biases, pos, neg))
  before_shift = model.replace(weights=tuple(stepped), biases=biases)
  offsets = tuple((1 - rate) * o + rate * jnp.mean(p, 0) for o, p in zip(model.offsets, pos))
  for o, want in zip(new.params.offsets, offsets):
    np.testing.assert_allclose(o, want, atol=1e-6)
  np.testing.assert_allclose(base.exact_probs(new.params), base.exact_probs(before_shift),
                             rtol=1e-4, atol=1e-9)
  flat = CM.uncentered(new.params)
  assert type(flat) is dbm.DBM and all(bool(jnp.all(jnp.isfinite(a))) for a in flat.biases)


def test_centered_training_from_random_init_raises_the_exact_likelihood():
  rng = np.random.default_rng(14)
  modes = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1], [1, 0, 1, 0, 1, 0]], np.float32)
  x = modes[rng.integers(0, 3, 300)]
  x = jnp.asarray(np.abs(x - (rng.random(x.shape) < 0.05)), jnp.float32)
  model = CM.center(dbm.init(jax.random.key(15), (6, 4, 3), weight_scale=0.01), x)
  tr = TD.centered(optax.sgd(0.1, momentum=0.5), n_chains=50, k=2, offset_rate=0.05)
  state = tr.init(jax.random.key(16), model)

  def mean_ll(m):
    return float(np.mean(_log_p_v(m, x)))

  before = mean_ll(model)
  for e in range(20):
    state, _ = tr.epoch(jax.random.fold_in(jax.random.key(17), e), state, x, 20)
  assert mean_ll(state.params) > before + 1.0  # of the 1.9 nats to the data's entropy
  np.testing.assert_allclose(state.params.offsets[0], jnp.mean(x, 0), atol=0.1)
  # the bound through AIS scores the centered DBM as its uncentered equivalent
  est = L.dbm.variational_bound(jax.random.key(18), state.params, x[:50], n_chains=50,
                                betas=np.linspace(0, 1, 301))
  same = L.dbm.variational_bound(jax.random.key(18), CM.uncentered(state.params), x[:50],
                                 n_chains=50, betas=np.linspace(0, 1, 301))
  np.testing.assert_allclose(est.mean, same.mean, rtol=1e-5)
  with pytest.raises(TypeError, match="needs a CenteredDBM"):
    TD.centered(optax.sgd(0.1)).update(jax.random.key(0), tr.init(jax.random.key(0),
                                       CM.uncentered(model)), x[:4])
