"""Training a Deep Boltzmann Machine: mean-field positive phase, persistent chains, Optax.

Salakhutdinov & Hinton (2009), section 3: the data-dependent expectations come from the
mean-field posterior ``q(h | v)`` (:func:`jdbn.models.dbm.mean_field`, iterated to a tolerance
from the bottom-up pass), the model's from persistent chains of the even/odd block-Gibbs sampler
("fantasy particles", a few sweeps per update). Both plug into the generic contrastive trainer
(:func:`jdbn.train.contrastive.trainer`): the surrogate ``mean E(v, q) - mean E(negatives)`` has
the gradient ``-<s_l s_{l+1}^T>_q + <s_l s_{l+1}^T>_model`` for every weight matrix, and any
Optax transformation (momentum, decay, a decaying rate) applies it. Example::

    model = jdbn.models.dbm.init(key, (784, 500, 1000))
    trainer = jdbn.train.dbm.pcd(optax.sgd(0.005, momentum=0.9), n_chains=100, k=5)
    state = trainer.init(key_init, model)
    for e in range(epochs):
      state, info = trainer.epoch(jax.random.fold_in(key, e), state, train_x, 100)
    report = jdbn.train.dbm.mean_field_report(state.params, valid_x)

:func:`mean_field_report` is the monitoring a DBM needs: how many sweeps mean-field takes and
whether it met its tolerance (a run whose posterior stops converging is reported, never silent).
:func:`centered` trains a :class:`~jdbn.models.centered.CenteredDBM` (offsets that follow the
positive phase's means), which Melchior et al. (2016) train without greedy pretraining.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdbn.models import centered as CM
from jdbn.models import dbm as D
from jdbn.train import contrastive
from jdbn.train import phases as PH

Array = jax.Array


def mean_field_phase(tol: float = 1e-6, max_iter: int = 30, init: str = "bottom_up",
                     labels: bool = False) -> Callable[..., PH.Positive]:
  """The positive phase ``(key, model, batch) -> Positive`` of :func:`jdbn.models.dbm.mean_field`.

  The key is not used (mean-field is deterministic). ``max_iter`` caps the sweeps per update;
  the paper's code runs to a change of 1e-7, capped, and so does this. With ``labels=True`` a
  batch is a pair ``(x, y)``, ``y`` class indices ``[batch]`` or one-hot ``[batch, n_classes]``,
  and the label block is clamped at ``y`` as well: the states are ``(x, q(h | x, y), y)``.
  """
  if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
    raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
  if not isinstance(labels, bool):
    raise TypeError(f"labels must be True or False, got {labels!r}")

  def positive(key, model, batch):
    del key
    if not isinstance(model, D.DBM):
      raise TypeError(f"the mean-field phase needs a jdbn.models.dbm.DBM, got {type(model)}")
    x, y = contrastive.split_batch(batch)
    if labels and y is None:
      raise ValueError("a trainer built with labels=True takes (x, labels) batches")
    if y is not None and not labels:
      raise ValueError("(x, labels) batches need a trainer built with labels=True")
    return PH.Positive(D.mean_field(model, x, labels=y, tol=tol, max_iter=int(max_iter),
                                    init=init).states)

  return positive


def _with_labels(trainer: contrastive.Trainer) -> contrastive.Trainer:
  """``trainer`` whose ``init`` checks that the model has a label block and whose ``epoch``
  checks concrete labels (range, one-hot) before its ``jit``, where they no longer can be."""

  def init(key, params):
    D.label_states(params, 0, ())
    return trainer.init(key, params)

  def epoch(key, state, data, batch_size, *, metrics=True, check=True):
    x, y = contrastive.split_batch(data)
    if y is None:
      raise ValueError("a trainer built with labels=True takes (data, labels)")
    if check and not isinstance(y, jax.core.Tracer):
      D.label_states(state.params, y, jnp.shape(x)[:1])
    return trainer.epoch(key, state, data, batch_size, metrics=metrics, check=check)

  return trainer._replace(init=init, epoch=epoch)


def pcd(optimizer: optax.GradientTransformation,
        *,
        n_chains: int = 100,
        k: int = 5,
        tol: float = 1e-6,
        max_iter: int = 30,
        labels: bool = False) -> contrastive.Trainer:
  """Joint DBM training: mean-field positive phase, ``n_chains`` persistent chains of ``k`` sweeps.

  With ``labels=True`` the model's top layer is a label block (one Softmax group, e.g.
  ``units=(..., jdbn.units.Softmax(10))``), the data are pairs ``(x, y)`` (``epoch(key, state,
  (x, y), batch_size)``, ``y`` class indices ``[n]`` or one-hot ``[n, n_classes]``) and the
  positive phase clamps the labels as well as ``x`` (Salakhutdinov & Hinton 2009's MNIST model);
  the persistent chains run free over every layer, the labels included, so the model learns
  ``p(x, y)``. Classify with :func:`jdbn.models.dbm_labels.classify`.

  Args:
    optimizer: any Optax transformation (the paper: SGD with momentum, a decaying rate).
    n_chains: persistent chains ("fantasy particles"; the paper uses 100), started from the
      model's base rates.
    k: even/odd Gibbs sweeps per update (the paper: 5).
    tol, max_iter: mean-field stopping change and sweep cap per update.
    labels: whether batches are ``(x, labels)`` pairs whose labels the positive phase clamps.

  Returns:
    A :class:`jdbn.train.contrastive.Trainer` (``init``, ``update``, ``epoch``).
  """
  if isinstance(n_chains, bool) or not isinstance(n_chains, (int, np.integer)) or n_chains < 1:
    raise ValueError(f"n_chains must be a positive int, got {n_chains!r}")
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
    raise ValueError(f"k (Gibbs sweeps per update) must be a positive int, got {k!r}")
  phases = PH.Phases(mean_field_phase(tol, max_iter, labels=labels),
                     PH.persistent(int(k), int(n_chains)), PH.energy_score)
  config = {"algorithm": "dbm-pcd", "k": int(k), "n_chains": int(n_chains), "tol": float(tol),
            "max_iter": int(max_iter), **({"labels": True} if labels else {})}
  trainer = contrastive.trainer(optimizer, phases, config)
  return _with_labels(trainer) if labels else trainer


def centered(optimizer: optax.GradientTransformation,
             *,
             n_chains: int = 100,
             k: int = 5,
             tol: float = 1e-6,
             max_iter: int = 30,
             offset_rate: float = 0.01,
             labels: bool = False) -> contrastive.Trainer:
  """:func:`pcd` on a :class:`~jdbn.models.centered.CenteredDBM` (Melchior, Fischer & Wiskott
  2016, algorithm 2; Montavon & Müller 2012).

  The gradient is ``jax.grad`` of the centered energy with the offsets held fixed, so ``W_l``
  moves by ``<(s_l - mu_l)(s_{l+1} - mu_{l+1})^T>_q - <...>_model``. After every update each
  offset takes a step of ``offset_rate`` towards the batch's mean of its layer under the
  positive phase (``v`` itself, and the mean-field ``q_l`` computed for that update: Melchior et
  al.'s data-dependent offsets with sliding factor ``nu``), and the biases move with it so that
  the distribution is unchanged (:func:`jdbn.models.centered.shift`). Start from
  ``jdbn.models.centered.center(dbm, data)``.

  Args:
    optimizer: any Optax transformation (the offsets get zero gradients, so SGD and momentum
      leave them alone; mask them out of anything that moves parameters without a gradient).
    n_chains, k, tol, max_iter, labels: as :func:`pcd` (the label block's offset follows the
      batch's class frequencies).
    offset_rate: the offsets' running-mean rate, in (0, 1].

  Returns:
    A :class:`jdbn.train.contrastive.Trainer`.
  """
  if not 0 < offset_rate <= 1:
    raise ValueError(f"offset_rate must lie in (0, 1], got {offset_rate!r}")
  plain = pcd(optimizer, n_chains=n_chains, k=k, tol=tol, max_iter=max_iter, labels=labels)
  rate = float(offset_rate)

  def after(model, pos):
    if not isinstance(model, CM.CenteredDBM):
      raise TypeError(f"the centered DBM trainer needs a CenteredDBM "
                      f"(jdbn.models.centered.center), got {type(model).__name__}")
    means = (jnp.mean(u.scaled(x, s), axis=0)
             for u, x, s in zip(model.units, pos.states, model.log_sigmas))
    return CM.shift(model, *((1 - rate) * o + rate * m for o, m in zip(model.offsets, means)))

  phases = PH.Phases(mean_field_phase(tol, max_iter, labels=labels),
                     PH.persistent(int(k), int(n_chains)), PH.energy_score, after=after)
  config = {k_: v for k_, v in plain.config.items() if k_ != "optimizer"}
  config.update(algorithm="dbm-centered-pcd", offset_rate=rate)
  trainer = contrastive.trainer(optimizer, phases, config)
  return _with_labels(trainer) if labels else trainer


def mean_field_report(model: D.DBM, data: Array, *, tol: float = 1e-6, max_iter: int = 30,
                      batch_size: int = 1000) -> dict:
  """How mean-field fares on ``data`` (e.g. a validation split), batch by batch.

  Returns:
    ``{"mf_sweeps": mean sweeps, "mf_sweeps_max": most sweeps, "mf_converged": fraction of
    batches that met ``tol`` within ``max_iter``, "mf_unnormalised_bound": mean of
    ``-E(v, q) + H(q)``}`` (the variational bound plus ``log Z``: it rises as the model fits the
    data better, and :func:`jdbn.models.dbm.lower_bound` with an AIS ``log Z`` makes it a bound).
  """
  model = model.uncentered()  # a centered DBM's bound is its uncentered equivalent's
  data = jnp.asarray(data, model.biases[0].dtype)
  sweeps, ok, bound = [], [], []
  for start in range(0, data.shape[0], batch_size):
    res = _report(model, data[start:start + batch_size], tol, max_iter)
    sweeps.append(int(res[0]))
    ok.append(bool(res[1]))
    bound.append(np.asarray(res[2]))
  if not sweeps:
    raise ValueError("data is empty: there is nothing to report on")
  return {"mf_sweeps": float(np.mean(sweeps)), "mf_sweeps_max": int(np.max(sweeps)),
          "mf_converged": float(np.mean(ok)),
          "mf_unnormalised_bound": float(np.mean(np.concatenate(bound)))}


@functools.partial(jax.jit, static_argnames=("tol", "max_iter"))
def _report(model: D.DBM, v: Array, tol: float, max_iter: int):
  res = D.mean_field(model, v, tol=tol, max_iter=max_iter)
  return res.n_iter, res.converged, D.lower_bound(model, res.states, 0.0)
