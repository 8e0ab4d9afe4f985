"""Mini-batch orders: random equal batches of an epoch, and class-balanced batches.

:func:`batch` permutes data and cuts it into ``[n_batches, batch_size, ...]`` (jit-friendly, the
shape ``lax.scan`` wants); :func:`balanced_order` draws example indices so that every batch holds
the same count of every class (Hinton, Osindero and Teh, 2006). Both take an explicit PRNG key
and are re-exported by :mod:`jdbn.data`. Example::

    batches = jdbn.data.batch(key, train.x, batch_size=100)            # [n_batches, 100, 784]
    order = jdbn.data.balanced_order(key, train.y, batch_size=100)     # [n_batches, 100] indices
"""

from __future__ import annotations

import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = ["balanced_order", "batch"]


def batch(key: jax.Array | None, x: Any, batch_size: int) -> Any:
  """Cuts data into equal mini-batches after a random permutation, dropping the remainder.

  Jit-friendly with ``batch_size`` static: ``jax.jit(batch, static_argnames="batch_size")``.
  The result is shaped for ``lax.scan`` over an epoch.

  Args:
    key: PRNG key for the permutation; ``None`` keeps the order.
    x: ``[n, ...]`` array, or a pytree of such arrays sharing ``n`` (e.g. ``(x, y)``), all
      permuted alike.
    batch_size: examples per batch, ``1 <= batch_size <= n``.

  Returns:
    Same structure as ``x``, each leaf ``[n // batch_size, batch_size, ...]``; the
    ``n % batch_size`` examples left over (after the permutation) are dropped.

  Raises:
    ValueError: bad ``batch_size``, or leaves with different ``n``.
  """
  leaves, treedef = jax.tree.flatten(x)
  if not leaves:
    raise ValueError("batch needs at least one array")
  leaves = [jnp.asarray(leaf) for leaf in leaves]
  if any(leaf.ndim == 0 for leaf in leaves):
    raise ValueError("batch needs arrays with a leading example axis, got a scalar")
  n = leaves[0].shape[0]
  if any(leaf.shape[0] != n for leaf in leaves):
    raise ValueError(f"leading sizes differ: {[leaf.shape[0] for leaf in leaves]}")
  batch_size = operator.index(batch_size)
  if not 0 < batch_size <= n:
    raise ValueError(f"batch_size must be in [1, {n}] for {n} examples, got {batch_size}")
  n_batches = n // batch_size
  if key is None:
    idx = jnp.arange(n_batches * batch_size)
  else:
    idx = jax.random.permutation(key, n)[:n_batches * batch_size]
  leaves = [
      jnp.take(leaf, idx, axis=0).reshape(n_batches, batch_size, *leaf.shape[1:]) for leaf in leaves
  ]
  return jax.tree.unflatten(treedef, leaves)


def balanced_order(key: jax.Array, labels: ArrayLike, batch_size: int,
                   n_classes: int | None = None) -> jax.Array:
  """Example indices cut into class-balanced mini-batches: the same count of every class in each.

  Hinton, Osindero and Teh (2006) trained their DBN on "mini-batches containing 10 examples of
  each digit class". Every class contributes ``batch_size // n_classes`` examples to every batch,
  drawn without replacement from a random permutation of that class, so an epoch holds
  ``n_batches = min_c count_c // (batch_size // n_classes)`` batches and leaves out a fresh random
  surplus of the larger classes each time (on MNIST's first 50,000 training images, 450 batches of
  100: 45,000 images). Within a batch the classes are shuffled together.

  Not jit-able (the batch count depends on the labels' values); the labels are read once on the
  host, the indices are drawn with ``key``.

  Args:
    key: PRNG key; the same key gives the same order.
    labels: ``[n]`` integer class labels in ``[0, n_classes)``.
    batch_size: examples per batch, a multiple of ``n_classes``.
    n_classes: number of classes; default ``max(labels) + 1``. Every class must occur at least
      ``batch_size // n_classes`` times.

  Returns:
    ``[n_batches, batch_size]`` int32 indices into ``labels``, no index twice; feed them to an
    epoch's ``order`` (e.g. :func:`jdbn.dbn.updown`'s) or index the data with them.

  Raises:
    ValueError: labels not a 1-D integer array in range, ``batch_size`` not a positive multiple of
      ``n_classes``, or a class too rare for one batch.
  """
  y = np.asarray(labels)
  if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"labels must be a 1-D integer array, got {y.dtype} of shape {y.shape}")
  if n_classes is None:
    n_classes = int(y.max()) + 1 if y.size else 0
  n_classes = operator.index(n_classes)
  if n_classes < 1 or y.size == 0 or y.min() < 0 or y.max() >= n_classes:
    raise ValueError(f"labels must lie in [0, {n_classes}) for {n_classes} classes, got "
                     f"{(int(y.min()), int(y.max())) if y.size else 'none'}")
  batch_size = operator.index(batch_size)
  if batch_size < n_classes or batch_size % n_classes:
    raise ValueError(f"batch_size must be a positive multiple of the {n_classes} classes, got "
                     f"{batch_size}")
  per_class = batch_size // n_classes
  counts = np.bincount(y, minlength=n_classes)
  if counts.min() < per_class:
    raise ValueError(f"class {int(counts.argmin())} has {int(counts.min())} examples, fewer than "
                     f"the {per_class} each batch needs")
  n_batches = int(counts.min()) // per_class
  keys = jax.random.split(key, n_classes + 1)
  parts = []
  for c in range(n_classes):
    members = jnp.asarray(np.flatnonzero(y == c), jnp.int32)
    pick = jax.random.permutation(keys[c], members)[:n_batches * per_class]
    parts.append(pick.reshape(n_batches, per_class))
  order = jnp.concatenate(parts, axis=1)  # [n_batches, batch_size], classes in blocks
  mix = jax.vmap(jax.random.permutation, in_axes=(0, None))(
      jax.random.split(keys[-1], n_batches), batch_size)
  return jnp.take_along_axis(order, mix, axis=1)
