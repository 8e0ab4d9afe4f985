"""The DBM's test-set estimate: the mean-field variational lower bound with an AIS ``log Z``.

Salakhutdinov & Hinton (2009), section 4: ``log p(v) >= -E(v, q) + H(q) - log Z`` with ``q`` the
mean-field posterior (:func:`jdbn.models.dbm.lower_bound`) and ``log Z`` from AIS over the DBM's
tempered copy (:func:`jdbn.likelihood.annealing.ais_model`). As in the paper, the runs move over
the odd layers (``h1``, ``h3`` ...) with the even ones (``v``, ``h2`` ...) summed out analytically,
from a base model whose odd layers have the mean activations of the mean-field posteriors on the
training data: the wide visible and top layers then never have to be annealed as states (keeping
``h2`` as a state from a uniform base left a 784-500-1000 model's 100 runs with an effective
sample size of 1). The
paper's figure for a 784-500-1000 DBM on MNIST is -84.62 nats. AIS's ``log Z`` is unbiased in
``Z``, so it errs low and the bound it gives errs high; the ±3 standard-error bounds of ``log Z``
turn into the interval reported here.

A DBM with a label block (the paper's MNIST model) is annealed class by class: ``Z = sum_c
exp(b_c) Z_c``, with ``Z_c`` the partition function of the DBM below the labels with the label
``c`` clamped (its top hidden layer's biases shifted by the label's weights). No run then has to
move between classes, which the labels' strong coupling to the top layer makes rare; the cost is
the same number of runs, split over the classes.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jdbn.likelihood import annealing
from jdbn.models import dbm as D

Array = jax.Array


class BoundEstimate(NamedTuple):
  """The result of :func:`variational_bound`; nats per example.

  Attributes:
    mean: ``mean_i(-E(v_i, q_i) + H(q_i)) - log Z_AIS``.
    lower, upper: the same with AIS's ``log_z_upper`` and ``log_z_lower``.
    per_example: ``[n]`` bounds with ``log Z_AIS``.
    ais: the :class:`~jdbn.likelihood.annealing.AISResult` behind them.
    mean_field_converged: fraction of batches whose mean-field met its tolerance.
  """
  mean: Array
  lower: Array
  upper: Array
  per_example: Array
  ais: annealing.AISResult
  mean_field_converged: float


def _odd_base_rates(model: D.DBM, x: Array, tol: float, max_iter: int, batch_size: int) -> tuple:
  """Base biases of the odd layers matching the mean of their mean-field posteriors on ``x``."""
  x = jnp.asarray(x, model.biases[0].dtype)
  run = jax.jit(lambda m, v: D.mean_field(m, v, tol=tol, max_iter=max_iter).states)
  sums = None
  for start in range(0, x.shape[0], batch_size):
    q = run(model, x[start:start + batch_size])
    part = [jnp.sum(q[l], axis=0) for l in model.schedule[0]]
    sums = part if sums is None else [a + b for a, b in zip(sums, part)]
  means = {l: (s / x.shape[0])[None] for l, s in zip(model.schedule[0], sums)}
  return annealing.base_rates(model, means)


@functools.partial(jax.jit, static_argnames=("tol", "max_iter"))
def _unnormalised(model: D.DBM, v: Array, tol: float, max_iter: int):
  res = D.mean_field(model, v, tol=tol, max_iter=max_iter)
  return D.lower_bound(model, res.states, 0.0), res.converged


def class_conditioned(model: D.DBM, c: int) -> D.DBM:
  """The DBM below ``model``'s label block with the label clamped at class ``c``: the top hidden
  layer's biases shifted by the label's weights. ``Z = sum_c exp(b_c) Z(class_conditioned(c))``
  with ``b`` the label block's biases."""
  w, b = model.weights, model.biases
  top = b[-2] + w[-1][:, c]
  return D.DBM(w[:-1], (*b[:-2], top), model.log_sigmas[:-1], model.units[:-1])


def _ais_by_class(key: Array, model: D.DBM, n_chains: int, betas, base) -> annealing.AISResult:
  """``log Z`` of a labelled DBM as ``logsumexp_c(b_c + log Z_c)``, each ``Z_c`` by AIS with
  ``ceil(n_chains / n_classes)`` runs. The pooled result's weights are the runs' ``exp(b_c) Z0_c
  w_i`` times ``n_classes``, so that their mean is the estimate of ``Z`` and its standard error
  (which counts the spread between classes too) is conservative."""
  n_classes = model.sizes[-1]
  per_class = -(-n_chains // n_classes)
  log_w = []
  for c in range(n_classes):
    sub = class_conditioned(model, c)
    res = annealing.ais_model(jax.random.fold_in(key, c), sub, n_chains=per_class, betas=betas,
                              base_biases=base[:-1], summed=sub.schedule[1])
    log_w.append(res.log_w + res.log_z_base + model.biases[-1][c] + np.log(n_classes))
  return annealing.summarise(jnp.concatenate(log_w), jnp.zeros(()))


def variational_bound(key: Array, model: D.DBM, data: Array, *,
                      base_data: Optional[Array] = None, n_chains: int = 100,
                      betas: Optional[Array] = None, tol: float = 1e-6, max_iter: int = 100,
                      batch_size: int = 1000) -> BoundEstimate:
  """The mean variational lower bound on ``log p(v)`` over ``data``, ``log Z`` by AIS.

  Args:
    key: PRNG key for AIS.
    model: DBM params (Bernoulli or Softmax hidden layers); a centered DBM is scored as its
      uncentered equivalent.
    data: ``[n, n_visible]`` examples to score (the test set).
    base_data: data for the AIS base rates of the visible layer (the training set; default
      ``data``).
    n_chains, betas: AIS runs and schedule (default 100 runs, Salakhutdinov & Murray's 14,500
      temperatures); with a label block, ``ceil(n_chains / n_classes)`` runs per class.
    tol, max_iter: mean-field stopping change and sweep cap.
    batch_size: examples per mean-field batch.

  Returns:
    A :class:`BoundEstimate`.
  """
  if not isinstance(model, D.DBM):
    raise TypeError(f"variational_bound needs a jdbn.models.dbm.DBM, got {type(model).__name__}")
  model = model.uncentered()  # a CenteredDBM: its uncentered equivalent, the same distribution
  data = jnp.asarray(data, model.biases[0].dtype)
  if data.ndim != 2 or data.shape[1] != model.sizes[0] or data.shape[0] == 0:
    raise ValueError(f"data must have shape [n, {model.sizes[0]}] with n >= 1, got "
                     f"{tuple(data.shape)}")
  base = _odd_base_rates(model, data if base_data is None else base_data, tol, max_iter,
                         batch_size)
  if D.has_label_block(model):
    res = _ais_by_class(key, model, n_chains, betas, base)
  else:
    res = annealing.ais_model(key, model, n_chains=n_chains, betas=betas, base_biases=base,
                              summed=model.schedule[1])
  parts, ok = [], []
  for start in range(0, data.shape[0], batch_size):
    bound, converged = _unnormalised(model, data[start:start + batch_size], float(tol),
                                     int(max_iter))
    parts.append(bound)
    ok.append(bool(converged))
  unnorm = jnp.concatenate(parts)
  mean = jnp.mean(unnorm)
  return BoundEstimate(mean - res.log_z, mean - res.log_z_upper, mean - res.log_z_lower,
                       unnorm - res.log_z, res, float(np.mean(ok)))
