"""RBM energies, free energies and conditionals, checked by enumeration, closed forms and grad."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from jdbn import rbm as R
from jdbn import units as U

ENUMERABLE = {
    "bernoulli": (U.Bernoulli(), 4),
    "softmax": (U.Softmax(3), 6),
    "joint": (U.Joint(((U.Bernoulli(), 2), (U.Softmax(3), 3))), 5),
}


def _model(key, visible, n_v, hidden, n_h, scale=0.7):
  kw, kb, kc, ks = jax.random.split(key, 4)
  p = R.init(kw, n_v, n_h, visible, hidden, weight_scale=scale)
  p = p.replace(b=0.5 * jax.random.normal(kb, (n_v,)), c=0.5 * jax.random.normal(kc, (n_h,)))
  if p.log_sigma_v is not None:
    p = p.replace(log_sigma_v=0.3 * jax.random.normal(ks, (n_v,)))
  return p


@pytest.mark.parametrize("vname", list(ENUMERABLE))
@pytest.mark.parametrize("hname", list(ENUMERABLE))
def test_free_energy_is_marginal_of_energy(vname, hname):
  visible, n_v = ENUMERABLE[vname]
  hidden, n_h = ENUMERABLE[hname]
  p = _model(jax.random.key(1), visible, n_v, hidden, n_h)
  vs = jnp.asarray(visible.states(n_v))
  hs = jnp.asarray(hidden.states(n_h))
  e = R.energy(p, vs[:, None, :], hs[None, :, :])  # [n_vs, n_hs]
  np.testing.assert_allclose(R.free_energy(p, vs), -jax.nn.logsumexp(-e, axis=1), rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(R.free_energy_hidden(p, hs), -jax.nn.logsumexp(-e, axis=0),
                             rtol=1e-5, atol=1e-5)
  # Both marginalisations give the same partition function.
  np.testing.assert_allclose(jax.nn.logsumexp(-R.free_energy(p, vs)),
                             jax.nn.logsumexp(-R.free_energy_hidden(p, hs)), rtol=1e-5)


@pytest.mark.parametrize("learn_sigma", [False, True])
def test_gaussian_visible_free_energy_matches_integral(learn_sigma):
  """Gaussian visible units: F(v) by enumerating h, F(h) against numerical integration over v."""
  p = _model(jax.random.key(2), U.Gaussian(learn_sigma), 2, U.Bernoulli(), 3)
  hs = jnp.asarray(U.Bernoulli().states(3))
  v = jnp.array([[0.3, -1.2], [2.0, 0.5]])
  e = R.energy(p, v[:, None, :], hs[None, :, :])
  np.testing.assert_allclose(R.free_energy(p, v), -jax.nn.logsumexp(-e, axis=1), rtol=1e-5)
  # The integrand is smooth and decays like a Gaussian, so the trapezoid rule on a fine grid
  # is accurate far beyond the tolerance.
  grid = jnp.linspace(-15.0, 15.0, 1501)
  vv = jnp.stack(jnp.meshgrid(grid, grid, indexing="ij"), axis=-1)  # [1501, 1501, 2]
  for h in (hs[0], hs[3], hs[7]):
    density = jnp.exp(-R.energy(p, vv, h))
    integral = jnp.trapezoid(jnp.trapezoid(density, grid, axis=1), grid)
    np.testing.assert_allclose(float(R.free_energy_hidden(p, h)), -float(jnp.log(integral)),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("hidden", [U.ReLU(), U.Gaussian()])
def test_continuous_hidden_free_energy_matches_integral(hidden):
  p = _model(jax.random.key(3), U.Bernoulli(), 3, hidden, 1)
  lo = 0.0 if isinstance(hidden, U.ReLU) else -30.0
  for v in U.Bernoulli().states(3):
    f = lambda h: float(jnp.exp(-R.energy(p, v, jnp.array([h]))))
    integral, _ = integrate.quad(f, lo, 30.0, epsabs=1e-12, epsrel=1e-10)
    np.testing.assert_allclose(float(R.free_energy(p, v)), -np.log(integral), rtol=1e-5,
                               atol=1e-5)


def test_softplus_values_and_gradient():
  z = np.concatenate([np.linspace(-100, 100, 2001), [-np.inf, np.inf, 0.0]]).astype(np.float32)
  expected = np.logaddexp(0.0, z.astype(np.float64))
  np.testing.assert_allclose(U.softplus(jnp.asarray(z)), expected, rtol=2e-7, atol=1e-30)
  grad = jax.vmap(jax.grad(U.softplus))(jnp.asarray(z[:-3]))
  np.testing.assert_allclose(grad, 1 / (1 + np.exp(-z[:-3].astype(np.float64))), rtol=1e-6,
                             atol=1e-30)
  assert float(jax.grad(U.softplus)(0.0)) == 0.5
  assert np.isnan(U.softplus(jnp.float32(np.nan)))


def test_bernoulli_conditionals_match_grad_of_energy():
  p = _model(jax.random.key(4), U.Bernoulli(), 5, U.Bernoulli(), 4)
  v = jnp.array([1.0, 0.0, 1.0, 1.0, 0.0])
  h = jnp.array([0.0, 1.0, 1.0, 0.0])
  # The energy is linear in each unit, so -dE/dx is the log-odds of that unit being on.
  np.testing.assert_allclose(R.hidden_mean(p, v), jax.nn.sigmoid(-jax.grad(R.energy, 2)(p, v, h)),
                             rtol=1e-6)
  np.testing.assert_allclose(R.visible_mean(p, h),
                             jax.nn.sigmoid(-jax.grad(R.energy, 1)(p, v, h)), rtol=1e-6)


@pytest.mark.parametrize("learn_sigma", [False, True])
def test_gaussian_conditional_matches_grad_of_energy(learn_sigma):
  """E is quadratic in v: the mean is where dE/dv vanishes and 1/sigma^2 is its curvature."""
  p = _model(jax.random.key(5), U.Gaussian(learn_sigma), 3, U.Bernoulli(), 2)
  h = jnp.array([1.0, 0.0])
  mean = R.visible_mean(p, h)
  np.testing.assert_allclose(jax.grad(R.energy, 1)(p, mean, h), 0.0, atol=1e-5)
  curvature = jnp.diag(jax.hessian(R.energy, 1)(p, mean, h))
  sigma = 1.0 if p.log_sigma_v is None else jnp.exp(p.log_sigma_v)
  np.testing.assert_allclose(curvature, 1.0 / sigma**2, rtol=1e-5)


def test_softmax_conditional_matches_energy_enumeration():
  visible = U.Joint(((U.Bernoulli(), 2), (U.Softmax(3), 3)))
  p = _model(jax.random.key(6), visible, 5, U.Bernoulli(), 3)
  h = jnp.array([1.0, 0.0, 1.0])
  mean = R.visible_mean(p, h)
  states = jnp.asarray(visible.states(5))
  probs = jax.nn.softmax(-R.energy(p, states, h))
  # Marginal p(v_i = 1 | h) from the exact joint over visible states.
  np.testing.assert_allclose(mean, probs @ states, rtol=1e-5, atol=1e-6)


def test_relu_conditional_mean_matches_integral():
  p = _model(jax.random.key(7), U.Bernoulli(), 3, U.ReLU(), 2)
  v = jnp.array([1.0, 0.0, 1.0])
  mean = R.hidden_mean(p, v)
  for j in range(2):
    def density(x, j=j):
      h = jnp.zeros(2).at[j].set(x)
      return float(jnp.exp(-R.energy(p, v, h)))
    z, _ = integrate.quad(density, 0, 40)
    m, _ = integrate.quad(lambda x: x * density(x), 0, 40)
    np.testing.assert_allclose(float(mean[j]), m / z, rtol=1e-5)
  # Far into the negative tail the mean stays finite and positive (no 0/0).
  far = U.ReLU().mean(jnp.array([-40.0]), jnp.zeros(1))
  assert np.isfinite(far).all() and float(far[0]) > 0


def test_batch_shapes_jit_vmap_agree():
  p = _model(jax.random.key(8), U.Bernoulli(), 6, U.Bernoulli(), 4)
  v = jax.random.bernoulli(jax.random.key(9), 0.5, (2, 3, 6)).astype(jnp.float32)
  f = R.free_energy(p, v)
  assert f.shape == (2, 3)
  np.testing.assert_allclose(jax.jit(R.free_energy)(p, v), f, rtol=1e-6)
  np.testing.assert_allclose(jax.vmap(R.free_energy, (None, 0))(p, v.reshape(6, 6)),
                             f.reshape(6), rtol=1e-6)
  assert R.sample_hidden(jax.random.key(0), p, v).shape == (2, 3, 4)
  # Grad flows through every leaf of the params.
  g = jax.grad(lambda q: R.free_energy(q, v).sum())(p)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(g))


def test_samplers_are_keyed():
  p = _model(jax.random.key(10), U.Bernoulli(), 50, U.Bernoulli(), 40, scale=0.1)
  v = jnp.full((50,), 0.5)
  a = R.sample_hidden(jax.random.key(1), p, v)
  np.testing.assert_array_equal(a, R.sample_hidden(jax.random.key(1), p, v))
  np.testing.assert_array_equal(a, jax.jit(R.sample_hidden)(jax.random.key(1), p, v))
  assert not np.array_equal(a, R.sample_hidden(jax.random.key(2), p, v))


def test_init_from_data_sets_log_odds():
  data = np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0], [0, 0, 1]], np.float32)
  p = R.init(jax.random.key(0), 3, 2, data=data)
  prob = np.clip(data.mean(0), 1e-3, 1 - 1e-3)
  np.testing.assert_allclose(p.b, np.log(prob / (1 - prob)), rtol=1e-5)
  assert p.W.shape == (3, 2) and abs(float(p.W.std()) - 0.01) < 0.01
  g = R.init(jax.random.key(0), 100, 50, weight_init="glorot")
  assert float(jnp.abs(g.W).max()) <= np.sqrt(6 / 150) + 1e-6
  gauss = R.init(jax.random.key(0), 2, 2, U.Gaussian(True), data=np.array([[0., 1.], [2., 5.]]))
  np.testing.assert_allclose(gauss.b, [1.0, 3.0])
  np.testing.assert_allclose(jnp.exp(gauss.log_sigma_v), [1.0, 2.0], rtol=1e-6)


def test_bad_input_errors():
  p = R.init(jax.random.key(0), 4, 3)
  with pytest.raises(ValueError, match=r"v must have shape \[\.\.\., 4\]"):
    R.free_energy(p, jnp.ones((2, 5)))
  with pytest.raises(TypeError, match="v must be a real"):
    R.free_energy(p, jnp.ones((2, 4), jnp.complex64))
  with pytest.raises(ValueError, match="data contains NaN"):
    R.check_visible(p, np.array([[0, 1, np.nan, 0]]), "data")
  with pytest.raises(ValueError, match=r"data must lie in \[0, 1\]"):
    R.check_visible(p, np.array([[0, 1, 2, 0]]), "data")
  with pytest.raises(ValueError, match="n_hidden must be a positive integer"):
    R.init(jax.random.key(0), 4, 0)
  with pytest.raises(ValueError, match="n_visible must be a positive integer"):
    R.init(jax.random.key(0), -1, 3)
  with pytest.raises(ValueError, match="multiple of the Softmax group size"):
    R.init(jax.random.key(0), 7, 3, U.Softmax(3))
  soft = R.init(jax.random.key(0), 6, 2, U.Softmax(3))
  with pytest.raises(ValueError, match="one-hot"):
    R.check_visible(soft, np.array([[1, 1, 0, 0, 0, 1]]), "labels")
  with pytest.raises(ValueError, match="weight_init"):
    R.init(jax.random.key(0), 4, 3, weight_init="zeros")
  with pytest.raises(ValueError, match="non-negative"):
    R.check_visible(R.init(jax.random.key(0), 2, 2, U.ReLU()), np.array([[-1.0, 2.0]]))
  # Integer and boolean binary data are accepted and cast.
  np.testing.assert_allclose(R.free_energy(p, np.array([1, 0, 1, 1])),
                             R.free_energy(p, np.array([1.0, 0.0, 1.0, 1.0])))


def test_interpolate_endpoints():
  p = _model(jax.random.key(11), U.Bernoulli(), 3, U.Bernoulli(), 2)
  base_b = jnp.array([0.1, -0.2, 0.3])
  one = R.interpolate(p, base_b, 1.0)
  zero = R.interpolate(p, base_b, 0.0)
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(p)):
    np.testing.assert_allclose(a, b)
  vs = jnp.asarray(U.Bernoulli().states(3))
  # At beta = 0 the model is independent units with biases base_b.
  np.testing.assert_allclose(R.free_energy(zero, vs) - R.free_energy(zero, vs[:1]),
                             -(vs @ base_b), rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(zero.W, 0.0)


@pytest.mark.parametrize("z", [2.0, 0.0, -3.0, -6.0, -40.0])
def test_relu_sampler_matches_truncated_normal(z):
  """Kolmogorov-Smirnov against N(z, 1) truncated to [0, inf), deep into the tail too."""
  from scipy import stats
  x = np.asarray(U.ReLU().sample(jax.random.key(12), jnp.full((20_000,), z), jnp.zeros(1)),
                 np.float64)
  assert np.isfinite(x).all() and x.min() >= 0
  dist = stats.truncnorm(-z, np.inf, loc=z)
  # Float32 rounding makes tiny ties; a K-S test at alpha = 1e-4 still catches any real error.
  assert stats.kstest(x, dist.cdf).pvalue > 1e-4
