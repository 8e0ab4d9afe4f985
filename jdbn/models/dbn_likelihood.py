"""A DBN's layer conditionals and the variational lower bound on its log-likelihood.

:func:`generative_nll` and :func:`recognition_nll` are ``-log p(h_{l-1} | h_l)`` and
``-log q(h_l | h_{l-1})`` of one layer of a :mod:`jdbn.models.dbn` stack (up-down fine-tuning,
:mod:`jdbn.train.updown_step`, trains on them); :func:`log_likelihood_bound` is Salakhutdinov &
Murray's (2008) bound on ``log p(v)`` built from them and the top RBM's free energy. Re-exported
by :mod:`jdbn.dbn`.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jdbn import units as U
from jdbn.models import rbm as R
from jdbn.models.dbn import DBN, _parts, _top_visible, label_free_energies, n_labels

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


# --------------------------------------------------------------------------- layer conditionals


def _nll(units: U.Units, x: Array, phi: Array, bias: Array,
         log_sigma: Optional[Array]) -> Array:
  """``-log p(x | phi)`` for a layer of one family: ``[..., n] -> [...]``.

  ``p(x | phi) = exp(-E_x(x) + s_x(x) . phi - A(phi))`` with ``A`` the family's log-partition,
  so this is ``E_x(x) - s_x(x) . phi + A(phi)``: the cross-entropy ``-x log p - (1-x) log(1-p)``
  for Bernoulli units, whose gradient with respect to ``phi`` is ``E[x | phi] - x`` (the delta
  rule).
  """
  return (units.energy(x, bias, log_sigma) - jnp.sum(units.scaled(x, log_sigma) * phi, axis=-1) +
          units.log_partition(phi, bias, log_sigma))


def generative_nll(params: R.RBM, lower: Array, upper: Array) -> Array:
  """``-log p(lower | upper)`` under a layer's generative (top-down) connections: ``-> [...]``."""
  return _nll(params.visible, lower, R.visible_field(params, upper), params.b,
              params.log_sigma_v)


def recognition_nll(params: R.RBM, upper: Array, lower: Array) -> Array:
  """``-log q(upper | lower)`` under a layer's recognition (bottom-up) connections: ``-> [...]``."""
  return _nll(params.hidden, upper, R.hidden_field(params, lower), params.c, params.log_sigma_h)


# --------------------------------------------------------------------------- likelihood bound


def log_likelihood_bound(key: Array,
                         model: DBN,
                         v: ArrayLike,
                         log_z: ArrayLike,
                         *,
                         n_samples: int = 10,
                         labels: Optional[ArrayLike] = None) -> Array:
  """Variational lower bound on ``log p(v)`` of a DBN (Salakhutdinov & Murray 2008, section 5).

  With the approximate posterior ``Q(h_1..h_m | v) = prod_l q(h_l | h_{l-1})`` given by the
  recognition (bottom-up) conditionals and the generative model
  ``p(v, h_1..h_m) = prod_l p(h_{l-1} | h_l) p_top(h_m)``,

      log p(v) >= E_Q[ log p(v, h_1..h_m) - log Q(h_1..h_m | v) ]
                = E_Q[ sum_l (log p(h_{l-1} | h_l) - log q(h_l | h_{l-1})) - F_top(h_m) ] - log Z

  (``-F_top`` marginalises the label units when the top RBM has them: ``logsumexp_k
  -F(h_m, e_k)``; with ``labels`` it is the bound on ``log p(v, label)`` instead). For the 2-layer
  DBN of the paper this is its equation (17); more layers chain the same way. The expectation is
  a Monte Carlo average over ``n_samples`` draws from ``Q``; for Bernoulli/Softmax recognition
  units ``E_q[-log q]`` given the layer below is replaced by the exact conditional entropy (a
  Rao-Blackwellisation). ``log_z`` is the top RBM's log partition function, exact
  (:func:`jdbn.likelihood.exact_log_z`) or estimated by AIS (``jdbn.likelihood.ais``); with an AIS
  estimate the result is a stochastic bound (Salakhutdinov & Murray report it the same way).

  Args:
    key: PRNG key.
    model: a DBN (tied or untied).
    v: ``[batch, n_visible]`` data.
    log_z: scalar log partition function of the top RBM (over all of its visible units, labels
      included).
    n_samples: draws from ``Q`` per example.
    labels: optional ``[batch]`` labels (top RBM with label units).

  Returns:
    ``[batch]`` lower bounds in nats (exactly ``log p(v)`` for a one-layer DBN).
  """
  rec, gen, top = _parts(model)
  v = jnp.asarray(v, top.W.dtype)
  if labels is not None and not n_labels(top):
    raise ValueError("labels given but the top RBM has no label units")
  if not isinstance(n_samples, int) or n_samples < 1:
    raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
  one = lambda k: _bound_sample(k, rec, gen, top, v, labels)  # noqa: E731
  return jnp.mean(jax.vmap(one)(jax.random.split(key, n_samples)), axis=0) - log_z


def _bound_sample(key: Array, rec: tuple, gen: tuple, top: R.RBM, v: Array,
                  labels: Optional[ArrayLike]) -> Array:
  """One draw ``h_1..h_m ~ Q(. | v)`` of the bound's integrand, before ``- log Z``: ``[batch]``.

  ``sum_l (log p(h_{l-1} | h_l) - log q(h_l | h_{l-1}))`` (the ``-log q`` terms Rao-Blackwellised
  for Bernoulli/Softmax units, see :func:`_recognition_step`) plus the top RBM's ``-F_top(h_m)``.
  """
  x, total = v, jnp.zeros(v.shape[:-1], v.dtype)
  m = len(rec)
  for l, kl in zip(range(m), jax.random.split(key, m) if m else []):
    h, neg_log_q = _recognition_step(kl, rec[l], x)
    total = total - generative_nll(gen[l], x, h) + neg_log_q
    x = h
  return total + _top_log_marginal(top, x, labels)


def _recognition_step(key: Array, p: R.RBM, x: Array) -> tuple[Array, Array]:
  """A sample ``h ~ q(h | x)`` of one recognition layer and its ``-log q(h | x)``.

  Args:
    key: PRNG key.
    p: the layer's recognition RBM.
    x: ``[batch, n_visible]`` states of the layer below.

  Returns:
    ``(h [batch, n_hidden], [batch])``; for units whose energy is linear in the state
    (Bernoulli, Softmax) the second is ``-log q`` at the mean, the exact conditional entropy.
  """
  phi = R.hidden_field(p, x)
  h = p.hidden.sample(key, phi, p.c, p.log_sigma_h)
  mean = p.hidden.mean(phi, p.c, p.log_sigma_h)
  return h, _nll(p.hidden, mean if p.hidden.linear_energy else h, phi, p.c, p.log_sigma_h)


def _top_log_marginal(top: R.RBM, x: Array, labels: Optional[ArrayLike]) -> Array:
  """``-F_top`` of the penultimate states ``x: [batch, n_pen]``: ``[batch]``.

  Label units, if any and ``labels`` is ``None``, are summed out (``logsumexp_k -F(x, e_k)``);
  with ``labels`` they are clamped to them.
  """
  if n_labels(top) and labels is None:
    return jax.nn.logsumexp(-label_free_energies(top, x), axis=-1)
  return -R.free_energy(top, _top_visible(top, x, labels))
