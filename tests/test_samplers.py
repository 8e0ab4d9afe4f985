"""The generic block-Gibbs kernel against exact enumeration, on three kinds of block model.

Each test runs many independent chains with ``jax.vmap`` and compares the histogram of their
final joint states with the exact distribution by Pearson's chi-square test.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_gibbs import _chi_square_ok as _chi_square  # Pearson's test, merging small cells

from jdbn import rbm as R
from jdbn.models import base, bm, dbm
from jdbn.samplers import gibbs as G

N_CHAINS = 10_000


def _run(model, n_steps, key=1, **kw):
  keys = jax.random.split(jax.random.key(key), N_CHAINS)
  starts = G.init_random(jax.random.key(key + 1), model, N_CHAINS)
  run = jax.jit(jax.vmap(lambda k, s: G.chain(k, model, s, n_steps, **kw)[0]))
  return run(keys, starts)


def _assert_fits(model, states, probs=None):
  probs = base.exact_probs(model) if probs is None else probs
  counts = np.bincount(base.state_index(model, states), minlength=len(probs))
  stat, critical = _chi_square(counts, probs)
  assert stat < critical, (stat, critical)


def _rbm():
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  p = R.init(k1, 5, 3, weight_scale=1.0)
  return p.replace(b=0.5 * jax.random.normal(k2, (5,)), c=0.5 * jax.random.normal(k3, (3,)))


def _dbm():
  m = dbm.init(jax.random.key(3), (4, 3, 3), weight_scale=1.0)
  keys = jax.random.split(jax.random.key(4), 3)
  return m.replace(biases=tuple(0.5 * jax.random.normal(k, (n,)) for k, n in zip(keys, m.sizes)))


def _bm(edges=None, blocks="colour"):
  m = bm.init(jax.random.key(5), 8, edges=edges, blocks=blocks, weight_scale=1.0)
  return m.replace(b=0.5 * jax.random.normal(jax.random.key(6), (8,)))


RING = [(i, (i + 1) % 8) for i in range(8)] + [(0, 4)]


def test_rbm_joint_distribution():
  _assert_fits(_rbm(), _run(_rbm(), 30))


def test_three_layer_chain_of_blocks_joint_distribution():
  model = _dbm()
  assert model.schedule == ((1,), (0, 2))
  _assert_fits(model, _run(model, 40))


@pytest.mark.parametrize("blocks", ["sequential", "colour"])
def test_fully_connected_lateral_bm(blocks):
  model = _bm(blocks=blocks)
  assert len(model.groups) == 8  # a complete graph needs one colour per unit
  _assert_fits(model, _run(model, 40))


@pytest.mark.parametrize("blocks", ["sequential", "colour"])
def test_sparse_lateral_bm_sequential_and_coloured(blocks):
  model = _bm(RING, blocks)
  if blocks == "colour":
    assert len(model.groups) == 3  # a ring of 8 with one chord: three colours
  _assert_fits(model, _run(model, 40))


def test_random_order_schedule_is_also_exact():
  """Any schedule that visits every block is a valid sweep, e.g. the reversed one."""
  model = _bm(RING, "sequential")
  reverse = tuple(reversed(model.schedule))
  _assert_fits(model, _run(model, 40, schedule=reverse))


def test_clamped_block_samples_the_conditional():
  """With v clamped, the chain samples p(h1, h2 | v) of the DBM."""
  model = _dbm()
  v = jnp.asarray([1.0, 0.0, 1.0, 1.0])
  keys = jax.random.split(jax.random.key(7), N_CHAINS)
  starts = G.init_random(jax.random.key(8), model, N_CHAINS)
  starts = (jnp.broadcast_to(v, starts[0].shape),) + starts[1:]
  final = jax.jit(jax.vmap(lambda k, s: G.chain(k, model, s, 40, clamp={"v": True})[0]))(
      keys, starts)
  np.testing.assert_array_equal(final[0], np.broadcast_to(v, final[0].shape))
  joint = base.enumerate_states(model)
  rows = np.all(joint[0] == np.asarray(v), axis=1)
  probs = base.exact_probs(model)[rows]
  # Index the hidden states within the rows where v matches.
  index = base.state_index(model, final)
  where = np.flatnonzero(rows)
  counts = np.bincount(np.searchsorted(where, index), minlength=len(where))
  stat, critical = _chi_square(counts, probs / probs.sum())
  assert stat < critical, (stat, critical)


def test_mean_field_block_is_the_conditional_mean():
  model = _dbm()
  state = G.init_random(jax.random.key(9), model, 6)
  new, _ = G.step(jax.random.key(10), model, state, mean_field={"h1": True})
  np.testing.assert_allclose(new[1], base.conditional_mean(model, state, 1), rtol=1e-6)
  # The even layers were then sampled given that mean.
  assert set(np.unique(new[0]).tolist()) <= {0.0, 1.0}


def test_same_key_same_chain_and_jit_agrees():
  model = _bm(RING)
  s0 = G.init_random(jax.random.key(11), model, 4)
  a, trace = G.chain(jax.random.key(12), model, s0, 7, thin=2)
  b, trace_j = jax.jit(lambda k, s: G.chain(k, model, s, 7, thin=2))(jax.random.key(12), s0)
  for x, y in zip(jax.tree.leaves((a, trace)), jax.tree.leaves((b, trace_j))):
    np.testing.assert_array_equal(x, y)
  assert trace[0].shape == (3, 4, len(model.groups[0]))


def test_bad_arguments():
  model = _dbm()
  s0 = G.init_random(jax.random.key(0), model, 2)
  with pytest.raises(ValueError, match="no block"):
    G.step(jax.random.key(0), model, s0, clamp={"h7": True})
  with pytest.raises(ValueError, match="does not visit"):
    G.step(jax.random.key(0), model, s0, schedule=((1,),))
  with pytest.raises(ValueError, match="n_steps"):
    G.chain(jax.random.key(0), model, s0, -1)
  with pytest.raises(ValueError, match="blocks"):
    G.step(jax.random.key(0), model, s0[:2])
  with pytest.raises(ValueError, match="share an edge"):
    bm.init(jax.random.key(0), 4, edges=[(0, 1)], blocks=[(0, 1), (2, 3)])
  assert G.chain(jax.random.key(0), model, s0, np.int64(2))[0][0].shape == (2, 4)


def test_the_goodness_of_fit_check_rejects_a_wrong_sampler():
  """Updating coupled blocks at once (a Jacobi sweep) is not a Gibbs sampler of the model;
  the same check must reject it, or the tests above prove nothing."""
  model = _dbm()
  final = _run(model, 40, schedule=((0, 1, 2),))
  counts = np.bincount(base.state_index(model, final), minlength=base.n_states(model))
  stat, critical = _chi_square(counts, base.exact_probs(model))
  assert stat > critical, (stat, critical)


# ------------------------------------------- batched chains: one loop iteration per group


def _stepwise(key, model, state, n_steps, **kw):
  """The documented key scheme of ``chain``: sweep ``t`` is ``step`` with ``split(key, n)[t]``."""
  for k in jax.random.split(key, n_steps):
    state = G.step(k, model, state, **kw)[0]
  return state


@pytest.mark.parametrize("make", [_rbm, _dbm, lambda: _bm(RING)], ids=["rbm", "dbm", "bm"])
def test_batched_chains_of_a_large_state_match_exact_distribution(make):
  """One batch of 10,000 chains (not a ``vmap``) is a state large enough for ``chain`` to give
  each group update its own loop iteration and the unrolled Threefry keys on CPUs."""
  model = make()
  starts = G.init_random(jax.random.key(2), model, N_CHAINS)
  assert G._loop_per_group(starts) == (jax.default_backend() == "cpu")
  final = jax.jit(lambda k, s: G.chain(k, model, s, 40)[0])(jax.random.key(1), starts)
  _assert_fits(model, final)


@pytest.mark.parametrize("kw", [{}, {"clamp": {"v": True}}, {"mean_field": {"h1": True}},
                                {"schedule": ((2,), (1,), (0,))}, {"unroll": 3},
                                {"clamp": {"h1": np.arange(3) < 2}}],
                         ids=["plain", "clamp", "mean_field", "schedule", "unroll", "mask"])
def test_chains_of_a_large_state_draw_what_steps_draw(kw):
  """Looping per group (and drawing through the unrolled hash) changes the compiled program,
  never the samples: ``chain`` equals the same keys' ``step`` sweeps bit for bit."""
  model = _dbm()
  state = G.init_random(jax.random.key(3), model, 3000)
  assert sum(x.size for x in state) >= G.PER_GROUP_MIN_SIZE
  step_kw = {k: v for k, v in kw.items() if k != "unroll"}
  got = jax.jit(lambda k, s: G.chain(k, model, s, 7, **kw)[0])(jax.random.key(4), state)
  want = jax.jit(lambda k, s: _stepwise(k, model, s, 7, **step_kw))(jax.random.key(4), state)
  for x, y in zip(got, want):
    np.testing.assert_array_equal(x, y)
  _, trace = jax.jit(lambda k, s: G.chain(k, model, s, 7, thin=3, **kw))(jax.random.key(4), state)
  assert trace[0].shape == (2, 3000, 4)
