"""The field of a checkerboard colour on a nearest-neighbour torus, without gathers.

On an ``L1 x L2`` torus (both even) coloured ``(r + c) mod 2``, block ``k`` lists its sites in
row-major order, ``L2 / 2`` per row, so its state ``[..., L1 L2 / 2]`` is an image
``[..., L1, L2 / 2]``: site ``(r, j)`` of block ``k`` sits in column ``c = 2 j + p`` with
``p = (r + k) mod 2``. Its neighbours all have the other colour ``o`` (whose site ``(r, j')`` sits
in column ``2 j' + 1 - p``):

* above and below, ``(r -+ 1, c)``: ``o[r -+ 1, j]``, a roll along the rows;
* left, ``(r, c - 1)``: ``o[r, j - 1]`` where ``p = 0``, else ``o[r, j]``;
* right, ``(r, c + 1)``: ``o[r, j]`` where ``p = 0``, else ``o[r, j + 1]``.

So ``phi_k = sum_d K_d x_{i+d}`` (:meth:`jdbn.models.lattice.Lattice.couple`) is a few rolls and
selects of half images, the same numbers as the generic path (which joins the blocks into the
full image, couples it and gathers the block's sites back) at a fraction of the memory traffic.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

#: The 2-colouring of the nearest-neighbour stencil: ``colour(r, c) = (r + c) mod 2``.
CHECKERBOARD = (1, 1, 2)
NEAREST = frozenset({(1, 0), (-1, 0), (0, 1), (0, -1)})


def applies(model) -> bool:
  """Whether ``model`` (a :class:`~jdbn.models.lattice.Lattice`) is a checkerboard torus with
  even sides and nearest-neighbour couplings only."""
  l1, l2 = model.shape
  return (model.periodic and model.colouring == CHECKERBOARD and set(model.offsets) <= NEAREST
          and l1 % 2 == 0 and l2 % 2 == 0)


def field(model, states, i: int) -> jax.Array:
  """``phi`` of block ``i`` from the other block: ``[..., L1 L2 / 2]`` (see the module docstring).

  Args:
    model: a lattice for which :func:`applies` holds.
    states: the two block states, ``[..., L1 L2 / 2]`` each.
    i: the block (colour) 0 or 1.
  """
  l1, l2 = model.shape
  o = states[1 - i]
  o = o.reshape(o.shape[:-1] + (l1, l2 // 2))
  r1, r2 = model.K.shape[0] // 2, model.K.shape[1] // 2
  even = ((np.arange(l1) + i) % 2 == 0)[:, None]  # p = 0: the other colour starts the row
  neighbour = {
      (-1, 0): lambda: jnp.roll(o, 1, axis=-2),
      (1, 0): lambda: jnp.roll(o, -1, axis=-2),
      (0, -1): lambda: jnp.where(even, jnp.roll(o, 1, axis=-1), o),
      (0, 1): lambda: jnp.where(even, o, jnp.roll(o, -1, axis=-1)),
  }
  phi = jnp.zeros_like(o)
  for d1, d2 in model.offsets:
    phi = phi + model.K[r1 + d1, r2 + d2] * neighbour[(d1, d2)]()
  return phi.reshape(phi.shape[:-2] + (-1,))
