"""Hopfield nets: storage rules against their formulas, energy descent along recall, capacity,
Glauber dynamics against the exact Gibbs measure (chi-square), and the error messages."""

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


def _spins(key, shape):
  return jnp.where(jax.random.bernoulli(key, 0.5, shape), 1.0, -1.0)


def _random_net(key, n, scale=1.0, alphabet="spin"):
  kw, kt = jax.random.split(key)
  A = scale * jax.random.normal(kw, (n, n))
  W = (A + A.T) / np.sqrt(2) * (1 - jnp.eye(n))
  return H.network(W, 0.5 * jax.random.normal(kt, (n,)), alphabet=alphabet)


def _flip(key, xi, p):
  return xi * jnp.where(jax.random.bernoulli(key, p, xi.shape), -1.0, 1.0)


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
  xi = np.asarray(_spins(jax.random.key(0), (4, 7)), np.float64)
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
  net = _random_net(jax.random.key(1), 6)
  s = jnp.asarray(H.Spin().states(6))
  binary = H.to_binary(net)
  diff = H.energy(binary, (s + 1) / 2) - H.energy(net, s)
  np.testing.assert_allclose(diff, diff[0], atol=1e-5)
  back = H.to_spin(binary)
  np.testing.assert_allclose(back.W, net.W, atol=1e-6)
  np.testing.assert_allclose(back.theta, net.theta, atol=1e-5)


def test_block_model_field_is_minus_the_energy_gradient():
  net = _random_net(jax.random.key(2), 5)
  s = _spins(jax.random.key(3), (3, 5))
  grad = jax.grad(lambda s: -jnp.sum(H.energy(net, s)))(s)
  for i in range(5):  # field = -dE/ds_i without the threshold (the bias -theta_i)
    np.testing.assert_allclose(net.field(net.split(s), i), grad[:, i:i + 1] + net.theta[i],
                               rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(net.energy(net.split(s)), H.energy(net, s), rtol=1e-6)


# ----------------------------------------------------------------------------- recall


@pytest.mark.parametrize("alphabet,order", [("spin", "random"), ("spin", "fixed"),
                                            ("binary", "random")])
def test_energy_never_rises_along_asynchronous_recall(alphabet, order):
  net = _random_net(jax.random.key(4), 40, alphabet=alphabet)
  lo, hi = net.levels
  probes = jnp.where(jax.random.bernoulli(jax.random.key(5), 0.5, (100, 40)), hi, lo)
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
  xi = _spins(jax.random.key(7), (5, 100))
  net = H.hebbian(xi)
  assert bool(H.is_fixed_point(net, xi).all())
  r = R.async_recall(jax.random.key(8), net, xi)
  np.testing.assert_array_equal(r.state, xi)
  np.testing.assert_array_equal(r.n_sweeps, 1)
  # 10% of the bits flipped: at load 0.05 the basin is far wider (Amit et al. 1985).
  probes = _flip(jax.random.key(9), jnp.repeat(xi, 10, axis=0), 0.1)
  r = R.async_recall(jax.random.key(10), net, probes)
  np.testing.assert_array_equal(r.state, jnp.repeat(xi, 10, axis=0))
  assert int(r.n_sweeps.max()) <= 4
  s = R.sync_recall(net, probes)
  np.testing.assert_array_equal(s.state, jnp.repeat(xi, 10, axis=0))
  binary = H.hebbian((xi + 1) / 2, alphabet="binary")
  assert bool(H.is_fixed_point(binary, (xi + 1) / 2).all())


def test_storkey_stores_where_hebbian_fails():
  """N = 100, P = 15: past Hebb's n / (2 ln n) = 10.9, below Storkey's n / sqrt(2 ln n) = 33.

  At load 0.15 a Hebbian bit flips with probability about Q(1 / sqrt(0.15)) = 0.005, so about
  60% of patterns are exact fixed points; Storkey's rule keeps (nearly) all of them.
  """
  heb, sto = [], []
  for k in jax.random.split(jax.random.key(11), 10):
    xi = _spins(k, (15, 100))
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
  net = _random_net(jax.random.key(12), 20)
  probes = _spins(jax.random.key(13), (3, 4, 20))
  r = R.async_recall(jax.random.key(14), net, probes)
  assert r.state.shape == (3, 4, 20) and r.n_sweeps.shape == (3, 4)
  jitted = jax.jit(lambda k, n, p: R.async_recall(k, n, p))(jax.random.key(14), net, probes)
  np.testing.assert_array_equal(jitted.state, r.state)
  again = R.async_recall(jax.random.key(14), net, probes)
  np.testing.assert_array_equal(again.state, r.state)
  g = R.glauber(jax.random.key(1), net, probes, 0.5, 3)
  np.testing.assert_array_equal(g, R.glauber(jax.random.key(1), net, probes, 0.5, 3))


# ----------------------------------------------------------------------------- Gibbs measure


def _assert_gibbs_measure(net, beta, states):
  probs = base.exact_probs(net.tempered(beta))
  one_block = net.replace(groups=(tuple(range(net.n)),))  # enumeration order of [n] rows
  counts = np.bincount(base.state_index(one_block, (np.asarray(states),)), minlength=len(probs))
  stat, critical = _chi_square(counts, probs)
  assert stat < critical, (stat, critical)


@pytest.mark.parametrize("alphabet,order", [("spin", "random"), ("spin", "fixed"),
                                            ("binary", "random")])
def test_glauber_dynamics_samples_the_gibbs_measure(alphabet, order):
  net = _random_net(jax.random.key(15), 9, scale=0.6, alphabet=alphabet)
  lo, hi = net.levels
  starts = jnp.full((N_CHAINS, 9), hi)  # all chains from one state: mixing must do the work
  out = R.glauber(jax.random.key(16), net, starts, 0.8, 30, order=order)
  _assert_gibbs_measure(net, 0.8, out)


def test_generic_gibbs_sampler_samples_the_tempered_hopfield_net():
  net = _random_net(jax.random.key(17), 8, scale=0.6)
  model = net.tempered(0.8)
  starts = model.split(jnp.ones((N_CHAINS, 8)))
  keys = jax.random.split(jax.random.key(18), N_CHAINS)
  out = jax.jit(jax.vmap(lambda k, s: G.chain(k, model, s, 30)[0]))(keys, starts)
  _assert_gibbs_measure(net, 0.8, model._join(out))


def test_the_chi_square_check_rejects_the_wrong_temperature():
  net = _random_net(jax.random.key(15), 9, scale=0.6)
  out = R.glauber(jax.random.key(16), net, jnp.ones((N_CHAINS, 9)), 0.6, 30)  # compiled above
  with pytest.raises(AssertionError):
    _assert_gibbs_measure(net, 0.8, out)


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
  net = H.hebbian(_spins(jax.random.key(0), (2, 6)))
  with pytest.raises(ValueError, match="only -1 and 1"):
    R.async_recall(jax.random.key(0), net, jnp.zeros((1, 6)))
  with pytest.raises(ValueError, match=r"shape \[\.\.\., 6\]"):
    R.async_recall(jax.random.key(0), net, jnp.ones((1, 5)))
  with pytest.raises(ValueError, match="NaN or inf"):
    R.sync_recall(net, jnp.full((1, 6), jnp.inf))
  with pytest.raises(ValueError, match="only 0 and 1"):
    H.hebbian(_spins(jax.random.key(0), (2, 6)), alphabet="binary")
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
  xi = _spins(jax.random.key(20), (100, 100))
  assert not bool(H.is_fixed_point(H.hebbian(xi), xi).any())
  mem = D.dense(xi, kind, 3)
  probes = jnp.concatenate([xi, _flip(jax.random.key(21), xi, 0.15),
                            _spins(jax.random.key(22), (100, 100))])
  r = R.async_recall(jax.random.key(23), mem, probes, max_sweeps=20, trace=True)
  steps = np.diff(np.asarray(r.energies), axis=1)
  assert steps.max() <= 1e-5 * np.abs(r.energies).max(), steps.max()
  assert bool(r.converged.all())
  np.testing.assert_array_equal(r.state[:100], xi)
  np.testing.assert_array_equal(r.n_sweeps[:100], 1)
  assert np.mean(np.all(r.state[100:200] == xi, axis=1)) >= 0.9


def test_dense_update_is_the_lower_energy_choice():
  mem = D.dense(_spins(jax.random.key(24), (5, 8)), "poly", 2)
  s = _spins(jax.random.key(25), (8,))
  one = R.async_recall(None, mem, s, order="fixed", max_sweeps=1)
  # The same sweep by brute force on the energy.
  x = s
  for i in range(8):
    up, down = x.at[i].set(1.0), x.at[i].set(-1.0)
    e_up, e_down = D.energy(mem, up), D.energy(mem, down)
    x = up if e_up < e_down else down if e_down < e_up else x
  np.testing.assert_array_equal(one.state, x)


def test_modern_hopfield_energy_falls_and_is_bounded():
  X = jax.random.normal(jax.random.key(26), (20, 16))
  mem = D.modern(X, 2.0)
  r = R.modern_recall(mem, 0.5 * jax.random.normal(jax.random.key(27), (200, 16)), trace=True,
                      max_steps=30)
  e = np.asarray(r.energies)
  assert np.diff(e, axis=1).max() <= 1e-5 * np.abs(e).max()
  m2 = float(jnp.max(jnp.sum(X**2, axis=1)))
  assert e.min() >= -1e-4 and e.max() <= 2 * m2  # Ramsauer et al. (2020), lemma A1
  assert bool(r.converged.all())


def test_modern_update_retrieves_in_one_step_for_large_beta():
  X = jax.random.normal(jax.random.key(28), (50, 64))
  probes = X + 0.3 * jax.random.normal(jax.random.key(29), X.shape)
  one = D.modern_update(D.modern(X, 8.0), probes)
  # Margins beta (x_i . xi - x_j . xi) are about 8 * 64: the softmax is one-hot in float32.
  np.testing.assert_allclose(one, X, atol=1e-5)
  # beta -> 0 averages every pattern instead: the update is the mean of X.
  np.testing.assert_allclose(D.modern_update(D.modern(X, 1e-6), probes),
                             jnp.broadcast_to(X.mean(0), X.shape), atol=1e-3)


def test_dense_and_modern_errors():
  xi = _spins(jax.random.key(0), (3, 6))
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
