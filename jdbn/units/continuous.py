"""Continuous unit families: :class:`Gaussian` units (optionally learned sigma) and exact
rectified :class:`ReLU` units (a unit-variance Gaussian truncated to ``x >= 0``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr, ndtri

from jdbn.units.base import _HALF_LOG_2PI, Array, Units, _sigma

__all__ = ["Gaussian", "ReLU"]


@dataclasses.dataclass(frozen=True)
class Gaussian(Units):
  """Real-valued units with a per-unit standard deviation sigma (Gaussian-Bernoulli RBM).

  ``E_x = sum_i (x_i - a_i)^2 / (2 sigma_i^2)``, ``s_x(x) = x / sigma``, so that
  ``p(x_i | phi) = N(a_i + sigma_i phi_i, sigma_i^2)`` (Hinton 2010, section 13.2). With
  ``learn_sigma=False`` the model has no ``log_sigma`` parameter and sigma is 1, the usual choice
  for data standardised to unit variance; with ``learn_sigma=True`` the params carry
  ``log_sigma`` and contrastive training learns it through the free energy.
  """

  learn_sigma: bool = False

  @property
  def has_sigma(self):  # type: ignore[override]
    return self.learn_sigma

  def energy(self, x, bias, log_sigma=None):
    sigma = _sigma(log_sigma)
    return jnp.sum(0.5 * jnp.square((x - bias) / sigma), axis=-1)

  def scaled(self, x, log_sigma=None):
    return x / _sigma(log_sigma)

  def mean(self, phi, bias, log_sigma=None):
    return bias + _sigma(log_sigma) * phi

  def sample(self, key, phi, bias, log_sigma=None):
    mu = self.mean(phi, bias, log_sigma)
    return mu + _sigma(log_sigma) * jax.random.normal(key, mu.shape, mu.dtype)

  def log_partition(self, phi, bias, log_sigma=None):
    # ∫ exp(-(x-a)^2/(2 s^2) + x phi / s) dx = sqrt(2 pi) s exp(a phi / s + phi^2 / 2).
    sigma = _sigma(log_sigma)
    log_s = 0.0 if log_sigma is None else log_sigma
    return jnp.sum(bias * phi / sigma + 0.5 * jnp.square(phi) + log_s + _HALF_LOG_2PI, axis=-1)

  def base_rate(self, mean, eps=1e-3):
    return mean

  def init_bias(self, data, log_sigma):
    flat = data.reshape(-1, data.shape[-1])
    if log_sigma is not None:
      log_sigma = np.log(np.maximum(flat.std(0), 1e-3))
    return flat.mean(0), log_sigma


#: Below ``z = -_TAIL`` rectified units are sampled by rejection from an exponential proposal.
_TAIL = 5.0
_TAIL_PROPOSALS = 16


def _tail_sample(key: Array, a: Array) -> Array:
  """``N(0, 1)`` truncated to ``[a, inf)`` for ``a >= _TAIL``, by Robert's (1995) rejection.

  Proposals ``a + Exp(lam)`` with ``lam = (a + sqrt(a^2 + 4)) / 2`` are accepted with probability
  ``exp(-(x - lam)^2 / 2)``, over 0.96 for ``a >= 5``; the first accepted of 16 proposals is
  returned (all 16 rejected has probability below 1e-22).
  """
  a = jnp.maximum(a, _TAIL)
  lam = 0.5 * (a + jnp.sqrt(a * a + 4.0))
  key_e, key_u = jax.random.split(key)
  shape = (_TAIL_PROPOSALS,) + a.shape
  x = a + jax.random.exponential(key_e, shape, a.dtype) / lam
  accept = jax.random.uniform(key_u, shape, a.dtype) <= jnp.exp(-0.5 * jnp.square(x - lam))
  first = jnp.argmax(accept, axis=0)
  return jnp.take_along_axis(x, first[None], axis=0)[0]


@dataclasses.dataclass(frozen=True)
class ReLU(Units):
  """Rectified units: a unit-variance Gaussian truncated to ``x >= 0``.

  ``E_x = sum_i x_i^2 / 2 - a_i x_i`` on ``x >= 0``, so ``p(x_i | phi)`` is ``N(z_i, 1)``
  truncated to ``[0, inf)`` with ``z = a + phi``, whose mean is ``z + pdf(z) / cdf(z)`` and whose
  log-partition is ``z^2 / 2 + log Phi(z) + log sqrt(2 pi)``. Nair & Hinton (2010) sample NReLU
  units as ``max(0, z + N(0, sigmoid(z)))``, an approximation to a sum of infinitely many tied
  binary units; this family keeps an exact energy (so free energies, AIS and the CD gradient are
  exact) and samples its conditional exactly.

  With Gaussian visible units on the other side, both layers are quadratic and the model is
  normalisable only while the largest singular value of ``diag(1/sigma) W`` stays below 1 (the
  same holds for Gaussian-Gaussian RBMs); keep the learning rate small or use Bernoulli visible
  units. Training that leaves this region diverges, and :func:`jdbn.train.fit` stops it.
  """

  def energy(self, x, bias, log_sigma=None):
    return jnp.sum(0.5 * jnp.square(x) - bias * x, axis=-1)

  def mean(self, phi, bias, log_sigma=None):
    z = bias + phi
    # pdf(z) / cdf(z) = exp(log pdf - log cdf), stable for very negative z.
    log_pdf = -0.5 * jnp.square(z) - _HALF_LOG_2PI
    return z + jnp.exp(log_pdf - log_ndtr(z))

  def sample(self, key, phi, bias, log_sigma=None):
    z = bias + phi
    key_inv, key_tail = jax.random.split(key)
    # Inverse CDF by symmetry: x = z - ndtri(u Phi(z)) lies in [0, inf). Accurate while Phi(z)
    # is a normal float32 number; ``jax.random.truncated_normal`` is not (it returns 3.4e38 once
    # its uniform rounds to erf = 1, already for z < -3).
    u = jax.random.uniform(key_inv, z.shape, z.dtype, minval=jnp.finfo(z.dtype).tiny)
    z_safe = jnp.maximum(z, -_TAIL)
    inverse = jnp.maximum(z_safe - ndtri(u * ndtr(z_safe)), 0.0)
    return jnp.where(z >= -_TAIL, inverse, z + _tail_sample(key_tail, -z))

  def log_partition(self, phi, bias, log_sigma=None):
    z = bias + phi
    return jnp.sum(0.5 * jnp.square(z) + log_ndtr(z) + _HALF_LOG_2PI, axis=-1)

  def base_rate(self, mean, eps=1e-3):
    return mean

  def validate(self, x, name="x"):
    super().validate(x, name)
    if np.asarray(x).size and np.asarray(x).min() < 0:
      raise ValueError(f"{name} must be non-negative for ReLU units")
