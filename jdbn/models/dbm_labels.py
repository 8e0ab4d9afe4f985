"""Classification with a DBM's label block: the label posterior ``p(y | v)``, approximated.

A DBM ``v - h1 - ... - h_{L-1} - y`` whose top layer ``y`` is one :class:`jdbn.units.Softmax`
group of ``n_classes`` units (Salakhutdinov & Hinton 2009, the MNIST model) is a joint model
``p(v, y)``; the hidden layers cannot be summed out, so ``p(y | v)`` is approximated, two ways:

* ``"bound"`` (the default): for every class ``c``, mean-field with ``v`` and ``y = c`` both
  clamped gives the variational lower bound (Salakhutdinov & Hinton 2009, eq. 7)

      log p(v, y=c) >= B_c - log Z,    B_c = -E(v, q_c, c) + H(q_c)      (:func:`class_bounds`)

  and ``q(c | v) = softmax_c B_c``, in which ``log Z`` cancels: the DBM's counterpart of a
  classification RBM's ``p(y | x) ∝ exp(-F(x, y))`` (Larochelle & Bengio 2008). With gaps
  ``g_c = log p(v, c) - (B_c - log Z) >= 0``, ``|log q(c | v) - log p(c | v)| <= max_c g_c -
  min_c g_c``: exact when the hidden posterior is nearly deterministic. One mean-field run per
  class (all classes in one batched run).
* ``"mean_field"``: one mean-field run with ``v`` clamped and the label block free, which is
  then a factor ``q(y | v)`` of the posterior like any hidden layer (how Goodfellow et al. 2013
  read a DBM's class off). Cheaper by ``n_classes``, and cruder: the factorisation cuts the
  labels' dependence on the hidden layers, and strong label couplings lock the free labels in
  (on the near-deterministic 6-4-3-label(3) model of the tests its argmax agrees with the exact
  one on 31% of the inputs, the bound's on all of them).

Training with the labels clamped in the positive phase: ``jdbn.train.dbm.pcd(..., labels=True)``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jdbn.models import dbm as D

Array = jax.Array

__all__ = ["METHODS", "class_bounds", "classify", "label_log_probs", "n_classes"]

#: The label-posterior approximations of :func:`label_log_probs` (the first is the default).
METHODS = ("bound", "mean_field")


def n_classes(model: D.DBM) -> int:
  """The size of ``model``'s label block; ``ValueError`` if it has none (see
  :func:`jdbn.models.dbm.label_states`)."""
  D.label_states(model, 0, ())
  return model.sizes[-1]


def class_bounds(model: D.DBM, v: Array, *, tol: float = 1e-6, max_iter: int = 100) -> Array:
  """``B_c = -E(v, q_c, c) + H(q_c)`` for every class: ``[..., n_visible] -> [..., n_classes]``.

  ``q_c`` is :func:`jdbn.models.dbm.mean_field` with ``v`` and the labels ``c`` clamped, so
  ``B_c - log Z`` is a lower bound on ``log p(v, y=c)`` (a centered DBM is scored as its
  uncentered equivalent, whose ``log Z`` to use). All classes run as one batch of mean-field
  iterations, stopped when every one has met ``tol`` or after ``max_iter`` sweeps.
  """
  n = n_classes(model)
  model = model.uncentered()
  v = jnp.asarray(v, model.biases[0].dtype)
  vs = jnp.broadcast_to(v, (n,) + v.shape)
  ys = jnp.broadcast_to(jnp.arange(n).reshape((n,) + (1,) * (v.ndim - 1)), vs.shape[:-1])
  res = D.mean_field(model, vs, labels=ys, tol=tol, max_iter=max_iter)
  return jnp.moveaxis(D.lower_bound(model, res.states, 0.0), 0, -1)


def label_log_probs(model: D.DBM, v: Array, *, method: str = "bound", tol: float = 1e-6,
                    max_iter: int = 100) -> Array:
  """``log q(y | v)``, normalised over the classes: ``[..., n_visible] -> [..., n_classes]``.

  Args:
    model: a DBM with a label block.
    v: data.
    method: ``"bound"`` (default, ``log_softmax`` of :func:`class_bounds`) or ``"mean_field"``
      (the label block's factor of the mean-field posterior given ``v``); see the module
      docstring.
    tol, max_iter: mean-field's stopping change and sweep cap.
  """
  if method == "bound":
    return jax.nn.log_softmax(class_bounds(model, v, tol=tol, max_iter=max_iter), axis=-1)
  if method == "mean_field":
    n_classes(model)
    top = len(model.sizes) - 1
    states = D.mean_field(model, v, tol=tol, max_iter=max_iter).states
    return jax.nn.log_softmax(model.bias(top) + model.field(states, top), axis=-1)
  raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def classify(model: D.DBM, v: Array, *, method: str = "bound", tol: float = 1e-6,
             max_iter: int = 100, batch_size: int = 1000) -> Array:
  """The most probable class under :func:`label_log_probs`: ``[..., n_visible] -> [...]`` int32.

  Runs jitted, ``batch_size`` examples at a time (``method="bound"`` holds ``n_classes`` copies
  of a batch's mean-field states).
  """
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
    raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
  n_classes(model)
  v = D._check_data(model, v)  # pylint: disable=protected-access
  flat = v.reshape(-1, v.shape[-1])
  parts = [_argmax(model, flat[i:i + batch_size], method, tol, max_iter)
           for i in range(0, flat.shape[0], batch_size)]
  out = jnp.concatenate(parts) if parts else jnp.zeros((0,), jnp.int32)
  return out.reshape(v.shape[:-1])


@functools.partial(jax.jit, static_argnames=("method", "tol", "max_iter"))
def _argmax(model: D.DBM, v: Array, method: str, tol: float, max_iter: int) -> Array:
  log_p = label_log_probs(model, v, method=method, tol=tol, max_iter=max_iter)
  return jnp.argmax(log_p, axis=-1).astype(jnp.int32)
