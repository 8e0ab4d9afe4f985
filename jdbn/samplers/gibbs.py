"""Block Gibbs sampling of any block model: one sweep as a kernel, chains in one ``lax.scan``.

A sweep visits the groups of the model's schedule (:attr:`jdbn.models.base.BlockModel.schedule`)
in turn and draws every block of a group from its conditional given the current state of the
others: for an RBM ``h ~ p(h | v)`` then ``v ~ p(v | h)``, for a DBM the odd layers then the even
ones, for a Boltzmann machine with lateral couplings one colour class (or one unit) at a time.
The blocks of a group are conditionally independent, so their fields are all taken from the
state before the group. Each sweep leaves the model's distribution invariant (Geman & Geman
1984), so a long chain samples it; the tests check the kernels against exact enumeration.

The kernel has the blackjax shape ``step(key, model, state) -> (state, info)``; many chains are
``jax.vmap`` of it and nothing more::

    state = gibbs.init_random(key, model, n_chains=1000)
    state, trace = gibbs.chain(key, model, state, n_steps=1000, thin=10)
    final, _ = jax.vmap(lambda k, s: gibbs.chain(k, model, s, 1000))(keys, states)

Every function works on any leading batch shape of the states (a batch of chains is then one
matrix product per block update).

Keys: ``step`` splits its key into one key per group of the schedule (a group of several blocks
splits its key again, one per block), so an RBM sweep draws ``h`` with ``split(key)[0]`` and
``v`` with ``split(key)[1]``; ``chain`` gives sweep ``t`` the key ``split(key, n_steps)[t]``.
On CPUs ``chain`` compiles a large state's sweeps as one loop iteration per group and draws
Threefry keys through an unrolled hash (:func:`_loop_per_group`); the samples are the same.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jdbn.models import base
from jdbn.samplers import _threefry

Array = jax.Array


class GibbsInfo(NamedTuple):
  """What a Gibbs sweep leaves besides the state.

  Attributes:
    fields: one entry per block: the field ``phi_i`` it was last drawn from in this sweep
      (``[..., size_i]``), or ``None`` for a block the sweep did not update. For the schedule's
      last group these are also the fields of the final state (the blocks of a group do not
      feed each other), so callers get the final state's interaction energy without another
      matrix product (parallel tempering's swaps use this); unused, they cost nothing under
      ``jit``.
  """
  fields: tuple = ()


def _rebuild(template, items):
  if hasattr(template, "_fields"):  # a NamedTuple state keeps its type
    return type(template)(*items)
  return tuple(items)


def _check_schedule(model, schedule):
  if schedule is None:
    return model.schedule
  n = len(model.blocks)
  groups = tuple(tuple(base.block_index(model, i) for i in g) for g in schedule)
  if not groups or any(not g for g in groups):
    raise ValueError(f"a schedule is a non-empty sequence of non-empty groups, got {schedule!r}")
  if len({i for g in groups for i in g}) != n:
    raise ValueError(f"the schedule {schedule!r} does not visit all {n} blocks")
  return groups


def _update(key, model, i, phi, old, clamp, mean_field):
  """Block ``i``'s new value from its field ``phi``; ``clamp``/``mean_field`` are masks."""
  units = model.blocks[i].units
  a, s = model.bias(i), model.log_sigma(i)
  if mean_field is True:
    x = units.mean(phi, a, s)
  else:
    # Materialised once: otherwise XLA fuses the whole draw, random-number rounds included,
    # into each of its consumers (the next matrix product, a gradient's outer product, the
    # carried state), which made a CD-1 epoch of a 784 x 500 RBM 8% slower on a CPU.
    x = jax.lax.optimization_barrier(units.sample(key, phi, a, s))
    if mean_field is not None:
      x = jnp.where(mean_field, units.mean(phi, a, s), x)
  if clamp is not None:
    x = jnp.where(clamp, old, x)
  return x


def _normalise_mask(mask):
  """``None``/``False`` -> None, ``True`` -> True, else the mask as it is (array or nested)."""
  if mask is None or mask is False:
    return None
  if mask is True:
    return True
  if isinstance(mask, np.ndarray) and mask.dtype == np.bool_ and not mask.any():
    return None
  return mask


def step(key: Array,
         model: base.BlockModel,
         state: Sequence[Array],
         *,
         clamp: Any = None,
         mean_field: Any = None,
         schedule: Optional[Sequence[Sequence[Any]]] = None) -> tuple[Any, GibbsInfo]:
  """One Gibbs sweep over the schedule's groups.

  Args:
    key: PRNG key.
    model: any :class:`jdbn.models.base.BlockModel`.
    state: one array ``[..., size_i]`` per block (a tuple or NamedTuple; the result has the
      same type).
    clamp: which units keep their current values: ``{block: mask}`` (block index or name) or one
      entry per block; a mask is ``True`` (the whole block: the data, a label, a context) or a
      boolean array broadcastable to ``[..., size_i]`` (the known pixels when inpainting). A
      clamped Softmax group must be clamped whole.
    mean_field: the same form: these units take their conditional mean ``E[x_i | rest]`` instead
      of a sample (mean-field updates; Hinton's mean reconstructions). The result is then no
      longer a sample of the model.
    schedule: groups of blocks (indices or names) to visit instead of the model's own; blocks in
      one group must be conditionally independent given the others.

  Returns:
    ``(state, GibbsInfo(fields))``.
  """
  groups, clamp, mean_field = _prepare(model, schedule, clamp, mean_field)
  keys = jax.random.split(key, len(groups))
  items = _items(model, state)
  last = [None] * len(items)
  for group, k in zip(groups, keys):
    items, fields = _group_update(k, model, items, group, clamp, mean_field)
    for i, phi in fields.items():
      last[i] = phi
  return _rebuild(state, items), GibbsInfo(tuple(last))


def _prepare(model, schedule, clamp, mean_field):
  """The schedule's groups and the per-block ``clamp`` and ``mean_field`` masks, checked."""
  groups = _check_schedule(model, schedule)
  clamp = tuple(map(_normalise_mask, base.per_block(model, clamp, "clamp")))
  mean_field = tuple(map(_normalise_mask, base.per_block(model, mean_field, "mean_field")))
  return groups, clamp, mean_field


def _items(model, state) -> tuple:
  items = tuple(state)
  if len(items) != len(model.blocks):
    raise ValueError(f"the state has {len(items)} blocks, {type(model).__name__} has "
                     f"{len(model.blocks)}")
  return items


def _group_update(key, model, items, group, clamp, mean_field) -> tuple[tuple, dict]:
  """Draws the blocks of one ``group`` (conditionally independent) given ``items``.

  Returns ``(items, fields)``: the new state and ``{block: phi}`` for the blocks drawn.
  """
  todo = [i for i in group if clamp[i] is not True]
  ks = [key] if len(group) == 1 else list(jax.random.split(key, len(group)))
  fields = {i: model.field(items, i) for i in todo}
  items = list(items)
  for i, ki in zip(group, ks):
    if i in fields:
      items[i] = _update(ki, model, i, fields[i], items[i], clamp[i], mean_field[i])
  return tuple(items), fields


#: The state size (elements over all blocks and chains) from which :func:`chain` loops per
#: group on CPUs; below it the conditional per group update costs more than it saves (a single
#: 784 x 500 RBM chain slows down, ten chains speed up: benchmarks/HISTORY.md, 2026-12-06).
PER_GROUP_MIN_SIZE = 8192


def _loop_per_group(state) -> bool:
  """Whether :func:`chain` gives each group update its own iteration of the compiled loop.

  Each group's draw must be materialised once, not recomputed inside every consumer (the
  next group's field reads it several times: four shifted reads on a lattice). XLA:CPU drops
  ``optimization_barrier``, so on CPUs a large state's draw is made a loop-carried value
  instead, which XLA cannot fuse through, and the keys draw through the unrolled Threefry hash
  (:mod:`jdbn.samplers._threefry`: the same numbers), so the samples are unchanged; for the
  speed-ups see ``benchmarks/results/thrml_peer.md`` and ``gibbs_throughput.md``. Elsewhere the
  barrier in :func:`_update` holds, and one iteration per sweep saves the loop's overhead.
  """
  size = sum(int(np.prod(np.shape(x))) for x in state)
  return jax.default_backend() == "cpu" and size >= PER_GROUP_MIN_SIZE


def _sweeps(key, model, state, n_steps: int, unroll: int, kw: dict):
  """``n_steps`` sweeps in one ``lax.scan``; the keys and samples of ``n_steps`` :func:`step`."""
  groups, clamp, mean_field = _prepare(model, kw["schedule"], kw["clamp"], kw["mean_field"])
  active = [g for g, group in enumerate(groups) if any(clamp[i] is not True for i in group)]
  if n_steps == 0 or len(active) < 2 or not _loop_per_group(state):

    def body(s, k):
      return step(k, model, s, **kw)[0], None

    state, _ = jax.lax.scan(body, state, jax.random.split(key, n_steps),
                            unroll=max(1, min(unroll, n_steps)))
    return state

  # Sweep t's group g draws with split(split(key, n_steps)[t], n_groups)[g], as in step.
  keys = jax.vmap(lambda k: jax.random.split(k, len(groups)))(jax.random.split(key, n_steps))
  keys = _threefry.unrolled(keys[:, np.asarray(active)].reshape(-1))
  branches = [
      lambda k, items, g=groups[a]: _group_update(k, model, items, g, clamp, mean_field)[0]
      for a in active
  ]

  def body(carry, k):
    items, g = carry
    items = jax.lax.switch(g, branches, k, items)
    return (items, (g + 1) % len(branches)), None

  (items, _), _ = jax.lax.scan(body, (_items(model, state), jnp.int32(0)), keys,
                               unroll=max(1, min(unroll, n_steps)) * len(branches))
  return _rebuild(state, items)


def _check_count(value, name, low):
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
    raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
  return int(value)


def chain(key: Array,
          model: base.BlockModel,
          state: Sequence[Array],
          n_steps: int,
          *,
          thin: Optional[int] = None,
          trace_fn: Optional[Callable[[Any], Any]] = None,
          clamp: Any = None,
          mean_field: Any = None,
          schedule: Optional[Sequence[Sequence[Any]]] = None,
          unroll: int = 1) -> tuple[Any, Any]:
  """``n_steps`` sweeps of :func:`step` in one ``lax.scan``.

  Args:
    key: PRNG key; sweep ``t`` uses ``split(key, n_steps)[t]`` (see ``thin`` for the trace).
    model: any block model.
    state: initial state, any leading batch shape.
    n_steps: number of sweeps (static, non-negative).
    thin: if given, also record ``trace_fn(state)`` after every ``thin``-th sweep.
    trace_fn: what to record (default: the whole state).
    clamp, mean_field, schedule: see :func:`step`.
    unroll: sweeps per iteration of the compiled loop (``lax.scan``'s ``unroll``); the samples
      are the same for every value.

  Returns:
    ``(final_state, trace)``: ``trace`` is ``None`` without ``thin``, else ``trace_fn`` of the
    states, stacked ``[n_steps // thin, ...]``. With ``thin``, the key splits into
    ``(key_main, key_rest)``: ``key_main`` drives ``n_steps // thin`` blocks of ``thin`` sweeps,
    ``key_rest`` the ``n_steps % thin`` sweeps after the last record.
  """
  n_steps = _check_count(n_steps, "n_steps", 0)
  unroll = _check_count(unroll, "unroll", 1)
  kw = dict(clamp=clamp, mean_field=mean_field, schedule=schedule)
  if thin is None:
    return _sweeps(key, model, state, n_steps, unroll, kw), None
  thin = _check_count(thin, "thin", 1)
  trace_fn = (lambda s: s) if trace_fn is None else trace_fn
  n_out, rest = divmod(n_steps, thin)

  def inner(s, k):
    s, _ = chain(k, model, s, thin, unroll=unroll, **kw)
    return s, trace_fn(s)

  key_main, key_rest = jax.random.split(key)
  state, trace = jax.lax.scan(inner, state, jax.random.split(key_main, n_out))
  state, _ = chain(key_rest, model, state, rest, unroll=unroll, **kw)
  return state, trace


def init_random(key: Array, model: base.BlockModel, n_chains: Optional[int] = None) -> tuple:
  """States drawn from the model's base rates: every block from ``p(x_i | phi = 0)``.

  Returns a tuple with one ``[n_chains, size_i]`` array per block (``[size_i]`` without
  ``n_chains``); a starting point for chains, not a sample of the model.
  """
  if n_chains is not None:
    _check_count(n_chains, "n_chains", 1)
  shape = () if n_chains is None else (n_chains,)
  keys = jax.random.split(key, len(model.blocks))
  out = []
  for i, (b, k) in enumerate(zip(model.blocks, keys)):
    a = model.bias(i)
    out.append(b.units.sample(k, jnp.zeros(shape + (b.size,), a.dtype), a, model.log_sigma(i)))
  return tuple(out)
