"""A DBN's test-set estimate: Salakhutdinov & Murray's (2008) bound, the top RBM's log Z by AIS.

:func:`top_ais` estimates the top RBM's ``log Z`` by AIS, its base rates taken from training data
carried up to the top (the penultimate layer's mean-field activations, joined by the one-hot
labels when the top RBM has label units); :func:`log_likelihood_bounds` is the variational lower
bound on ``log p(v)`` of every example (:func:`jdbn.models.dbn_likelihood.log_likelihood_bound`),
in jitted chunks. Both ``jdbn evaluate`` on a DBN and the 2006 DBN reproduction report their
mean, with AIS's ±3 standard-error interval of ``log Z`` carried through. ::

    res = top_ais(k_ais, dbn, train_x[:10_000], train_y[:10_000], betas=default_betas())
    lower = log_likelihood_bounds(k_bound, dbn, binary_test_x, res.log_z)      # [n]
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jdbn.likelihood import rbm as LR
from jdbn.likelihood.annealing import AISResult
from jdbn.models import dbn as D
from jdbn.models.dbn_likelihood import log_likelihood_bound

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


def top_data(model: D.DBN, x: ArrayLike, labels: Optional[ArrayLike] = None) -> Array:
  """``x`` carried to the top RBM's visible layer: ``[n, n_penultimate (+ n_labels)]``.

  The mean-field up pass (:func:`jdbn.models.dbn.penultimate`), joined by ``one_hot(labels)``
  when the top RBM has label units.
  """
  pen = D.penultimate(model, x)
  n_lab = D.n_labels(model)
  if not n_lab:
    return pen
  if labels is None:
    raise ValueError("the top RBM has label units: give the labels of x")
  return jnp.concatenate([pen, jax.nn.one_hot(jnp.asarray(labels), n_lab)], -1)


def top_ais(key: Array, model: D.DBN, x: ArrayLike, labels: Optional[ArrayLike] = None, *,
            n_chains: int = 100, betas: Optional[ArrayLike] = None) -> AISResult:
  """AIS estimate of the top RBM's ``log Z`` (:func:`jdbn.likelihood.rbm.ais`).

  Args:
    key: PRNG key.
    model: a DBN (tied or untied).
    x: ``[n, n_visible]`` training data for the base rates (e.g. 10,000 training images).
    labels: ``[n]`` their labels, when the top RBM has label units.
    n_chains: AIS runs.
    betas: the inverse temperatures (default Salakhutdinov & Murray's 14,501).

  Returns:
    The :class:`~jdbn.likelihood.annealing.AISResult` of the top RBM.
  """
  _, _, top = D._parts(model)  # pylint: disable=protected-access
  return LR.ais(key, top, n_chains=n_chains, betas=betas, data=top_data(model, x, labels))


@functools.partial(jax.jit, static_argnames="n_samples")
def _bounds(key, model, v, log_z, n_samples):
  return log_likelihood_bound(key, model, v, log_z, n_samples=n_samples)


def log_likelihood_bounds(key: Array, model: D.DBN, v: ArrayLike, log_z: ArrayLike, *,
                          n_samples: int = 10, batch_size: int = 1000) -> Array:
  """The lower bound on ``log p(v_i)`` of every example, ``batch_size`` examples at a time.

  Chunk ``v[i:i + batch_size]`` uses the key ``fold_in(key, i)``; see
  :func:`jdbn.models.dbn_likelihood.log_likelihood_bound` for the bound.

  Args:
    key: PRNG key.
    model: a DBN.
    v: ``[n, n_visible]`` binary data (e.g. a stochastic binarisation of the test images).
    log_z: the top RBM's ``log Z`` (from :func:`top_ais`).
    n_samples: draws from the recognition posterior per example.
    batch_size: examples per jitted call.

  Returns:
    ``[n]`` bounds in nats; subtract ``log_z_upper - log_z`` (add ``log_z - log_z_lower``) for
    the ends of AIS's interval.
  """
  v = jnp.asarray(v)
  return jnp.concatenate([_bounds(jax.random.fold_in(key, i), model, v[i:i + batch_size],
                                  log_z, n_samples)
                          for i in np.arange(0, v.shape[0], batch_size).tolist()])
