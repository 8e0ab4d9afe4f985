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
the contrastive trainer (:func:`jdbn.train.variants.centered`) work on it as they are;
:func:`uncentered` gives the equivalent :class:`~jdbn.rbm.RBM` for everything RBM-specific.

:class:`CenteredDBM` is the same for a Deep Boltzmann Machine (Melchior et al. 2016, section 4;
Montavon & Müller 2012), one offset per layer:

    E = sum_l E_l(x_l; a_l, sigma_l) - sum_l (s_l(x_l) - mu_l)^T W_l (s_{l+1}(x_{l+1}) - mu_{l+1}).

It is a :class:`~jdbn.models.dbm.DBM` whose layers enter the couplings less their offsets, so
mean-field, the samplers and the DBM trainer (:func:`jdbn.train.dbm.centered`) take it as they
are; :func:`uncentered` gives the equivalent DBM (biases ``a_l - W_l mu_{l+1} - W_{l-1}^T
mu_{l-1}``; a Gaussian layer's shift is scaled by its sigma), whose energy is the centered one
plus ``sum_l mu_l^T W_l mu_{l+1}``, the same constant for every state. :func:`shift` and
:func:`center` take either model.
"""

from __future__ import annotations

from typing import Optional, Union

import jax
import jax.numpy as jnp
from flax import struct

from jdbn import units as U
from jdbn.models import base
from jdbn.models import dbm as D
from jdbn.models import rbm as R

Array = jax.Array

__all__ = ["CenteredDBM", "CenteredRBM", "center", "hidden_mean", "shift", "uncentered"]


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


def uncentered(model: Union[CenteredRBM, "CenteredDBM"]) -> Union[R.RBM, D.DBM]:
  """The ordinary model with the same distribution: an RBM with biases ``b - W lambda`` and
  ``c - W^T mu``, or a DBM with biases ``a_l - W_l mu_{l+1} - W_{l-1}^T mu_{l-1}`` (a Gaussian
  layer's change times its sigma)."""
  if isinstance(model, CenteredDBM):
    return model.uncentered()
  return _moved_rbm(model.rbm, -model.mu, -model.lam)


def _moved_rbm(r: R.RBM, d_mu: Array, d_lam: Array) -> R.RBM:
  """The RBM's biases after its offsets move by ``d_mu``, ``d_lam``: ``b + W d_lam``, ``c + W^T
  d_mu``, each scaled by its layer's sigma where that is a learned Gaussian's."""
  return r.replace(b=r.b + _bias_step(r.visible, r.W @ d_lam, r.log_sigma_v),
                   c=r.c + _bias_step(r.hidden, d_mu @ r.W, r.log_sigma_h))


def shift(model: Union[CenteredRBM, "CenteredDBM"], *offsets: Array):
  """New offsets, one per layer, the biases changed so that the distribution is exactly the same.

  An RBM's ``shift(model, mu, lam)``: ``b' = b + W (lambda' - lambda)`` and ``c' = c + W^T (mu' -
  mu)`` keep ``b - W lambda`` and ``c - W^T mu`` (Melchior et al. 2016, algorithm 1). A DBM's
  ``shift(model, mu_0, ..., mu_L)``: ``a_l' = a_l + W_l (mu'_{l+1} - mu_{l+1}) + W_{l-1}^T
  (mu'_{l-1} - mu_{l-1})``.
  """
  if isinstance(model, CenteredDBM):
    if len(offsets) != len(model.offsets):
      raise ValueError(f"a {len(model.offsets)}-layer DBM needs {len(model.offsets)} offsets, got "
                       f"{len(offsets)}")
    offsets = tuple(jnp.asarray(o, b.dtype) for o, b in zip(offsets, model.biases))
    delta = tuple(new - old for new, old in zip(offsets, model.offsets))
    return model.replace(biases=_moved_biases(model, delta), offsets=offsets)
  if len(offsets) != 2:
    raise ValueError(f"an RBM's shift takes two offsets (mu, lam), got {len(offsets)}")
  mu, lam = offsets
  return CenteredRBM(_moved_rbm(model.rbm, mu - model.mu, lam - model.lam), mu, lam)


def center(model: Union[R.RBM, D.DBM], data: Optional[Array] = None):
  """The centered form of an RBM or a DBM, the same distribution.

  The offsets are the data's mean scaled visible state and the mean of ``E[s_h | v]`` over it
  (an RBM) or of the mean-field posterior's scaled means (a DBM: :func:`center_dbm`), where
  Melchior et al. (2016) start, or 0.5 (binary units' midpoint) without data.
  """
  if isinstance(model, D.DBM):
    return center_dbm(model, data)
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


# ----------------------------------------------------------------------------- DBMs


@struct.dataclass
class CenteredDBM(D.DBM):
  """A DBM with offsets: ``offsets = (mu_0, ..., mu_L)``, ``mu_l: [n_l]``, the offsets of every
  layer's scaled states (held fixed by the gradient); the other fields are the DBM's."""
  offsets: tuple

  def _scaled(self, states, l):
    return super()._scaled(states, l) - jax.lax.stop_gradient(self.offsets[l])

  def uncentered(self) -> D.DBM:
    """The equivalent :class:`~jdbn.models.dbm.DBM`: the offsets moved into the biases."""
    neg = tuple(-o for o in self.offsets)
    return D.DBM(self.weights, _moved_biases(self, neg), self.log_sigmas, self.units)


def _bias_step(units: U.Units, c: Array, log_sigma: Optional[Array]) -> Array:
  """The bias change that adds ``c`` to a layer's field (``sigma c`` for a Gaussian layer)."""
  if isinstance(units, U.Gaussian):
    return c if log_sigma is None else c * jnp.exp(log_sigma)
  if isinstance(units, (U.Bernoulli, U.Softmax)):
    return c
  raise ValueError(f"centering needs Bernoulli, Softmax or Gaussian layers, got "
                   f"{type(units).__name__}")


def _moved_biases(model: D.DBM, delta: tuple) -> tuple:
  """The biases after offsets move by ``delta``: each layer's field from ``delta`` added."""
  out = []
  for l, a in enumerate(model.biases):
    c = jnp.zeros_like(a)
    if l > 0:
      c = c + delta[l - 1] @ model.weights[l - 1]
    if l < len(model.weights):
      c = c + model.weights[l] @ delta[l + 1]
    out.append(a + _bias_step(model.units[l], c, model.log_sigmas[l]))
  return tuple(out)


def center_dbm(model: D.DBM, data: Optional[Array] = None, *, tol: float = 1e-6,
               max_iter: int = 100, batch_size: int = 1000) -> CenteredDBM:
  """The centered form of a DBM, the same distribution.

  Args:
    model: a DBM (Bernoulli, Softmax or Gaussian layers).
    data: ``[n, n_visible]``: the visible offset is the data's mean scaled state, each hidden
      layer's the mean of its mean-field posterior over the data (computed in batches of
      ``batch_size`` with ``tol``, ``max_iter``); without data every offset is 0.5.

  Returns:
    A :class:`CenteredDBM` whose :func:`uncentered` is ``model``'s distribution.
  """
  model = model.uncentered()
  for u in model.units:
    _bias_step(u, jnp.zeros(()), None)  # refuses other families early
  if data is None:
    offsets = tuple(jnp.full((n,), 0.5, b.dtype) for n, b in zip(model.sizes, model.biases))
  else:
    data = jnp.asarray(data, model.biases[0].dtype)
    if data.ndim != 2 or data.shape[0] == 0:
      raise ValueError(f"data must have shape [n, {model.sizes[0]}] with n >= 1, got "
                       f"{tuple(data.shape)}")
    offsets = _posterior_means(model, data, tol, int(max_iter), int(batch_size))
  zero = CenteredDBM(model.weights, model.biases, model.log_sigmas, model.units,
                     tuple(jnp.zeros_like(o) for o in offsets))
  return shift(zero, *offsets)


def _posterior_means(model: D.DBM, data: Array, tol: float, max_iter: int,
                     batch_size: int) -> tuple:
  """The mean over ``data`` of every layer's scaled mean-field state: ``([n_0], ..., [n_L])``."""
  run = jax.jit(lambda m, v: tuple(
      jnp.sum(u.scaled(q, s), axis=0) for u, q, s in zip(
          m.units, D.mean_field(m, v, tol=tol, max_iter=max_iter).states, m.log_sigmas)))
  sums = None
  for start in range(0, data.shape[0], batch_size):
    part = run(model, data[start:start + batch_size])
    sums = part if sums is None else tuple(a + b for a, b in zip(sums, part))
  return tuple(s / data.shape[0] for s in sums)
