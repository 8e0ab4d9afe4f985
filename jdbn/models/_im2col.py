"""A convolutional RBM's fields as matrix products over image patches ("im2col" and "col2im").

On CPUs XLA's convolution of a few input channels, and above all its weight gradient, runs several
times slower than the equivalent matrix products (``benchmarks/conv_epoch.py``), so
:mod:`jdbn.models.conv` computes its fields with these while the patches fit its memory limit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def patches(x: Array, r: int) -> Array:
  """The ``r x r`` patches of images, one column per detection position ("im2col"):
  ``[n, C, H, W] -> [n, C*r*r, H'*W']``, rows ordered ``(c, i, j)`` like ``W[k].reshape(-1)``."""
  n, c, h, w = x.shape
  mh, mw = h - r + 1, w - r + 1
  cols = [x[:, :, i:i + mh, j:j + mw] for i in range(r) for j in range(r)]
  return jnp.stack(cols, axis=2).reshape(n, c * r * r, mh * mw)


def correlate(W: Array, cols: Array) -> Array:
  """The hidden field over patches, ``W [K, Q] @ cols [n, Q, M] -> [n, K, M]``, as a batch of
  ``n`` products with ``W`` broadcast over the batch.

  The broadcast is what makes the weight gradient fast on CPUs: its transpose is ``n`` small
  products ``g_n @ cols_n'`` summed afterwards, where the gradient of the plain ``einsum`` is one
  contraction over ``(n, M)`` for which XLA first copies both operands into ``[K, n*M]`` and
  ``[n*M, Q]``, which takes about as long as the product (``benchmarks/conv_epoch.py``). Same
  values, and forward- and reverse-mode differentiable like any ``einsum``.
  """
  W = jnp.broadcast_to(W, (cols.shape[0],) + W.shape)
  return jnp.einsum("nkq,nqm->nkm", W, cols)


def col2im(W: Array, h: Array, c: int) -> Array:
  """The transposed convolution ``sum_k W^k (x) h^k`` as one product and ``r^2`` shifted adds:
  ``W [K, C, r, r]``, maps ``h [n, K, H', W'] -> [n, C, H' + r - 1, W' + r - 1]``.

  The product ``W' @ h`` gives each position's ``C*r*r`` contributions, laid out offset-major
  ``[C*r*r, n, H'*W']`` so that each offset's plane is contiguous and is padded whole.
  """
  k, r = W.shape[0], W.shape[-1]
  n, _, mh, mw = h.shape
  cols = jnp.einsum("kq,nkm->qnm", W.reshape(k, -1), h.reshape(n, k, mh * mw))
  cols = cols.reshape(c, r, r, n, mh, mw)
  return sum(jnp.pad(cols[:, i, j], ((0, 0), (0, 0), (i, r - 1 - i), (j, r - 1 - j)))
             for i in range(r) for j in range(r)).swapaxes(0, 1)
