"""The block-model interface that every Boltzmann machine in jdbn implements.

A block model is a set of *blocks* of units, each of one :mod:`jdbn.units` family, joined by
couplings, with a *schedule*: groups of blocks that are conditionally independent given the
other blocks, so that a group can be sampled at once. Its energy has the form

    E(x_1, ..., x_B) = sum_i E_i(x_i; a_i, sigma_i) - (interaction terms in s_i(x_i))

and the conditional of block ``i`` given the rest is the family's ``p(x_i | phi_i)`` with the
*field* ``phi_i = -dE/ds_i(x_i)`` (without the self energy) that the other blocks send to it.

===========================  =====================  ==========================================
model                        blocks                 schedule
===========================  =====================  ==========================================
RBM (:mod:`jdbn.rbm`)        ``(v, h)``             ``((h,), (v,))``
DBM (:mod:`.dbm`)            ``(v, h1, h2, ...)``   ``((h1, h3, ...), (v, h2, ...))``
BM / Hopfield (:mod:`.bm`)   colour classes         one class at a time (sequential: one unit)
Lattice (:mod:`.lattice`)    colour classes         one colour at a time (checkerboard: 2)
===========================  =====================  ==========================================

A model is a ``flax.struct`` params pytree whose class derives from :class:`BlockModel` and
provides, as pure methods: :attr:`~BlockModel.blocks`, :attr:`~BlockModel.schedule`,
:meth:`~BlockModel.bias`, :meth:`~BlockModel.log_sigma`, :meth:`~BlockModel.field`,
:meth:`~BlockModel.energy` and :meth:`~BlockModel.tempered`. The samplers (:mod:`jdbn.samplers`),
the contrastive trainer and the likelihood code are written once against these; the functions
below derive the rest (conditionals, free energies of any schedule group, exact enumeration).
A *state* is a tuple with one array ``[..., size_i]`` per block, in block order (a NamedTuple
such as :class:`jdbn.gibbs.ChainState` works as it is).
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from jdbn import units as U

Array = jax.Array
States = Sequence[Array]

#: Largest number of joint states :func:`enumerate_states` will list.
MAX_ENUMERATION_STATES = 2**22


class Block(NamedTuple):
  """One block of units: its name, unit family and number of units (all static)."""
  name: str
  units: U.Units
  size: int


class BlockModel:
  """Base class of jdbn's models (a mixin for ``flax.struct`` params classes).

  Subclasses override every method below; :func:`check_schedule` checks what can be checked.
  """

  @property
  def blocks(self) -> tuple[Block, ...]:
    """The blocks, in state order (static)."""
    raise NotImplementedError

  @property
  def schedule(self) -> tuple[tuple[int, ...], ...]:
    """Groups of block indices sampled in turn; the blocks of a group are conditionally
    independent given the other blocks (static)."""
    raise NotImplementedError

  def bias(self, i: int) -> Array:
    """Biases ``a_i`` of block ``i``: ``[size_i]``."""
    raise NotImplementedError

  def log_sigma(self, i: int) -> Optional[Array]:
    """``log sigma_i`` of block ``i`` (families with a learned sigma), else ``None``."""
    del i
    return None

  def field(self, states: States, i: int) -> Array:
    """The field ``phi_i`` the other blocks send to block ``i``: ``[..., size_i]``.

    ``states[i]`` itself is not read, so any placeholder of the right shape will do.
    """
    raise NotImplementedError

  def energy(self, states: States) -> Array:
    """``E(x_1, ..., x_B)``: ``-> [...]``."""
    raise NotImplementedError

  def tempered(self, beta: Array,
               base_biases: Optional[Sequence[Array]] = None) -> "BlockModel":
    """The model ``p_beta ∝ p_base^(1 - beta) p^beta`` for annealing and tempering.

    ``p_base`` has no couplings and biases ``base_biases`` (one array or None per block; zeros
    by default),
    the same sigmas; the result is the same kind of model with couplings ``beta W`` and biases
    ``(1 - beta) base_biases + beta a`` (Salakhutdinov & Murray 2008; Neal 2001).
    """
    raise NotImplementedError


# ----------------------------------------------------------------------------- derived


def block_index(model: BlockModel, block: Union[int, str]) -> int:
  """The index of a block given by index or name; ``ValueError`` if there is none."""
  names = [b.name for b in model.blocks]
  if isinstance(block, str):
    if block not in names:
      raise ValueError(f"{type(model).__name__} has no block {block!r}; its blocks are {names}")
    return names.index(block)
  if isinstance(block, (int, np.integer)) and not isinstance(block, bool):
    if not 0 <= block < len(names):
      raise ValueError(f"block index {block} is out of range for the {len(names)} blocks "
                       f"{names} of {type(model).__name__}")
    return int(block)
  raise TypeError(f"a block is named by its index or name, got {block!r}")


def per_block(model: BlockModel, spec: Any, what: str) -> tuple:
  """``spec`` as a tuple with one entry per block (``None`` where not given).

  ``spec`` is ``None``, a mapping ``{block index or name: value}`` or a sequence with one entry
  per block.
  """
  n = len(model.blocks)
  if spec is None:
    return (None,) * n
  if isinstance(spec, dict):
    out = [None] * n
    for k, v in spec.items():
      out[block_index(model, k)] = v
    return tuple(out)
  if isinstance(spec, (tuple, list)) and len(spec) == n:
    return tuple(spec)
  raise ValueError(f"{what} must be None, a dict {{block: value}} or one entry per block "
                   f"({n}), got {spec!r}")


def conditional_mean(model: BlockModel, states: States, i: int) -> Array:
  """``E[x_i | the other blocks]``: ``[..., size_i]``."""
  units = model.blocks[i].units
  return units.mean(model.field(states, i), model.bias(i), model.log_sigma(i))


def sample_block(key: Array, model: BlockModel, states: States, i: int) -> Array:
  """A draw of ``x_i ~ p(x_i | the other blocks)``: ``[..., size_i]``."""
  units = model.blocks[i].units
  return units.sample(key, model.field(states, i), model.bias(i), model.log_sigma(i))


def free_energy(model: BlockModel, states: States, summed: Sequence[int]) -> Array:
  """``F = -log ∫ exp(-E) dx_S``: the blocks ``S = summed`` marginalised, ``-> [...]``.

  The blocks in ``summed`` must be conditionally independent given the others (any group of
  the schedule). Since ``s(0) = 0`` for every family, ``E`` with ``x_S = 0`` is the energy of the
  other blocks plus the self energies ``E_i(0)``, so

      F = E(x_{-S}, 0_S) - sum_{i in S} (E_i(0) + log_partition_i(phi_i)).

  ``states[i]`` for ``i`` in ``summed`` is not read. For an RBM with ``summed=(h,)`` this is
  :func:`jdbn.rbm.free_energy`; for a DBM with the odd layers summed, the tractable marginal of
  the even layers (Salakhutdinov & Hinton 2009).
  """
  states = list(states)
  ref = next(states[j] for j in range(len(states)) if j not in summed)
  batch = jnp.shape(ref)[:-1]
  fields = {i: model.field(states, i) for i in summed}
  out = 0.0
  for i in summed:
    b = model.blocks[i]
    zeros = jnp.zeros(batch + (b.size,), jnp.result_type(ref))
    states[i] = zeros
    out = out + b.units.energy(zeros, model.bias(i), model.log_sigma(i)) + b.units.log_partition(
        fields[i], model.bias(i), model.log_sigma(i))
  return model.energy(states) - out


def check_schedule(model: BlockModel) -> None:
  """Raises ``ValueError`` unless the schedule covers every block exactly once."""
  flat = [i for group in model.schedule for i in group]
  if sorted(flat) != list(range(len(model.blocks))):
    raise ValueError(f"the schedule {model.schedule} of {type(model).__name__} must name every "
                     f"block index 0..{len(model.blocks) - 1} exactly once")


def n_states(model: BlockModel) -> int:
  """The number of joint states of an enumerable model."""
  total = 1
  for b in model.blocks:
    if not b.units.enumerable:
      raise ValueError(f"block {b.name!r} has {type(b.units).__name__} units, which cannot be "
                       f"enumerated")
    total *= b.units.n_states(b.size)
  return total


def enumerate_states(model: BlockModel) -> tuple[np.ndarray, ...]:
  """Every joint state of a small enumerable model: one ``[n_states, size_i]`` array a block.

  Raises ``ValueError`` above :data:`MAX_ENUMERATION_STATES` states.
  """
  count = n_states(model)
  if count > MAX_ENUMERATION_STATES:
    raise ValueError(f"{type(model).__name__} has {count:,} joint states, more than "
                     f"{MAX_ENUMERATION_STATES:,} to enumerate")
  per = [b.units.states(b.size) for b in model.blocks]
  rows = list(itertools.product(*[range(len(p)) for p in per]))
  idx = np.asarray(rows, np.int64).reshape(-1, len(per))
  return tuple(p[idx[:, j]] for j, p in enumerate(per))


def exact_log_z(model: BlockModel) -> Array:
  """``log Z = logsumexp(-E)`` over every joint state (tiny models: tests, checks)."""
  return jax.nn.logsumexp(-model.energy(tuple(map(jnp.asarray, enumerate_states(model)))))


def exact_probs(model: BlockModel) -> np.ndarray:
  """``p(x)`` of every joint state, in :func:`enumerate_states` order (float64)."""
  neg_e = np.asarray(-model.energy(tuple(map(jnp.asarray, enumerate_states(model)))), np.float64)
  p = np.exp(neg_e - neg_e.max())
  return p / p.sum()


def state_index(model: BlockModel, states: States) -> np.ndarray:
  """The :func:`enumerate_states` index of each joint state in ``states`` (``[n, size_i]``).

  Raises ``ValueError`` if a row is not a valid state.
  """
  radices = [b.units.n_states(b.size) for b in model.blocks]
  index = np.zeros(np.shape(states[0])[0], np.int64)
  stride = 1
  for j in reversed(range(len(radices))):
    rows = np.asarray(states[j])
    # Each block's states are listed in units.states order; find each row's position there.
    choices = model.blocks[j].units.states(model.blocks[j].size)
    match = np.all(rows[:, None, :] == choices[None, :, :], axis=-1)
    if not np.all(match.sum(1) == 1):
      raise ValueError(f"block {model.blocks[j].name!r} holds rows that are not valid states")
    index += stride * match.argmax(1)
    stride *= radices[j]
  return index


#: Names of the params fields that hold couplings (every model of jdbn uses one of these).
COUPLING_FIELDS = ("W", "weights")


def weights_only(params: Any) -> Any:
  """A mask pytree: ``True`` on coupling leaves (``W``, ``weights``), ``False`` on biases and
  sigmas, for any model or stack of models. Weight decay on the weights only is then::

      optax.chain(optax.add_decayed_weights(2e-4, mask=base.weights_only), optax.sgd(0.05))
  """
  return jax.tree_util.tree_map_with_path(
      lambda path, _: any(getattr(k, "name", None) in COUPLING_FIELDS for k in path), params)
