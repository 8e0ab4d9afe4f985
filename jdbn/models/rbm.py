"""Restricted Boltzmann machines: params, energy, free energy and the two conditionals.

An RBM over visible units ``v`` (``[..., n_visible]``) and hidden units ``h`` (``[..., n_hidden]``)
has the energy

    E(v, h) = E_v(v; b, sigma_v) + E_h(h; c, sigma_h) - s_v(v) @ W @ s_h(h)

where the unit families (``jdbn.units``) define the self energies ``E_v``, ``E_h`` and the
scalings ``s_v``, ``s_h``. For Bernoulli units on both sides this is the familiar
``-b.v - c.h - v W h`` (Smolensky 1986; Hinton 2002). The energy is the single source of truth:
the conditionals below are written out for speed, and the tests check them against
``jax.grad(energy)``; the free energy is ``-log sum_h exp(-E(v, h))``, checked by enumeration.

Every function takes any leading batch shape and works under ``jit``, ``vmap`` and ``grad``.
Samplers take an explicit PRNG key as their first argument.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jdbn import units as U
from jdbn.models import base

__all__ = [
    "RBM", "init", "check_visible", "energy", "hidden_field", "visible_field", "free_energy",
    "free_energy_hidden", "hidden_mean", "visible_mean", "sample_hidden", "sample_visible",
    "interpolate"
]

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


@struct.dataclass
class RBM(base.BlockModel):
  """Params of an RBM: a pytree of arrays whose static fields name the unit families.

  As a :class:`jdbn.models.base.BlockModel` it has the blocks ``(v, h)`` and the schedule
  ``((h,), (v,))``: a Gibbs sweep samples ``h ~ p(h | v)``, then ``v ~ p(v | h)``.

  Attributes:
    W: weights, ``[n_visible, n_hidden]``.
    b: visible biases, ``[n_visible]``.
    c: hidden biases, ``[n_hidden]``.
    log_sigma_v: ``[n_visible]`` log standard deviations when the visible family has a learned
      sigma (``Gaussian(learn_sigma=True)``), else ``None``.
    log_sigma_h: the same for the hidden layer.
    visible: the visible unit family (static).
    hidden: the hidden unit family (static).
  """

  W: Array
  b: Array
  c: Array
  log_sigma_v: Optional[Array] = None
  log_sigma_h: Optional[Array] = None
  visible: U.Units = struct.field(pytree_node=False, default=U.Bernoulli())
  hidden: U.Units = struct.field(pytree_node=False, default=U.Bernoulli())

  @property
  def n_visible(self) -> int:
    return self.W.shape[-2]

  @property
  def n_hidden(self) -> int:
    return self.W.shape[-1]

  # The block-model interface (jdbn.models.base): block 0 is v, block 1 is h.

  @property
  def blocks(self) -> tuple[base.Block, ...]:
    return (base.Block("v", self.visible, self.n_visible),
            base.Block("h", self.hidden, self.n_hidden))

  @property
  def schedule(self) -> tuple[tuple[int, ...], ...]:
    return ((1,), (0,))

  def bias(self, i: int) -> Array:
    return (self.b, self.c)[i]

  def log_sigma(self, i: int) -> Optional[Array]:
    return (self.log_sigma_v, self.log_sigma_h)[i]

  def field(self, states, i: int) -> Array:
    return hidden_field(self, states[0]) if i == 1 else visible_field(self, states[1])

  def energy(self, states) -> Array:
    return energy(self, states[0], states[1])

  def tempered(self, beta, base_biases=None) -> "RBM":
    b0, c0 = (None, None) if base_biases is None else base_biases
    out = interpolate(self, jnp.zeros_like(self.b) if b0 is None else b0, beta)
    if c0 is not None:
      out = out.replace(c=out.c + (1 - jnp.asarray(beta, self.c.dtype)) * c0)
    return out


def init(key: Array,
         n_visible: int,
         n_hidden: int,
         visible: U.Units = U.Bernoulli(),
         hidden: U.Units = U.Bernoulli(),
         *,
         weight_init: str = "normal",
         weight_scale: float = 0.01,
         data: Optional[ArrayLike] = None,
         dtype=jnp.float32) -> RBM:
  """Initial RBM params.

  Args:
    key: PRNG key.
    n_visible, n_hidden: layer sizes (positive integers).
    visible, hidden: unit families.
    weight_init: ``"normal"`` for ``N(0, weight_scale^2)`` weights (0.01 in Hinton's practical
      guide, section 8) or ``"glorot"`` for Glorot & Bengio's (2010) uniform initialisation.
    weight_scale: standard deviation for ``"normal"``.
    data: optional training data ``[n, n_visible]``. Bernoulli visible biases are then set to
      ``log(p / (1 - p))`` of the data's marginals ``p`` (clipped to [1e-3, 1 - 1e-3]; Hinton's
      guide, section 8); Gaussian visible biases to the data's mean (and a learned sigma to its
      standard deviation).
    dtype: float dtype of the params.

  Returns:
    An :class:`RBM`.
  """
  visible.check_size(n_visible, "n_visible")
  hidden.check_size(n_hidden, "n_hidden")
  if weight_init == "normal":
    if not weight_scale > 0:
      raise ValueError(f"weight_scale must be positive, got {weight_scale}")
    W = weight_scale * jax.random.normal(key, (n_visible, n_hidden), dtype)
  elif weight_init == "glorot":
    W = jax.nn.initializers.glorot_uniform()(key, (n_visible, n_hidden), dtype)
  else:
    raise ValueError(f"weight_init must be 'normal' or 'glorot', got {weight_init!r}")
  b = jnp.zeros((n_visible,), dtype)
  c = jnp.zeros((n_hidden,), dtype)
  log_sigma_v = jnp.zeros((n_visible,), dtype) if visible.has_sigma else None
  log_sigma_h = jnp.zeros((n_hidden,), dtype) if hidden.has_sigma else None
  if data is not None:
    data = check_visible(RBM(W, b, c, log_sigma_v, log_sigma_h, visible, hidden), data, "data")
    if data.size == 0:
      raise ValueError("data is empty: the initial biases are taken from its marginals")
    b, sig = visible.init_bias(np.asarray(data), None if log_sigma_v is None else
                               np.asarray(log_sigma_v))
    log_sigma_v = None if sig is None else jnp.asarray(sig, dtype)
  return RBM(W, jnp.asarray(b, dtype), c, log_sigma_v, log_sigma_h, visible, hidden)


def _as_float(x: ArrayLike, n: int, dtype, name: str) -> Array:
  """Checks the last axis and the dtype of an input (statically, so it works under jit)."""
  x = jnp.asarray(x)
  if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer) or
          x.dtype == jnp.bool_):
    raise TypeError(f"{name} must be a real (float, int or bool) array, got dtype {x.dtype}")
  if x.ndim == 0 or x.shape[-1] != n:
    raise ValueError(f"{name} must have shape [..., {n}], got {tuple(x.shape)}")
  return x.astype(dtype)


def _check_params(params: RBM) -> None:
  """Static shape checks of the params (at trace time, free under jit)."""
  n_v, n_h = params.W.shape[-2:]
  for name, x, n in (("b", params.b, n_v), ("c", params.c, n_h),
                     ("log_sigma_v", params.log_sigma_v, n_v),
                     ("log_sigma_h", params.log_sigma_h, n_h)):
    if x is not None and jnp.shape(x)[-1:] != (n,):
      raise ValueError(f"params.{name} has shape {tuple(jnp.shape(x))}; an RBM with W of shape "
                       f"{tuple(params.W.shape)} needs [{n}]")


def check_visible(params: RBM, v: ArrayLike, name: str = "v") -> Array:
  """Validates concrete visible data: shape, dtype, finiteness, the family's support.

  Raises ``ValueError``/``TypeError`` naming ``name`` and what was expected. Use it at API
  boundaries (it needs concrete values, so not inside ``jit``). Returns ``v`` as a float array.
  """
  v = _as_float(v, params.n_visible, params.W.dtype, name)
  params.visible.validate(np.asarray(v), name)
  return v


def energy(params: RBM, v: ArrayLike, h: ArrayLike) -> Array:
  """Joint energy ``E(v, h)``: ``[..., n_visible], [..., n_hidden] -> [...]``."""
  _check_params(params)
  v = _as_float(v, params.n_visible, params.W.dtype, "v")
  h = _as_float(h, params.n_hidden, params.W.dtype, "h")
  try:
    jnp.broadcast_shapes(v.shape[:-1], h.shape[:-1])
  except ValueError as err:
    raise ValueError(f"v and h have batch shapes {v.shape[:-1]} and {h.shape[:-1]}, which do not "
                     f"broadcast") from err
  sv = params.visible.scaled(v, params.log_sigma_v)
  sh = params.hidden.scaled(h, params.log_sigma_h)
  interaction = jnp.sum((sv @ params.W) * sh, axis=-1)
  return (params.visible.energy(v, params.b, params.log_sigma_v) +
          params.hidden.energy(h, params.c, params.log_sigma_h) - interaction)


def hidden_field(params: RBM, v: ArrayLike) -> Array:
  """The input the visible layer sends to the hidden units, ``s_v(v) @ W``: ``-> [..., n_hidden]``."""
  _check_params(params)
  v = _as_float(v, params.n_visible, params.W.dtype, "v")
  return params.visible.scaled(v, params.log_sigma_v) @ params.W


def visible_field(params: RBM, h: ArrayLike) -> Array:
  """The input the hidden layer sends to the visible units, ``s_h(h) @ W.T``: ``-> [..., n_visible]``."""
  _check_params(params)
  h = _as_float(h, params.n_hidden, params.W.dtype, "h")
  return params.hidden.scaled(h, params.log_sigma_h) @ params.W.T


def free_energy(params: RBM, v: ArrayLike) -> Array:
  """``F(v) = -log sum_h exp(-E(v, h))`` (an integral for continuous hidden units).

  Args:
    params: RBM params.
    v: visible states, ``[..., n_visible]``.

  Returns:
    ``[...]``, so that ``p(v) = exp(-F(v)) / Z``. For Bernoulli hidden units this is
    ``E_v(v) - sum_j softplus(c_j + (s_v(v) W)_j)``.
  """
  _check_params(params)
  v = _as_float(v, params.n_visible, params.W.dtype, "v")
  return (params.visible.energy(v, params.b, params.log_sigma_v) -
          params.hidden.log_partition(hidden_field(params, v), params.c, params.log_sigma_h))


def free_energy_hidden(params: RBM, h: ArrayLike) -> Array:
  """``F(h) = -log sum_v exp(-E(v, h))``, the visible layer marginalised: ``[..., n_hidden] -> [...]``."""
  _check_params(params)
  h = _as_float(h, params.n_hidden, params.W.dtype, "h")
  return (params.hidden.energy(h, params.c, params.log_sigma_h) -
          params.visible.log_partition(visible_field(params, h), params.b, params.log_sigma_v))


def hidden_mean(params: RBM, v: ArrayLike) -> Array:
  """``E[h | v]``: ``[..., n_visible] -> [..., n_hidden]`` (``sigmoid(c + v W)`` for Bernoulli)."""
  return params.hidden.mean(hidden_field(params, v), params.c, params.log_sigma_h)


def visible_mean(params: RBM, h: ArrayLike) -> Array:
  """``E[v | h]``: ``[..., n_hidden] -> [..., n_visible]``."""
  return params.visible.mean(visible_field(params, h), params.b, params.log_sigma_v)


def sample_hidden(key: Array, params: RBM, v: ArrayLike) -> Array:
  """A draw of ``h ~ p(h | v)``: ``[..., n_visible] -> [..., n_hidden]``.

  The draw is materialised once (``lax.optimization_barrier``): otherwise XLA fuses the whole of
  it, random-number rounds included, into each of its consumers (the next matrix product, the
  gradient's outer product, a chain's carried state): a CD-1 epoch of a 784 x 500 RBM on a CPU
  took 8% longer that way (``benchmarks/HISTORY.md``).
  """
  h = params.hidden.sample(key, hidden_field(params, v), params.c, params.log_sigma_h)
  return jax.lax.optimization_barrier(h)


def sample_visible(key: Array, params: RBM, h: ArrayLike) -> Array:
  """A draw of ``v ~ p(v | h)``: ``[..., n_hidden] -> [..., n_visible]``, materialised once (see
  :func:`sample_hidden`)."""
  v = params.visible.sample(key, visible_field(params, h), params.b, params.log_sigma_v)
  return jax.lax.optimization_barrier(v)


def interpolate(params: RBM, base_b: ArrayLike, beta: ArrayLike) -> RBM:
  """The tempered model ``p_beta ∝ p_base^(1 - beta) p^beta`` used by annealed importance sampling.

  ``p_base`` has zero weights and visible biases ``base_b`` (hidden biases zero, the same
  sigmas). For the families here the tempered model is again an RBM, with weights ``beta W``,
  visible biases ``(1 - beta) base_b + beta b`` and hidden biases ``beta c`` (Salakhutdinov &
  Murray 2008, section 4.1).
  """
  beta = jnp.asarray(beta, params.W.dtype)
  return params.replace(W=beta * params.W, b=(1 - beta) * jnp.asarray(base_b) + beta * params.b,
                        c=beta * params.c)
