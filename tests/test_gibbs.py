"""Block Gibbs chains: goodness of fit against exact p(v), clamping, vmap, determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jdbn import gibbs
from jdbn import rbm as R
from jdbn import units as U

# A goodness-of-fit test fails by chance with this probability; small enough to never flake,
# large enough that a wrong sampler (even a slightly wrong one) fails for sure at these sizes.
ALPHA = 1e-4


def _model(key, visible, n_v, n_h, scale=1.0):
  kw, kb, kc = jax.random.split(key, 3)
  p = R.init(kw, n_v, n_h, visible, U.Bernoulli(), weight_scale=scale)
  return p.replace(b=0.5 * jax.random.normal(kb, (n_v,)), c=0.5 * jax.random.normal(kc, (n_h,)))


def _exact_pv(p):
  states = jnp.asarray(p.visible.states(p.n_visible))
  return states, np.asarray(jax.nn.softmax(-R.free_energy(p, states)), np.float64)


def _state_index(v, states):
  """Index of each row of ``v`` in ``states`` (rows are exact 0/1 vectors)."""
  match = np.all(np.asarray(v)[:, None, :] == np.asarray(states)[None, :, :], axis=-1)
  assert match.sum(1).min() == 1, "a sample is not a valid state"
  return match.argmax(1)


def _chi_square_ok(counts, probs):
  """Pearson's chi-square against ``probs``, merging cells with expected count < 5."""
  n = counts.sum()
  expected = n * probs
  order = np.argsort(expected)
  small = expected[order] < 5
  e = np.append(expected[order][~small], expected[order][small].sum())
  o = np.append(counts[order][~small], counts[order][small].sum())
  if e[-1] == 0:
    e, o = e[:-1], o[:-1]
  stat = np.sum((o - e)**2 / e)
  return stat, stats.chi2.ppf(1 - ALPHA, len(e) - 1)


@pytest.mark.parametrize("visible,n_v", [(U.Bernoulli(), 5),
                                         (U.Joint(((U.Bernoulli(), 2), (U.Softmax(3), 3))), 5)])
def test_many_vmapped_chains_match_exact_distribution(visible, n_v):
  p = _model(jax.random.key(0), visible, n_v, 3)
  states, probs = _exact_pv(p)
  n_chains, n_steps = 10_000, 30
  keys = jax.random.split(jax.random.key(1), n_chains)
  # 10,000 independent chains are jax.vmap of a single chain and nothing more.
  starts = jax.vmap(lambda k: gibbs.init_random(k, p))(jax.random.split(jax.random.key(2),
                                                                        n_chains))
  final = jax.jit(jax.vmap(lambda k, s: gibbs.chain(k, p, s, n_steps)[0]))(keys, starts)
  counts = np.bincount(_state_index(final.v, states), minlength=len(states))
  stat, critical = _chi_square_ok(counts, probs)
  assert stat < critical, (stat, critical)


@pytest.mark.parametrize("impl", ["philox4x32", "rbg", "unsafe_rbg"])
def test_other_prng_implementations_sample_the_exact_distribution(impl):
  """The PRNG is chosen by the key alone (``jax.random.key(seed, impl=...)``), nothing else."""
  p = _model(jax.random.key(0), U.Bernoulli(), 5, 3)
  states, probs = _exact_pv(p)
  key = jax.random.key(1, impl=impl)
  v, _ = jax.jit(lambda k: gibbs.sample(k, p, n_chains=10_000, n_steps=30))(key)
  counts = np.bincount(_state_index(v, states), minlength=len(states))
  stat, critical = _chi_square_ok(counts, probs)
  assert stat < critical, (stat, critical)
  again, _ = gibbs.sample(key, p, n_chains=10_000, n_steps=30)
  np.testing.assert_array_equal(v, again)


def test_clamped_chains_sample_the_conditional():
  p = _model(jax.random.key(3), U.Bernoulli(), 5, 3)
  states, probs = _exact_pv(p)
  clamp = jnp.array([True, False, True, False, False])
  fixed = np.array([1.0, 0.0, 0.0, 0.0, 0.0])
  rows = np.all(np.asarray(states)[:, [0, 2]] == fixed[[0, 2]], axis=1)
  cond = np.where(rows, probs, 0.0) / probs[rows].sum()
  n = 8_000
  v0 = jnp.tile(jnp.asarray(fixed), (n, 1))
  state, _ = jax.jit(lambda k, s: gibbs.chain(k, p, s, 30, clamp=clamp))(jax.random.key(4),
                                                                          gibbs.init(p, v0))
  np.testing.assert_array_equal(state.v[:, [0, 2]], np.tile(fixed[[0, 2]], (n, 1)))
  idx = _state_index(state.v, states)
  counts = np.bincount(idx, minlength=len(states))[rows]
  stat, critical = _chi_square_ok(counts, cond[rows])
  assert stat < critical, (stat, critical)


def test_mean_visible_units_take_their_conditional_mean():
  """``mean_visible``: the masked units are ``E[v | h]`` of the sweep's sampled ``h``, the rest
  are the very sample an unmasked sweep draws with the same key."""
  p = _model(jax.random.key(3), U.Bernoulli(), 5, 3)
  s0 = gibbs.init(p, jnp.tile(jnp.array([1.0, 0.0, 1.0, 0.0, 1.0]), (50, 1)))
  key = jax.random.key(6)
  plain = gibbs.sweep(key, p, s0)
  full = gibbs.sweep(key, p, s0, mean_visible=True)
  mask = np.array([True, False, True, False, False])
  part = jax.jit(lambda k, s: gibbs.sweep(k, p, s, mean_visible=mask))(key, s0)
  mean = R.visible_mean(p, plain.h)
  for s in (full, part):
    np.testing.assert_array_equal(s.h, plain.h)
  np.testing.assert_allclose(full.v, mean, rtol=1e-6)
  np.testing.assert_allclose(part.v[:, mask], mean[:, mask], rtol=1e-6)
  np.testing.assert_array_equal(part.v[:, ~mask], plain.v[:, ~mask])
  assert np.all((np.asarray(mean) > 0) & (np.asarray(mean) < 1))
  assert set(np.unique(np.asarray(plain.v))) <= {0.0, 1.0}
  # chain threads it through every sweep; False is the plain chain.
  a, _ = gibbs.chain(key, p, s0, 3, mean_visible=True)
  b, _ = gibbs.chain(key, p, s0, 3, mean_visible=False)
  c, _ = gibbs.chain(key, p, s0, 3)
  np.testing.assert_allclose(a.v, R.visible_mean(p, a.h), rtol=1e-6)
  np.testing.assert_array_equal(b.v, c.v)


def test_gaussian_visible_conditional_moments():
  """v | h ~ N(b + sigma W h, sigma^2): the sample mean and variance pass z-tests."""
  p = R.init(jax.random.key(5), 3, 2, U.Gaussian(learn_sigma=True), weight_scale=1.0)
  p = p.replace(log_sigma_v=jnp.log(jnp.array([0.5, 1.0, 2.0])), b=jnp.array([1.0, -1.0, 0.0]))
  h = jnp.tile(jnp.array([1.0, 0.0]), (20_000, 1))
  v = R.sample_visible(jax.random.key(6), p, h)
  sigma = np.array([0.5, 1.0, 2.0])
  mean = np.asarray(p.b + sigma * p.W[:, 0])
  z_mean = (np.asarray(v.mean(0)) - mean) / (sigma / np.sqrt(len(v)))
  # Var of the sample variance of a normal: 2 sigma^4 / (n - 1).
  z_var = (np.asarray(v.var(0)) - sigma**2) / (sigma**2 * np.sqrt(2 / (len(v) - 1)))
  bound = stats.norm.ppf(1 - ALPHA / 12)  # Bonferroni over the 6 two-sided tests
  assert np.all(np.abs(z_mean) < bound) and np.all(np.abs(z_var) < bound), (z_mean, z_var)


def test_chain_determinism_jit_and_batching():
  p = _model(jax.random.key(7), U.Bernoulli(), 20, 10, scale=0.3)
  s0 = gibbs.init_random(jax.random.key(8), p, 16)
  run = lambda k: gibbs.chain(k, p, s0, 7, thin=2)
  a, ta = run(jax.random.key(9))
  b, tb = jax.jit(run)(jax.random.key(9))
  np.testing.assert_array_equal(a.v, b.v)
  np.testing.assert_array_equal(ta, tb)
  c, _ = run(jax.random.key(10))
  assert not np.array_equal(a.v, c.v)
  assert ta.shape == (3, 16, 20)
  assert np.all((ta == 0) | (ta == 1))
  # Zero sweeps leave the state as it was.
  np.testing.assert_array_equal(gibbs.chain(jax.random.key(9), p, s0, 0)[0].v, s0.v)


@pytest.mark.parametrize("unroll", [2, 3, 8, 100])
def test_unrolled_chains_draw_the_same_samples(unroll):
  """``unroll`` changes the compiled loop, never the samples (also when it does not divide the
  number of sweeps, or exceeds it), with and without thinning."""
  p = _model(jax.random.key(7), U.Bernoulli(), 20, 10, scale=0.3)
  s0 = gibbs.init_random(jax.random.key(8), p, 4)
  for thin in (None, 3):
    ref, tr = jax.jit(lambda k, thin=thin: gibbs.chain(k, p, s0, 10, thin=thin))(
        jax.random.key(9))
    got, tg = jax.jit(lambda k, thin=thin: gibbs.chain(k, p, s0, 10, thin=thin, unroll=unroll))(
        jax.random.key(9))
    np.testing.assert_array_equal(ref.v, got.v)
    np.testing.assert_array_equal(ref.h, got.h)
    if thin:
      np.testing.assert_array_equal(tr, tg)


def test_sample_convenience_and_errors():
  p = _model(jax.random.key(11), U.Bernoulli(), 6, 4)
  v, trace = gibbs.sample(jax.random.key(12), p, n_chains=5, n_steps=10, thin=5)
  assert v.shape == (5, 6) and trace.shape == (2, 5, 6)
  with pytest.raises(ValueError, match="n_steps"):
    gibbs.chain(jax.random.key(0), p, gibbs.init(p, v), -1)
  with pytest.raises(ValueError, match="thin"):
    gibbs.chain(jax.random.key(0), p, gibbs.init(p, v), 4, thin=0)
  for bad in (0, True, 1.5):
    with pytest.raises(ValueError, match="unroll"):
      gibbs.chain(jax.random.key(0), p, gibbs.init(p, v), 4, unroll=bad)
  with pytest.raises(ValueError, match=r"v must have shape \[\.\.\., 6\]"):
    gibbs.init(p, jnp.ones((3, 7)))


@pytest.mark.parametrize("n_chains", [0, -1, 2.0, True])
def test_init_random_rejects_bad_chain_counts(n_chains):
  params = R.init(jax.random.key(0), 4, 3)
  with pytest.raises(ValueError, match="n_chains must be a positive int"):
    gibbs.init_random(jax.random.key(1), params, n_chains)
