"""Parallel tempering: every replica keeps its tempered distribution (chi-square against exact
enumeration), swaps follow the Metropolis rule, and the check rejects a wrong swap rule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_gibbs import _chi_square_ok as _chi_square  # Pearson's test, merging small cells

from jdbn import rbm as R
from jdbn.models import base, dbm
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


@pytest.mark.parametrize("name", ["rbm", "dbm 4-3-3"])
def test_every_replica_samples_its_tempered_distribution(name):
  model = _rbm() if name == "rbm" else _dbm()
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

  def always(key, models, states, parity):
    del key
    out, prob, _ = true_swap(jax.random.key(0), models, states, parity)
    n = states[0].shape[0]
    offered = (jnp.arange(n - 1) % 2 == parity)[:, None] & jnp.ones(prob.shape, bool)
    perm = jnp.arange(n)[:, None] + jnp.concatenate([offered, jnp.zeros((1,) + prob.shape[1:],
                                                                         bool)]).astype(int)
    perm = perm - jnp.concatenate([jnp.zeros((1,) + prob.shape[1:], bool), offered]).astype(int)
    del out
    return (tuple(jnp.take_along_axis(s, jnp.broadcast_to(perm[..., None], s.shape), axis=0)
                  for s in states), prob, offered)

  monkeypatch.setattr(T, "swap", always)
  model = _rbm()
  final = _final(model, 41)
  stat, critical = _fits(model, 1.0, [s[0] for s in final.states])
  assert stat > critical, (stat, critical)


def test_swap_acceptance_is_the_metropolis_probability():
  model = _rbm()
  betas = jnp.asarray([1.0, 0.5])
  models = jax.vmap(model.tempered)(betas)
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
  out, prob, accepted = T.swap(jax.random.key(3), models, states, jnp.int32(0))
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
  _, _, none = T.swap(jax.random.key(3), models, states, jnp.int32(1))
  assert not bool(jnp.any(none))


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
