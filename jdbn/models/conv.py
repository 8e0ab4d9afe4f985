"""Convolutional RBMs with optional probabilistic max-pooling (Lee, Grosse, Ranganath & Ng 2009).

A ``C``-channel ``H x W`` image ``v`` and ``K`` filters ``W^k`` of ``C x r x r`` give ``K``
detection maps ``h^k`` of ``H' x W' = (H - r + 1) x (W - r + 1)`` and the energy

    E(v, h) = E_v(v; b) + E_h(h; c) - sum_k h^k . (W^k * s_v(v))

where ``*`` is the "valid" cross-correlation summed over channels (``lax.conv_general_dilated``),
``b`` one bias per channel and ``c`` one bias per filter, each shared over all positions, and
``E_v``, ``s_v`` the visible family's self energy and scaling (:class:`jdbn.units.Bernoulli` or
:class:`jdbn.units.Gaussian`, Lee et al.'s eq. 1 and 2). So the hidden units see the field
``phi_h = W * s_v(v)`` and the visible units the transposed convolution ``phi_v = sum_k W^k (x)
h^k`` (the "full" convolution with the flipped filters), both ``-dE/ds`` of the energy.

Without pooling the detection units are :class:`jdbn.units.Bernoulli`; with ``pool = c`` they are
:class:`jdbn.units.PoolingSoftmax` ``((H', W'), c)``: each ``c x c`` block of a map plus "off" is
one softmax over ``c^2 + 1`` outcomes (probabilistic max-pooling, section 3.3), and the pooling
units ``p = pool(h)`` (:func:`pooled`, :func:`pool_mean`) are the layer's output to the layer above.

Layout. As a :class:`jdbn.models.base.BlockModel` the model has the blocks ``(v, h)`` and the
schedule ``((h,), (v,))`` of an RBM; block states are flattened row-major images:
``v: [..., C * H * W]`` (``[..., C, H, W]``, see :func:`images` and :func:`check_images`) and
``h: [..., K * H' * W']`` (``[..., K, H', W']``, see :func:`maps`). The per-channel and per-filter
biases are broadcast to the blocks' bias vectors by :meth:`ConvRBM.bias`, plus optional per-unit
offsets (``b_offset``, ``c_offset``) that only tempered copies use (an AIS base-rate model), so
the generic Gibbs sampler, free energies, enumeration and the contrastive trainer all apply.
:func:`dense_weights` and :func:`to_rbm` unroll a small model into the equivalent dense RBM.

References:
  Lee, Grosse, Ranganath & Ng (2009), "Convolutional deep belief networks for scalable
  unsupervised learning of hierarchical representations", ICML.
  Desjardins & Bengio (2008), "Empirical evaluation of convolutional RBMs for vision", TR 1327.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jdbn import units as U
from jdbn.models import _im2col, base
from jdbn.models._im2col import patches
from jdbn.units import pooling as P

Array = jax.Array
ArrayLike = jax.typing.ArrayLike

__all__ = ["ConvRBM", "init", "hidden_field", "visible_field", "energy", "free_energy",
           "hidden_mean", "pool_mean", "pooled", "sample_hidden", "sample_visible", "images",
           "maps", "check_images", "dense_weights", "to_rbm", "patches", "GEMM_MAX_BYTES"]

_DIMS = ("NCHW", "OIHW", "NCHW")


@struct.dataclass
class ConvRBM(base.BlockModel):
  """Params of a convolutional RBM (see the module docstring for the energy and the layout).

  Attributes:
    W: filters, ``[K, C, r, r]``.
    b: visible biases, one per channel, ``[C]``.
    c: hidden biases, one per filter, ``[K]``.
    log_sigma_v: ``[C]`` log standard deviations per channel for ``Gaussian(learn_sigma=True)``
      visible units, else ``None``.
    b_offset: optional per-unit visible bias offset ``[C * H * W]`` (tempered copies), or None.
    c_offset: optional per-unit hidden bias offset ``[K * H' * W']`` (tempered copies), or None.
    image_shape: ``(C, H, W)`` (static).
    visible: the visible family, Bernoulli or Gaussian (static).
    pool: the pooling size ``c``, or ``None`` for plain Bernoulli detection units (static).
  """

  W: Array
  b: Array
  c: Array
  log_sigma_v: Optional[Array] = None
  b_offset: Optional[Array] = None
  c_offset: Optional[Array] = None
  image_shape: tuple = struct.field(pytree_node=False, default=(1, 1, 1))
  visible: U.Units = struct.field(pytree_node=False, default=U.Bernoulli())
  pool: Optional[int] = struct.field(pytree_node=False, default=None)

  @property
  def n_filters(self) -> int:
    return int(self.W.shape[0])

  @property
  def filter_size(self) -> int:
    return int(self.W.shape[-1])

  @property
  def map_shape(self) -> tuple[int, int]:
    """``(H', W') = (H - r + 1, W - r + 1)``, the shape of one detection map."""
    _, h, w = self.image_shape
    return (h - self.filter_size + 1, w - self.filter_size + 1)

  @property
  def hidden(self) -> U.Units:
    """The detection units' family: Bernoulli, or PoolingSoftmax with ``pool``."""
    return U.Bernoulli() if self.pool is None else U.PoolingSoftmax(self.map_shape, self.pool)

  @property
  def n_visible(self) -> int:
    return int(np.prod(self.image_shape))

  @property
  def n_hidden(self) -> int:
    return self.n_filters * self.map_shape[0] * self.map_shape[1]

  @property
  def blocks(self) -> tuple[base.Block, ...]:
    return (base.Block("v", self.visible, self.n_visible),
            base.Block("h", self.hidden, self.n_hidden))

  @property
  def schedule(self) -> tuple[tuple[int, ...], ...]:
    return ((1,), (0,))

  def bias(self, i: int) -> Array:
    per, count, extra = ((self.b, self.n_visible // self.image_shape[0], self.b_offset) if i == 0
                         else (self.c, self.n_hidden // self.n_filters, self.c_offset))
    out = jnp.repeat(per, count, axis=-1)
    return out if extra is None else out + extra

  def log_sigma(self, i: int) -> Optional[Array]:
    if i != 0 or self.log_sigma_v is None:
      return None
    return jnp.repeat(self.log_sigma_v, self.n_visible // self.image_shape[0], axis=-1)

  def field(self, states, i: int) -> Array:
    return hidden_field(self, states[0]) if i == 1 else visible_field(self, states[1])

  def energy(self, states) -> Array:
    return energy(self, states[0], states[1])

  def tempered(self, beta, base_biases=None) -> "ConvRBM":
    beta = jnp.asarray(beta, self.W.dtype)
    b0, c0 = (None, None) if base_biases is None else base_biases

    def offset(old, base_bias):
      if old is None and base_bias is None:
        return None
      return ((1 - beta) * (0.0 if base_bias is None else base_bias) +
              beta * (0.0 if old is None else old))

    return self.replace(W=beta * self.W, b=beta * self.b, c=beta * self.c,
                        b_offset=offset(self.b_offset, b0), c_offset=offset(self.c_offset, c0))


# ----------------------------------------------------------------------------- the two fields


def _as_batch(x: Array, tail: tuple[int, ...]) -> tuple[Array, tuple[int, ...]]:
  lead = x.shape[:-1]
  return x.reshape((-1,) + tail), lead


#: Largest patch matrix ``[batch, C*r*r, H'*W']`` (bytes) for which the fields are matrix
#: products (:func:`patches`); larger batches or images use XLA's convolution.
GEMM_MAX_BYTES = 256 * 2**20


def _use_gemm(model: ConvRBM, n: int) -> bool:
  c, r = model.image_shape[0], model.filter_size
  size = n * c * r * r * model.map_shape[0] * model.map_shape[1]
  return size * jnp.dtype(model.W.dtype).itemsize <= GEMM_MAX_BYTES


def hidden_field(model: ConvRBM, v: ArrayLike) -> Array:
  """``phi_h = W * s_v(v)``, the valid cross-correlation: ``[..., C*H*W] -> [..., K*H'*W']``.

  Computed as one matrix product ``W [K, C*r*r] @ patches(v)`` (its gradient in ``W`` another,
  ``g @ patches(v)'``) while the patches fit :data:`GEMM_MAX_BYTES`: on CPUs XLA's convolution
  of a few input channels, and above all its weight gradient, runs several times slower than
  the products (``benchmarks/conv_epoch.py``). Larger inputs use ``lax.conv_general_dilated``.
  """
  v = _flat(model, v, model.n_visible, "v")
  x, lead = _as_batch(model.visible.scaled(v, model.log_sigma(0)), model.image_shape)
  if _use_gemm(model, x.shape[0]):
    out = _im2col.correlate(model.W.reshape(model.n_filters, -1), patches(x, model.filter_size))
  else:
    out = jax.lax.conv_general_dilated(x, model.W, (1, 1), "VALID", dimension_numbers=_DIMS)
  return out.reshape(lead + (model.n_hidden,))


def visible_field(model: ConvRBM, h: ArrayLike) -> Array:
  """``phi_v = sum_k W^k (x) h^k``, the transposed convolution (a "full" convolution with the
  flipped filters, input and output channels swapped): ``[..., K*H'*W'] -> [..., C*H*W]``.

  Like :func:`hidden_field`, a matrix product ``W' @ h`` giving each position's ``C*r*r``
  contributions, summed into the image by ``r^2`` shifted adds ("col2im") while they fit
  :data:`GEMM_MAX_BYTES`; else ``lax.conv_general_dilated`` with the flipped filters.
  """
  h = _flat(model, h, model.n_hidden, "h")
  r, (mh, mw), k = model.filter_size, model.map_shape, model.n_filters
  c = model.image_shape[0]
  x, lead = _as_batch(h, (k, mh, mw))
  if _use_gemm(model, x.shape[0]):
    out = _im2col.col2im(model.W, x, c)
  else:
    kernel = jnp.flip(model.W, (-2, -1)).swapaxes(0, 1)
    out = jax.lax.conv_general_dilated(x, kernel, (1, 1), [(r - 1, r - 1)] * 2,
                                       dimension_numbers=_DIMS)
  return out.reshape(lead + (model.n_visible,))


def _flat(model: ConvRBM, x: ArrayLike, n: int, name: str) -> Array:
  x = jnp.asarray(x)
  if x.ndim == 0 or x.shape[-1] != n:
    raise ValueError(f"{name} must be a flattened block [..., {n}] of the convolutional RBM, got "
                     f"shape {tuple(x.shape)} (images: use conv.check_images)")
  return x.astype(model.W.dtype)


def energy(model: ConvRBM, v: ArrayLike, h: ArrayLike) -> Array:
  """``E(v, h) = E_v(v) + E_h(h) - h . (W * s_v(v))``: ``[..., C*H*W], [..., K*H'*W'] -> [...]``.

  For Bernoulli detection units a state with two units on in one pooling block is not in the
  support of a pooled model; its energy is still the formula above.
  """
  h = _flat(model, h, model.n_hidden, "h")
  v = _flat(model, v, model.n_visible, "v")
  return (model.visible.energy(v, model.bias(0), model.log_sigma(0)) +
          model.hidden.energy(h, model.bias(1)) - jnp.sum(h * hidden_field(model, v), axis=-1))


def free_energy(model: ConvRBM, v: ArrayLike) -> Array:
  """``F(v) = E_v(v) - log sum_h exp(h . (c + W * s_v(v)))``: ``[..., C*H*W] -> [...]``.

  The sum over ``h`` factorises over detection units (``sum softplus``) or, with pooling, over
  pooling blocks (``sum_alpha log(1 + sum_{j in alpha} exp(z_j))``, Lee et al. 2009, sec. 3.3).
  """
  v = _flat(model, v, model.n_visible, "v")
  return (model.visible.energy(v, model.bias(0), model.log_sigma(0)) -
          model.hidden.log_partition(hidden_field(model, v), model.bias(1)))


def hidden_mean(model: ConvRBM, v: ArrayLike) -> Array:
  """``E[h | v]``: ``[..., C*H*W] -> [..., K*H'*W']``."""
  return model.hidden.mean(hidden_field(model, v), model.bias(1))


def pool_mean(model: ConvRBM, v: ArrayLike) -> Array:
  """``P(p_alpha = 1 | v) = 1 - P(block alpha off | v)``: ``[..., C*H*W] -> [..., K, P, Q]``
  with ``P x Q = H'/c x W'/c``; without pooling, ``E[h | v]`` as maps ``[..., K, H', W']``."""
  if model.pool is None:
    return maps(model, hidden_mean(model, v))
  off = model.hidden.off_probability(hidden_field(model, v), model.bias(1))
  c = model.pool
  return (1.0 - off).reshape(off.shape[:-1] + (model.n_filters, model.map_shape[0] // c,
                                               model.map_shape[1] // c))


def pooled(model: ConvRBM, h: ArrayLike) -> Array:
  """The pooling units' states ``p_alpha = sum_{j in alpha} h_j`` (1 when a detection unit of the
  block is on): ``[..., K*H'*W'] -> [..., K, P, Q]`` (``pool`` 1 without pooling)."""
  return P.pool(_flat(model, h, model.n_hidden, "h"), model.map_shape, model.pool or 1)


def sample_hidden(key: Array, model: ConvRBM, v: ArrayLike) -> Array:
  """``h ~ p(h | v)``, exact per pooling block: ``[..., C*H*W] -> [..., K*H'*W']``."""
  return model.hidden.sample(key, hidden_field(model, v), model.bias(1))


def sample_visible(key: Array, model: ConvRBM, h: ArrayLike) -> Array:
  """``v ~ p(v | h)``: ``[..., K*H'*W'] -> [..., C*H*W]``."""
  return model.visible.sample(key, visible_field(model, h), model.bias(0), model.log_sigma(0))


def images(model: ConvRBM, v: ArrayLike) -> Array:
  """Flattened visible states as images: ``[..., C*H*W] -> [..., C, H, W]``."""
  v = _flat(model, v, model.n_visible, "v")
  return v.reshape(v.shape[:-1] + tuple(model.image_shape))


def maps(model: ConvRBM, h: ArrayLike) -> Array:
  """Flattened hidden states as detection maps: ``[..., K*H'*W'] -> [..., K, H', W']``."""
  h = _flat(model, h, model.n_hidden, "h")
  return h.reshape(h.shape[:-1] + (model.n_filters,) + model.map_shape)


def check_images(model: ConvRBM, x: ArrayLike, name: str = "images") -> Array:
  """Concrete images ``[..., C, H, W]`` as the visible block ``[..., C*H*W]``, checked.

  Raises:
    ValueError: for another image shape or number of channels, NaN or inf, or values outside the
      visible family's support (e.g. not in [0, 1] for Bernoulli units).
  """
  x = np.asarray(x)
  c, h, w = model.image_shape
  if x.ndim < 3 or x.shape[-3:] != (c, h, w):
    got = tuple(x.shape)
    hint = (f": {x.shape[-3]} channels where the filters have {c}"
            if x.ndim >= 3 and x.shape[-2:] == (h, w) else "")
    raise ValueError(f"{name} must have shape [..., {c}, {h}, {w}] (channels, height, width), "
                     f"got {got}{hint}")
  flat = x.reshape(x.shape[:-3] + (c * h * w,))
  model.visible.validate(flat, name)
  return jnp.asarray(flat, model.W.dtype)


# ----------------------------------------------------------------------------- construction


def _positive_int(x, name: str) -> int:
  if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 1:
    raise ValueError(f"{name} must be a positive int, got {x!r}")
  return int(x)


def init(key: Array,
         image_shape: tuple[int, int, int],
         n_filters: int,
         filter_size: int,
         *,
         pool: Optional[int] = None,
         visible: U.Units = U.Bernoulli(),
         weight_scale: float = 0.01,
         hidden_bias: float = 0.0,
         data: Optional[ArrayLike] = None,
         dtype=jnp.float32) -> ConvRBM:
  """Initial params of a convolutional RBM.

  Args:
    key: PRNG key.
    image_shape: ``(C, H, W)``.
    n_filters: ``K``.
    filter_size: ``r`` (square ``r x r`` filters, ``r <= min(H, W)``).
    pool: pooling size ``c`` (``H - r + 1`` and ``W - r + 1`` multiples of it), or ``None``.
    visible: ``Bernoulli()`` or ``Gaussian(...)`` units.
    weight_scale: filters are ``N(0, weight_scale^2)``.
    hidden_bias: the initial bias of every filter (negative values start the detection units
      sparse; with pooling at zero field a block is on with probability ``c^2 / (c^2 + 1)``).
    data: optional images ``[n, C, H, W]``: the visible biases start at the family's data rule
      per channel (Bernoulli: the log-odds of the channel's mean; Gaussian: its mean, and a learned
      sigma its standard deviation).
    dtype: float dtype.

  Raises:
    ValueError: for a bad shape, a filter larger than the image, maps that do not tile into
      pooling blocks, other visible units or bad ``data``.
  """
  if not isinstance(image_shape, (tuple, list)) or len(image_shape) != 3:
    raise ValueError(f"image_shape must be (C, H, W), got {image_shape!r}")
  shape = tuple(_positive_int(s, f"image_shape[{i}]") for i, s in enumerate(image_shape))
  k, r = _positive_int(n_filters, "n_filters"), _positive_int(filter_size, "filter_size")
  if r > min(shape[1:]):
    raise ValueError(f"filters of {r} x {r} are larger than the {shape[1]} x {shape[2]} image")
  if not isinstance(visible, (U.Bernoulli, U.Gaussian)):
    raise ValueError(f"visible units must be Bernoulli or Gaussian, got {visible!r}")
  if pool is not None:
    pool = _positive_int(pool, "pool")
    U.PoolingSoftmax((shape[1] - r + 1, shape[2] - r + 1), pool)  # checks the tiling
  if not weight_scale > 0:
    raise ValueError(f"weight_scale must be positive, got {weight_scale}")
  W = weight_scale * jax.random.normal(key, (k, shape[0], r, r), dtype)
  sig = np.zeros(shape[0]) if visible.has_sigma else None
  b = np.zeros(shape[0])
  model = ConvRBM(W, jnp.zeros(shape[0], dtype), jnp.full(k, hidden_bias, dtype), None, None, None,
                  shape, visible, pool)
  if data is not None:
    flat = np.asarray(check_images(model, data, "data"))
    if flat.shape[0] == 0:
      raise ValueError("data is empty: the initial biases are taken from its channel means")
    per_channel = flat.reshape(-1, shape[0], shape[1] * shape[2]).swapaxes(1, 2)
    b, sig = visible.init_bias(per_channel.reshape(-1, shape[0]), sig)
  return model.replace(b=jnp.asarray(b, dtype),
                       log_sigma_v=None if sig is None else jnp.asarray(sig, dtype))


def dense_weights(model: ConvRBM) -> np.ndarray:
  """The unrolled weight matrix ``[C*H*W, K*H'*W']`` of a small model, by loops over positions:
  ``W_dense[(ch, i + di, j + dj), (k, i, j)] = W[k, ch, di, dj]``."""
  w = np.asarray(model.W, np.float64)
  n_k, n_c, r, _ = w.shape
  _, h, wd = model.image_shape
  mh, mw = model.map_shape
  out = np.zeros((n_c, h, wd, n_k, mh, mw))
  for i in range(mh):
    for j in range(mw):
      out[:, i:i + r, j:j + r, :, i, j] = w.transpose(1, 2, 3, 0)
  return out.reshape(n_c * h * wd, n_k * mh * mw)


def to_rbm(model: ConvRBM):
  """The same model as a dense :class:`jdbn.models.rbm.RBM` (its hidden family the pooled one),
  for checks on small models. Per-channel sigmas and biases are broadcast to every unit."""
  from jdbn.models import rbm
  return rbm.RBM(jnp.asarray(dense_weights(model), model.W.dtype), model.bias(0), model.bias(1),
                 model.log_sigma(0), None, model.visible, model.hidden)
