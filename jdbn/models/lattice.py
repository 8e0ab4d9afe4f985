"""Boltzmann machines on a 2D lattice (the Ising model and its kin), coupled by a stencil.

Units ``x`` on an ``L1 x L2`` grid (``{-1, +1}`` :class:`~jdbn.models.hopfield.Spin` units or
``{0, 1}`` Bernoulli units), a field ``h`` (``[L1, L2]``) and translation-invariant couplings
given by a symmetric stencil ``K`` (``[k1, k2]``, odd sides, zero centre) have the energy

    E(x) = -sum_i h_i x_i - 1/2 sum_i x_i sum_d K_d x_{i+d}

where ``d`` runs over the offsets from the stencil's centre, and ``i + d`` wraps around on a torus
(``periodic=True``) or leaves the grid (free boundaries: that term is zero). Each bond is counted
once from each end, hence the ``1/2``; with the nearest-neighbour stencil ``K = J`` at ``(+-1, 0)``
and ``(0, +-1)`` it is the Ising energy ``E = -J sum_<ij> s_i s_j - h sum_i s_i``. Site ``i`` sees
the field ``phi_i = sum_d K_d x_{i+d} = -dE/dx_i - h_i``: one ``jnp.roll`` (or padded slice) per
non-zero entry of the stencil, never an ``n x n`` matrix, so a ``256 x 256`` lattice costs a few
shifted adds per half sweep.

Blocks. Sites that share no bond are conditionally independent; a colouring
``colour(r, c) = (a r + b c) mod q`` is proper when ``a d1 + b d2 != 0 (mod q)`` for every offset
``(d1, d2)`` of the stencil, and well defined on a torus when ``a L1 = b L2 = 0 (mod q)``. The
checkerboard ``(1, 1, 2)`` colours the nearest-neighbour stencil (two blocks: the black and the
white sites, so :func:`jdbn.samplers.gibbs.step` makes one half sweep per colour); a
next-nearest-neighbour stencil needs four colours (``(1, 2, 4)``, or ``(r mod 2, c mod 2)``).
``colouring="auto"`` finds the smallest such ``q``, or where no linear colouring is proper (an odd
torus) a greedy colouring site by site, at most ``len(stencil support) + 1`` colours. Block ``k``
holds the sites of colour ``k`` in row-major order, ``[..., n_k]``; :func:`split` and :func:`join`
convert between block states and ``[..., L1, L2]`` images. On a nearest-neighbour torus with the
checkerboard, a block's field comes from the other block's half image by rolls and selects
(``jdbn/models/_checkerboard.py``), with no join or gather: the Ising model's fast path.

References:
  Ising (1925), "Beitrag zur Theorie des Ferromagnetismus", Z. Phys. 31.
  Onsager (1944), "Crystal statistics. I. A two-dimensional model with an order-disorder
  transition", Phys. Rev. 65; Yang (1952), "The spontaneous magnetization of a two-dimensional
  Ising model", Phys. Rev. 85 (the magnetisation checked in ``experiments/ising_onsager.py``).
  Geman & Geman (1984), "Stochastic relaxation, Gibbs distributions, and the Bayesian restoration
  of images", IEEE PAMI 6 (coloured, chromatic Gibbs sweeps).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jdbn import units as U
from jdbn.models import _checkerboard, base
from jdbn.models._checkerboard import CHECKERBOARD
from jdbn.models._colouring import (_colouring_error, _explicit_colouring, _sites, find_colouring,
                                    n_colours)
from jdbn.models.hopfield import Spin, check_states

Array = jax.Array

__all__ = ["Lattice", "init", "nearest_neighbour", "next_nearest", "find_colouring", "split",
           "join", "magnetisation", "energy", "dense_coupling", "to_bm", "CHECKERBOARD"]


@struct.dataclass
class Lattice(base.BlockModel):
  """Params of a Boltzmann machine on a 2D lattice (see the module docstring for the energy).

  Attributes:
    K: ``[k1, k2]`` coupling stencil (odd sides, symmetric, zero centre). Only the offsets in
      ``offsets`` are read: couplings live on the stencil's support at construction.
    h: ``[L1, L2]`` field (the block-model bias).
    units: :class:`Spin` or :class:`jdbn.units.Bernoulli` (static).
    periodic: torus (``True``) or free boundaries (static).
    offsets: the non-zero offsets ``(d1, d2)`` of the stencil from its centre (static).
    colouring: ``(a, b, q)``: site ``(r, c)`` has colour ``(a r + b c) mod q``; or the colour
      map itself, a tuple of ``L1`` rows of ``L2`` ints (static).
  """

  K: Array
  h: Array
  units: U.Units = struct.field(pytree_node=False, default=Spin())
  periodic: bool = struct.field(pytree_node=False, default=True)
  offsets: tuple = struct.field(pytree_node=False, default=())
  colouring: tuple = struct.field(pytree_node=False, default=CHECKERBOARD)

  @property
  def shape(self) -> tuple[int, int]:
    return tuple(int(s) for s in self.h.shape)

  @property
  def n(self) -> int:
    return self.shape[0] * self.shape[1]

  @property
  def blocks(self) -> tuple[base.Block, ...]:
    sites = _sites(self.shape, self.colouring)[0]
    return tuple(base.Block(f"c{k}", self.units, len(s)) for k, s in enumerate(sites))

  @property
  def schedule(self) -> tuple[tuple[int, ...], ...]:
    return tuple((k,) for k in range(n_colours(self.colouring)))

  def bias(self, i: int) -> Array:
    return self.h.reshape(-1)[_sites(self.shape, self.colouring)[0][i]]

  def field(self, states, i: int) -> Array:
    if _checkerboard.applies(self):  # a nearest-neighbour torus: rolls of half images
      return _checkerboard.field(self, states, i)
    phi = self.couple(join(self, states))
    return phi.reshape(phi.shape[:-2] + (-1,))[..., _sites(self.shape, self.colouring)[0][i]]

  def energy(self, states) -> Array:
    return _energy(self, join(self, states))

  def tempered(self, beta, base_biases=None) -> "Lattice":
    beta = jnp.asarray(beta, self.K.dtype)
    h0 = 0.0 if base_biases is None else join(self, [
        jnp.zeros(b.size, self.h.dtype) if a is None else a
        for b, a in zip(self.blocks, base_biases)])
    return self.replace(K=beta * self.K, h=(1 - beta) * h0 + beta * self.h)

  def couple(self, x: Array) -> Array:
    """``phi_i = sum_d K_d x_{i+d}`` on images: ``[..., L1, L2] -> [..., L1, L2]``."""
    r1, r2 = self.K.shape[0] // 2, self.K.shape[1] // 2
    if not self.periodic:
      xp = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(r1, r1), (r2, r2)])
    out = jnp.zeros_like(x)
    l1, l2 = self.shape
    for d1, d2 in self.offsets:
      if self.periodic:
        shifted = jnp.roll(x, (-d1, -d2), axis=(-2, -1))
      else:
        shifted = xp[..., r1 + d1:r1 + d1 + l1, r2 + d2:r2 + d2 + l2]
      out = out + self.K[r1 + d1, r2 + d2] * shifted
    return out


def _energy(model: Lattice, x: Array) -> Array:
  flat = x.reshape(x.shape[:-2] + (-1,))
  pair = jnp.sum(x * model.couple(x), axis=(-2, -1))
  return model.units.energy(flat, model.h.reshape(-1)) - 0.5 * pair


def join(model: Lattice, states: Sequence[Array]) -> Array:
  """Block states (one ``[..., n_k]`` per colour) ``->`` images ``[..., L1, L2]``."""
  states = list(states)
  q = n_colours(model.colouring)
  if len(states) != q:
    raise ValueError(f"a lattice with {q} colours takes {q} "
                     f"blocks, got {len(states)}")
  flat = jnp.concatenate(states, axis=-1)[..., _sites(model.shape, model.colouring)[1]]
  return flat.reshape(flat.shape[:-1] + model.shape)


def split(model: Lattice, x: jax.typing.ArrayLike) -> tuple[Array, ...]:
  """Images ``[..., L1, L2]`` ``->`` one ``[..., n_k]`` array per colour (the block states).

  Raises:
    ValueError: if ``x`` is not ``[..., L1, L2]`` or (when concrete) holds values outside the
      units' alphabet.
  """
  x = jnp.asarray(x)
  if x.ndim < 2 or tuple(x.shape[-2:]) != model.shape:
    raise ValueError(f"lattice states must have shape [..., {model.shape[0]}, {model.shape[1]}], "
                     f"got {tuple(x.shape)}")
  flat = x.reshape(x.shape[:-2] + (-1,))
  check_states(flat, model.units, model.n)
  return tuple(flat[..., s] for s in _sites(model.shape, model.colouring)[0])


def energy(model: Lattice, x: jax.typing.ArrayLike) -> Array:
  """``E(x)`` of images ``[..., L1, L2] -> [...]`` (checked like :func:`split`)."""
  split(model, x)
  return _energy(model, jnp.asarray(x, model.h.dtype))


def magnetisation(model: Lattice, states: Sequence[Array]) -> Array:
  """The mean unit value per site, ``(1/n) sum_i x_i``, of block states: ``-> [...]``.

  For spins the magnetisation per spin in ``[-1, 1]``; for binary units the density.
  """
  return sum(jnp.sum(s, axis=-1) for s in states) / model.n


# ----------------------------------------------------------------------------- construction


def nearest_neighbour(J: float = 1.0) -> np.ndarray:
  """The ``3 x 3`` stencil with ``J`` at the four nearest neighbours."""
  return np.array([[0, J, 0], [J, 0, J], [0, J, 0]], np.float64)


def next_nearest(J1: float = 1.0, J2: float = 0.5) -> np.ndarray:
  """The ``3 x 3`` stencil: ``J1`` at the nearest neighbours, ``J2`` on the diagonals."""
  return np.array([[J2, J1, J2], [J1, 0, J1], [J2, J1, J2]], np.float64)


def _check_stencil(stencil, atol: float) -> tuple[np.ndarray, tuple]:
  k = np.asarray(stencil, np.float64)
  if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
    raise ValueError(f"the stencil must be a 2D array with odd sides, got shape {k.shape}")
  if not np.all(np.isfinite(k)):
    raise ValueError("the stencil contains NaN or inf values")
  r1, r2 = k.shape[0] // 2, k.shape[1] // 2
  if abs(k[r1, r2]) > atol:
    raise ValueError(f"the stencil's centre must be zero (no self-coupling), got {k[r1, r2]:g}")
  asym = np.max(np.abs(k - k[::-1, ::-1]))
  if asym > atol:
    raise ValueError(f"the stencil must be symmetric, K[d] = K[-d] (a bond couples both ends "
                     f"alike): max |K - K[::-1, ::-1]| = {asym:.3g}")
  k = 0.5 * (k + k[::-1, ::-1])
  k[r1, r2] = 0.0
  offsets = tuple((int(i) - r1, int(j) - r2) for i, j in np.argwhere(k != 0))
  return k, offsets


def init(shape: tuple[int, int],
         *,
         J: float = 1.0,
         h: jax.typing.ArrayLike = 0.0,
         stencil: Optional[jax.typing.ArrayLike] = None,
         periodic: bool = True,
         units: Union[str, U.Units] = "spin",
         colouring: Union[str, tuple[int, int, int]] = "auto",
         dtype=jnp.float32,
         atol: float = 1e-6) -> Lattice:
  """A lattice Boltzmann machine (deterministic: no key).

  Args:
    shape: ``(L1, L2)``.
    J: nearest-neighbour coupling (when ``stencil`` is None).
    h: field, a scalar or ``[L1, L2]``.
    stencil: ``[k1, k2]`` couplings by offset from the centre (odd sides, symmetric, zero
      centre), e.g. :func:`next_nearest`; default :func:`nearest_neighbour` ``(J)``.
    periodic: torus (``True``) or free boundaries.
    units: ``"spin"`` (``{-1, +1}``), ``"binary"`` (``{0, 1}``) or a unit family of these.
    colouring: ``"auto"`` (:func:`find_colouring`), ``"checkerboard"``, ``(a, b, q)`` or an
      ``[L1, L2]`` map of colours ``0..q-1``; an explicit colouring is checked.
    dtype: float dtype.
    atol: tolerance of the symmetry and centre checks.

  Raises:
    ValueError: for a bad shape, stencil or field, other units, or a colouring that is not proper
      (an odd torus with the checkerboard, a stencil with diagonals and the checkerboard).
  """
  if (len(shape) != 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1
                             for s in shape)):
    raise ValueError(f"shape must be two positive ints (L1, L2), got {shape!r}")
  shape = (int(shape[0]), int(shape[1]))
  if isinstance(units, str):
    units = {"spin": Spin(), "binary": U.Bernoulli()}.get(units, units)
  if not isinstance(units, (Spin, U.Bernoulli)):
    raise ValueError(f"units must be 'spin', 'binary', Spin() or Bernoulli(), got {units!r}")
  k, offsets = _check_stencil(nearest_neighbour(J) if stencil is None else stencil, atol)
  if isinstance(colouring, str) and colouring == "auto":
    colouring = find_colouring(offsets, shape, periodic)
  elif why := _colouring_error(offsets, shape, periodic,
                               colouring := _explicit_colouring(colouring, shape)):
    raise ValueError(why)
  field = np.asarray(h, np.float64)
  if not np.all(np.isfinite(field)):
    raise ValueError("h contains NaN or inf values")
  try:
    field = np.broadcast_to(field, shape)
  except ValueError:
    raise ValueError(f"h must be a scalar or [{shape[0]}, {shape[1]}], got {field.shape}") from None
  return Lattice(jnp.asarray(k, dtype), jnp.asarray(field, dtype), units, bool(periodic), offsets,
                 colouring)


def dense_coupling(model: Lattice) -> np.ndarray:
  """The ``[n, n]`` coupling matrix of the lattice (row-major sites; small lattices only).

  ``C[i, j]`` sums ``K_d`` over the offsets ``d`` that take ``i`` to ``j`` (on a small torus two
  offsets may reach the same site), so ``E = -h . x - 1/2 x C x`` on flattened states.
  """
  l1, l2 = model.shape
  k = np.asarray(model.K, np.float64)
  r1, r2 = k.shape[0] // 2, k.shape[1] // 2
  c = np.zeros((model.n, model.n))
  for r in range(l1):
    for col in range(l2):
      for d1, d2 in model.offsets:
        rr, cc = r + d1, col + d2
        if model.periodic:
          rr, cc = rr % l1, cc % l2
        elif not (0 <= rr < l1 and 0 <= cc < l2):
          continue
        c[r * l2 + col, rr * l2 + cc] += k[r1 + d1, r2 + d2]
  return c


def to_bm(model: Lattice):
  """The same model as a dense :class:`jdbn.models.bm.BM` on row-major sites (small lattices).

  Its graph's edges are the lattice's bonds and its blocks the lattice's colour classes.
  """
  from jdbn.models import bm
  c = dense_coupling(model)
  edges = [tuple(e) for e in np.argwhere(np.triu(c != 0, 1))]
  groups = _sites(model.shape, model.colouring)[0]
  dense = bm.init(jax.random.key(0), model.n, model.units, edges=edges, blocks=groups)
  return dense.replace(W=jnp.asarray(c, model.K.dtype), b=model.h.reshape(-1))
