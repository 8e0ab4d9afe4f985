"""Unit families: the per-layer pieces of a Boltzmann machine's energy.

A layer of units ``x`` with bias ``a`` (and, for Gaussian units, a log standard deviation
``log_sigma``) contributes to the energy of a two-layer model

    E(v, h) = E_v(v) + E_h(h) - s_v(v) @ W @ s_h(h)

through its *self energy* ``E_x(x)`` and its *scaled state* ``s_x(x)`` (``x`` for every
family here except Gaussian units with a learned sigma, where it is ``x / sigma``). Given the
input ``phi`` that the other layer sends through ``W`` (``phi = s_h(h) @ W.T`` for visible units),
every family provides, for the conditional ``p(x | phi) ∝ exp(-E_x(x) + s_x(x) . phi)``:

* ``mean(phi, bias, log_sigma)``: ``E[x | phi]``;
* ``sample(key, phi, bias, log_sigma)``: a draw from ``p(x | phi)``;
* ``log_partition(phi, bias, log_sigma)``: ``log ∫ exp(-E_x(x) + s_x(x) . phi) dx`` summed over
  the layer's units, the term that marginalising the layer out adds to a free energy.

The families know nothing about RBMs: they are the vocabulary that ``jdbn.rbm`` speaks. All are
frozen, hashable dataclasses, so they can sit in a params pytree as static metadata.

References:
  Hinton (2010), "A practical guide to training restricted Boltzmann machines", UTML TR 2010-003.
  Welling, Rosen-Zvi & Hinton (2005), "Exponential family harmoniums with an application to
  information retrieval".
  Nair & Hinton (2010), "Rectified linear units improve restricted Boltzmann machines".
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr, ndtri

Array = jax.Array

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@jax.custom_jvp
def softplus(z: Array) -> Array:
  """``log(1 + e^z)``, stable for any ``z``; its derivative is ``sigmoid(z)``.

  The same values as ``jax.nn.softplus`` in a form that XLA:CPU evaluates about 2.5x faster (no
  ``logaddexp`` with its NaN and infinity handling); free energies of binary layers, and so every
  CD step and every AIS temperature, go through it. The derivative is given explicitly because
  autodiff of ``max(z, 0) + log1p(exp(-|z|))`` gives 0 instead of 1/2 at ``z = 0``.
  """
  return jnp.maximum(z, 0) + jnp.log1p(jnp.exp(-jnp.abs(z)))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
  (z,), (dz,) = primals, tangents
  return softplus(z), jax.nn.sigmoid(z) * dz


def _sigma(log_sigma: Optional[Array]):
  return 1.0 if log_sigma is None else jnp.exp(log_sigma)


@dataclasses.dataclass(frozen=True)
class Units:
  """Base class of a unit family. Subclasses override the methods below."""

  #: Whether the layer's states can be listed (for exact enumeration of small models).
  enumerable = False
  #: Whether the family uses a per-unit ``log_sigma`` parameter.
  has_sigma = False

  def energy(self, x: Array, bias: Array, log_sigma: Optional[Array] = None) -> Array:
    """Self energy ``E_x(x)``, summed over the last axis: ``[..., n] -> [...]``."""
    raise NotImplementedError

  def scaled(self, x: Array, log_sigma: Optional[Array] = None) -> Array:
    """The state as it enters the interaction term, ``s_x(x)``: ``[..., n] -> [..., n]``."""
    del log_sigma
    return x

  def mean(self, phi: Array, bias: Array, log_sigma: Optional[Array] = None) -> Array:
    """``E[x | phi]``: ``[..., n] -> [..., n]``."""
    raise NotImplementedError

  def sample(self, key: Array, phi: Array, bias: Array,
             log_sigma: Optional[Array] = None) -> Array:
    """A draw from ``p(x | phi)``: ``[..., n] -> [..., n]``."""
    raise NotImplementedError

  def log_partition(self, phi: Array, bias: Array, log_sigma: Optional[Array] = None) -> Array:
    """``log ∫ exp(-E_x(x) + s_x(x) . phi) dx`` summed over units: ``[..., n] -> [...]``."""
    raise NotImplementedError

  def log_partition_terms(self, phi: Array, bias: Array,
                          log_sigma: Optional[Array] = None) -> Array:
    """The terms ``[..., m]`` that sum to :meth:`log_partition`, one per independent piece.

    One per unit (one per group for Softmax). AIS subtracts log-partitions at neighbouring
    temperatures; differencing term by term before summing keeps the float32 rounding error of
    a step at ``eps * max_j |term_j|`` instead of ``eps * |sum_j term_j|``.
    """
    sig = None if log_sigma is None else jnp.asarray(log_sigma)[..., None]
    return self.log_partition(phi[..., None], jnp.asarray(bias)[..., None], sig)

  def base_rate(self, mean: Array, eps: float = 1e-3) -> Array:
    """Biases of independent units whose means match ``mean`` (``[n] -> [n]``, jittable).

    The base-rate model of AIS (Salakhutdinov & Murray 2008, section 4.1). Families without a
    closed form keep zero biases.
    """
    del eps
    return jnp.zeros_like(mean)

  def init_bias(self, data: np.ndarray,
                log_sigma: Optional[np.ndarray]) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Initial ``(bias, log_sigma)`` of a layer from concrete data ``[n_examples, n]``.

    Hinton's practical guide (2010), section 8: binary units get the log-odds of the data's
    marginals. Families without a data-driven rule return zero biases and ``log_sigma``
    unchanged.
    """
    return np.zeros(data.shape[-1]), log_sigma

  #: Whether ``-log p(x | phi)`` is linear in ``x``, so that its mean under ``p`` is the entropy.
  linear_energy = False

  def states(self, n: int) -> np.ndarray:
    """All joint states of ``n`` units, ``[n_states, n]`` (enumerable families only)."""
    raise TypeError(f"{type(self).__name__} units are continuous and cannot be enumerated")

  def states_at(self, idx: Array, n: int, dtype=jnp.float32) -> Array:
    """The states number ``idx`` (``[m]`` ints) of ``n`` units, ``[m, n]``, in :meth:`states`
    order, decoded in mixed radix so that enumeration needs memory for one chunk only."""
    raise TypeError(f"{type(self).__name__} units are continuous and cannot be enumerated")

  def n_states(self, n: int) -> int:
    """Number of joint states of ``n`` units (enumerable families only)."""
    raise TypeError(f"{type(self).__name__} units are continuous and cannot be enumerated")

  def validate(self, x, name: str = "x") -> None:
    """Raises ``ValueError`` if concrete data ``x`` is outside the family's support."""
    x = np.asarray(x)
    if not np.all(np.isfinite(x)):
      raise ValueError(f"{name} contains NaN or inf values")

  def check_size(self, n: int, name: str = "n") -> None:
    """Raises ``ValueError`` if a layer of ``n`` units is impossible for this family."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
      raise ValueError(f"{name} must be a positive integer, got {n!r}")


@dataclasses.dataclass(frozen=True)
class Bernoulli(Units):
  """Binary units in {0, 1}: ``E_x = -a . x``, ``p(x_i = 1 | phi) = sigmoid(a_i + phi_i)``."""

  enumerable = True

  def energy(self, x, bias, log_sigma=None):
    return -jnp.sum(x * bias, axis=-1)

  def mean(self, phi, bias, log_sigma=None):
    return jax.nn.sigmoid(bias + phi)

  def sample(self, key, phi, bias, log_sigma=None):
    p = self.mean(phi, bias)
    return (jax.random.uniform(key, p.shape, p.dtype) < p).astype(p.dtype)

  def log_partition(self, phi, bias, log_sigma=None):
    return jnp.sum(softplus(bias + phi), axis=-1)

  linear_energy = True

  def log_partition_terms(self, phi, bias, log_sigma=None):
    return softplus(bias + phi)

  def base_rate(self, mean, eps=1e-3):
    p = jnp.clip(mean, eps, 1 - eps)
    return jnp.log(p) - jnp.log1p(-p)

  def init_bias(self, data, log_sigma):
    p = np.clip(data.reshape(-1, data.shape[-1]).mean(0), 1e-3, 1 - 1e-3)
    return np.log(p / (1 - p)), log_sigma

  def states(self, n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)), dtype=np.float32).reshape(
        -1, n)

  def states_at(self, idx, n, dtype=jnp.float32):
    shifts = jnp.arange(n - 1, -1, -1, dtype=jnp.uint32)
    return ((idx[:, None].astype(jnp.uint32) >> shifts) & 1).astype(dtype)

  def n_states(self, n):
    return 2**n

  def validate(self, x, name="x"):
    super().validate(x, name)
    x = np.asarray(x)
    if x.size and (x.min() < 0 or x.max() > 1):
      raise ValueError(
          f"{name} must lie in [0, 1] for Bernoulli units (binary states or probabilities), "
          f"got values in [{x.min():g}, {x.max():g}]")


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


@dataclasses.dataclass(frozen=True)
class Softmax(Units):
  """One-hot groups of ``group_size`` consecutive units (e.g. 10 label units).

  Exactly one unit of each group is on. ``E_x = -a . x``; within a group,
  ``p(x_k = 1 | phi) = softmax(a + phi)_k``. A layer of ``n`` units has ``n / group_size`` groups.
  """

  group_size: int = 10
  enumerable = True

  def _groups(self, z):
    return z.reshape(z.shape[:-1] + (z.shape[-1] // self.group_size, self.group_size))

  def energy(self, x, bias, log_sigma=None):
    return -jnp.sum(x * bias, axis=-1)

  def mean(self, phi, bias, log_sigma=None):
    z = bias + phi
    return jax.nn.softmax(self._groups(z), axis=-1).reshape(z.shape)

  def sample(self, key, phi, bias, log_sigma=None):
    z = self._groups(bias + phi)
    idx = jax.random.categorical(key, z, axis=-1)
    return jax.nn.one_hot(idx, self.group_size, dtype=z.dtype).reshape(phi.shape[:-1] +
                                                                       (-1,))

  def log_partition(self, phi, bias, log_sigma=None):
    z = self._groups(bias + phi)
    return jnp.sum(jax.nn.logsumexp(z, axis=-1), axis=-1)

  linear_energy = True

  def log_partition_terms(self, phi, bias, log_sigma=None):
    shape = phi.shape[:-1] + (phi.shape[-1] // self.group_size, self.group_size)
    return jax.nn.logsumexp(bias.reshape(shape[-2:]) + phi.reshape(shape), axis=-1)

  def base_rate(self, mean, eps=1e-3):
    return jnp.log(jnp.clip(mean, eps, 1.0))

  def init_bias(self, data, log_sigma):
    p = np.clip(data.reshape(-1, data.shape[-1]).mean(0), 1e-3, 1.0)
    return np.log(p), log_sigma

  def states_at(self, idx, n, dtype=jnp.float32):
    g, groups = self.group_size, n // self.group_size
    powers = jnp.asarray([g**(groups - 1 - j) for j in range(groups)], jnp.int32)
    digits = (idx[:, None] // powers) % g
    return jax.nn.one_hot(digits, g, dtype=dtype).reshape(idx.shape[0], n)

  def states(self, n):
    self.check_size(n)
    eye = np.eye(self.group_size, dtype=np.float32)
    groups = n // self.group_size
    return np.array([np.concatenate(c) for c in itertools.product(eye, repeat=groups)],
                    dtype=np.float32).reshape(-1, n)

  def n_states(self, n):
    return self.group_size**(n // self.group_size)

  def check_size(self, n, name="n"):
    super().check_size(n, name)
    if n % self.group_size:
      raise ValueError(f"{name}={n} is not a multiple of the Softmax group size "
                       f"{self.group_size}")

  def validate(self, x, name="x"):
    super().validate(x, name)
    x = np.asarray(x)
    if x.shape[-1] % self.group_size:
      raise ValueError(f"{name} has {x.shape[-1]} units, not a multiple of the Softmax group "
                       f"size {self.group_size}")
    g = x.reshape(x.shape[:-1] + (-1, self.group_size))
    if not (np.all((g == 0) | (g == 1)) and np.all(g.sum(-1) == 1)):
      raise ValueError(f"{name} must be one-hot in each group of {self.group_size} Softmax units")


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


@dataclasses.dataclass(frozen=True)
class Joint(Units):
  """A layer made of consecutive blocks of different families.

  ``Joint(((Bernoulli(), 500), (Softmax(10), 10)))`` is the visible layer of the top RBM in
  Hinton, Osindero & Teh (2006): 500 binary units joined by 10 label units.
  """

  parts: tuple = ()

  def __post_init__(self):
    for units, n in self.parts:
      if not isinstance(units, Units) or isinstance(units, Joint):
        raise TypeError(f"Joint parts must be (Units, size) pairs of plain families, got "
                        f"{units!r}")
      units.check_size(n, f"size of {type(units).__name__} block")

  @property
  def size(self) -> int:
    return sum(n for _, n in self.parts)

  @property
  def enumerable(self):  # type: ignore[override]
    return all(u.enumerable for u, _ in self.parts)

  @property
  def has_sigma(self):  # type: ignore[override]
    return any(u.has_sigma for u, _ in self.parts)

  def _split(self, z):
    if z is None:
      return [None] * len(self.parts)
    z = jnp.asarray(z)
    if z.ndim == 0:
      return [z] * len(self.parts)
    out, start = [], 0
    for _, n in self.parts:
      out.append(z[..., start:start + n])
      start += n
    return out

  def _each(self, method, *arrays, log_sigma=None, concat=True):
    pieces = [self._split(a) for a in arrays]
    sig = self._split(log_sigma)
    outs = [
        getattr(u, method)(*[p[i] for p in pieces], **({
            "log_sigma": sig[i] if u.has_sigma else None
        })) for i, (u, _) in enumerate(self.parts)
    ]
    return jnp.concatenate(outs, axis=-1) if concat else sum(outs)

  def energy(self, x, bias, log_sigma=None):
    return self._each("energy", x, bias, log_sigma=log_sigma, concat=False)

  def scaled(self, x, log_sigma=None):
    return self._each("scaled", x, log_sigma=log_sigma)

  def mean(self, phi, bias, log_sigma=None):
    return self._each("mean", phi, bias, log_sigma=log_sigma)

  def sample(self, key, phi, bias, log_sigma=None):
    keys = jax.random.split(key, len(self.parts))
    phis, biases, sigs = self._split(phi), self._split(bias), self._split(log_sigma)
    return jnp.concatenate([
        u.sample(keys[i], phis[i], biases[i], sigs[i] if u.has_sigma else None)
        for i, (u, _) in enumerate(self.parts)
    ], axis=-1)

  def log_partition(self, phi, bias, log_sigma=None):
    return self._each("log_partition", phi, bias, log_sigma=log_sigma, concat=False)

  def log_partition_terms(self, phi, bias, log_sigma=None):
    return self._each("log_partition_terms", phi, bias, log_sigma=log_sigma)

  def base_rate(self, mean, eps=1e-3):
    return jnp.concatenate([u.base_rate(m, eps) for (u, _), m in zip(self.parts, self._split(mean))])

  def init_bias(self, data, log_sigma):
    biases, sigmas, start = [], [], 0
    for part, n in self.parts:
      sig = np.zeros(n) if part.has_sigma else None
      bias, sig = part.init_bias(data[..., start:start + n], sig)
      biases.append(bias)
      sigmas.append(np.zeros(n) if sig is None else sig)
      start += n
    return np.concatenate(biases), (None if log_sigma is None else np.concatenate(sigmas))

  @property
  def linear_energy(self):  # type: ignore[override]
    return all(u.linear_energy for u, _ in self.parts)

  def states_at(self, idx, n, dtype=jnp.float32):
    blocks, rest = [], idx
    for part, k in reversed(self.parts):
      count = part.n_states(k)
      blocks.append(part.states_at(rest % count, k, dtype))
      rest = rest // count
    return jnp.concatenate(blocks[::-1], axis=-1)

  def states(self, n):
    if n != self.size:
      raise ValueError(f"Joint layer has {self.size} units, asked for states of {n}")
    blocks = [u.states(k) for u, k in self.parts]
    return np.array([np.concatenate(c) for c in itertools.product(*blocks)],
                    dtype=np.float32).reshape(-1, n)

  def n_states(self, n):
    return math.prod(u.n_states(k) for u, k in self.parts)

  def check_size(self, n, name="n"):
    super().check_size(n, name)
    if n != self.size:
      raise ValueError(f"{name}={n} does not match the Joint layer's {self.size} units")

  def validate(self, x, name="x"):
    x = np.asarray(x)
    if x.shape[-1] != self.size:
      raise ValueError(f"{name} has {x.shape[-1]} units, the Joint layer has {self.size}")
    start = 0
    for u, n in self.parts:
      u.validate(x[..., start:start + n], f"{name}[..., {start}:{start + n}]")
      start += n
