"""Probabilistic max-pooling units (Lee, Grosse, Ranganath & Ng 2009): :class:`PoolingSoftmax`.

A layer of ``n = K * H * W`` binary *detection* units is laid out as ``K`` maps of ``H x W``
(row-major, ``[..., K, H, W]`` flattened). Each map is cut into ``c x c`` *pooling blocks*
``B_alpha`` (``c = pool``; ``H`` and ``W`` multiples of ``c``), and within a block at most one
unit is on: the block is one softmax over ``c^2 + 1`` outcomes, one per unit plus "all off",

    p(h_j = 1 | phi) = exp(z_j) / (1 + sum_{j' in B_alpha} exp(z_j')),   z = a + phi,
    p(B_alpha off | phi) = 1 / (1 + sum_{j' in B_alpha} exp(z_j')),

with the self energy ``E_h(h) = -a . h`` of binary units restricted to that support. The
*pooling unit* ``p_alpha = sum_{j in B_alpha} h_j`` is on exactly when a detection unit of its
block is (:func:`pool`); an input ``t_alpha`` from a layer above the pooling units enters the
energy as ``-t_alpha p_alpha = -sum_{j in B_alpha} t_alpha h_j``, so it reaches the detection
units as the field :func:`unpool` ``(t)`` (section 3.3 of the paper).

References:
  Lee, Grosse, Ranganath & Ng (2009), "Convolutional deep belief networks for scalable
  unsupervised learning of hierarchical representations", ICML.
"""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from jdbn.units.base import Units

__all__ = ["PoolingSoftmax", "pool", "unpool", "to_groups", "from_groups"]


def to_groups(x, map_shape: tuple[int, int], c: int):
  """``[..., K * H * W]`` (``K`` maps of ``H x W``) ``->`` ``[..., K * H/c * W/c, c * c]``, one
  row per pooling block (maps, block rows, block columns in row-major order; the ``c * c`` units
  of a block row-major). Works on numpy and jax arrays."""
  h, w = map_shape
  lead = x.shape[:-1]
  y = x.reshape(lead + (-1, h // c, c, w // c, c)).swapaxes(-3, -2)
  return y.reshape(lead + (-1, c * c))


def from_groups(g, map_shape: tuple[int, int], c: int):
  """The inverse of :func:`to_groups`: ``[..., n_blocks, c * c] -> [..., K * H * W]``."""
  h, w = map_shape
  lead = g.shape[:-2]
  y = g.reshape(lead + (-1, h // c, w // c, c, c)).swapaxes(-3, -2)
  return y.reshape(lead + (-1,))


def pool(h: jax.typing.ArrayLike, map_shape: tuple[int, int], c: int) -> jax.Array:
  """The pooling units' states (or, given detection means, their means):
  ``p_alpha = sum_{j in B_alpha} h_j``, ``[..., K * H * W] -> [..., K, H/c, W/c]``."""
  h = jnp.asarray(h)
  s = jnp.sum(to_groups(h, map_shape, c), axis=-1)
  return s.reshape(h.shape[:-1] + (-1, map_shape[0] // c, map_shape[1] // c))


def unpool(t: jax.typing.ArrayLike, c: int) -> jax.Array:
  """An input to the pooling units as the detection units' field: ``[..., K, P, Q] ->
  [..., K * cP * cQ]``, ``t_alpha`` copied to every unit of block ``alpha``."""
  t = jnp.asarray(t)
  up = jnp.repeat(jnp.repeat(t, c, axis=-2), c, axis=-1)
  return up.reshape(t.shape[:-3] + (-1,))


@dataclasses.dataclass(frozen=True)
class PoolingSoftmax(Units):
  """Detection units with probabilistic max-pooling (see the module docstring).

  Attributes:
    map_shape: ``(H, W)``, the shape of one detection map; a layer holds ``K`` such maps.
    pool: ``c``, the side of a pooling block (``H`` and ``W`` must be multiples of it).
  """

  map_shape: tuple = (2, 2)
  pool: int = 2
  enumerable = True
  linear_energy = True

  def __post_init__(self):
    shape, c = self.map_shape, self.pool
    if isinstance(shape, list):
      object.__setattr__(self, "map_shape", shape := tuple(shape))
    if (isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1):
      raise ValueError(f"the pooling size must be a positive int, got {c!r}")
    if (not isinstance(shape, tuple) or len(shape) != 2 or
        any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape)):
      raise ValueError(f"map_shape must be two positive ints (H, W), got {shape!r}")
    if shape[0] % c or shape[1] % c:
      raise ValueError(f"detection maps of {shape[0]} x {shape[1]} do not tile into {c} x {c} "
                       f"pooling blocks: both sides must be multiples of {c}")

  @property
  def outcomes(self) -> int:
    """``c^2 + 1``, the outcomes of one pooling block."""
    return self.pool * self.pool + 1

  def _groups(self, z):
    return to_groups(z, self.map_shape, self.pool)

  def _ungroup(self, g):
    return from_groups(g, self.map_shape, self.pool)

  def _logits(self, phi, bias):
    """``[..., n_blocks, c^2 + 1]``: the "off" outcome (logit 0) first, then the units."""
    z = self._groups(bias + phi)
    return jnp.concatenate([jnp.zeros(z.shape[:-1] + (1,), z.dtype), z], axis=-1)

  def energy(self, x, bias, log_sigma=None):
    return -jnp.sum(x * bias, axis=-1)

  def mean(self, phi, bias, log_sigma=None):
    return self._ungroup(jax.nn.softmax(self._logits(phi, bias), axis=-1)[..., 1:])

  def off_probability(self, phi, bias) -> jax.Array:
    """``p(B_alpha off | phi)``, ``[..., n] -> [..., n_blocks]`` (1 - the pooling unit's mean)."""
    return jax.nn.softmax(self._logits(phi, bias), axis=-1)[..., 0]

  def sample(self, key, phi, bias, log_sigma=None):
    """One outcome per block by the inverse CDF: a single uniform ``u`` per block turns on the
    first unit ``j`` whose cumulative probability ``p_1 + ... + p_j`` exceeds ``u``, none if
    ``u`` is above them all (the block off). One uniform per block instead of the ``c^2 + 1``
    Gumbel variates of ``jax.random.categorical``, and the softmax is the mean's."""
    probs = jax.nn.softmax(self._logits(phi, bias), axis=-1)[..., 1:]
    u = jax.random.uniform(key, probs.shape[:-1] + (1,), probs.dtype)
    below = u < jnp.cumsum(probs, axis=-1)  # true from the chosen unit on
    first = below & ~jnp.pad(below[..., :-1], [(0, 0)] * (below.ndim - 1) + [(1, 0)])
    return self._ungroup(first.astype(probs.dtype))

  def log_partition(self, phi, bias, log_sigma=None):
    return jnp.sum(self.log_partition_terms(phi, bias), axis=-1)

  def log_partition_terms(self, phi, bias, log_sigma=None):
    return jax.nn.logsumexp(self._logits(phi, bias), axis=-1)

  def base_rate(self, mean, eps=1e-3):
    m = jnp.clip(self._groups(mean), eps, 1.0)
    off = jnp.clip(1.0 - jnp.sum(self._groups(mean), axis=-1, keepdims=True), eps, 1.0)
    return self._ungroup(jnp.log(m) - jnp.log(off))

  def init_bias(self, data, log_sigma):
    flat = np.asarray(data).reshape(-1, data.shape[-1])
    return np.asarray(self.base_rate(jnp.asarray(flat.mean(0)))), log_sigma

  def _n_blocks(self, n):
    self.check_size(n)
    return n // (self.pool * self.pool)

  def states(self, n):
    g, k = self._n_blocks(n), self.outcomes
    rows = np.asarray(list(itertools.product(range(k), repeat=g)), np.int64).reshape(-1, g)
    onehot = np.eye(k, dtype=np.float32)[rows][..., 1:]
    return np.asarray(self._ungroup(onehot), np.float32)

  def states_at(self, idx, n, dtype=jnp.float32):
    g, k = self._n_blocks(n), self.outcomes
    powers = jnp.asarray([k**(g - 1 - j) for j in range(g)], jnp.int32)
    digits = (idx[:, None] // powers) % k
    return self._ungroup(jax.nn.one_hot(digits, k, dtype=dtype)[..., 1:])

  def n_states(self, n):
    return self.outcomes**self._n_blocks(n)

  def check_size(self, n, name="n"):
    super().check_size(n, name)
    h, w = self.map_shape
    if n % (h * w):
      raise ValueError(f"{name}={n} is not a whole number of {h} x {w} detection maps")

  def validate(self, x, name="x"):
    super().validate(x, name)
    x = np.asarray(x)
    self.check_size(x.shape[-1], f"the last axis of {name}")
    if not np.all((x == 0) | (x == 1)):
      raise ValueError(f"{name} must be binary (0 or 1) for PoolingSoftmax units")
    if np.any(self._groups(x).sum(-1) > 1):
      raise ValueError(f"{name} has more than one unit on in a {self.pool} x {self.pool} pooling "
                       f"block; probabilistic max-pooling allows at most one")
