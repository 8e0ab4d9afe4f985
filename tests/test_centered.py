"""Centered RBMs: the same distribution as their uncentered equivalents, offsets that move without
changing it, the centered gradient, and training through the generic trainer."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdbn import likelihood
from jdbn import rbm as R
from jdbn import units as U
from jdbn.models import base
from jdbn.models import centered as CM
from jdbn.train import variants


def _centered(seed=0, visible=U.Bernoulli(), n_v=5, n_h=3):
  k1, k2, k3, k4, k5 = jax.random.split(jax.random.key(seed), 5)
  rbm = R.init(k1, n_v, n_h, visible, weight_scale=1.0)
  rbm = rbm.replace(b=jax.random.normal(k2, (n_v,)), c=jax.random.normal(k3, (n_h,)))
  return CM.CenteredRBM(rbm, jax.random.uniform(k4, (n_v,)), jax.random.uniform(k5, (n_h,)))


def test_a_centered_rbm_is_its_uncentered_equivalent():
  model = _centered()
  flat = CM.uncentered(model)
  np.testing.assert_allclose(base.exact_probs(model), base.exact_probs(flat), rtol=1e-5,
                             atol=1e-9)
  v = jnp.asarray(U.Bernoulli().states(5))
  f_c = base.free_energy(model, (v, jnp.zeros((32, 3))), (1,))
  gap = np.asarray(f_c - R.free_energy(flat, v))
  np.testing.assert_allclose(gap, gap[0], atol=1e-5)  # one constant for every v: the same p(v)
  np.testing.assert_allclose(CM.hidden_mean(model, v), R.hidden_mean(flat, v), rtol=1e-6)


@pytest.mark.parametrize("learn_sigma", [False, True])
def test_gaussian_visible_conditionals_match_the_uncentered_rbm(learn_sigma):
  """Unit and learned sigmas: a Gaussian layer's bias moves by sigma times the field change."""
  model = _centered(1, U.Gaussian(learn_sigma=learn_sigma), 4, 3)
  if learn_sigma:
    log_sigma = jnp.log(jnp.asarray([0.3, 0.7, 1.5, 2.5]))
    model = model.replace(rbm=model.rbm.replace(log_sigma_v=log_sigma))
    moved = CM.shift(model, jnp.full(4, 0.4), jnp.full(3, 0.9))
    v = jax.random.normal(jax.random.key(7), (6, 4))
    h = (jax.random.uniform(jax.random.key(8), (6, 3)) < 0.5).astype(jnp.float32)
    gap = np.asarray(moved.energy((v, h)) - model.energy((v, h)))
    np.testing.assert_allclose(gap, gap[0], rtol=1e-5, atol=1e-5)
  flat = CM.uncentered(model)
  v = jax.random.normal(jax.random.key(2), (6, 4))
  h = (jax.random.uniform(jax.random.key(3), (6, 3)) < 0.5).astype(jnp.float32)
  np.testing.assert_allclose(CM.hidden_mean(model, v), R.hidden_mean(flat, v), rtol=1e-5)
  np.testing.assert_allclose(base.conditional_mean(model, (None, h), 0), R.visible_mean(flat, h),
                             rtol=1e-5, atol=1e-6)
  e_gap = np.asarray(model.energy((v, h)) - R.energy(flat, v, h))
  np.testing.assert_allclose(e_gap, e_gap[0], rtol=1e-5)


def test_shifting_the_offsets_keeps_the_distribution_and_center_starts_at_the_means():
  model = _centered(4)
  moved = CM.shift(model, jnp.full(5, 0.3), jnp.full(3, 0.8))
  np.testing.assert_allclose(base.exact_probs(moved), base.exact_probs(model), rtol=1e-5,
                             atol=1e-9)
  x = (jax.random.uniform(jax.random.key(5), (50, 5)) < 0.3).astype(jnp.float32)
  c = CM.center(CM.uncentered(model), x)
  np.testing.assert_allclose(c.mu, jnp.mean(x, 0), rtol=1e-6)
  np.testing.assert_allclose(c.lam, jnp.mean(R.hidden_mean(CM.uncentered(model), x), 0),
                             rtol=1e-5)
  np.testing.assert_allclose(base.exact_probs(c), base.exact_probs(model), rtol=1e-5, atol=1e-9)


def test_centered_update_moves_weights_by_the_centered_statistics():
  model = _centered(6)
  x = (jax.random.uniform(jax.random.key(7), (8, 5)) < 0.4).astype(jnp.float32)
  tr = variants.centered(optax.sgd(1.0), k=1, offset_rate=0.1)
  state = tr.init(jax.random.key(8), model)
  key = jax.random.key(9)
  new, _ = tr.update(key, state, x)
  from jdbn.samplers import gibbs as G  # pylint: disable=import-outside-toplevel
  k_pos, k_neg = jax.random.split(key)
  pos = G.step(k_pos, model, (x, jnp.zeros((8, 3))), clamp={0: True})[0]
  neg = G.chain(k_neg, model, pos, 1)[0]
  q0, q1 = CM.hidden_mean(model, x), CM.hidden_mean(model, neg[0])
  want = ((x - model.mu).T @ (q0 - model.lam) - (neg[0] - model.mu).T @ (q1 - model.lam)) / 8
  np.testing.assert_allclose(new.params.rbm.W - model.rbm.W, want, atol=2e-6)
  np.testing.assert_allclose(new.params.mu, 0.9 * model.mu + 0.1 * jnp.mean(x, 0), rtol=1e-6)
  with pytest.raises(ValueError, match="offset_rate"):
    variants.centered(optax.sgd(0.1), offset_rate=0.0)


def test_centered_pcd_learns_and_agrees_with_the_likelihood_of_its_equivalent():
  rng = np.random.default_rng(10)
  modes = np.array([[1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1]], np.float32)
  x = modes[rng.integers(0, 2, 400)]
  x = np.abs(x - (rng.random(x.shape) < 0.05)).astype(np.float32)
  model = CM.center(R.init(jax.random.key(11), 6, 4, weight_scale=0.1), x)
  tr = variants.centered(optax.sgd(0.1, momentum=0.5), n_chains=20)
  state = tr.init(jax.random.key(12), model)

  def mean_ll(m):
    flat = CM.uncentered(m)
    return float(jnp.mean(likelihood.log_likelihood(flat, x, likelihood.exact_log_z(flat))))

  before = mean_ll(model)
  for e in range(10):
    state, _ = tr.epoch(jax.random.fold_in(jax.random.key(13), e), state, x, 20)
  assert mean_ll(state.params) > before + 1.5
  np.testing.assert_allclose(state.params.mu, np.mean(x, 0), atol=0.1)
