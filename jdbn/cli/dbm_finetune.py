"""The fine-tuning stage of ``jdbn train dbm``: its arguments and settings, and discriminative
fine-tuning of the network made from the DBM (Salakhutdinov & Hinton 2009, section 4), fed
``[v, q(h2|v)]`` and early-stopped on the validation split.

The numbers come from :mod:`jdbn.train.classifier_dbm` and :mod:`jdbn.train.finetune`; the run
folder's ``finetune.npz`` and ``classifier.npz`` are :mod:`jdbn.cli.dbm_run`'s.
"""

from __future__ import annotations

import pathlib

import numpy as np

from jdbn.cli.common import add_finetune_group
from jdbn.cli.dbm_run import CLASSIFIER_NAME, FINETUNE_NAME
from jdbn.cli.dbn_run import N_CLASSES

__all__ = ["FINETUNE_SETTINGS", "add_finetune_arguments", "finetune", "finetune_settings"]

#: The fine-tuning stage's own settings, checked against its checkpoint.
FINETUNE_SETTINGS = ("finetune_lr", "finetune_schedule", "dropout", "input_dropout", "max_norm",
                     "finetune_on_all", "finetune_input")


def add_finetune_arguments(p) -> None:
  """The ``train dbm`` arguments of the fine-tuning stage, as their own group."""
  g = add_finetune_group(p, "discriminative fine-tuning (at least two hidden layers)", "DBM")
  g.add_argument("--finetune-on-all", action="store_true",
                 help="fine-tune on the training and validation images together for exactly "
                 "--finetune-epochs epochs and keep the last epoch's network (no early "
                 "stopping: choose the epochs on a run without this; the validation error "
                 "printed is then on images it trains on)")
  g.add_argument("--finetune-input", choices=("intensities", "binarized"), default="intensities",
                 help="the images the network reads (and q(h2|v) is computed from): the pixel "
                 "intensities, as the paper's fine-tuning does, or the images as --binarize made "
                 "them for the DBM (the same when --binarize none)")


def finetune_settings(args) -> dict:
  """The fine-tuning settings of ``args`` that a resumed fine-tuning must repeat."""
  return {k: getattr(args, k) for k in FINETUNE_SETTINGS}


def finetune(key, model, train, valid, args, out: pathlib.Path, source: dict) -> dict:
  """Discriminative fine-tuning of :func:`jdbn.train.classifier_dbm.from_dbm` ``(model)`` on
  ``[v, q(h2|v)]``, resumed from ``finetune.npz`` unless the DBM has been trained further since;
  the early-stopped variables go to ``classifier.npz``.

  Args:
    key: PRNG key.
    model: the (uncentered) :class:`~jdbn.models.dbm.DBM`.
    train, valid: ``(x [n, n_visible], y [n])`` of the training and validation splits, as
      ``--finetune-input`` chose them.
    args: the parsed ``train dbm`` arguments.
    out: the run folder.
    source: what the network was made from (``{"joint_epochs": ...}``), saved with it.

  Returns:
    ``{"valid_error", "best_epoch", "epochs", "history"}``.
  """
  import jax
  from jdbn import checkpoint
  from jdbn.train import classifier_dbm
  from jdbn.train import finetune as F
  (x, y), (v, y_valid) = train, valid
  feats = classifier_dbm.features(model, x, tol=args.mf_tol)
  feats_valid = classifier_dbm.features(model, v, tol=args.mf_tol)
  if args.finetune_on_all:
    feats, y = np.concatenate([feats, feats_valid]), np.concatenate([y, y_valid])
  module, variables = classifier_dbm.from_dbm(
      model, key=jax.random.fold_in(key, 1), n_classes=N_CLASSES, dropout_rate=args.dropout,
      input_dropout_rate=args.input_dropout)
  decay = (args.finetune_epochs * (len(feats) // args.batch_size)  # the images it trains on
           if args.finetune_schedule == "cosine" else None)
  optimizer = F.optimizer(args.finetune_lr, decay_steps=decay, max_norm_value=args.max_norm)

  def report(epoch, _, row):
    if args.no_progress:
      print(f"fine-tuning epoch {epoch}: loss {row['loss']:.4f}, validation error "
            f"{row['valid_error']:.4f}", flush=True)

  state, history = F.fit(jax.random.fold_in(key, 0), module, variables, (feats, y),
                         (feats_valid, y_valid), optimizer, epochs=args.finetune_epochs,
                         batch_size=args.batch_size,
                         patience=None if args.finetune_on_all else args.patience,
                         path=out / FINETUNE_NAME,
                         metadata={"source": source, "settings": finetune_settings(args)},
                         resume_if=("source",), callback=report,
                         progress="fine-tune" if not args.no_progress else False)
  summary = {"valid_error": float(state.best_error), "best_epoch": int(state.best_epoch),
             "epochs": int(state.epoch), "history": history}
  kept = state.best_variables
  if args.finetune_on_all:  # the last epoch's network; its "validation" images were trained on
    kept = state.variables
    summary.update(valid_error=history[-1]["valid_error"], best_epoch=int(state.epoch),
                   on_all=True)
  checkpoint.save(out / CLASSIFIER_NAME, kept, metadata={
      "kind": "classifier", "input": "[v, q(h2|v)]", "hidden_sizes": list(module.hidden_sizes),
      "n_classes": module.n_classes, "dropout": args.dropout,
      "input_dropout": args.input_dropout, "valid_error": summary["valid_error"],
      "best_epoch": summary["best_epoch"], "on_all": bool(args.finetune_on_all),
      "finetune_input": args.finetune_input, "source": source})
  return summary
