"""Parallel tempering: every replica keeps its tempered distribution (chi-square against exact
enumeration), swaps follow the Metropolis rule, and the check rejects a wrong swap rule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_gibbs import _chi_square_ok as _chi_square  # Pearson's test, merging small cells

from jdbn import rbm as R
from jdbn.models import base, dbm
from jdbn.samplers import gibbs as G
from jdbn.samplers import tempering as T

N_CHAINS = 10_000
BETAS = np.array([1.0, 0.6, 0.3], np.float32)


def _rbm():
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  p = R.init(k1, 4, 3, weight_scale=2.0)  # strong couplings: a multimodal p(v, h)
  return p.replace(b=jax.random.normal(k2, (4,)), c=jax.random.normal(k3, (3,)))


def _dbm():
  model = dbm.init(jax.random.key(4), (4, 3, 3), weight_scale=1.5)
  return model.replace(biases=tuple(0.5 * jax.random.normal(jax.random.key(5 + i), b.shape)
                                    for i, b in enumerate(model.biases)))


def _final(model, n_steps, key=1):
  start = T.init_random(jax.random.key(key + 1), model, len(BETAS), N_CHAINS)
  run = jax.jit(lambda k, s: T.chain(k, model, s, BETAS, n_steps))
  return run(jax.random.key(key), start)


def _fits(model, beta, states):
  tempered = model.tempered(beta)
  probs = base.exact_probs(tempered)
  counts = np.bincount(base.state_index(tempered, states), minlength=len(probs))
  return _chi_square(counts, probs)


def _bm():
  """A fully connected 6-unit BM: six colour classes, so the swaps evaluate the energy."""
  from jdbn.models import bm  # pylint: disable=import-outside-toplevel
  model = bm.init(jax.random.key(8), 6, weight_scale=1.0)
  return model.replace(b=0.5 * jax.random.normal(jax.random.key(9), (6,)))


@pytest.mark.parametrize("name", ["rbm", "dbm 4-3-3", "bm 6 dense"])
def test_every_replica_samples_its_tempered_distribution(name):
  model = {"rbm": _rbm, "dbm 4-3-3": _dbm, "bm 6 dense": _bm}[name]()
  final = _final(model, 40)
  for m, beta in enumerate(BETAS):
    stat, critical = _fits(model, float(beta), [s[m] for s in final.states])
    assert stat < critical, (name, beta, stat, critical)
  rates = np.asarray(final.swap_rates)
  assert rates.shape == (2,) and np.all((rates > 0.05) & (rates <= 1))
  np.testing.assert_array_equal(final.attempts, [20, 20])  # each pair offered every other step


def test_the_check_rejects_swaps_that_ignore_the_metropolis_rule(monkeypatch):
  """Always swapping is not a valid move: the same check must fail on it."""
  true_swap = T.swap

  def always(key, betas, gaps, states, parity):
    decreasing = -1e6 * jnp.arange(gaps.shape[0], dtype=gaps.dtype)[:, None]
    return true_swap(key, betas, jnp.broadcast_to(decreasing, gaps.shape), states, parity)

  monkeypatch.setattr(T, "swap", always)
  model = _rbm()
  final = _final(model, 41)
  assert np.all(np.asarray(final.swap_rates) == 1.0)
  stat, critical = _fits(model, 1.0, [s[0] for s in final.states])
  assert stat > critical, (stat, critical)


def test_swap_acceptance_is_the_metropolis_probability():
  model = _rbm()
  e = lambda beta, x: float(model.tempered(beta).energy(x))  # noqa: E731

  def log_accept(cold, hot):
    return -(e(1.0, hot) + e(0.5, cold)) + (e(1.0, cold) + e(0.5, hot))

  # the first pair of joint states (in enumeration order) whose swap is neither near-certain nor
  # near-impossible, so that the acceptance frequency says something
  joint = base.enumerate_states(model)
  pairs = ((i, j) for i in range(len(joint[0])) for j in range(len(joint[0])))
  i, j = next((i, j) for i, j in pairs
              if 0.2 < np.exp(min(0.0, log_accept(*[tuple(x[k] for x in joint)
                                                    for k in (i, j)]))) < 0.8)
  x_cold, x_hot = (tuple(jnp.asarray(x[k]) for x in joint) for k in (i, j))
  n = 40_000
  states = tuple(jnp.broadcast_to(jnp.stack([a, b]), (n, 2, a.shape[0])).transpose(1, 0, 2)
                 for a, b in zip(x_cold, x_hot))
  betas = jnp.asarray([1.0, 0.5])
  gaps = jax.vmap(lambda s: T.energy_gap(model, s))(states)
  out, prob, accepted = T.swap(jax.random.key(3), betas, gaps, states, jnp.int32(0))
  want = min(1.0, np.exp(log_accept(x_cold, x_hot)))
  np.testing.assert_allclose(np.asarray(prob), want, rtol=1e-5)
  frac = float(jnp.mean(accepted))
  assert abs(frac - want) < 4 * np.sqrt(want * (1 - want) / n)
  swapped = np.asarray(accepted[0])
  np.testing.assert_array_equal(np.asarray(out[0][0])[swapped], np.tile(x_hot[0], (swapped.sum(),
                                                                                    1)))
  np.testing.assert_array_equal(np.asarray(out[0][1])[swapped], np.tile(x_cold[0],
                                                                        (swapped.sum(), 1)))
  # the other parity offers no pair of two replicas: nothing moves
  _, _, none = T.swap(jax.random.key(3), betas, gaps, states, jnp.int32(1))
  assert not bool(jnp.any(none))


@pytest.mark.parametrize("name", ["rbm", "dbm 4-3-3"])
def test_energies_from_the_sweep_fields_equal_the_model_energies(name):
  """The fast path (fields of the sweep's last group) gives every replica's ``E - E_base``
  exactly as evaluating the energy does, with base biases too."""
  model = _rbm() if name == "rbm" else _dbm()
  base_b = base.per_block(model, {0: 0.3 * jnp.ones(model.blocks[0].size)}, "base")
  betas = jnp.asarray(BETAS)
  models = jax.vmap(lambda b: model.tempered(b, base_b))(betas)
  start = T.init_random(jax.random.key(6), model, 3, 50)
  states, info = jax.vmap(lambda m, k, s: G.step(k, m, s))(
      models, jax.random.split(jax.random.key(7), 3), start.states)
  last = model.schedule[-1]
  fast = jax.vmap(lambda s, f, b: T._gap_from_fields(model, s, f, b, base_b, last))(
      states, info.fields, betas)
  slow = jax.vmap(lambda s: T.energy_gap(model, s, base_b))(states)
  np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-4)


def test_ladder_and_errors():
  np.testing.assert_allclose(T.ladder(3, 0.25), [1.0, 0.5, 0.25], rtol=1e-6)
  np.testing.assert_allclose(T.ladder(3, 0.5, spacing="linear"), [1.0, 0.75, 0.5], rtol=1e-6)
  with pytest.raises(ValueError, match="beta_min"):
    T.ladder(3, 0.0)
  with pytest.raises(ValueError, match="spacing"):
    T.ladder(3, 0.5, spacing="cubic")
  with pytest.raises(ValueError, match="start at 1"):
    T.check_betas([0.9, 0.5])
  with pytest.raises(ValueError, match="start at 1"):
    T.check_betas([1.0, 0.5, 0.7])
  model = _rbm()
  state = T.init_random(jax.random.key(0), model, 2, 5)
  with pytest.raises(ValueError, match="2 replicas for 3 temperatures"):
    T.step(jax.random.key(0), model, state, BETAS)


def test_pt_trainer_learns_a_bimodal_distribution_and_keeps_its_swap_rates():
  """PCD with tempering on data from two opposite modes: the exact log-likelihood of the data
  (enumeration) rises well above the start, and the chains report their swap rates."""
  import optax  # pylint: disable=import-outside-toplevel
  from jdbn import likelihood  # pylint: disable=import-outside-toplevel
  from jdbn.train import variants  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(7)
  modes = np.array([[1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1]], np.float32)
  x = modes[rng.integers(0, 2, 400)]
  x = np.abs(x - (rng.random(x.shape) < 0.05)).astype(np.float32)
  params = R.init(jax.random.key(8), 6, 4, weight_scale=0.1)
  trainer = variants.pt(optax.sgd(0.1, momentum=0.5), n_chains=20, betas=[1.0, 0.6, 0.3])
  assert trainer.config["algorithm"] == "pt" and trainer.config["betas"] == [1.0, 0.6, 0.3]
  state = trainer.init(jax.random.key(9), params)

  def mean_ll(p):
    return float(jnp.mean(likelihood.log_likelihood(p, x, likelihood.exact_log_z(p))))

  before = mean_ll(params)
  for e in range(10):
    state, _ = trainer.epoch(jax.random.fold_in(jax.random.key(10), e), state, x, 20)
  after = mean_ll(state.params)
  assert after > before + 1.5, (before, after)  # uniform is -4.16; the data about -2.2
  rates = np.asarray(state.chains.swap_rates)
  assert rates.shape == (2,) and np.all((rates > 0) & (rates <= 1))
  assert state.chains.states[0].shape == (3, 20, 6)
  with pytest.raises(ValueError, match="start at 1"):
    variants.pt(optax.sgd(0.1), betas=[0.5, 0.2])
