"""Centered RBMs: the same distributions, a better-conditioned gradient.

Montavon & Müller (2012) and Melchior, Fischer & Wiskott (2016) subtract offsets from the units'
states in the interaction term,

    E(v, h) = E_v(v; b) + E_h(h; c) - (s_v(v) - mu)^T W (s_h(h) - lambda),

with ``mu`` and ``lambda`` near the mean visible and hidden states. Every centered RBM equals the
ordinary RBM with weights ``W`` and biases ``b - W lambda``, ``c - W^T mu`` (for the families whose
self energy is linear in the bias up to a constant: Bernoulli, Softmax, Gaussian), so nothing
about the model changes, but the gradient ``-(s_v - mu)(E[s_h | v] - lambda)^T`` no longer mixes
the weights' and biases' directions: centered RBMs and DBMs train without pretraining where the
plain ones stall. The offsets are constants to the gradient (the energy sees them through
``stop_gradient``) and move as running means between updates; :func:`shift` moves them while
changing the biases so that the distribution stays exactly the same.

:class:`CenteredRBM` is a :class:`~jdbn.models.base.BlockModel`, so the generic sampler, AIS and
the contrastive trainer (:func:`jdbn.train.contrastive.centered`) work on it as they are;
:func:`uncentered` gives the equivalent :class:`~jdbn.rbm.RBM` for everything RBM-specific.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
from flax import struct

from jdbn.models import base
from jdbn.models import rbm as R

Array = jax.Array

__all__ = ["CenteredRBM", "center", "hidden_mean", "shift", "uncentered"]


@struct.dataclass
class CenteredRBM(base.BlockModel):
  """An RBM with offsets: ``rbm`` holds ``W``, ``b``, ``c`` and the families; ``mu [n_visible]``
  and ``lam [n_hidden]`` are the offsets of the scaled visible and hidden states."""
  rbm: R.RBM
  mu: Array
  lam: Array

  @property
  def blocks(self):
    return self.rbm.blocks

  @property
  def schedule(self):
    return self.rbm.schedule

  def bias(self, i: int) -> Array:
    return self.rbm.bias(i)

  def log_sigma(self, i: int) -> Optional[Array]:
    return self.rbm.log_sigma(i)

  def _scaled(self, states, i):
    units = self.blocks[i].units
    return units.scaled(states[i], self.rbm.log_sigma(i)) - jax.lax.stop_gradient(
        (self.mu, self.lam)[i])

  def field(self, states, i: int) -> Array:
    if i == 1:
      return self._scaled(states, 0) @ self.rbm.W
    return self._scaled(states, 1) @ self.rbm.W.T

  def energy(self, states) -> Array:
    r = self.rbm
    self_e = (r.visible.energy(states[0], r.b, r.log_sigma_v) +
              r.hidden.energy(states[1], r.c, r.log_sigma_h))
    return self_e - jnp.sum((self._scaled(states, 0) @ r.W) * self._scaled(states, 1), axis=-1)

  def tempered(self, beta, base_biases=None) -> "CenteredRBM":
    flat = uncentered(self).tempered(beta, base_biases)
    return CenteredRBM(flat, jnp.zeros_like(self.mu), jnp.zeros_like(self.lam))


def uncentered(model: CenteredRBM) -> R.RBM:
  """The ordinary RBM with the same distribution: biases ``b - W lambda`` and ``c - W^T mu``."""
  r = model.rbm
  return r.replace(b=r.b - r.W @ model.lam, c=r.c - model.mu @ r.W)


def shift(model: CenteredRBM, mu: Array, lam: Array) -> CenteredRBM:
  """New offsets, the biases changed so that the distribution is exactly the same.

  ``b' = b + W (lambda' - lambda)`` and ``c' = c + W^T (mu' - mu)`` keep ``b - W lambda`` and
  ``c - W^T mu`` (Melchior et al. 2016, algorithm 1).
  """
  r = model.rbm
  rbm = r.replace(b=r.b + r.W @ (lam - model.lam), c=r.c + (mu - model.mu) @ r.W)
  return CenteredRBM(rbm, mu, lam)


def center(model: R.RBM, data: Optional[Array] = None) -> CenteredRBM:
  """The centered form of an RBM, the same distribution.

  The offsets are the data's mean scaled visible state and the mean of ``E[s_h | v]`` over it
  (Melchior et al. 2016 start there), or 0.5 (binary units' midpoint) without data.
  """
  if data is None:
    mu = jnp.full((model.n_visible,), 0.5, model.W.dtype)
    lam = jnp.full((model.n_hidden,), 0.5, model.W.dtype)
  else:
    data = R.check_visible(model, data, "data")
    mu = jnp.mean(model.visible.scaled(data, model.log_sigma_v), axis=0)
    lam = jnp.mean(model.hidden.scaled(R.hidden_mean(model, data), model.log_sigma_h), axis=0)
  zero = CenteredRBM(model, jnp.zeros_like(mu), jnp.zeros_like(lam))
  return shift(zero, mu, lam)


def hidden_mean(model: CenteredRBM, v: Array) -> Array:
  """``E[h | v]`` of the centered model: ``[..., n_visible] -> [..., n_hidden]``."""
  return base.conditional_mean(model, (v, None), 1)
