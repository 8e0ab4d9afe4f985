"""Conditional RBMs: an RBM over ``y`` whose biases are linear functions of a context ``x``.

A conditional RBM (Taylor, Hinton & Roweis 2007; Mnih, Larochelle & Hinton 2011) models
``p(y | x)`` for a structured output ``y`` (``[..., n_visible]``: the next frame of a sequence, the
unseen half of an image) given a context ``x`` (``[..., n_context]``: past frames, the observed
half) with hidden units ``h`` (``[..., n_hidden]``) and the energy

    E(y, h; x) = E_y(y; b) + E_h(h; c) - s_y(y) . (x A) - s_h(h) . (x B) - s_y(y) W s_h(h)

so ``p(y, h | x) = exp(-E(y, h; x)) / Z(x)``. For fixed ``x`` this is the RBM with the *dynamic
biases* ``b + sigma_y (x A)`` and ``c + sigma_h (x B)`` (:func:`conditioned`; ``sigma = 1`` except
for Gaussian units with a learned sigma, where the context enters through the scaled state as
every other field does). The context is never modelled: ``Z(x)`` depends on ``x``, and the
likelihood is the conditional one, ``log p(y | x) = -F(y | x) - log Z(x)`` with

    F(y | x) = E_y(y; b) - s_y(y) . (x A) - log_partition_h(c + x B + s_y(y) W)

(:func:`free_energy`; for Bernoulli ``h`` the last term is ``sum_j softplus(.)``).

**Why the context lives inside the data block.** jdbn's contrastive trainer
(:func:`jdbn.train.contrastive.trainer`) and its phases take mini-batches of block 0 and nothing
else, and the Gibbs kernel (:func:`jdbn.samplers.gibbs.step`) updates the blocks of a schedule.
So a :class:`CRBM` is a block model with two blocks, ``v = [x | y]`` (``[..., n_context +
n_visible]``, the data: a context and its output side by side, :func:`join`) and ``h``, schedule
``((h,), (v,))``. The context part of ``v`` is a set of *frozen units* (:class:`Context`): the
field the model sends to them is their own current value and their conditional is a point mass
there, so every Gibbs sweep leaves ``x`` exactly where it is, with or without
``clamp={"v": context_mask(model)}``, and samples ``p(y, h | x)``. The generic sampler, CD-k
(:func:`jdbn.train.phases.sampled`, :func:`~jdbn.train.phases.chains_from_positive`) and the
free-energy score (:func:`~jdbn.train.phases.summed_score`) then work on a CRBM as they are,
with the context clamped; the frozen units have no self energy, so the score of ``v`` is exactly
``F(y | x)``. This is the one place where a model's ``field(states, i)`` reads ``states[i]``
(the context part of ``v``): ``v`` is never summed out.

Sampling ``y ~ p(y | x)`` and rolling a sequence forward: :mod:`jdbn.samplers.sequence`;
training: :mod:`jdbn.train.crbm`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jdbn import units as U
from jdbn.models import base
from jdbn.models import rbm as R

__all__ = [
    "CRBM", "Context", "init", "join", "split", "context_mask", "check_data", "energy",
    "free_energy", "dynamic_biases", "conditioned", "hidden_mean", "visible_mean",
    "sample_hidden", "sample_visible", "exact_log_conditional"
]

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


@dataclasses.dataclass(frozen=True)
class Context(U.Units):
  """The unit family of a CRBM's data block ``v = [x | y]``: ``n_context`` frozen context units
  followed by units of the family ``inner``.

  The context units have no self energy, ``s(x) = x``, and their conditional is a point mass at
  their field (the CRBM sends them their own value), so a sweep never moves them. On the ``y``
  part every method is ``inner``'s, called with the same key: a CRBM's ``y`` is drawn exactly
  as an RBM's visible layer would be.
  """

  inner: U.Units = U.Bernoulli()
  n_context: int = 1

  @property
  def has_sigma(self):  # type: ignore[override]
    return self.inner.has_sigma

  def _y(self, z):
    return None if z is None else jnp.asarray(z)[..., self.n_context:]

  def _x(self, z):
    return jnp.asarray(z)[..., :self.n_context]

  def energy(self, v, bias, log_sigma=None):
    return self.inner.energy(self._y(v), self._y(bias), self._y(log_sigma))

  def scaled(self, v, log_sigma=None):
    return jnp.concatenate([self._x(v), self.inner.scaled(self._y(v), self._y(log_sigma))], -1)

  def mean(self, phi, bias, log_sigma=None):
    y = self.inner.mean(self._y(phi), self._y(bias), self._y(log_sigma))
    return jnp.concatenate([self._x(phi).astype(y.dtype), y], -1)

  def sample(self, key, phi, bias, log_sigma=None):
    y = self.inner.sample(key, self._y(phi), self._y(bias), self._y(log_sigma))
    return jnp.concatenate([self._x(phi).astype(y.dtype), y], -1)

  def log_partition(self, phi, bias, log_sigma=None):
    """``log sum_y exp(...)`` of the output part only (the context is given, not summed)."""
    return self.inner.log_partition(self._y(phi), self._y(bias), self._y(log_sigma))

  def validate(self, x, name="v"):
    x = np.asarray(x)
    if not np.all(np.isfinite(x[..., :self.n_context])):
      raise ValueError(f"{name}: the context (its first {self.n_context} columns) contains NaN "
                       f"or inf values")
    self.inner.validate(x[..., self.n_context:], f"{name}[..., {self.n_context}:] (the output)")

  def check_size(self, n, name="n"):
    super().check_size(n, name)
    if n <= self.n_context:
      raise ValueError(f"{name}={n} leaves no output units after {self.n_context} context units")


@struct.dataclass
class CRBM(base.BlockModel):
  """Params of a conditional RBM (see the module docstring for the energy).

  Attributes:
    W: output-hidden weights, ``[n_visible, n_hidden]``.
    A: context-to-output weights, ``[n_context, n_visible]`` (autoregressive in a sequence).
    B: context-to-hidden weights, ``[n_context, n_hidden]``.
    b: output biases, ``[n_visible]``.
    c: hidden biases, ``[n_hidden]``.
    log_sigma_v, log_sigma_h: ``[n]`` log standard deviations for families with a learned
      sigma, else ``None``.
    visible, hidden: the unit families of ``y`` and ``h`` (static).
  """

  W: Array
  A: Array
  B: Array
  b: Array
  c: Array
  log_sigma_v: Optional[Array] = None
  log_sigma_h: Optional[Array] = None
  visible: U.Units = struct.field(pytree_node=False, default=U.Bernoulli())
  hidden: U.Units = struct.field(pytree_node=False, default=U.Bernoulli())

  @property
  def n_context(self) -> int:
    return self.A.shape[-2]

  @property
  def n_visible(self) -> int:
    return self.W.shape[-2]

  @property
  def n_hidden(self) -> int:
    return self.W.shape[-1]

  @property
  def blocks(self) -> tuple[base.Block, ...]:
    return (base.Block("v", Context(self.visible, self.n_context),
                       self.n_context + self.n_visible),
            base.Block("h", self.hidden, self.n_hidden))

  @property
  def schedule(self) -> tuple[tuple[int, ...], ...]:
    return ((1,), (0,))

  def bias(self, i: int) -> Array:
    if i == 1:
      return self.c
    return jnp.concatenate([jnp.zeros((self.n_context,), self.b.dtype), self.b])

  def log_sigma(self, i: int) -> Optional[Array]:
    if i == 1 or self.log_sigma_v is None:
      return self.log_sigma_h if i == 1 else None
    return jnp.concatenate([jnp.zeros((self.n_context,), self.b.dtype), self.log_sigma_v])

  def field(self, states, i: int) -> Array:
    x, y = split(self, states[0])
    if i == 1:
      return x @ self.B + self.visible.scaled(y, self.log_sigma_v) @ self.W
    sh = self.hidden.scaled(jnp.asarray(states[1], self.W.dtype), self.log_sigma_h)
    phi_y = x @ self.A + sh @ self.W.T
    x = jnp.broadcast_to(x, phi_y.shape[:-1] + x.shape[-1:])
    return jnp.concatenate([x, phi_y], -1)

  def energy(self, states) -> Array:
    return energy(self, states[0], states[1])

  def tempered(self, beta, base_biases=None) -> "CRBM":
    """``p_beta(y, h | x)``: couplings ``W, A, B`` times ``beta``, biases interpolated."""
    b0, c0 = (None, None) if base_biases is None else base_biases
    beta = jnp.asarray(beta, self.W.dtype)
    b0 = jnp.zeros_like(self.b) if b0 is None else jnp.asarray(b0)[..., self.n_context:]
    c0 = jnp.zeros_like(self.c) if c0 is None else jnp.asarray(c0)
    return self.replace(W=beta * self.W, A=beta * self.A, B=beta * self.B,
                        b=(1 - beta) * b0 + beta * self.b, c=(1 - beta) * c0 + beta * self.c)


def init(key: Array, n_context: int, n_visible: int, n_hidden: int,
         visible: U.Units = U.Bernoulli(), hidden: U.Units = U.Bernoulli(), *,
         weight_scale: float = 0.01, context_scale: Optional[float] = None,
         data: Optional[ArrayLike] = None, dtype=jnp.float32) -> CRBM:
  """Initial CRBM params: ``N(0, weight_scale^2)`` for ``W`` and ``N(0, context_scale^2)`` (the
  same by default) for ``A`` and ``B``, zero biases. With ``data`` (``[n, n_context +
  n_visible]``, joined pairs) the output biases start from the outputs' marginals as in
  :func:`jdbn.rbm.init` (Hinton 2010, section 8)."""
  for name, n in (("n_context", n_context), ("n_visible", n_visible), ("n_hidden", n_hidden)):
    U.Units().check_size(n, name)
  context_scale = weight_scale if context_scale is None else context_scale
  if not (weight_scale > 0 and context_scale >= 0):
    raise ValueError(f"weight_scale must be positive and context_scale non-negative, got "
                     f"{weight_scale}, {context_scale}")
  k_rbm, k_a, k_b = jax.random.split(key, 3)
  rbm = R.init(k_rbm, n_visible, n_hidden, visible, hidden, weight_scale=weight_scale,
               dtype=dtype)
  params = CRBM(rbm.W, context_scale * jax.random.normal(k_a, (n_context, n_visible), dtype),
                context_scale * jax.random.normal(k_b, (n_context, n_hidden), dtype), rbm.b,
                rbm.c, rbm.log_sigma_v, rbm.log_sigma_h, visible, hidden)
  if data is not None:
    v = check_data(params, data, "data")
    b, sig = visible.init_bias(np.asarray(v[:, n_context:]), None if rbm.log_sigma_v is None
                               else np.asarray(rbm.log_sigma_v))
    params = params.replace(b=jnp.asarray(b, dtype),
                            log_sigma_v=None if sig is None else jnp.asarray(sig, dtype))
  return params


def _float(params: CRBM, z: ArrayLike, n: int, name: str) -> Array:
  z = jnp.asarray(z)
  if z.ndim == 0 or z.shape[-1] != n:
    raise ValueError(f"{name} must have shape [..., {n}] for this CRBM (n_context="
                     f"{params.n_context}, n_visible={params.n_visible}), got {tuple(z.shape)}")
  return z.astype(params.W.dtype)


def join(params: CRBM, x: ArrayLike, y: ArrayLike) -> Array:
  """The data block ``v = [x | y]``: ``[..., n_context], [..., n_visible] -> [..., n_context +
  n_visible]`` (the batch shapes broadcast)."""
  x = _float(params, x, params.n_context, "the context x")
  y = _float(params, y, params.n_visible, "the output y")
  lead = jnp.broadcast_shapes(x.shape[:-1], y.shape[:-1])
  return jnp.concatenate([jnp.broadcast_to(x, lead + x.shape[-1:]),
                          jnp.broadcast_to(y, lead + y.shape[-1:])], -1)


def split(params: CRBM, v: ArrayLike) -> tuple[Array, Array]:
  """``(x, y)`` of a data block ``v = [x | y]``."""
  v = _float(params, v, params.n_context + params.n_visible, "v = [x | y]")
  return v[..., :params.n_context], v[..., params.n_context:]


def context_mask(params: CRBM) -> np.ndarray:
  """``[n_context + n_visible]`` booleans, ``True`` on the context: ``clamp={"v": mask}``."""
  return np.arange(params.n_context + params.n_visible) < params.n_context


def check_data(params: CRBM, v: ArrayLike, name: str = "v") -> Array:
  """Validates concrete joined data ``[..., n_context + n_visible]``: the width (naming the
  context's), finiteness, the output family's support. Not for use inside ``jit``."""
  v = _float(params, v, params.n_context + params.n_visible, name)
  params.blocks[0].units.validate(np.asarray(v), name)
  return v


def dynamic_biases(params: CRBM, x: ArrayLike) -> tuple[Array, Array]:
  """``(b + sigma_v (x A), c + sigma_h (x B))``: ``[..., n_context] -> ([..., n_visible],
  [..., n_hidden])`` (Taylor et al. 2007, eq. 3)."""
  x = _float(params, x, params.n_context, "the context x")
  sig_v = 1.0 if params.log_sigma_v is None else jnp.exp(params.log_sigma_v)
  sig_h = 1.0 if params.log_sigma_h is None else jnp.exp(params.log_sigma_h)
  return params.b + sig_v * (x @ params.A), params.c + sig_h * (x @ params.B)


def conditioned(params: CRBM, x: ArrayLike) -> R.RBM:
  """The RBM ``p(y, h | x)`` with batched biases ``[..., n]`` (:func:`dynamic_biases`): every
  RBM function (:func:`jdbn.rbm.free_energy`, conditionals, samplers) then applies. Its free
  energy equals :func:`free_energy` up to a function of ``x`` (zero unless ``y`` is Gaussian)."""
  b, c = dynamic_biases(params, x)
  return R.RBM(params.W, b, c, params.log_sigma_v, params.log_sigma_h, params.visible,
               params.hidden)


def energy(params: CRBM, v: ArrayLike, h: ArrayLike) -> Array:
  """``E(y, h; x)`` of the module docstring: ``v = [x | y] [..., n_context + n_visible]``,
  ``h [..., n_hidden] -> [...]``."""
  x, y = split(params, v)
  h = _float(params, h, params.n_hidden, "h")
  sy = params.visible.scaled(y, params.log_sigma_v)
  sh = params.hidden.scaled(h, params.log_sigma_h)
  inter = jnp.sum(sy * (x @ params.A), -1) + jnp.sum(sh * (x @ params.B + sy @ params.W), -1)
  return (params.visible.energy(y, params.b, params.log_sigma_v) +
          params.hidden.energy(h, params.c, params.log_sigma_h) - inter)


def free_energy(params: CRBM, v: ArrayLike) -> Array:
  """``F(y | x) = -log sum_h exp(-E(y, h; x))``: ``[..., n_context + n_visible] -> [...]``, so
  that ``p(y | x) = exp(-F(y | x)) / Z(x)``."""
  x, y = split(params, v)
  sy = params.visible.scaled(y, params.log_sigma_v)
  return (params.visible.energy(y, params.b, params.log_sigma_v) -
          jnp.sum(sy * (x @ params.A), -1) - params.hidden.log_partition(
              x @ params.B + sy @ params.W, params.c, params.log_sigma_h))


def hidden_mean(params: CRBM, v: ArrayLike) -> Array:
  """``E[h | y, x]``: ``[..., n_context + n_visible] -> [..., n_hidden]``."""
  return base.conditional_mean(params, (v, None), 1)


def visible_mean(params: CRBM, x: ArrayLike, h: ArrayLike) -> Array:
  """``E[y | h, x]``: ``[..., n_context], [..., n_hidden] -> [..., n_visible]``."""
  v = join(params, x, jnp.zeros((params.n_visible,), params.W.dtype))
  return base.conditional_mean(params, (v, h), 0)[..., params.n_context:]


def sample_hidden(key: Array, params: CRBM, v: ArrayLike) -> Array:
  """A draw of ``h ~ p(h | y, x)``: ``[..., n_context + n_visible] -> [..., n_hidden]``."""
  return base.sample_block(key, params, (v, None), 1)


def sample_visible(key: Array, params: CRBM, x: ArrayLike, h: ArrayLike) -> Array:
  """A draw of ``y ~ p(y | h, x)``: ``[..., n_context], [..., n_hidden] -> [..., n_visible]``."""
  v = join(params, x, jnp.zeros((params.n_visible,), params.W.dtype))
  return base.sample_block(key, params, (v, h), 0)[..., params.n_context:]


def exact_log_conditional(params: CRBM, v: ArrayLike) -> Array:
  """``log p(y | x)`` by enumerating every output ``y`` (enumerable output families, tiny
  models: tests and toy tasks): ``[..., n_context + n_visible] -> [...]``."""
  x, _ = split(params, v)
  ys = jnp.asarray(params.visible.states(params.n_visible), params.W.dtype)
  all_f = free_energy(params, join(params, x[..., None, :], ys))  # [..., n_states]
  return -free_energy(params, v) - jax.nn.logsumexp(-all_f, axis=-1)
