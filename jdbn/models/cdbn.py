"""Convolutional deep belief networks (Lee, Grosse, Ranganath & Ng 2009): a stack of convolutional
RBMs, each one's pooling units the next one's visible units.

Layer ``l + 1`` has ``C_{l+1} = K_l`` channels of ``H'_l / c_l x W'_l / c_l`` (the pooling maps of
layer ``l``); greedy training (:func:`jdbn.train.cdbn.greedy`) fits each layer as an RBM on the
upward pass of the layers below, and :func:`features` gives the pooling units' probabilities of
every layer, flattened and joined, as the input of a linear classifier (section 4.2 of the paper).
The upward pass uses ``P(p_alpha = 1 | v)`` (:func:`jdbn.models.conv.pool_mean`), the mean-field
value of each layer's pooling units given the layer below.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jdbn.models import conv as C

Array = jax.Array

__all__ = ["CDBN", "pooled_shape", "check_stack", "up", "features", "pixel_filters"]


@struct.dataclass
class CDBN:
  """A stack of :class:`jdbn.models.conv.ConvRBM` layers (bottom first).

  Attributes:
    layers: the convolutional RBMs; layer ``l + 1``'s image shape is layer ``l``'s pooling-map
      shape ``(K_l, H'_l / c_l, W'_l / c_l)``.
  """
  layers: tuple


def pooled_shape(layer: C.ConvRBM) -> tuple[int, int, int]:
  """``(K, H'/c, W'/c)``, the shape of a layer's pooling maps (``c = 1`` without pooling)."""
  c = layer.pool or 1
  return (layer.n_filters, layer.map_shape[0] // c, layer.map_shape[1] // c)


def check_stack(layers: Sequence[C.ConvRBM]) -> None:
  """``ValueError`` unless each layer's image shape is the pooling-map shape of the one below."""
  if not layers:
    raise ValueError("a CDBN needs at least one layer")
  for i in range(1, len(layers)):
    want = pooled_shape(layers[i - 1])
    if tuple(layers[i].image_shape) != want:
      raise ValueError(f"layer {i} takes images {tuple(layers[i].image_shape)}, but layer {i - 1}'s "
                       f"pooling maps are {want} (channels = the filters below)")


def up(layer: C.ConvRBM, v: Array) -> Array:
  """One layer's upward pass: ``P(p = 1 | v)`` flattened, ``[..., C*H*W] -> [..., K*P*Q]``, the
  next layer's visible data."""
  p = C.pool_mean(layer, v)
  return p.reshape(p.shape[:-3] + (-1,))


def features(model: CDBN, v: Array) -> Array:
  """The pooling units' probabilities of every layer, joined: ``[..., C*H*W] -> [..., n_features]``
  with ``n_features = sum_l K_l P_l Q_l`` (Lee et al. 2009, section 4.2)."""
  check_stack(model.layers)
  out = []
  for layer in model.layers:
    v = up(layer, v)
    out.append(v)
  return jnp.concatenate(out, axis=-1)


def pixel_filters(model: CDBN, layer: int = 1) -> np.ndarray:
  """A layer's filters drawn in the bottom layer's image space, for pictures (host, NumPy).

  Layer ``l``'s weight ``W_l[k, c, i, j]`` reaches the ``c_{l-1} x c_{l-1}`` pooling block at
  ``(i, j)`` of layer ``l - 1``'s map ``c``; the picture adds ``W_l[k, c, i, j] / c_{l-1}^2`` times
  layer ``l - 1``'s picture of filter ``c`` at every position of that block, recursively down to
  the image (a linear view that ignores the nonlinearities; Lee et al. 2009 show the second
  layer's bases as such weighted sums of the first's).

  Args:
    model: the CDBN; its bottom layer must have one channel.
    layer: which layer, 0-based (0: the bottom layer's filters themselves).

  Returns:
    ``[K_l, s_l, s_l]`` with ``s_0 = r_0`` and ``s_l = r_l c_{l-1} + s_{l-1} - 1``.
  """
  check_stack(model.layers)
  if not 0 <= layer < len(model.layers):
    raise ValueError(f"layer must be in [0, {len(model.layers)}), got {layer}")
  if model.layers[0].image_shape[0] != 1:
    raise ValueError("pixel_filters draws one-channel images; the bottom layer has "
                     f"{model.layers[0].image_shape[0]} channels")
  below = np.asarray(model.layers[0].W, np.float64)[:, 0]
  for lower, upper in zip(model.layers[:layer], model.layers[1:layer + 1]):
    w, c, s = np.asarray(upper.W, np.float64), lower.pool or 1, below.shape[-1]
    r = w.shape[-1]
    out = np.zeros((w.shape[0], r * c + s - 1, r * c + s - 1))
    for i in range(r):
      for j in range(r):
        part = np.einsum("kc,cab->kab", w[:, :, i, j], below) / c**2
        for di in range(c):
          for dj in range(c):
            out[:, i * c + di:i * c + di + s, j * c + dj:j * c + dj + s] += part
    below = out
  return below
