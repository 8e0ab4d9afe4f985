"""Boltzmann machines with lateral couplings on any graph (Ackley, Hinton & Sejnowski 1985).

Units ``x`` (``[..., n]``, one :mod:`jdbn.units` family) with biases ``a`` and symmetric couplings
``J`` (zero diagonal, zero off the graph's edges) have the energy

    E(x) = E_units(x; a) - 1/2 s(x) @ J @ s(x)

and unit ``i`` sees the field ``phi_i = (s(x) J)_i``. Units that share an edge are not
conditionally independent, so Gibbs sampling updates them in turn: one unit at a time
(``blocks="sequential"``), or one colour class of a proper colouring of the graph at a time
(``blocks="colour"``, chromatic Gibbs: units of one colour share no edge, so each class is one
block). The params keep a free matrix ``W``; the coupling used everywhere is its symmetric part
on the graph, ``J = (W + W^T) / 2`` masked, so every gradient stays on the graph.

Each block of the :class:`jdbn.models.base.BlockModel` interface is one group of unit indices;
:func:`split` and :func:`join` convert between ``[..., n]`` arrays and per-block states.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jdbn import units as U
from jdbn.models import base

Array = jax.Array

__all__ = ["BM", "init", "colouring", "regroup", "split", "join", "adjacency"]


@struct.dataclass
class BM(base.BlockModel):
  """Params of a Boltzmann machine with lateral couplings.

  Attributes:
    W: ``[n, n]`` free coupling parameters (see the module docstring for ``J``).
    b: ``[n]`` biases.
    log_sigma_x: ``[n]`` for a family with a learned sigma, else ``None``.
    units: the unit family (static).
    groups: the blocks, a partition of ``range(n)`` into tuples of unit indices (static).
    edges: the graph as ``((i, j), ...)`` pairs with ``i < j``, or ``None`` for the complete
      graph (static).
  """

  W: Array
  b: Array
  log_sigma_x: Optional[Array] = None
  units: U.Units = struct.field(pytree_node=False, default=U.Bernoulli())
  groups: tuple = struct.field(pytree_node=False, default=())
  edges: Optional[tuple] = struct.field(pytree_node=False, default=None)

  @property
  def n(self) -> int:
    return int(self.b.shape[-1])

  @property
  def coupling(self) -> Array:
    """``J``: the symmetric part of ``W`` on the graph, zero diagonal, ``[n, n]``."""
    return 0.5 * (self.W + self.W.T) * jnp.asarray(adjacency(self.n, self.edges), self.W.dtype)

  @property
  def blocks(self) -> tuple[base.Block, ...]:
    return tuple(base.Block(f"g{k}", self.units, len(g)) for k, g in enumerate(self.groups))

  @property
  def schedule(self) -> tuple[tuple[int, ...], ...]:
    return tuple((k,) for k in range(len(self.groups)))

  def bias(self, i: int) -> Array:
    return self.b[np.asarray(self.groups[i])]

  def log_sigma(self, i: int) -> Optional[Array]:
    return None if self.log_sigma_x is None else self.log_sigma_x[np.asarray(self.groups[i])]

  def field(self, states, i: int) -> Array:
    s = self.units.scaled(join(self, states), self.log_sigma_x)
    return s @ self.coupling[:, np.asarray(self.groups[i])]

  def energy(self, states) -> Array:
    x = join(self, states)
    s = self.units.scaled(x, self.log_sigma_x)
    return self.units.energy(x, self.b, self.log_sigma_x) - 0.5 * jnp.sum(
        (s @ self.coupling) * s, axis=-1)

  def tempered(self, beta, base_biases=None) -> "BM":
    beta = jnp.asarray(beta, self.W.dtype)
    if base_biases is None:
      b0 = 0.0
    else:
      b0 = join(self, [jnp.zeros(len(g), self.b.dtype) if a is None else a
                       for g, a in zip(self.groups, base_biases)])
    return self.replace(W=beta * self.W, b=(1 - beta) * b0 + beta * self.b)


def adjacency(n: int, edges: Optional[Sequence[tuple[int, int]]]) -> np.ndarray:
  """The graph's ``[n, n]`` 0/1 adjacency matrix (complete graph for ``edges=None``)."""
  if edges is None:
    return 1.0 - np.eye(n, dtype=np.float32)
  a = np.zeros((n, n), np.float32)
  for i, j in edges:
    a[i, j] = a[j, i] = 1.0
  return a


def colouring(adj: np.ndarray) -> tuple[tuple[int, ...], ...]:
  """A proper colouring of a graph, greedy in order of decreasing degree (Welsh & Powell 1967).

  Returns the colour classes, each a sorted tuple of vertices; vertices in one class share no
  edge. A bipartite lattice gets two classes, a complete graph on ``n`` vertices ``n``.
  """
  adj = np.asarray(adj) != 0
  n = adj.shape[0]
  colour = -np.ones(n, np.int64)
  for v in sorted(range(n), key=lambda v: (-adj[v].sum(), v)):
    taken = set(colour[adj[v]].tolist())
    colour[v] = next(c for c in range(n) if c not in taken)
  return tuple(tuple(int(v) for v in np.flatnonzero(colour == c)) for c in range(colour.max() + 1))


def _groups_for(n: int, edges, blocks) -> tuple[tuple[int, ...], ...]:
  if isinstance(blocks, str):
    if blocks == "sequential":
      return tuple((i,) for i in range(n))
    if blocks in ("colour", "color"):
      return colouring(adjacency(n, edges))
    raise ValueError(f"blocks must be 'sequential', 'colour' or a partition of the units, got "
                     f"{blocks!r}")
  groups = tuple(tuple(int(i) for i in g) for g in blocks)
  flat = sorted(i for g in groups for i in g)
  if flat != list(range(n)) or any(not g for g in groups):
    raise ValueError(f"blocks must partition the {n} units into non-empty groups, got {blocks}")
  adj = adjacency(n, edges)
  for g in groups:
    sub = adj[np.ix_(g, g)]
    if sub.any():
      i, j = np.argwhere(sub)[0]
      raise ValueError(f"units {g[i]} and {g[j]} share an edge, so they cannot be one block "
                       f"(a block's units must be conditionally independent)")
  return groups


def _check_edges(n: int, edges) -> Optional[tuple]:
  if edges is None:
    return None
  out = set()
  for e in edges:
    i, j = (int(a) for a in e)
    if i == j or not (0 <= i < n and 0 <= j < n):
      raise ValueError(f"edge {tuple(e)} is a self-loop or leaves the {n} units")
    out.add((min(i, j), max(i, j)))
  return tuple(sorted(out))


def init(key: Array,
         n: int,
         units: U.Units = U.Bernoulli(),
         *,
         edges: Optional[Sequence[tuple[int, int]]] = None,
         blocks: Union[str, Sequence[Sequence[int]]] = "colour",
         weight_scale: float = 0.01,
         dtype=jnp.float32) -> BM:
  """A Boltzmann machine with ``N(0, weight_scale^2)`` couplings and zero biases.

  Args:
    key: PRNG key.
    n: number of units.
    units: their family.
    edges: the graph's edges ``(i, j)``; ``None`` for all pairs.
    blocks: ``"colour"`` (a greedy colouring of the graph), ``"sequential"`` (one unit per
      block) or an explicit partition of ``range(n)`` into uncoupled groups.
    weight_scale: standard deviation of the initial couplings.
    dtype: float dtype.
  """
  units.check_size(n, "n")
  edges = _check_edges(n, edges)
  groups = _groups_for(n, edges, blocks)
  if not weight_scale > 0:
    raise ValueError(f"weight_scale must be positive, got {weight_scale}")
  W = weight_scale * jax.random.normal(key, (n, n), dtype)
  log_sigma = jnp.zeros((n,), dtype) if units.has_sigma else None
  return BM(W, jnp.zeros((n,), dtype), log_sigma, units, groups, edges)


def regroup(model: BM, blocks: Union[str, Sequence[Sequence[int]]]) -> BM:
  """The same params with other blocks (``"sequential"``, ``"colour"`` or a partition)."""
  return model.replace(groups=_groups_for(model.n, model.edges, blocks))


def split(model: BM, x: Array) -> tuple[Array, ...]:
  """``[..., n] -> `` one ``[..., len(group)]`` array per block."""
  return tuple(x[..., np.asarray(g)] for g in model.groups)


def join(model: BM, states: Sequence[Array]) -> Array:
  """Per-block states ``->`` ``[..., n]`` in unit order (the inverse of :func:`split`)."""
  order = np.concatenate([np.asarray(g) for g in model.groups])
  return jnp.concatenate(list(states), axis=-1)[..., np.argsort(order)]
