"""Up-down fine-tuning of a DBN run to a schedule, resumable: what the CLI and the paper's
reproduction both run.

:func:`jdbn.train.updown_step.updown` is one epoch's trainer; :func:`fit` runs it for many
epochs through the one training loop (:func:`jdbn.loop.fit`) with Hinton, Osindero & Teh's (2006)
schedules: the Gibbs sweeps in the top RBM grow with the epoch (``k_of``, e.g.
:func:`sweep_schedule` ``("3:100,6:200,10")``) and the learning rate may fall (``lr_of``), both
set before every epoch (the rate through ``optax.inject_hyperparams``, so the optimizer state
carries over). After each epoch the state goes to one checkpoint file, from which a rerun resumes.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Callable, Optional, Union

import jax
import numpy as np
import optax

from jdbn import checkpoint as C
from jdbn.models import base
from jdbn.models.dbn import DBN
from jdbn.train import loop
from jdbn.train.updown_step import updown

Array = jax.Array

#: an ``lr_of`` for :func:`fit`: :func:`jdbn.train.loop.rate_schedule`
rate_schedule = loop.rate_schedule


def optimizer(lr: float, *, momentum: Optional[float] = None,
              weight_decay: Optional[float] = None) -> optax.GradientTransformation:
  """SGD with its learning rate a hyperparameter that :func:`fit` sets every epoch.

  ``momentum`` and ``weight_decay`` (an L2 cost on every weight matrix ``W``, not the biases)
  when given; without them the state is that of plain SGD.
  """
  kw = {"momentum": momentum} if momentum else {}
  sgd = optax.inject_hyperparams(optax.sgd)(learning_rate=lr, **kw)
  if not weight_decay:
    return sgd
  return optax.chain(optax.add_decayed_weights(weight_decay, mask=base.weights_only), sgd)


def _restore(path, state, model, legacy_lr):
  try:
    return C.restore(path, like={"state": state})
  except ValueError:  # written before the rate was a hyperparameter: plain SGD, no state
    old = updown(optax.sgd(legacy_lr), k=1).init(None, model)
    tree, meta = C.restore(path, like={"state": old})
    opt = state.opt_state
    return {"state": tree["state"].replace(opt_state=opt)}, meta


def _resume(path, state, model, metadata: dict, lr_of) -> tuple[Any, int, list]:
  """``(state, epochs done, history)`` from the checkpoint at ``path``, or ``(state, 0, [])``
  when there is none or it was written with other ``metadata`` values (then it says so)."""
  if path is None or not pathlib.Path(path).is_file():
    return state, 0, []
  tree, meta = _restore(path, state, model, float(lr_of(0)))
  changed = {k: meta.get(k) for k, v in metadata.items() if k in meta and meta[k] != v}
  if changed:
    print(f"up-down in {path} was run with {changed}, now {metadata}: up-down starts again")
    return state, 0, []
  return tree["state"], int(meta["epoch"]), list(meta["history"])


def fit(key: Array, model: DBN, data: Any, *, epochs: int, batch_size: int,
        opt: optax.GradientTransformation, lr_of: Callable[[int], float],
        k_of: Callable[[int], int], mean_labels: bool = False, order: Optional[str] = None,
        path: Optional[Union[str, os.PathLike]] = None, metadata: Optional[dict] = None,
        evaluate: Optional[Callable[[int, Any], dict]] = None,
        callback: Optional[Callable[[int, Any, dict], Any]] = None,
        progress: Union[bool, str] = "up-down") -> tuple[Any, list]:
  """Up-down for ``epochs`` epochs (resuming from ``path``), each with its own ``k`` and rate.

  Epoch ``e`` (0-based) sets the rate ``lr_of(e)`` in ``opt``'s state and runs
  ``dbn.updown(opt, k=k_of(e), mean_labels=...).epoch(fold_in(key, e), state, data, batch_size,
  order=order)``.

  Args:
    key: PRNG key.
    model: the DBN to start from (tied or untied).
    data: ``x`` or ``(x, labels)``.
    epochs: total number of epochs.
    batch_size: examples per update.
    opt: an optimizer from :func:`optimizer` (its rate is an injected hyperparameter).
    lr_of, k_of: the rate and the top RBM's Gibbs sweeps of each epoch.
    mean_labels, order: passed to :func:`jdbn.train.updown_step.updown` and its ``epoch``.
    path: checkpoint file (``{"state"}`` with ``epoch`` and ``history`` in its metadata).
    metadata: extra JSON settings saved with it; a checkpoint whose saved values of these keys
      differ (e.g. the DBN under it was pretrained further since) is not resumed: up-down starts
      again from ``model``.
    evaluate: ``(epochs_done, state) -> dict`` of metrics added to that epoch's row.
    callback: ``(epochs_done, state, row) -> stop?`` after each epoch's checkpoint, e.g. a stopping
      rule on a metric from ``evaluate``.
    progress: progress bar description, or False.

  Returns:
    ``(state, history)``; ``state.params`` is the :class:`jdbn.models.dbn.UntiedDBN`.

  Raises:
    jdbn.loop.TrainingDiverged: an epoch produced NaN or inf; the last good checkpoint stays.
  """
  metadata = dict(metadata or {})
  state, start, history = _resume(path, updown(opt, k=1).init(None, model), model, metadata,
                                  lr_of)
  trainers = {}  # one per k; they share the optimizer, so its state carries over

  def epoch_fn(e, state):
    k, lr = int(k_of(e)), float(lr_of(e))
    state = loop.set_learning_rate(state, lr)
    trainer = trainers.setdefault(k, updown(opt, k=k, mean_labels=mean_labels))
    state, info = trainer.epoch(jax.random.fold_in(key, e), state, data, batch_size, order=order)
    return state, {"k": k, "lr": lr, **{name: float(v) for name, v in info._asdict().items()}}

  def save(done, state, history):
    C.save(path, {"state": state}, metadata={"epoch": done, "history": history, **metadata})

  return loop.fit(state, epoch_fn, epochs=epochs, start=start, history=history,
                  evaluate=evaluate, save=save if path is not None else None, checkpoint=path,
                  callback=callback, progress=progress, postfix=("loss", "gen_nll"),
                  advice="Lower the up-down learning rate")


def sweep_schedule(spec: Union[int, str]) -> Callable[[int], int]:
  """Gibbs sweeps in the top RBM for each up-down epoch, as a function of the 0-based epoch.

  Hinton, Osindero & Teh (2006) run CD-3 in the top RBM for the first 100 up-down epochs, CD-6
  for the next 100 and CD-10 for the last 100: ``sweep_schedule("3:100,6:200,10")``. ::

      k_of = sweep_schedule("3:100,6:200,10")
      trainers = {}
      for e in range(300):
        trainer = trainers.setdefault(k_of(e), updown(optimizer, k=k_of(e)))
        state, info = trainer.epoch(jax.random.fold_in(key, e), state, (x, y), 100)

  (the optimizer state carries over between trainers: only ``k`` differs).

  Args:
    spec: an int ``k`` (every epoch), or ``"k1:e1,k2:e2,...,kn"``: ``k1`` sweeps in epochs
      ``[0, e1)``, ``k2`` in ``[e1, e2)``, ..., ``kn`` from the last boundary on.

  Raises:
    ValueError: a sweep count that is not a positive int, boundaries that are not positive and
      increasing, or a last part with a boundary (what comes after it would be unspecified).
  """
  if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
    parts = [(int(spec), None)]
  elif isinstance(spec, str):
    parts = []
    for part in spec.replace(" ", "").split(","):
      k, sep, until = part.partition(":")
      try:
        parts.append((int(k), int(until) if sep else None))
      except ValueError:
        raise ValueError(f"sweep schedule {spec!r}: {part!r} is not 'k:epoch' or 'k' with "
                         f"integers") from None
  else:
    raise TypeError(f"a sweep schedule is an int or a string like '3:100,6:200,10', got "
                    f"{type(spec).__name__}")
  ks = [k for k, _ in parts]
  bounds = [e for _, e in parts[:-1]]
  if any(k < 1 for k in ks):
    raise ValueError(f"sweep schedule {spec!r}: sweep counts must be positive")
  if parts[-1][1] is not None:
    raise ValueError(f"sweep schedule {spec!r}: the last part is a plain k (the sweeps after "
                     f"the last boundary), e.g. '3:100,6:200,10'")
  if any(e is None for e in bounds) or any(e < 1 for e in bounds) or bounds != sorted(
      set(bounds)):
    raise ValueError(f"sweep schedule {spec!r}: every part but the last needs an epoch "
                     f"boundary, and the boundaries must be positive and increasing")

  def k_of(epoch: int) -> int:
    for k, until in zip(ks, bounds):
      if epoch < until:
        return k
    return ks[-1]

  return k_of
