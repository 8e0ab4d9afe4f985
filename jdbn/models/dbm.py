"""Deep Boltzmann Machines: an undirected chain of blocks ``v - h1 - h2 - ...``.

Every layer is coupled to the one below and the one above (Salakhutdinov & Hinton 2009):

    E(v, h1, ..., hL) = sum_l E_l(x_l; a_l, sigma_l) - sum_l s_l(x_l) @ W_l @ s_{l+1}(x_{l+1})

with ``x_0 = v`` and any :mod:`jdbn.units` family per layer. Given its two neighbours a layer's
units are independent, so the odd layers form one block group and the even layers the other:
the schedule is ``((h1, h3, ...), (v, h2, ...))``, and one Gibbs sweep is two half-sweeps of
matrix products, as in an RBM. With the odd layers summed out, the even layers have the
tractable marginal :func:`free_energy` (the quantity AIS anneals for a DBM).

This module holds the params and the energy; training (mean-field positive phase, persistent
chains, greedy pretraining) plugs into the generic trainer and samplers.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
from flax import struct

from jdbn import units as U
from jdbn.models import base

Array = jax.Array

__all__ = ["DBM", "init", "free_energy"]


@struct.dataclass
class DBM(base.BlockModel):
  """Params of a DBM: one weight matrix between each pair of neighbouring layers.

  Attributes:
    weights: ``(W_0, ..., W_{L-1})``, ``W_l: [n_l, n_{l+1}]``.
    biases: ``(a_0, ..., a_L)``, ``a_l: [n_l]``.
    log_sigmas: one ``[n_l]`` array per layer whose family has a learned sigma, else ``None``.
    units: the unit family of every layer (static).
  """

  weights: tuple
  biases: tuple
  log_sigmas: tuple
  units: tuple = struct.field(pytree_node=False)

  @property
  def sizes(self) -> tuple[int, ...]:
    return tuple(int(b.shape[-1]) for b in self.biases)

  @property
  def blocks(self) -> tuple[base.Block, ...]:
    names = ["v"] + [f"h{l}" for l in range(1, len(self.units))]
    return tuple(base.Block(n, u, s) for n, u, s in zip(names, self.units, self.sizes))

  @property
  def schedule(self) -> tuple[tuple[int, ...], ...]:
    layers = range(len(self.units))
    return (tuple(l for l in layers if l % 2), tuple(l for l in layers if not l % 2))

  def bias(self, i: int) -> Array:
    return self.biases[i]

  def log_sigma(self, i: int) -> Optional[Array]:
    return self.log_sigmas[i]

  def _scaled(self, states, l):
    return self.units[l].scaled(states[l], self.log_sigmas[l])

  def field(self, states, i: int) -> Array:
    phi = 0.0
    if i > 0:
      phi = phi + self._scaled(states, i - 1) @ self.weights[i - 1]
    if i < len(self.weights):
      phi = phi + self._scaled(states, i + 1) @ self.weights[i].T
    return phi

  def energy(self, states) -> Array:
    e = sum(u.energy(x, a, s) for u, x, a, s in zip(self.units, states, self.biases,
                                                     self.log_sigmas))
    for l, w in enumerate(self.weights):
      e = e - jnp.sum((self._scaled(states, l) @ w) * self._scaled(states, l + 1), axis=-1)
    return e

  def tempered(self, beta, base_biases=None) -> "DBM":
    beta = jnp.asarray(beta, self.weights[0].dtype)
    base_biases = (None,) * len(self.biases) if base_biases is None else tuple(base_biases)
    biases = tuple(beta * a if b0 is None else (1 - beta) * b0 + beta * a
                   for a, b0 in zip(self.biases, base_biases))
    return self.replace(weights=tuple(beta * w for w in self.weights), biases=biases)


def init(key: Array,
         sizes: Sequence[int],
         units: Optional[Sequence[U.Units]] = None,
         *,
         weight_scale: float = 0.01,
         dtype=jnp.float32) -> DBM:
  """A DBM with ``N(0, weight_scale^2)`` weights and zero biases.

  Args:
    key: PRNG key.
    sizes: ``(n_visible, n_h1, ..., n_hL)``, at least two layers.
    units: one family per layer; Bernoulli throughout by default.
    weight_scale: standard deviation of the initial weights.
    dtype: float dtype.
  """
  sizes = tuple(sizes)
  if len(sizes) < 2:
    raise ValueError(f"a DBM needs at least two layers, got sizes {sizes}")
  units = (U.Bernoulli(),) * len(sizes) if units is None else tuple(units)
  if len(units) != len(sizes):
    raise ValueError(f"{len(units)} unit families for {len(sizes)} layers")
  for l, (u, n) in enumerate(zip(units, sizes)):
    u.check_size(n, f"sizes[{l}]")
  if not weight_scale > 0:
    raise ValueError(f"weight_scale must be positive, got {weight_scale}")
  keys = jax.random.split(key, len(sizes) - 1)
  weights = tuple(weight_scale * jax.random.normal(k, (m, n), dtype)
                  for k, m, n in zip(keys, sizes[:-1], sizes[1:]))
  biases = tuple(jnp.zeros((n,), dtype) for n in sizes)
  log_sigmas = tuple(jnp.zeros((n,), dtype) if u.has_sigma else None for u, n in zip(units, sizes))
  return DBM(weights, biases, log_sigmas, units)


def free_energy(model: DBM, states: Sequence[Optional[Array]]) -> Array:
  """``F(x_even) = -log sum_{x_odd} exp(-E)``: the odd layers summed out, ``-> [...]``.

  ``states`` holds every layer; the odd ones are not read (``None`` will do).
  """
  states = list(states)
  ref = states[0]
  for l in range(1, len(states), 2):
    if states[l] is None:
      states[l] = jnp.zeros(jnp.shape(ref)[:-1] + (model.sizes[l],), jnp.result_type(ref))
  return base.free_energy(model, states, model.schedule[0])
