"""The ``jdbn train dbn`` subcommand: greedy pretraining, then optional up-down and discriminative
fine-tuning, each resumable from the run folder.

::

    jdbn train dbn --dataset {digits,mnist} [--sizes 500,500,2000] --out DIR [--epochs E]
                   [--updown-epochs U] [--finetune-epochs F [--dropout P] [--max-norm C]] [...]

The numbers come from :mod:`jdbn.dbn`, :mod:`jdbn.train.updown` and :mod:`jdbn.train.finetune`.
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

import numpy as np

from jdbn.cli.common import (CLIError, add_finetune_group, add_seed, binarize, load_dataset,
                             make_key, make_trainer, non_negative_float, positive_float,
                             positive_int, resolved_data_dir, settings_diff, sizes, split_train,
                             writable_folder)
from jdbn.cli.dbn_run import (CLASSIFIER_NAME, FINETUNE_NAME, MODEL_NAME, N_CLASSES, UPDOWN_NAME,
                              generative_error, save_sheet)

_RUN_SETTINGS = ("dataset", "sizes", "no_labels", "method", "k", "n_chains", "lr", "momentum",
                 "weight_decay", "batch_size", "binarize", "propagate", "n_valid", "seed",
                 "prng", "updown_lr", "updown_k", "finetune_lr", "finetune_schedule", "dropout",
                 "input_dropout", "max_norm", "updown_balanced")
# What runs saved before a setting existed did, for resuming them.
_SETTING_DEFAULTS = {"finetune_lr": 0.1, "finetune_schedule": "constant", "dropout": 0.0,
                     "input_dropout": 0.0, "max_norm": None, "updown_balanced": False}

# --------------------------------------------------------------------------- arguments


def add_train_dbn(sub) -> None:
  """``jdbn train dbn``: greedy pretraining, optional up-down and discriminative fine-tuning."""
  p = sub.add_parser(
      "dbn", help="train a DBN: greedy pretraining (and up-down or discriminative fine-tuning)",
      description="Greedy layer-wise pretraining of a DBN with CD-k or PCD (Hinton, Osindero & "
      "Teh 2006), the top RBM joined by the labels, then optional up-down fine-tuning and "
      "optional discriminative fine-tuning of the sigmoid network initialised from the DBN "
      "(Hinton & Salakhutdinov 2006; dropout and max-norm as in Srivastava et al. 2014), "
      "early-stopped on the validation split. Writes "
      f"{MODEL_NAME}, metrics.json, samples.png (a row per class) and, when fine-tuned, "
      f"{CLASSIFIER_NAME} into --out; rerun with the same --out (and more --epochs, "
      "--updown-epochs or --finetune-epochs) to resume.")
  _add_pretrain_arguments(p)
  _add_updown_arguments(p)
  add_finetune_group(p, "discriminative fine-tuning (needs the labels)", "DBN")
  p.add_argument("--sample-steps", type=positive_int, default=1000)
  add_seed(p)
  p.add_argument("--out", required=True, help="run folder")
  p.add_argument("--no-progress", action="store_true")
  p.set_defaults(func=cmd_train_dbn)


def _add_pretrain_arguments(p) -> None:
  p.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
  p.add_argument("--data-dir", help="folder of the MNIST IDX files (default: $JDBN_MNIST_DIR)")
  p.add_argument("--sizes", type=sizes, default=None,
                 help="hidden layer sizes (default 500,500,2000 for mnist, 100,200 for digits)")
  p.add_argument("--no-labels", action="store_true", help="no label units in the top RBM")
  p.add_argument("--method", choices=("cd", "pcd"), default="cd")
  p.add_argument("-k", type=positive_int, default=1, help="Gibbs sweeps per update")
  p.add_argument("--n-chains", type=positive_int, default=100, help="PCD chains")
  p.add_argument("--lr", type=positive_float, default=0.1)
  p.add_argument("--momentum", type=non_negative_float, default=0.5)
  p.add_argument("--weight-decay", type=non_negative_float, default=2e-4)
  p.add_argument("--epochs", type=positive_int, default=None,
                 help="epochs per layer (default 10 for mnist, 100 for digits)")
  p.add_argument("--batch-size", type=positive_int, default=None,
                 help="default 100 for mnist, 20 for digits")
  p.add_argument("--binarize", choices=("none", "threshold", "stochastic"), default="none")
  p.add_argument("--propagate", choices=("mean", "sample"), default="mean",
                 help="train each layer on the previous one's probabilities or samples")
  p.add_argument("--n-valid", type=positive_int, default=None,
                 help="training examples held out (default 10000 for mnist, 200 for digits)")


def _add_updown_arguments(p) -> None:
  p.add_argument("--updown-epochs", type=int, default=0,
                 help="up-down fine-tuning epochs (on digits, 200 with --updown-lr 0.2 take the "
                 "test error from 13%% to 6%% in half a minute)")
  p.add_argument("--updown-lr", type=positive_float, default=0.01)
  p.add_argument("--updown-k", type=positive_int, default=3,
                 help="Gibbs sweeps in the top RBM per up-down update")
  p.add_argument("--updown-k-schedule", default=None, metavar="SPEC",
                 help="sweeps per up-down epoch instead of --updown-k, e.g. 3:100,6:200,10 (CD-3 "
                 "for epochs 1-100, CD-6 to 200, then CD-10: the 2006 paper's)")
  p.add_argument("--updown-lr-decay-start", type=int, default=None, metavar="E",
                 help="from up-down epoch E on, the rate falls linearly to 0 at --updown-epochs "
                 "(default: constant)")
  p.add_argument("--updown-balanced", action="store_true",
                 help="up-down on class-balanced mini-batches, the same number of every class in "
                 "each (HOT 2006 used 10 of each digit); --batch-size a multiple of the classes")


# --------------------------------------------------------------------------- checks


def _check_train_dbn(args) -> None:
  """Rejects settings that do not go together, before anything is written."""
  from jdbn import dbn as D
  if args.momentum >= 1:
    raise CLIError(f"--momentum must be in [0, 1), got {args.momentum}")
  if args.updown_epochs < 0:
    raise CLIError(f"--updown-epochs must be >= 0, got {args.updown_epochs}")
  if args.updown_k_schedule is not None:
    try:
      D.sweep_schedule(args.updown_k_schedule)
    except ValueError as err:
      raise CLIError(f"--updown-k-schedule: {err}") from err
  if args.updown_lr_decay_start is not None and not (
      0 <= args.updown_lr_decay_start < args.updown_epochs):
    raise CLIError(f"--updown-lr-decay-start must be in [0, --updown-epochs="
                   f"{args.updown_epochs}), got {args.updown_lr_decay_start}")
  if args.finetune_epochs < 0:
    raise CLIError(f"--finetune-epochs must be >= 0, got {args.finetune_epochs}")
  if args.finetune_epochs and args.no_labels:
    raise CLIError("discriminative fine-tuning (--finetune-epochs) needs the labels; drop "
                   "--no-labels")
  if args.updown_balanced and args.no_labels:
    raise CLIError("--updown-balanced needs the labels; drop --no-labels")


def _fill_dataset_defaults(args) -> None:
  """The defaults that depend on the data set: sizes, held-out examples, batch size, epochs."""
  if args.sizes is None:
    args.sizes = (500, 500, 2000) if args.dataset == "mnist" else (100, 200)
  mnist = args.dataset == "mnist"
  if args.n_valid is None:
    args.n_valid = 10_000 if mnist else 200
  if args.batch_size is None:
    args.batch_size = 100 if mnist else 20
  if args.epochs is None:
    args.epochs = 10 if mnist else 100


def _run_settings(args, out: pathlib.Path) -> dict:
  """The settings that define the run; a run already in ``out`` must have the same ones."""
  settings = {k: (list(v) if isinstance(v, tuple) else v)
              for k, v in ((k, getattr(args, k)) for k in _RUN_SETTINGS)}
  settings_path = out / "settings.json"
  if settings_path.is_file():
    old = {**_SETTING_DEFAULTS, **json.loads(settings_path.read_text())}
    diff = settings_diff(old, settings)
    if diff:
      raise CLIError(f"--out {args.out!r} holds a run with other settings ({'; '.join(diff)})"
                     "; use a new --out, or the same settings to resume (only --epochs, "
                     "--updown-epochs, --updown-k-schedule, --updown-lr-decay-start and "
                     "--finetune-epochs may change)")
    print(f"resuming the run in {out}")
  return settings


def _load_train_data(args):
  """``(dataset, train, valid)``, checked against ``--batch-size`` and ``--updown-balanced``."""
  import jax
  from jdbn import data
  ds = load_dataset(args.dataset, "train", args.data_dir)
  train_ds, valid_ds = split_train(ds, args.n_valid, args.batch_size)
  if args.updown_balanced and args.updown_epochs:
    try:
      data.balanced_order(jax.random.key(0), train_ds.y, args.batch_size, N_CLASSES)
    except ValueError as err:
      raise CLIError(f"--updown-balanced: {err}") from err
  return ds, train_ds, valid_ds


# --------------------------------------------------------------------------- training


def cmd_train_dbn(args) -> int:
  import jax
  import jax.numpy as jnp
  from jdbn import checkpoint

  _check_train_dbn(args)
  out = writable_folder(args.out)
  _fill_dataset_defaults(args)
  settings = _run_settings(args, out)
  ds, train_ds, valid_ds = _load_train_data(args)
  # Only a run whose inputs passed the checks above claims the folder.
  out.mkdir(parents=True, exist_ok=True)
  checkpoint.write_json(out / "settings.json", settings)
  key = make_key(args)
  k_bin, k_pre, k_ud, k_sample = jax.random.split(key, 4)
  k_ft = jax.random.fold_in(k_ud, 1)
  spec = {"binarize": args.binarize}
  k_train, k_valid = jax.random.split(k_bin)
  x = binarize(k_train, np.asarray(train_ds.x), args.binarize)
  v = binarize(k_valid, np.asarray(valid_ds.x), args.binarize)
  labelled = not args.no_labels
  y, y_valid = jnp.asarray(train_ds.y), jnp.asarray(valid_ds.y)
  trainer = make_trainer(args.method, args.lr, args.momentum, args.weight_decay, args.k,
                         args.n_chains)
  t0 = time.perf_counter()
  model, metrics = _pretrain(k_pre, k_ud, trainer, (x, y), (v, y_valid), labelled, args, out)
  user = {"kind": "dbn", "command": "train dbn", "dataset": args.dataset,
          "image_shape": list(ds.image_shape), "preprocess": spec, "settings": settings,
          "labels": labelled, "data_dir": resolved_data_dir(args)}
  path = checkpoint.save(out / MODEL_NAME, model, metadata=user)
  if args.finetune_epochs:
    metrics["finetune"] = _finetune(k_ft, model, (x, y), (v, y_valid), args, out)
    print(f"fine-tuned network: validation error {metrics['finetune']['valid_error']:.4f} "
          f"(epoch {metrics['finetune']['best_epoch']} of {metrics['finetune']['epochs']})")
  metrics["seconds"] = time.perf_counter() - t0
  checkpoint.write_json(out / "metrics.json", metrics)
  png = _save_samples(k_sample, model, labelled, args, out / "samples.png", ds.image_shape)
  print(f"trained in {metrics['seconds']:.1f} s")
  files = [("model", path), ("metrics", out / "metrics.json"), ("samples", png)]
  if args.finetune_epochs:
    files.append(("network", out / CLASSIFIER_NAME))
  for name, p in files:
    print(f"  {name:<8} {p}")
  return 0


def _pretrain(k_pre, k_ud, trainer, train, valid, labelled: bool, args, out: pathlib.Path):
  """Greedy pretraining, then the up-down epochs if any: ``(model, metrics)``."""
  from jdbn import dbn as D
  (x, y), (v, y_valid) = train, valid
  print(f"pretraining {'-'.join(map(str, (x.shape[1], *args.sizes)))}"
        f"{'+10 labels' if labelled else ''} on {len(x)} {args.dataset} examples, "
        f"{args.epochs} epochs per layer")
  dbn, history = D.pretrain(k_pre, [x.shape[1], *args.sizes], x, trainer, epochs=args.epochs,
                            batch_size=args.batch_size, labels=y if labelled else None,
                            propagate=args.propagate, validation=v,
                            validation_labels=y_valid if labelled else None,
                            checkpoint_dir=str(out / "pretrain"), progress=not args.no_progress)
  metrics: dict[str, Any] = {"pretrain": [h.epochs for h in history]}
  model = dbn
  if labelled:
    metrics["valid_error_pretrained"] = generative_error(dbn, v, y_valid)
    print(f"generative classification error (validation): {metrics['valid_error_pretrained']:.4f}")
  if args.updown_epochs:
    model, metrics["updown"] = _updown(k_ud, dbn, x, y if labelled else None, args, out)
    if labelled:
      metrics["valid_error_updown"] = generative_error(model, v, y_valid)
      print(f"after {args.updown_epochs} up-down epochs: {metrics['valid_error_updown']:.4f}")
  return model, metrics


def _save_samples(key, model, labelled: bool, args, path: pathlib.Path, shape) -> pathlib.Path:
  """``samples.png``: a row per class of a labelled DBN, else 100 free-running samples."""
  import jax.numpy as jnp
  from jdbn import dbn as D
  if labelled:
    images = D.generate(key, model, jnp.repeat(jnp.arange(10), 10), n_steps=args.sample_steps)
  else:
    images = D.generate(key, model, n_steps=args.sample_steps, n_samples=100)
  return save_sheet(path, images, 10, shape)


def _updown(key, dbn, x, y, args, out: pathlib.Path):
  """Up-down epochs with a checkpoint after each (resumed from ``out/updown.npz``); each epoch's
  sweeps and rate come from ``--updown-k-schedule`` and ``--updown-lr-decay-start``."""
  from jdbn import dbn as D
  from jdbn.train import updown
  state, history = updown.fit(
      key, dbn, x if y is None else (x, y), epochs=args.updown_epochs,
      batch_size=args.batch_size, opt=updown.optimizer(args.updown_lr),
      lr_of=updown.rate_schedule(args.updown_lr, args.updown_epochs, args.updown_lr_decay_start),
      k_of=D.sweep_schedule(args.updown_k_schedule or args.updown_k),
      order="balanced" if args.updown_balanced else None, path=out / UPDOWN_NAME,
      metadata={"pretrain_epochs": args.epochs},
      progress=False if args.no_progress else "up-down")
  return state.params, history


def _finetune(key, model, train, valid, args, out: pathlib.Path) -> dict:
  """Discriminative fine-tuning of :func:`jdbn.finetune.from_dbn` ``(model)``, resumable.

  :func:`jdbn.train.finetune.fit` saves the :class:`jdbn.finetune.FinetuneState` after every
  epoch (``finetune.npz``); the early-stopped variables go to ``classifier.npz`` with the
  network's shape in its metadata.
  """
  import jax
  from jdbn import checkpoint
  from jdbn.train import finetune as F
  module, variables = F.from_dbn(model, key=jax.random.fold_in(key, 1),
                                 dropout_rate=args.dropout, input_dropout_rate=args.input_dropout)
  decay = (args.finetune_epochs * (len(train[0]) // args.batch_size)
           if args.finetune_schedule == "cosine" else None)
  optimizer = F.optimizer(args.finetune_lr, decay_steps=decay, max_norm_value=args.max_norm)
  source = {"pretrain_epochs": args.epochs, "updown_epochs": args.updown_epochs}

  def report(epoch, _, row):
    if args.no_progress:
      print(f"fine-tuning epoch {epoch}: loss {row['loss']:.4f}, validation error "
            f"{row['valid_error']:.4f}", flush=True)

  state, history = F.fit(jax.random.fold_in(key, 0), module, variables, train, valid, optimizer,
                         epochs=args.finetune_epochs, batch_size=args.batch_size,
                         patience=args.patience, path=out / FINETUNE_NAME,
                         metadata={"source": source}, callback=report,
                         progress="fine-tune" if not args.no_progress else False)
  summary = {"valid_error": float(state.best_error), "best_epoch": int(state.best_epoch),
             "epochs": int(state.epoch), "history": history}
  checkpoint.save(out / CLASSIFIER_NAME, state.best_variables, metadata={
      "kind": "classifier", "hidden_sizes": list(module.hidden_sizes),
      "n_classes": module.n_classes, "dropout": args.dropout,
      "input_dropout": args.input_dropout, "valid_error": summary["valid_error"],
      "best_epoch": summary["best_epoch"]})
  return summary
