"""Hopfield nets: storage rules against their formulas, energy descent along recall, capacity,
Glauber dynamics against the exact Gibbs measure (chi-square), and the error messages.

Compilation, not sampling, is most of this file's time: test inputs come from NumPy (a jax.random
draw compiles a program per shape), and tests share the configurations they recall with (the
40-unit nets, 10,000-chain Glauber runs), so that each recall program is compiled once.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_gibbs import _chi_square_ok as _chi_square  # Pearson's test, merging small cells

from jdbn.models import base
from jdbn.models import dense_memory as D
from jdbn.models import hopfield as H
from jdbn.samplers import recall as R
from jdbn.samplers import gibbs as G

N_CHAINS = 10_000


def _spins(seed, shape):
  return np.where(np.random.default_rng(seed).random(shape) < 0.5, 1.0, -1.0).astype(np.float32)


def _random_net(seed, n, scale=1.0, alphabet="spin"):
  rng = np.random.default_rng(seed)
  A = scale * rng.normal(size=(n, n))
  W = (A + A.T) / np.sqrt(2) * (1 - np.eye(n))
  return H.network(W.astype(np.float32), 0.5 * rng.normal(size=n).astype(np.float32),
                   alphabet=alphabet)


def _flip(seed, xi, p):
  return xi * np.where(np.random.default_rng(seed).random(xi.shape) < p, -1.0, 1.0)


def _probes40(net):
  """100 random states of a 40-unit net: the recall configuration the recall tests share."""
  lo, hi = net.levels
  return np.where(np.random.default_rng(5).random((100, 40)) < 0.5, hi, lo).astype(np.float32)


# ----------------------------------------------------------------------------- spin units


def test_spin_units_conditionals_by_enumeration():
  u = H.Spin()
  phi, a = jnp.array([0.3, -1.2, 2.0]), jnp.array([0.1, 0.4, -0.5])
  states = jnp.asarray(u.states(3))
  logits = -u.energy(states, a) + states @ phi  # log p(x | phi) up to log Z
  np.testing.assert_allclose(u.log_partition(phi, a), jax.nn.logsumexp(logits), rtol=1e-6)
  p = jax.nn.softmax(logits)
  np.testing.assert_allclose(p @ states, u.mean(phi, a), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(u.states_at(jnp.arange(8), 3), states)
  x = u.sample(jax.random.key(0), jnp.broadcast_to(phi, (20_000, 3)), a)
  assert set(np.unique(np.asarray(x))) == {-1.0, 1.0}
  # Binomial standard error of a mean of +-1 draws is at most 1 / sqrt(20000) = 0.007.
  np.testing.assert_allclose(x.mean(0), u.mean(phi, a), atol=5 * 0.0071)


# ----------------------------------------------------------------------------- storage


def test_hebbian_and_storkey_match_their_formulas():
  xi = _spins(0, (4, 7)).astype(np.float64)
  n = xi.shape[1]
  W = xi.T @ xi / n
  np.fill_diagonal(W, 0)
  np.testing.assert_allclose(H.hebbian(xi).W, W, rtol=1e-6)
  W = np.zeros((n, n))
  for x in xi:  # Storkey (1997), eq. for the incremental update, written with explicit loops
    new = W.copy()
    for i, j in itertools.product(range(n), range(n)):
      if i == j:
        continue
      h_ij = sum(W[i, k] * x[k] for k in range(n) if k not in (i, j))
      h_ji = sum(W[j, k] * x[k] for k in range(n) if k not in (i, j))
      new[i, j] += (x[i] * x[j] - x[i] * h_ji - h_ij * x[j]) / n
    W = new
  np.testing.assert_allclose(H.storkey(xi).W, W, rtol=1e-5, atol=1e-6)
  for net in (H.hebbian(xi), H.storkey(xi)):
    np.testing.assert_array_equal(net.W, net.W.T)
    np.testing.assert_array_equal(np.diag(net.W), 0)


def test_binary_net_has_the_same_energy_up_to_a_constant():
  net = _random_net(1, 6)
  s = jnp.asarray(H.Spin().states(6))
  binary = H.to_binary(net)
  diff = H.energy(binary, (s + 1) / 2) - H.energy(net, s)
  np.testing.assert_allclose(diff, diff[0], atol=1e-5)
  back = H.to_spin(binary)
  np.testing.assert_allclose(back.W, net.W, atol=1e-6)
  np.testing.assert_allclose(back.theta, net.theta, atol=1e-5)


def test_block_model_field_is_minus_the_energy_gradient():
  net = _random_net(2, 5)
  s = jnp.asarray(_spins(3, (3, 5)))
  grad = jax.grad(lambda s: -jnp.sum(H.energy(net, s)))(s)
  for i in range(5):  # field = -dE/ds_i without the threshold (the bias -theta_i)
    np.testing.assert_allclose(net.field(net.split(s), i), grad[:, i:i + 1] + net.theta[i],
                               rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(net.energy(net.split(s)), H.energy(net, s), rtol=1e-6)


# ----------------------------------------------------------------------------- recall


@pytest.mark.parametrize("alphabet,order", [("spin", "random"), ("spin", "fixed"),
                                            ("binary", "random")])
def test_energy_never_rises_along_asynchronous_recall(alphabet, order):
  net = _random_net(4, 40, alphabet=alphabet)
  probes = _probes40(net)
  r = R.async_recall(jax.random.key(6), net, probes, order=order, max_sweeps=30, trace=True)
  assert r.energies.shape == (100, 31)
  np.testing.assert_allclose(r.energies[:, 0], H.energy(net, probes), rtol=1e-6)
  steps = np.diff(np.asarray(r.energies), axis=1)
  assert steps.max() <= 1e-4 * np.abs(r.energies).max(), steps.max()
  assert bool(r.converged.all())
  assert bool(H.is_fixed_point(net, r.state).all())
  # Without the trace: the same recall in a while_loop.
  r2 = R.async_recall(jax.random.key(6), net, probes, order=order, max_sweeps=30)
  np.testing.assert_array_equal(r2.state, r.state)
  np.testing.assert_array_equal(r2.n_sweeps, r.n_sweeps)


def test_stored_patterns_are_fixed_points_and_attract_below_capacity():
  xi = _spins(7, (5, 100))
  net = H.hebbian(xi)
  assert bool(H.is_fixed_point(net, xi).all())
  # The patterns themselves, then 10 probes of each with 10% of the bits flipped: at load 0.05
  # the basin is far wider (Amit et al. 1985). One recall of both (one compiled program).
  targets = np.repeat(xi, 10, axis=0)
  probes = _flip(9, targets, 0.1)
  r = R.async_recall(jax.random.key(10), net, np.concatenate([xi, probes]))
  np.testing.assert_array_equal(r.state[:5], xi)
  np.testing.assert_array_equal(r.n_sweeps[:5], 1)
  np.testing.assert_array_equal(r.state[5:], targets)
  assert int(r.n_sweeps.max()) <= 4
  s = R.sync_recall(net, probes)
  np.testing.assert_array_equal(s.state, targets)
  binary = H.hebbian((xi + 1) / 2, alphabet="binary")
  assert bool(H.is_fixed_point(binary, (xi + 1) / 2).all())


def test_storkey_stores_where_hebbian_fails():
  """N = 100, P = 15: past Hebb's n / (2 ln n) = 10.9, below Storkey's n / sqrt(2 ln n) = 33.

  At load 0.15 a Hebbian bit flips with probability about Q(1 / sqrt(0.15)) = 0.005, so about
  60% of patterns are exact fixed points; Storkey's rule keeps (nearly) all of them.
  """
  heb, sto = [], []
  for seed in range(11, 21):
    xi = _spins(seed, (15, 100))
    heb.append(np.asarray(H.is_fixed_point(H.hebbian(xi), xi)))
    sto.append(np.asarray(H.is_fixed_point(H.storkey(xi), xi)))
  assert np.mean(heb) < 0.85, np.mean(heb)
  assert np.mean(sto) > 0.98, np.mean(sto)


def test_synchronous_recall_can_cycle_and_says_so():
  net = H.network(jnp.array([[0.0, -1.0], [-1.0, 0.0]]))
  r = R.sync_recall(net, jnp.array([[1.0, 1.0], [1.0, -1.0]]), max_steps=7, trace=True)
  np.testing.assert_array_equal(r.converged, [False, True])
  np.testing.assert_array_equal(r.n_sweeps, [7, 1])
  np.testing.assert_array_equal(r.state[0], [-1.0, -1.0])  # odd number of steps
  assert r.energies.shape == (2, 8)


def test_same_key_same_recall_jit_agrees_and_batch_shapes():
  # The 40-unit configuration of the energy test, its 100 probes as a [25, 4] batch.
  net = _random_net(4, 40)
  probes = _probes40(net).reshape(25, 4, 40)
  r = R.async_recall(jax.random.key(14), net, probes, max_sweeps=30)
  assert r.state.shape == (25, 4, 40) and r.n_sweeps.shape == (25, 4)
  flat = R.async_recall(jax.random.key(14), net, probes.reshape(100, 40), max_sweeps=30)
  np.testing.assert_array_equal(flat.state.reshape(25, 4, 40), r.state)
  jitted = jax.jit(lambda k, n, p: R.async_recall(k, n, p, max_sweeps=30))(jax.random.key(14),
                                                                          net, probes)
  np.testing.assert_array_equal(jitted.state, r.state)
  again = R.async_recall(jax.random.key(14), net, probes, max_sweeps=30)
  np.testing.assert_array_equal(again.state, r.state)


# ----------------------------------------------------------------------------- Gibbs measure

# The 9-unit nets below (seed 15, couplings of scale 0.6) at beta = 0.8, every chain started from
# the all-high state. Burn-in: after N_SWEEPS sweeps the exact law of a chain is within
# chi2(mu_t, pi) = 8.6e-5 of the Gibbs measure for fixed-order sweeps (the exact kernel,
# test_the_chains_have_mixed) and 1.1e-4 for random-order ones (the permutation-averaged sweep
# kernel, by dynamic programming over subsets of units, computed once when these numbers were
# chosen); the binary net mixes in a few sweeps. So the burn-in adds a noncentrality of at most
# N_CHAINS * 1.1e-4 = 0.2 to a chi-square with about 100 degrees of freedom, which the test cannot
# see. Power: the beta = 0.6 measure is chi2 = 0.40 per chain from the beta = 0.8 one, a
# noncentrality of 800 at 2,000 chains against a critical value near 160 (ALPHA = 1e-4): the
# negative control is rejected with certainty, as is any sampler that far off.
N_CHAINS, N_SWEEPS, BETA = 2_000, 50, 0.8


def _gibbs_net(alphabet="spin"):
  return _random_net(15, 9, scale=0.6, alphabet=alphabet)


def _assert_gibbs_measure(net, beta, states):
  probs = base.exact_probs(net.tempered(beta))
  one_block = net.replace(groups=(tuple(range(net.n)),))  # enumeration order of [n] rows
  counts = np.bincount(base.state_index(one_block, (np.asarray(states),)), minlength=len(probs))
  stat, critical = _chi_square(counts, probs)
  assert stat < critical, (stat, critical)


def _burn_in_noncentrality(net, beta, n_sweeps, n_chains):
  """``n_chains chi2(mu_t, pi)``: ``mu_t`` the exact law after ``n_sweeps`` fixed-order Glauber
  sweeps from the all-high state, propagated through each single-unit kernel in turn."""
  one_block = net.replace(groups=(tuple(range(net.n)),))
  pi = np.asarray(base.exact_probs(net.tempered(beta)), np.float64)
  S = net.units.states(net.n)

  def index(x):
    return np.asarray(base.state_index(one_block, (x.astype(np.float32),)))

  lo, hi = net.levels
  W, theta = np.asarray(net.W, np.float64), np.asarray(net.theta, np.float64)
  moves = []
  for i in range(net.n):
    p_high = 1 / (1 + np.exp(-beta * (hi - lo) * (S @ W[:, i] - theta[i])))
    moves.append((index(np.where(np.arange(net.n) == i, hi, S)),
                  index(np.where(np.arange(net.n) == i, lo, S)), p_high))
  rows = index(S)
  mu = np.zeros_like(pi)
  mu[index(np.full((1, net.n), hi))] = 1.0
  for _ in range(n_sweeps):
    for up, down, p_high in moves:
      new = np.zeros_like(mu)
      np.add.at(new, up, mu[rows] * p_high)
      np.add.at(new, down, mu[rows] * (1 - p_high))
      mu = new
  return n_chains * np.sum((mu - pi)**2 / pi)


@pytest.mark.parametrize("alphabet", ["spin", "binary"])
def test_the_chains_have_mixed(alphabet):
  # Below 1 is nothing against about 100 degrees of freedom (0.17 for the spin net).
  assert _burn_in_noncentrality(_gibbs_net(alphabet), BETA, N_SWEEPS, N_CHAINS) < 1
  # ...and the check sees an unfinished burn-in: 5 sweeps of the spin net are far from it.
  if alphabet == "spin":
    assert _burn_in_noncentrality(_gibbs_net(alphabet), BETA, 5, N_CHAINS) > 100


@pytest.mark.parametrize("alphabet,order", [("spin", "random"), ("spin", "fixed"),
                                            ("binary", "random")])
def test_glauber_dynamics_samples_the_gibbs_measure(alphabet, order):
  net = _gibbs_net(alphabet)
  starts = jnp.full((N_CHAINS, 9), net.levels[1])  # all chains from one state: mixing must work
  out = R.glauber(jax.random.key(16), net, starts, BETA, N_SWEEPS, order=order)
  _assert_gibbs_measure(net, BETA, out)
  # Same key, same chains (the compiled program again).
  np.testing.assert_array_equal(
      R.glauber(jax.random.key(16), net, starts, BETA, N_SWEEPS, order=order), out)


def test_generic_gibbs_sampler_samples_the_tempered_hopfield_net():
  net = _gibbs_net()
  model = net.tempered(BETA)  # one unit per block, in index order: the fixed-order kernel
  starts = model.split(jnp.ones((N_CHAINS, 9)))
  keys = jax.random.split(jax.random.key(18), N_CHAINS)
  out = jax.jit(jax.vmap(lambda k, s: G.chain(k, model, s, N_SWEEPS)[0]))(keys, starts)
  _assert_gibbs_measure(net, BETA, model._join(out))


def test_the_chi_square_check_rejects_the_wrong_temperature():
  net = _gibbs_net()
  out = R.glauber(jax.random.key(16), net, jnp.ones((N_CHAINS, 9)), 0.6, N_SWEEPS)  # compiled
  with pytest.raises(AssertionError):
    _assert_gibbs_measure(net, BETA, out)


# ----------------------------------------------------------------------------- errors


def test_clear_errors():
  with pytest.raises(ValueError, match="symmetric"):
    H.network(jnp.array([[0.0, 1.0], [0.5, 0.0]]))
  with pytest.raises(ValueError, match="zero diagonal"):
    H.network(jnp.array([[1.0, 1.0], [1.0, 0.0]]))
  with pytest.raises(ValueError, match="NaN or inf"):
    H.network(jnp.array([[0.0, jnp.nan], [jnp.nan, 0.0]]))
  with pytest.raises(ValueError, match="square"):
    H.network(jnp.zeros((2, 3)))
  with pytest.raises(ValueError, match="theta"):
    H.network(jnp.zeros((2, 2)), jnp.zeros(3))
  net = H.hebbian(_spins(0, (2, 6)))
  with pytest.raises(ValueError, match="only -1 and 1"):
    R.async_recall(jax.random.key(0), net, jnp.zeros((1, 6)))
  with pytest.raises(ValueError, match=r"shape \[\.\.\., 6\]"):
    R.async_recall(jax.random.key(0), net, jnp.ones((1, 5)))
  with pytest.raises(ValueError, match="NaN or inf"):
    R.sync_recall(net, jnp.full((1, 6), jnp.inf))
  with pytest.raises(ValueError, match="only 0 and 1"):
    H.hebbian(_spins(0, (2, 6)), alphabet="binary")
  with pytest.raises(ValueError, match=r"\[P, n\]"):
    H.storkey(jnp.ones(6))
  with pytest.raises(ValueError, match="alphabet"):
    H.hebbian(jnp.ones((1, 6)), alphabet="ternary")
  with pytest.raises(ValueError, match="needs a PRNG key"):
    R.async_recall(None, net, jnp.ones((1, 6)))
  with pytest.raises(ValueError, match="max_sweeps"):
    R.async_recall(jax.random.key(0), net, jnp.ones((1, 6)), max_sweeps=0)
  with pytest.raises(ValueError, match="beta must be finite"):
    R.glauber(jax.random.key(0), net, jnp.ones((1, 6)), jnp.inf, 1)
  with pytest.raises(ValueError, match="coupled"):
    H.network(jnp.array([[0.0, 1.0], [1.0, 0.0]]), blocks=[(0, 1)])


# ----------------------------------------------------------------------------- dense memories


@pytest.mark.parametrize("kind", D.KINDS)
def test_dense_memory_energy_never_rises_and_stores_far_past_hebb(kind):
  """N = P = 100: a load of 1.0, where Hebb's rule keeps no pattern. For F(x) = x^3 a bit of a
  stored pattern gets the signal 6 (N - 1)^2 = 5.9e4 against crosstalk of standard deviation
  6 sqrt(3) N sqrt(P - 1) = 1.0e4, 5.7 sigma (the exponential and rectified forms do better),
  so every pattern is a fixed point; 15% noise leaves a 2.8 sigma margin, so nearly every
  noisy probe is drawn back."""
  xi = _spins(20, (100, 100))
  assert not bool(H.is_fixed_point(H.hebbian(xi), xi).any())
  mem = D.dense(xi, kind, 3)
  probes = np.concatenate([xi, _flip(21, xi, 0.15), _spins(22, (100, 100))])
  r = R.async_recall(jax.random.key(23), mem, probes, max_sweeps=20, trace=True)
  steps = np.diff(np.asarray(r.energies), axis=1)
  assert steps.max() <= 1e-5 * np.abs(r.energies).max(), steps.max()
  assert bool(r.converged.all())
  np.testing.assert_array_equal(r.state[:100], xi)
  np.testing.assert_array_equal(r.n_sweeps[:100], 1)
  assert np.mean(np.all(r.state[100:200] == xi, axis=1)) >= 0.9


def test_dense_update_is_the_lower_energy_choice():
  mem = D.dense(_spins(24, (5, 8)), "poly", 2)
  s = jnp.asarray(_spins(25, (8,)))
  one = R.async_recall(None, mem, s, order="fixed", max_sweeps=1)
  # The same sweep by brute force on the energy.
  x = s
  for i in range(8):
    up, down = x.at[i].set(1.0), x.at[i].set(-1.0)
    e_up, e_down = D.energy(mem, up), D.energy(mem, down)
    x = up if e_up < e_down else down if e_down < e_up else x
  np.testing.assert_array_equal(one.state, x)


def test_modern_hopfield_energy_falls_and_is_bounded():
  rng = np.random.default_rng(26)
  X = rng.normal(size=(20, 16)).astype(np.float32)
  mem = D.modern(X, 2.0)
  r = R.modern_recall(mem, 0.5 * rng.normal(size=(200, 16)), trace=True, max_steps=30)
  e = np.asarray(r.energies)
  assert np.diff(e, axis=1).max() <= 1e-5 * np.abs(e).max()
  m2 = float(jnp.max(jnp.sum(X**2, axis=1)))
  assert e.min() >= -1e-4 and e.max() <= 2 * m2  # Ramsauer et al. (2020), lemma A1
  assert bool(r.converged.all())


def test_modern_update_retrieves_in_one_step_for_large_beta():
  rng = np.random.default_rng(28)
  X = rng.normal(size=(50, 64)).astype(np.float32)
  probes = X + 0.3 * rng.normal(size=X.shape).astype(np.float32)
  one = D.modern_update(D.modern(X, 8.0), probes)
  # Margins beta (x_i . xi - x_j . xi) are about 8 * 64: the softmax is one-hot in float32.
  np.testing.assert_allclose(one, X, atol=1e-5)
  # beta -> 0 averages every pattern instead: the update is the mean of X.
  np.testing.assert_allclose(D.modern_update(D.modern(X, 1e-6), probes),
                             jnp.broadcast_to(X.mean(0), X.shape), atol=1e-3)


def test_dense_and_modern_errors():
  xi = _spins(0, (3, 6))
  with pytest.raises(ValueError, match="kind"):
    D.dense(xi, "cubic")
  with pytest.raises(ValueError, match="degree"):
    D.dense(xi, "poly", 0)
  with pytest.raises(ValueError, match="only -1 and 1"):
    D.dense(jnp.zeros((2, 6)))
  with pytest.raises(ValueError, match=r"shape \[\.\.\., 6\]"):
    R.async_recall(jax.random.key(0), D.dense(xi), jnp.ones((2, 7)))
  with pytest.raises(ValueError, match=r"\[N, d\]"):
    D.modern(jnp.ones(4))
  with pytest.raises(ValueError, match="NaN or inf"):
    D.modern(jnp.array([[1.0, jnp.nan]]))
  with pytest.raises(ValueError, match="beta"):
    D.modern(jnp.ones((2, 4)), 0.0)
  mem = D.modern(jnp.ones((2, 4)))
  with pytest.raises(ValueError, match=r"shape \[\.\.\., 4\]"):
    D.modern_update(mem, jnp.ones(3))
  with pytest.raises(ValueError, match="NaN or inf"):
    D.modern_energy(mem, jnp.full(4, jnp.inf))
