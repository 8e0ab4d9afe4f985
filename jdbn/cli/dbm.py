"""The ``jdbn train dbm`` subcommand: a Deep Boltzmann Machine (Salakhutdinov & Hinton 2009) by
greedy pretraining with the paper's doubled RBMs, joint training with a mean-field positive phase
and persistent chains, and optional discriminative fine-tuning; every stage resumable from the
run folder. ``--pretrain-epochs 0`` starts joint training from a fresh DBM. ``--center`` trains
the centered DBM (Melchior, Fischer & Wiskott 2016) jointly, which needs no pretraining: the
checkpoint holds the :class:`~jdbn.models.centered.CenteredDBM`, and everything after joint
training (fine-tuning, pictures, ``evaluate``, ``sample``) gets the ordinary DBM it equals.

::

    jdbn train dbm --dataset {digits,mnist} [--hidden 500,1000] --out DIR [--pretrain-epochs P]
                   [--epochs E] [--lr R --lr-final R0] [--center [--offset-rate NU]]
                   [--finetune-epochs F] [...]

The numbers come from :mod:`jdbn.train.dbm_pretrain`, :mod:`jdbn.train.dbm`,
:mod:`jdbn.train.loop` (the one training loop) and, for the fine-tuning stage,
:mod:`jdbn.cli.dbm_finetune`; the run folder is :mod:`jdbn.cli.dbm_run`'s.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np

from jdbn.cli.common import (CLIError, add_seed, apply_preprocess, apply_preset, load_dataset,
                             make_key, non_negative_float, non_negative_int, positive_float,
                             positive_int, preset_help, resolved_data_dir, settings_diff,
                             split_train, writable_folder)
from jdbn.cli.dbm_finetune import add_finetune_arguments, finetune, finetune_settings
from jdbn.cli.dbm_run import (CHECKPOINT_NAME, CLASSIFIER_NAME, COMMAND, FINETUNE_NAME,
                              METRICS_NAME, PRETRAINED_NAME, label_error, save_pictures)
from jdbn.cli.dbn_run import N_CLASSES

__all__ = ["PRESETS", "add_train_dbm", "cmd_train_dbm", "hidden_sizes"]

#: ``train dbm``'s defaults that depend on the data set. MNIST: the paper's 784-500-1000 DBM,
#: 100 pretraining epochs per RBM and a joint rate of 0.005 decayed to 0 over 300 epochs. The
#: 1,300 digits: a small 64-64-32 DBM in small batches, a few seconds an epoch on two cores.
PRESETS = {
    "digits": {"hidden": (64, 32), "pretrain_epochs": 20, "epochs": 20, "batch_size": 10,
               "pretrain_lr": 0.05, "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-3,
               "n_valid": 200},
    "mnist": {"hidden": (500, 1000), "pretrain_epochs": 100, "epochs": 300, "batch_size": 100,
              "pretrain_lr": 0.05, "lr": 0.005, "momentum": 0.9, "weight_decay": 2e-4,
              "n_valid": 10_000},
}

# Settings that define a run: a rerun with the same --out must repeat them to resume.
_RUN_SETTINGS = ("dataset", "hidden", "pretrain_epochs", "pretrain_lr", "pretrain_k", "lr",
                 "lr_final", "momentum", "weight_decay", "n_chains", "k", "mf_tol", "mf_max_iter",
                 "batch_size", "binarize", "n_valid", "seed", "prng", "center", "labels")
_CHANGEABLE = "only --epochs, --finetune-epochs, --patience and --sample-steps may change"


def hidden_sizes(text: str) -> tuple[int, ...]:
  """``--hidden``: comma-separated hidden layer sizes such as ``500,1000``."""
  try:
    values = tuple(int(t) for t in text.split(","))
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected hidden layer sizes such as 500,1000, got "
                                     f"{text!r}") from None
  if min(values) < 1:
    raise argparse.ArgumentTypeError(f"hidden layer sizes must be positive integers, got "
                                     f"{text!r}")
  return values


# --------------------------------------------------------------------------- arguments


def add_train_dbm(sub) -> None:
  """``jdbn train dbm``: pretraining, joint training, optional discriminative fine-tuning."""
  p = sub.add_parser(
      "dbm", help="train a Deep Boltzmann Machine: greedy pretraining, then joint PCD training",
      description="Train a DBM (Salakhutdinov & Hinton 2009): greedy pretraining with the "
      "paper's doubled RBMs, joint training with a mean-field positive phase and persistent "
      "chains (the rate decaying linearly from --lr to --lr-final), and optional discriminative "
      "fine-tuning of the network fed [v, q(h2|v)], early-stopped on the validation split; "
      "--center trains the centered DBM (Melchior et al. 2016), with or without pretraining. "
      f"Writes {PRETRAINED_NAME} (unless --pretrain-epochs 0), {CHECKPOINT_NAME}, "
      f"{METRICS_NAME}, filters.png, samples.png "
      f"and, when fine-tuned, {CLASSIFIER_NAME} into --out; rerun with the same --out (and more "
      "--epochs or --finetune-epochs) to resume.")
  p.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
  p.add_argument("--data-dir", help="folder of the MNIST IDX files (default: $JDBN_MNIST_DIR)")
  _add_model_arguments(p)
  p.add_argument("--pretrain-epochs", type=non_negative_int, default=None,
                 help="epochs per pretrained RBM; 0: no pretraining, joint training starts from "
                 "small random weights (" + preset_help("pretrain_epochs", PRESETS) + ")")
  p.add_argument("--pretrain-lr", type=positive_float, default=None,
                 help=preset_help("pretrain_lr", PRESETS))
  p.add_argument("--pretrain-k", type=positive_int, default=1, help="CD-k of the pretraining")
  p.add_argument("--epochs", type=positive_int, default=None,
                 help="joint training epochs (" + preset_help("epochs", PRESETS) + ")")
  p.add_argument("--lr", type=positive_float, default=None,
                 help="joint training's first rate (" + preset_help("lr", PRESETS) + ")")
  p.add_argument("--lr-final", type=non_negative_float, default=0.0,
                 help="the joint rate falls linearly to this over --epochs (the paper: to 0); "
                 "a run extended with more --epochs continues on the longer schedule from the "
                 "step it reached")
  p.add_argument("--momentum", type=non_negative_float, default=None,
                 help=preset_help("momentum", PRESETS))
  p.add_argument("--weight-decay", type=non_negative_float, default=None,
                 help="on the weights only (" + preset_help("weight_decay", PRESETS) + ")")
  p.add_argument("--n-chains", type=positive_int, default=100, help="persistent chains")
  p.add_argument("-k", type=positive_int, default=5, help="Gibbs sweeps per joint update")
  p.add_argument("--mf-tol", type=non_negative_float, default=1e-6,
                 help="mean-field stopping change")
  p.add_argument("--mf-max-iter", type=positive_int, default=30, help="mean-field sweep cap")
  p.add_argument("--batch-size", type=positive_int, default=None,
                 help=preset_help("batch_size", PRESETS))
  p.add_argument("--binarize", choices=("none", "threshold", "stochastic"), default="none",
                 help="none: intensities as probabilities; threshold: > 0.5; stochastic: one "
                 "Bernoulli draw per pixel, fixed for the run")
  p.add_argument("--n-valid", type=positive_int, default=None,
                 help="training examples held out (" + preset_help("n_valid", PRESETS) + ")")
  add_finetune_arguments(p)
  p.add_argument("--sample-steps", type=positive_int, default=1000,
                 help="Gibbs sweeps for samples.png")
  add_seed(p)
  p.add_argument("--out", required=True, help="run folder")
  p.add_argument("--no-progress", action="store_true", help="no progress bars")
  p.set_defaults(func=cmd_train_dbm)


def _add_model_arguments(p) -> None:
  """The ``train dbm`` arguments that shape the model: its layers, label block and centering."""
  p.add_argument("--hidden", type=hidden_sizes, default=None,
                 help="hidden layer sizes, bottom up (" + preset_help("hidden", PRESETS) + ")")
  p.add_argument("--labels", action="store_true",
                 help=f"the paper's MNIST model: a label block of {N_CLASSES} units (one softmax "
                 "group) on top of the last hidden layer; pretraining's last RBM reads [h, "
                 "labels], joint training clamps the labels in the positive phase and the chains "
                 "run free over them, and the label block classifies (its validation error is "
                 "printed, its test error by `jdbn evaluate`)")
  p.add_argument("--center", action="store_true",
                 help="train the centered DBM jointly (Melchior et al. 2016): offsets at running "
                 "means of the layers' mean-field states; the same model, a better-conditioned "
                 "gradient that trains without pretraining")
  p.add_argument("--offset-rate", type=positive_float, default=0.01,
                 help="--center: the offsets' running-mean rate, in (0, 1]")


# --------------------------------------------------------------------------- checks


def _check_train_dbm(args) -> None:
  """Fills in the data set's presets and rejects settings that do not go together."""
  apply_preset(args, PRESETS)
  args.hidden = tuple(args.hidden)
  if args.momentum >= 1:
    raise CLIError(f"--momentum must be in [0, 1), got {args.momentum}")
  if args.lr_final > args.lr:
    raise CLIError(f"--lr-final {args.lr_final} exceeds --lr {args.lr}: the rate decays")
  if not args.offset_rate <= 1:
    raise CLIError(f"--offset-rate must be in (0, 1], got {args.offset_rate}")
  if args.finetune_epochs < 0:
    raise CLIError(f"--finetune-epochs must be >= 0, got {args.finetune_epochs}")
  if args.finetune_epochs and len(args.hidden) < 2:
    raise CLIError(f"fine-tuning feeds the network [v, q(h2|v)]: --hidden needs at least two "
                   f"layers, got {','.join(map(str, args.hidden))}")


def _settings(args, names) -> dict:
  """``names``' values in ``args`` (tuples as lists); with ``--center``, its offset rate too
  (absent otherwise, so that it does not matter to a plain run)."""
  settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in
              ((k, getattr(args, k)) for k in names)}
  if settings.get("center"):
    settings["offset_rate"] = args.offset_rate
  return settings


def _check_resume(args, out: pathlib.Path) -> None:
  """Refuses a run folder whose checkpoints were written with other settings, before any work."""
  from jdbn import checkpoint
  wanted = {PRETRAINED_NAME: _settings(args, _RUN_SETTINGS),
            CHECKPOINT_NAME: _settings(args, _RUN_SETTINGS),
            FINETUNE_NAME: finetune_settings(args)}
  found = False
  for name, settings in wanted.items():
    path = out / name
    if not path.is_file() or (name == FINETUNE_NAME and not args.finetune_epochs):
      continue
    try:
      meta = checkpoint.read_metadata(path)
    except ValueError as err:
      raise CLIError(f"--out {args.out!r} holds an unreadable checkpoint: {err}") from err
    old = meta.get("user", {}).get("settings", {}) if name != FINETUNE_NAME else meta.get(
        "settings", {})
    if name != FINETUNE_NAME and meta.get("user", {}).get("command") != COMMAND:
      raise CLIError(f"--out {args.out!r} holds {name} of another command; use a new --out")
    diff = settings_diff(old, settings)
    if diff:
      raise CLIError(f"--out {args.out!r} holds a run with other settings ({'; '.join(diff)}); "
                     f"use a new --out, or the same settings to resume ({_CHANGEABLE})")
    found = True
  if found:
    print(f"resuming the run in {out}")


# --------------------------------------------------------------------------- training


def cmd_train_dbm(args) -> int:
  import jax
  from jdbn import checkpoint
  _check_train_dbm(args)
  out = writable_folder(args.out)
  _check_resume(args, out)
  ds = load_dataset(args.dataset, "train", args.data_dir)
  train_ds, valid_ds = split_train(ds, args.n_valid, args.batch_size)
  k_bin, k_pre, k_joint, k_sample, k_ft = jax.random.split(make_key(args), 5)
  k_train, k_valid = jax.random.split(k_bin)
  spec = {"binarize": args.binarize}
  x = apply_preprocess(k_train, np.asarray(train_ds.x), spec)
  v = apply_preprocess(k_valid, np.asarray(valid_ds.x), spec)
  user = {"command": COMMAND, "kind": "dbm", "dataset": args.dataset,
          "image_shape": list(ds.image_shape), "preprocess": spec,
          "settings": _settings(args, _RUN_SETTINGS), "data_dir": resolved_data_dir(args)}
  t0 = time.perf_counter()
  y, y_valid = np.asarray(train_ds.y), np.asarray(valid_ds.y)
  model, pre_history = _pretrain(k_pre, x, y, args, out, user)
  metrics = {"pretrain": pre_history, "user": user}
  state, history = _joint(k_joint, model, x, y, v, args, out, metrics)
  model = state.params.uncentered()  # a centered DBM as the DBM it equals, from here on
  metrics.update(epochs_completed=len(history), history=history)
  if args.labels:
    grey = apply_preprocess(None, np.asarray(valid_ds.x), dict(spec, binarize="none"))
    metrics["label_valid_error"] = label_error(model, grey, y_valid, args.mf_tol)
    print(f"label block's validation error: {metrics['label_valid_error']:.4f} (class bounds on "
          f"the grey levels of {len(v)} images)")
  if not args.finetune_epochs and (out / FINETUNE_NAME).is_file():  # keep the earlier record
    metrics["finetune"] = {"history": checkpoint.read_metadata(out / FINETUNE_NAME)["history"]}
  if args.finetune_epochs:
    if args.finetune_input == "intensities":
      x, v = (apply_preprocess(None, np.asarray(d.x), dict(spec, binarize="none"))
              for d in (train_ds, valid_ds))
    metrics["finetune"] = finetune(k_ft, model, (x, y), (v, y_valid), args, out,
                                   source={"joint_epochs": len(history)})
    ft = metrics["finetune"]
    if ft.get("on_all"):
      print(f"fine-tuned network: {ft['epochs']} epochs on all {len(x) + len(v)} images, the "
            f"last kept (error {ft['valid_error']:.4f} on the {len(v)} it shares with them)")
    else:
      print(f"fine-tuned network: validation error {ft['valid_error']:.4f} "
            f"(epoch {ft['best_epoch']} of {ft['epochs']})")
  checkpoint.write_json(out / METRICS_NAME, metrics)
  paths = save_pictures(out, k_sample, model, ds.image_shape, spec, args.sample_steps)
  print(f"{len(history)} joint epochs in all ({time.perf_counter() - t0:.1f} s in this run)")
  files = [("pretrained", out / PRETRAINED_NAME)] if args.pretrain_epochs else []
  files += [("checkpoint", out / CHECKPOINT_NAME), ("metrics", out / METRICS_NAME),
            *paths.items()]
  if args.finetune_epochs:
    files.append(("network", out / CLASSIFIER_NAME))
  for name, path in files:
    print(f"  {name:<10} {path}")
  return 0


def _optimizer(lr, momentum: float, weight_decay: float):
  """SGD with momentum and weight decay on the weights only (the biases are not decayed)."""
  import optax
  from jdbn.models.base import weights_only
  return optax.chain(optax.add_decayed_weights(weight_decay, mask=weights_only),
                     optax.sgd(lr, momentum=momentum or None))


def _diverged(stage: str, err):
  """``err`` (a :class:`TrainingDiverged`) with the stage named first."""
  from jdbn.train import TrainingDiverged
  return TrainingDiverged(f"{stage}: {err}", epoch=err.epoch, state=err.state,
                          history=err.history, checkpoint=err.checkpoint)


def _pretrain(key, x: np.ndarray, y: np.ndarray, args, out: pathlib.Path, user: dict):
  """The pretrained DBM from ``pretrained.npz``, or greedy pretraining saved there: ``(model,
  the RBMs' epoch rows)``. ``--pretrain-epochs 0``: a fresh DBM, ``N(0, 0.01^2)`` weights and
  the data's log-odds as visible biases (:func:`jdbn.models.dbm.init`), not saved (the key
  makes it again). With ``--labels`` the DBM has a label block on top, pretrained on ``y``."""
  from jdbn import checkpoint
  from jdbn import units as U
  from jdbn.models import dbm as D
  from jdbn.train import TrainingDiverged, dbm_pretrain
  path = out / PRETRAINED_NAME
  sizes = (x.shape[1], *args.hidden)
  if not args.pretrain_epochs:
    full = sizes + ((N_CLASSES,) if args.labels else ())
    print(f"no pretraining: joint training starts from a fresh DBM {'-'.join(map(str, full))}")
    units = (U.Bernoulli(),) * len(sizes) + ((U.Softmax(N_CLASSES),) if args.labels else ())
    return D.init(key, full, units, data=x), []
  if path.is_file():
    model, meta = checkpoint.restore(path)
    print(f"pretrained DBM {'-'.join(map(str, model.sizes))} from {path}")
    return model, meta["history"]
  print(f"pretraining the DBM {'-'.join(map(str, sizes))} on {len(x)} {args.dataset} examples, "
        f"{args.pretrain_epochs} epochs per RBM")
  try:
    model, history = dbm_pretrain.pretrain(
        key, x, sizes, epochs=args.pretrain_epochs, batch_size=args.batch_size,
        optimizer=_optimizer(args.pretrain_lr, args.momentum, args.weight_decay),
        k=args.pretrain_k, labels=y if args.labels else None, n_classes=N_CLASSES,
        progress=not args.no_progress)
  except TrainingDiverged as err:
    raise _diverged("pretraining", err) from err
  checkpoint.save(path, model, metadata={"user": {**user, "stage": "pretrain"},
                                         "history": history})
  return model, history


def _joint(key, model, x: np.ndarray, y: np.ndarray, v: np.ndarray, args, out: pathlib.Path,
           metrics: dict):
  """Joint training from the pretrained ``model`` (centered on ``x`` with ``--center``) through
  :func:`jdbn.train.loop.fit`, resumed from ``checkpoint.npz``: epoch ``e`` uses
  ``fold_in(key_epochs, e)``; with ``--labels`` the positive phase clamps ``y`` as well.
  ``(state, history)``; ``state.params`` is a :class:`~jdbn.models.centered.CenteredDBM` with
  ``--center``."""
  import jax
  import jax.numpy as jnp
  from jdbn import checkpoint
  from jdbn.train import TrainingDiverged, loop
  from jdbn.train import dbm as T
  trainer = _joint_trainer(args, len(x))
  k_init, k_epochs = jax.random.split(key)
  ckpt = out / CHECKPOINT_NAME
  # A resumed run's offsets come from the checkpoint: the template needs no pass over the data.
  model = _centered(model, None if ckpt.is_file() else x, args) if args.center else model
  state, start, history = trainer.init(k_init, model), 0, []
  if ckpt.is_file():
    tree, meta = checkpoint.restore(ckpt, like={"state": state})
    state, start, history = tree["state"], int(meta["epoch"]), list(meta["history"])
  data = (jnp.asarray(x), jnp.asarray(y)) if args.labels else jnp.asarray(x)

  def epoch_fn(e, s):
    s, info = trainer.epoch(jax.random.fold_in(k_epochs, e), s, data, args.batch_size)
    return s, {"loss": float(info.loss), "recon_error": float(info.recon_error),
               "grad_norm": float(info.grad_norm)}

  def save(done, s, rows):
    checkpoint.save(ckpt, {"state": s}, metadata={"epoch": done, "epochs": args.epochs,
                                                  "history": rows, "user": metrics["user"]})
    checkpoint.write_json(out / METRICS_NAME, {**metrics, "epochs_completed": done,
                                               "history": rows})
    if args.no_progress:
      row = rows[-1]
      print(f"joint epoch {done}: loss {row['loss']:.4f}, recon_error {row['recon_error']:.4f}, "
            f"mean-field sweeps {row['mf_sweeps']:.1f} (converged {row['mf_converged']:.2f})",
            flush=True)

  try:
    return loop.fit(state, epoch_fn, epochs=args.epochs, start=start, history=history,
                    evaluate=lambda _, s: T.mean_field_report(
                        s.params.uncentered(), v, tol=args.mf_tol, max_iter=args.mf_max_iter),
                    save=save, checkpoint=ckpt, progress=False if args.no_progress else "dbm",
                    postfix=("loss", "recon_error", "mf_sweeps"),
                    advice="Try a lower --lr (or more --weight-decay)")
  except TrainingDiverged as err:
    raise _diverged("joint training", err) from err


def _joint_trainer(args, n_examples: int):
  """PCD (``--center``: centered PCD) with the rate falling linearly from ``--lr`` to
  ``--lr-final`` over ``--epochs``."""
  import optax
  from jdbn.train import dbm as T
  n_updates = args.epochs * (n_examples // args.batch_size)
  opt = _optimizer(optax.linear_schedule(args.lr, args.lr_final, n_updates), args.momentum,
                   args.weight_decay)
  common = {"n_chains": args.n_chains, "k": args.k, "tol": args.mf_tol,
            "max_iter": args.mf_max_iter, "labels": args.labels}
  if args.center:
    return T.centered(opt, offset_rate=args.offset_rate, **common)
  return T.pcd(opt, **common)


def _centered(model, x, args):
  """The centered form of ``model``: offsets at the means of ``x`` ``[n, n_visible]`` and of its
  mean-field posterior over it (Melchior et al. 2016), or at 0.5 without ``x``."""
  from jdbn.models import centered as CM
  return CM.center_dbm(model, None if x is None else np.asarray(x), tol=args.mf_tol,
                       max_iter=args.mf_max_iter)
