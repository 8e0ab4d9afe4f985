"""The :class:`Joint` unit family: a layer of consecutive blocks of different families.

Every method splits its inputs by block, calls each block's family and joins the results; the
enumeration of joint states is the mixed-radix product of the blocks' states.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jdbn.units.base import Units

__all__ = ["Joint"]


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
