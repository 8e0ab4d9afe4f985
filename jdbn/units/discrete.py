"""Discrete unit families: binary :class:`Bernoulli` units and one-hot :class:`Softmax` groups.

Both are enumerable (their joint states can be listed for exact partition functions of small
models) and have energies linear in the state.
"""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from jdbn.units.base import Units, softplus

__all__ = ["Bernoulli", "Softmax"]


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
