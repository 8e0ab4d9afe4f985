"""Threefry-2x32 keys whose random bits are computed by an unrolled hash: the same bits, faster.

On CPUs JAX lowers the Threefry-2x32 hash as a rolled loop over its five groups of four rounds,
which keeps every intermediate ``[shape]`` array in memory between groups; elsewhere it emits
the twenty rounds straight. :data:`IMPL` is a PRNG implementation whose ``random_bits`` is that
straight form, written in ``jax.numpy`` with the counter layout of JAX's own (partitionable)
Threefry, so a key rewrapped by :func:`unrolled` draws **bit for bit the numbers** of the
original key (``tests/test_gibbs.py`` checks ``bits``, ``uniform`` and whole chains). Splitting and
folding are JAX's own.

The straight form is one long elementwise expression, which XLA fuses into each consumer of a
draw; it pays where the draw is computed once (:func:`jdbn.samplers.gibbs.chain` gives each
group update its own loop iteration on CPUs), and not where several consumers would each
recompute the hash.
"""

from __future__ import annotations

import math

import jax
import jax.extend.random as jex
import jax.numpy as jnp
import numpy as np

_BASE = jex.threefry_prng_impl
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotl(x, r: int):
  return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def hash2x32(k1, k2, x1, x2):
  """Threefry-2x32 (20 rounds) of the counter pairs ``(x1, x2)`` under the key ``(k1, k2)``;
  ``uint32`` arrays of one shape in, the two output words out."""
  ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
  x1, x2 = x1 + ks[0], x2 + ks[1]
  for g in range(5):
    for r in _ROTATIONS[g % 2]:
      x1 = x1 + x2
      x2 = x1 ^ _rotl(x2, r)
    x1 = x1 + ks[(g + 1) % 3]
    x2 = x2 + ks[(g + 2) % 3] + np.uint32(g + 1)
  return x1, x2


def _random_bits(key_data, bit_width: int, shape: tuple):
  size = math.prod(shape)
  if not jax.config.jax_threefry_partitionable or size >= 2**32:
    return _BASE.random_bits(key_data, bit_width, shape)
  counts = jax.lax.iota(jnp.uint32, size).reshape(shape)
  bits1, bits2 = hash2x32(key_data[0], key_data[1], jnp.zeros(shape, jnp.uint32), counts)
  if bit_width == 64:
    hi = bits1.astype(jnp.uint64)
    return (hi << jnp.uint64(32)) | bits2.astype(jnp.uint64)
  bits = bits1 ^ bits2
  return bits if bit_width == 32 else bits.astype(jnp.dtype(f"uint{bit_width}"))


IMPL = jex.define_prng_impl(key_shape=(2,), seed=_BASE.seed, split=_BASE.split,
                            random_bits=_random_bits, fold_in=_BASE.fold_in,
                            name="threefry2x32_unrolled", tag="fry_u")


def unrolled(keys: jax.Array) -> jax.Array:
  """``keys`` (typed Threefry-2x32 keys, any shape) rewrapped to draw through :data:`IMPL`;
  keys of any other implementation, and raw ``uint32`` keys, are returned as they are."""
  if not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
    return keys
  if str(jax.random.key_impl(keys)) != "threefry2x32":
    return keys
  return jax.random.wrap_key_data(jax.random.key_data(keys), impl=IMPL)
