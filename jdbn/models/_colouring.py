"""Colourings of a 2D lattice's bonds: the blocks of chromatic Gibbs sampling.

A colouring is ``(a, b, q)`` (``colour(r, c) = (a r + b c) mod q``) or an explicit ``[L1, L2]``
colour map (a tuple of rows); it is proper when no bond joins two sites of one colour
(:mod:`jdbn.models.lattice`'s docstring). Host-side NumPy, run once when a model is built.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Optional, Sequence

import numpy as np

from jdbn.models._checkerboard import CHECKERBOARD


def _colour_map(shape: tuple[int, int], colouring: tuple) -> np.ndarray:
  """``[L1, L2]`` colours: ``(a r + b c) mod q`` for ``colouring = (a, b, q)``, or the map itself
  (a tuple of rows)."""
  if len(colouring) == 3 and not isinstance(colouring[0], tuple):
    a, b, q = colouring
    r, c = np.indices(shape)
    return (a * r + b * c) % q
  return np.asarray(colouring, np.int64).reshape(shape)


def n_colours(colouring: tuple) -> int:
  """The number of colours (blocks) of a colouring ``(a, b, q)`` or colour map."""
  if len(colouring) == 3 and not isinstance(colouring[0], tuple):
    return int(colouring[2])
  return int(np.max(colouring)) + 1


@functools.lru_cache(maxsize=64)
def _sites(shape: tuple[int, int], colouring: tuple):
  """``(sites, inverse)``: per colour the row-major site indices, and the permutation that puts
  the concatenated blocks back in row-major order."""
  colour = _colour_map(shape, colouring).ravel()
  sites = tuple(np.flatnonzero(colour == k) for k in range(n_colours(colouring)))
  return sites, np.argsort(np.concatenate(sites))


def _neighbour(shape, periodic, r, c, d):
  """The site at offset ``d`` from ``(r, c)``, or ``None`` off a free grid."""
  rr, cc = r + d[0], c + d[1]
  if periodic:
    return rr % shape[0], cc % shape[1]
  return (rr, cc) if 0 <= rr < shape[0] and 0 <= cc < shape[1] else None


def _colouring_error(offsets, shape, periodic, colouring) -> Optional[str]:
  """Why ``colouring`` is not a proper colouring of the lattice's bonds, or ``None``."""
  colour = _colour_map(shape, colouring)
  if any(len(s) == 0 for s in _sites(tuple(shape), colouring)[0]):
    return f"the colouring {colouring} leaves a colour without sites on a {shape} lattice"
  for d1, d2 in offsets:
    if periodic:
      same = colour == np.roll(colour, (-d1, -d2), axis=(0, 1))
    else:
      same = np.zeros(shape, bool)
      rs, cs = slice(max(0, -d1), shape[0] - max(0, d1)), slice(max(0, -d2), shape[1] - max(0, d2))
      rd, cd = slice(rs.start + d1, rs.stop + d1), slice(cs.start + d2, cs.stop + d2)
      same[rs, cs] = colour[rs, cs] == colour[rd, cd]
    if same.any():
      r, c = (int(v) for v in np.argwhere(same)[0])
      hint = " (on a torus the checkerboard needs even L1 and L2)" if periodic else ""
      return (f"the colouring {colouring if len(colouring) == 3 else '(map)'} is not proper: "
              f"site ({r}, {c}) and its neighbour at offset ({d1}, {d2}) are coupled and share "
              f"colour {colour[r, c]}{hint}")
  return None


def find_colouring(offsets: Sequence[tuple[int, int]], shape: tuple[int, int],
                   periodic: bool) -> tuple:
  """A proper colouring of the lattice's bonds (see the module docstring).

  The linear colouring ``(a, b, q)`` with the fewest colours ``q <= len(offsets) + 1`` (checks
  nothing per site, so any lattice size costs the same); where none exists (an odd torus), the
  greedy colouring of the sites in row-major order (at most ``len(offsets) + 1`` colours), as a
  tuple of rows of colours.

  Raises:
    ValueError: if a site is coupled to itself (a stencil that wraps around a small torus).
  """
  for q in range(1, len(offsets) + 2):
    for a, b in itertools.product(range(q), repeat=2):
      if math.gcd(math.gcd(a, b), q) != 1 or any((a * d1 + b * d2) % q == 0 for d1, d2 in offsets):
        continue
      if not _colouring_error(offsets, shape, periodic, (a, b, q)):
        return (a, b, q)
  colour = -np.ones(shape, np.int64)
  for r, c in itertools.product(range(shape[0]), range(shape[1])):
    near = [_neighbour(shape, periodic, r, c, d) for d in offsets]
    if (r, c) in near:
      raise ValueError(f"site ({r}, {c}) couples to itself around the {shape[0]} x {shape[1]} "
                       f"torus: the stencil is too large for it")
    taken = {int(colour[p]) for p in near if p is not None}
    colour[r, c] = next(k for k in range(len(offsets) + 1) if k not in taken)
  return tuple(tuple(int(v) for v in row) for row in colour)


def _explicit_colouring(colouring, shape) -> tuple:
  if isinstance(colouring, str):
    if colouring != "checkerboard":
      raise ValueError(f"colouring must be 'auto', 'checkerboard', (a, b, q) or an [L1, L2] map, "
                       f"got {colouring!r}")
    return CHECKERBOARD
  c = np.asarray(colouring)
  if c.shape == (3,) and shape != (1, 3):
    return tuple(int(v) for v in c)
  if c.shape != shape or c.dtype.kind not in "iu" or c.min() < 0:
    raise ValueError(f"a colour map must be [{shape[0]}, {shape[1]}] non-negative ints, got "
                     f"{c.shape} {c.dtype}")
  return tuple(tuple(int(v) for v in row) for row in c)
