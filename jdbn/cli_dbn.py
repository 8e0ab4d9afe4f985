"""The DBN subcommands of the ``jdbn`` command line.

::

    jdbn train dbn --dataset {digits,mnist} [--sizes 500,500,2000] --out DIR [--epochs E]
                   [--updown-epochs U] [--finetune-epochs F [--dropout P] [--max-norm C]] [...]
    jdbn generate MODEL [--per-class N | --labels 3,3,7 | --n-samples N] [--n-steps K]
                  [--out generated.png] [--seed S]
    jdbn evaluate MODEL [--dataset ...] [--split test] [--n-chains C] [--n-betas B | --quick]

``MODEL`` is a DBN run folder (holding ``dbn.npz``, and ``classifier.npz`` when it was
fine-tuned discriminatively) or a DBN model file. Wiring into
:mod:`jdbn.cli` (one line each)::

    add_train:      cli_dbn.add_train_dbn(models)          # `jdbn train dbn`
    build_parser:   cli_dbn.add_generate(sub)              # `jdbn generate`
    cmd_evaluate:   if cli_dbn.is_dbn(args.checkpoint): return cli_dbn.cmd_evaluate_dbn(args)

or :func:`add_subcommands` for the first two. Each subcommand is an ``add_*`` function declaring
its arguments and a ``cmd_*`` function running it; the numbers come from :mod:`jdbn.dbn`,
:mod:`jdbn.likelihood` and :mod:`jdbn.train`.
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

import numpy as np

# jdbn.cli imports this module lazily, inside the functions that wire it in.
from jdbn.cli import (CLIError, _binarize, _data_dir_for, _fmt, _load_dataset,
                      _non_negative_float, _positive_float, _positive_int, _trainer, _zoom,
                      add_seed, betas_schedule, make_key, settings_diff, writable_file,
                      writable_folder)

MODEL_NAME = "dbn.npz"
UPDOWN_NAME = "updown.npz"
FINETUNE_NAME = "finetune.npz"  # the fine-tuning state, for resuming
CLASSIFIER_NAME = "classifier.npz"  # the fine-tuned network's early-stopped variables
N_CLASSES = 10  # both datasets' classes: the label units dbn.pretrain adds by default


def add_subcommands(subparsers, train_models=None) -> None:
  """Adds ``generate`` to ``subparsers`` and, given the ``train`` group's subparsers, ``dbn``."""
  add_generate(subparsers)
  if train_models is not None:
    add_train_dbn(train_models)


# --------------------------------------------------------------------------- helpers


def _sizes(text: str) -> tuple[int, ...]:
  import argparse
  try:
    sizes = tuple(int(t) for t in text.split(","))
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected sizes such as 500,500,2000, got {text!r}") from None
  if not sizes or min(sizes) < 1:
    raise argparse.ArgumentTypeError(f"sizes must be positive integers, got {text!r}")
  return sizes


def _labels_list(text: str) -> list[int]:
  import argparse
  try:
    return [int(t) for t in text.split(",")]
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected labels such as 0,1,7, got {text!r}") from None


def _resolve_model(text: str) -> pathlib.Path:
  path = pathlib.Path(text)
  if path.is_dir():
    path = path / MODEL_NAME
  if not path.is_file():
    raise CLIError(f"no DBN at {text!r}: give a run folder written by `jdbn train dbn "
                           f"--out DIR` (it holds {MODEL_NAME}) or a DBN model file")
  return path


def is_dbn(text: str) -> bool:
  """Whether ``text`` names a DBN run folder or DBN model file (for ``jdbn evaluate``)."""
  from jdbn import checkpoint
  path = pathlib.Path(text)
  if path.is_dir():
    return (path / MODEL_NAME).is_file()
  if not path.is_file():
    return False
  try:
    return checkpoint.read_metadata(path).get("kind") == "dbn"
  except (ValueError, OSError, KeyError):
    return False


def load_model(text: str):
  """``(model, metadata)`` of a DBN run folder or file; the model is a tuple of RBMs or an
  :class:`jdbn.dbn.UntiedDBN`."""
  from jdbn import checkpoint
  from jdbn import dbn as D
  path = _resolve_model(text)
  try:
    model, meta = checkpoint.restore(path)
  except ValueError as err:
    raise CLIError(str(err)) from err
  try:
    D.check(model)
  except (TypeError, ValueError) as err:
    raise CLIError(f"{path} does not hold a DBN: {err}") from err
  return model, meta


def _image_shape(model, meta: dict) -> tuple[int, int]:
  from jdbn import dbn as D
  n = D.layer_sizes(model)[0]
  if meta.get("image_shape"):
    return tuple(meta["image_shape"])
  side = int(round(n**0.5))
  if side * side != n:
    raise CLIError(f"the model does not record an image shape and {n} inputs are not a "
                           f"square")
  return side, side


def _save_sheet(path, images: np.ndarray, n_rows: int, shape) -> pathlib.Path:
  from jdbn import viz
  images = np.clip(np.asarray(images), 0, 1)
  return viz.save_rows(path, images.reshape(n_rows, -1, images.shape[-1]), shape,
                       zoom=_zoom(shape))


# --------------------------------------------------------------------------- train dbn

_RUN_SETTINGS = ("dataset", "sizes", "no_labels", "method", "k", "n_chains", "lr", "momentum",
                 "weight_decay", "batch_size", "binarize", "propagate", "n_valid", "seed",
                 "prng", "updown_lr", "updown_k", "finetune_lr", "finetune_schedule", "dropout",
                 "input_dropout", "max_norm", "updown_balanced")
# What runs saved before a setting existed did, for resuming them.
_SETTING_DEFAULTS = {"finetune_lr": 0.1, "finetune_schedule": "constant", "dropout": 0.0,
                     "input_dropout": 0.0, "max_norm": None, "updown_balanced": False}


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
  p.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
  p.add_argument("--data-dir", help="folder of the MNIST IDX files (default: $JDBN_MNIST_DIR)")
  p.add_argument("--sizes", type=_sizes, default=None,
                 help="hidden layer sizes (default 500,500,2000 for mnist, 100,200 for digits)")
  p.add_argument("--no-labels", action="store_true", help="no label units in the top RBM")
  p.add_argument("--method", choices=("cd", "pcd"), default="cd")
  p.add_argument("-k", type=_positive_int, default=1, help="Gibbs sweeps per update")
  p.add_argument("--n-chains", type=_positive_int, default=100, help="PCD chains")
  p.add_argument("--lr", type=_positive_float, default=0.1)
  p.add_argument("--momentum", type=_non_negative_float, default=0.5)
  p.add_argument("--weight-decay", type=_non_negative_float, default=2e-4)
  p.add_argument("--epochs", type=_positive_int, default=None,
                 help="epochs per layer (default 10 for mnist, 100 for digits)")
  p.add_argument("--batch-size", type=_positive_int, default=None,
                 help="default 100 for mnist, 20 for digits")
  p.add_argument("--binarize", choices=("none", "threshold", "stochastic"), default="none")
  p.add_argument("--propagate", choices=("mean", "sample"), default="mean",
                 help="train each layer on the previous one's probabilities or samples")
  p.add_argument("--n-valid", type=_positive_int, default=None,
                 help="training examples held out (default 10000 for mnist, 200 for digits)")
  p.add_argument("--updown-epochs", type=int, default=0,
                 help="up-down fine-tuning epochs (on digits, 200 with --updown-lr 0.2 take the "
                 "test error from 13%% to 6%% in half a minute)")
  p.add_argument("--updown-lr", type=_positive_float, default=0.01)
  p.add_argument("--updown-k", type=_positive_int, default=3,
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
  g = p.add_argument_group("discriminative fine-tuning (needs the labels)")
  g.add_argument("--finetune-epochs", type=int, default=0,
                 help="epochs of back-propagation fine-tuning of the network made from the DBN "
                 "(0: none)")
  g.add_argument("--finetune-lr", type=_positive_float, default=0.1,
                 help="SGD learning rate (momentum 0.9)")
  g.add_argument("--finetune-schedule", choices=("constant", "cosine"), default="constant",
                 help="cosine: the rate decays to 0 over --finetune-epochs")
  g.add_argument("--dropout", type=_probability, default=0.0, help="hidden-unit dropout")
  g.add_argument("--input-dropout", type=_probability, default=0.0, help="input dropout")
  g.add_argument("--max-norm", type=_positive_float, default=None,
                 help="bound on the norm of each unit's incoming weights")
  g.add_argument("--patience", type=_positive_int, default=None,
                 help="stop after this many epochs without a lower validation error")
  p.add_argument("--sample-steps", type=_positive_int, default=1000)
  add_seed(p)
  p.add_argument("--out", required=True, help="run folder")
  p.add_argument("--no-progress", action="store_true")
  p.set_defaults(func=cmd_train_dbn)


def _probability(text: str) -> float:
  import argparse
  try:
    value = float(text)
  except ValueError:
    value = float("nan")
  if not 0 <= value < 1:
    raise argparse.ArgumentTypeError(f"expected a probability in [0, 1), got {text!r}")
  return value


def cmd_train_dbn(args) -> int:
  import jax
  import jax.numpy as jnp
  from jdbn import checkpoint, data
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
  out = writable_folder(args.out)
  if args.sizes is None:
    args.sizes = (500, 500, 2000) if args.dataset == "mnist" else (100, 200)
  mnist = args.dataset == "mnist"
  if args.n_valid is None:
    args.n_valid = 10_000 if mnist else 200
  if args.batch_size is None:
    args.batch_size = 100 if mnist else 20
  if args.epochs is None:
    args.epochs = 10 if mnist else 100
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

  ds = _load_dataset(args.dataset, "train", args.data_dir)
  try:
    train_ds, valid_ds = data.split_validation(ds, args.n_valid)
  except ValueError as err:
    raise CLIError(f"--n-valid: {err}") from err
  if args.batch_size > len(train_ds.x):
    raise CLIError(f"--batch-size {args.batch_size} exceeds the {len(train_ds.x)} training "
                       "examples")
  if args.updown_balanced and args.updown_epochs:
    try:
      data.balanced_order(jax.random.key(0), train_ds.y, args.batch_size, N_CLASSES)
    except ValueError as err:
      raise CLIError(f"--updown-balanced: {err}") from err
  # Only a run whose inputs passed the checks above claims the folder.
  out.mkdir(parents=True, exist_ok=True)
  checkpoint.write_json(settings_path, settings)
  key = make_key(args)
  k_bin, k_pre, k_ud, k_sample = jax.random.split(key, 4)
  k_ft = jax.random.fold_in(k_ud, 1)
  spec = {"binarize": args.binarize}
  k_train, k_valid = jax.random.split(k_bin)
  x = _binarize(k_train, np.asarray(train_ds.x), args.binarize)
  v = _binarize(k_valid, np.asarray(valid_ds.x), args.binarize)
  labelled = not args.no_labels
  y, y_valid = jnp.asarray(train_ds.y), jnp.asarray(valid_ds.y)
  trainer = _trainer(args.method, args.lr, args.momentum, args.weight_decay, args.k,
                     args.n_chains)
  t0 = time.perf_counter()
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
    metrics["valid_error_pretrained"] = _generative_error(dbn, v, y_valid)
    print(f"generative classification error (validation): {metrics['valid_error_pretrained']:.4f}")
  if args.updown_epochs:
    model, metrics["updown"] = _updown(k_ud, dbn, x, y if labelled else None, args, out)
    if labelled:
      metrics["valid_error_updown"] = _generative_error(model, v, y_valid)
      print(f"after {args.updown_epochs} up-down epochs: {metrics['valid_error_updown']:.4f}")
  user = {"kind": "dbn", "command": "train dbn", "dataset": args.dataset,
          "image_shape": list(ds.image_shape), "preprocess": spec, "settings": settings,
          "labels": labelled,
          "data_dir": None if args.data_dir is None else str(pathlib.Path(args.data_dir).resolve())}
  path = checkpoint.save(out / MODEL_NAME, model, metadata=user)
  if args.finetune_epochs:
    metrics["finetune"] = _finetune(k_ft, model, (x, y), (v, y_valid), args, out)
    print(f"fine-tuned network: validation error {metrics['finetune']['valid_error']:.4f} "
          f"(epoch {metrics['finetune']['best_epoch']} of {metrics['finetune']['epochs']})")
  metrics["seconds"] = time.perf_counter() - t0
  checkpoint.write_json(out / "metrics.json", metrics)
  if labelled:
    images = D.generate(k_sample, model, jnp.repeat(jnp.arange(10), 10), n_steps=args.sample_steps)
  else:
    images = D.generate(k_sample, model, n_steps=args.sample_steps, n_samples=100)
  png = _save_sheet(out / "samples.png", images, 10, ds.image_shape)
  print(f"trained in {metrics['seconds']:.1f} s")
  files = [("model", path), ("metrics", out / "metrics.json"), ("samples", png)]
  if args.finetune_epochs:
    files.append(("network", out / CLASSIFIER_NAME))
  for name, p in files:
    print(f"  {name:<8} {p}")
  return 0


def _generative_error(model, x, y) -> float:
  import jax
  import jax.numpy as jnp
  from jdbn import dbn as D
  pred = jax.jit(lambda m, a: D.classify(m, a, batch_size=500))(model, jnp.asarray(x))
  return float(jnp.mean(pred != jnp.asarray(y)))


def _updown(key, dbn, x, y, args, out: pathlib.Path):
  """Up-down epochs with a checkpoint after each (resumed from ``out/updown.npz``); each epoch's
  sweeps and rate come from ``--updown-k-schedule`` and ``--updown-lr-decay-start``."""
  import optax
  from jdbn import dbn as D
  from jdbn import updown
  lr_of = (optax.constant_schedule(args.updown_lr) if args.updown_lr_decay_start is None else
           optax.linear_schedule(args.updown_lr, 0.0,
                                 args.updown_epochs - args.updown_lr_decay_start,
                                 args.updown_lr_decay_start))
  state, history = updown.fit(
      key, dbn, x if y is None else (x, y), epochs=args.updown_epochs,
      batch_size=args.batch_size, opt=updown.optimizer(args.updown_lr), lr_of=lr_of,
      k_of=D.sweep_schedule(args.updown_k_schedule or args.updown_k),
      order="balanced" if args.updown_balanced else None, path=out / UPDOWN_NAME,
      metadata={"pretrain_epochs": args.epochs},
      progress=False if args.no_progress else "up-down")
  return state.params, history


def _finetune(key, model, train, valid, args, out: pathlib.Path) -> dict:
  """Discriminative fine-tuning of :func:`jdbn.finetune.from_dbn` ``(model)``, resumable.

  The :class:`jdbn.finetune.FinetuneState` is saved after every epoch (``finetune.npz``); the
  early-stopped variables go to ``classifier.npz`` with the network's shape in its metadata.
  """
  import jax
  import optax
  from jdbn import checkpoint
  from jdbn import finetune as F
  module, variables = F.from_dbn(model, key=jax.random.fold_in(key, 1),
                                 dropout_rate=args.dropout, input_dropout_rate=args.input_dropout)
  lr = args.finetune_lr
  if args.finetune_schedule == "cosine":
    lr = optax.cosine_decay_schedule(lr, args.finetune_epochs * (len(train[0]) // args.batch_size))
  optimizer = optax.sgd(lr, momentum=0.9)
  if args.max_norm:
    optimizer = optax.chain(optimizer, F.max_norm(args.max_norm))
  state, path = F.init_state(variables, optimizer), out / FINETUNE_NAME
  history: list = []
  source = {"pretrain_epochs": args.epochs, "updown_epochs": args.updown_epochs}
  if path.is_file():
    tree, meta = checkpoint.restore(path, like={"state": state})
    if meta.get("source", source) == source:
      state, history = tree["state"], list(meta["history"])
    else:  # the DBN it started from has been trained further since: start again from it
      print(f"the DBN has changed since fine-tuning started ({meta['source']} then, {source} "
            "now): fine-tuning starts again")

  def save(epoch, st, row):
    history.append(row)
    checkpoint.save(path, {"state": st}, metadata={"epoch": epoch, "history": history,
                                                   "source": source})
    if args.no_progress:
      print(f"fine-tuning epoch {epoch}: loss {row['loss']:.4f}, validation error "
            f"{row['valid_error']:.4f}", flush=True)

  state, _ = F.train(jax.random.fold_in(key, 0), module, variables, train, valid, optimizer,
                     epochs=args.finetune_epochs, batch_size=args.batch_size,
                     patience=args.patience, state=state,
                     progress="fine-tune" if not args.no_progress else False, callback=save)
  summary = {"valid_error": float(state.best_error), "best_epoch": int(state.best_epoch),
             "epochs": int(state.epoch), "history": history}
  checkpoint.save(out / CLASSIFIER_NAME, state.best_variables, metadata={
      "kind": "classifier", "hidden_sizes": list(module.hidden_sizes),
      "n_classes": module.n_classes, "dropout": args.dropout,
      "input_dropout": args.input_dropout, "valid_error": summary["valid_error"],
      "best_epoch": summary["best_epoch"]})
  return summary


def load_classifier(folder: pathlib.Path):
  """``(module, variables)`` of the fine-tuned network in a run folder, or None."""
  from jdbn import checkpoint
  from jdbn import finetune as F
  path = folder / CLASSIFIER_NAME
  if not path.is_file():
    return None
  variables, meta = checkpoint.restore(path)
  module = F.Classifier(tuple(meta["hidden_sizes"]), meta["n_classes"], meta["dropout"],
                        meta["input_dropout"])
  return module, variables


# --------------------------------------------------------------------------- generate


def add_generate(sub) -> None:
  """``jdbn generate``: class-conditional (or free) samples from a DBN."""
  p = sub.add_parser(
      "generate", help="draw digits from a trained DBN, a row per class",
      description="Run Gibbs chains in the DBN's top RBM (label units clamped) and pass the "
      "result down through the generative weights; saves a PNG with a row per label.")
  p.add_argument("model", metavar="MODEL", help="DBN run folder or model file")
  g = p.add_mutually_exclusive_group()
  g.add_argument("--per-class", type=_positive_int, default=None,
                 help="samples per label, one row per label (default 10)")
  g.add_argument("--labels", type=_labels_list, default=None, help="explicit labels, one row")
  g.add_argument("--n-samples", type=_positive_int, default=None,
                 help="free-running samples (labels not clamped)")
  p.add_argument("--n-steps", type=_positive_int, default=1000, help="Gibbs sweeps")
  p.add_argument("--out", default="generated.png", help="PNG file to write")
  add_seed(p)
  p.set_defaults(func=cmd_generate)


def cmd_generate(args) -> int:
  import jax.numpy as jnp
  from jdbn import dbn as D
  writable_file(args.out)
  model, meta = load_model(args.model)
  shape = _image_shape(model, meta)
  n_labels = D.n_labels(model)
  key = make_key(args)
  if not n_labels and (args.labels is not None or args.per_class is not None):
    raise CLIError("this DBN has no label units, so --labels and --per-class do not apply; "
                   "use --n-samples for free-running samples")
  if args.n_samples is not None or not n_labels:
    n = args.n_samples or 100
    images, n_rows = D.generate(key, model, n_steps=args.n_steps, n_samples=n), 1
  else:
    if args.labels is not None:
      labels = jnp.asarray(args.labels, jnp.int32)
      n_rows = 1
    else:
      labels = jnp.repeat(jnp.arange(n_labels), args.per_class or 10)
      n_rows = n_labels
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= n_labels):
      raise CLIError(f"labels must lie in 0..{n_labels - 1}")
    images = D.generate(key, model, labels, n_steps=args.n_steps)
  path = _save_sheet(args.out, images, n_rows, shape)
  print(f"{images.shape[0]} samples after {args.n_steps} Gibbs sweeps: {path}")
  return 0


# --------------------------------------------------------------------------- evaluate


def cmd_evaluate_dbn(args) -> int:
  """``jdbn evaluate`` on a DBN: generative classification error and a log-likelihood bound.

  Uses the arguments of ``jdbn evaluate`` (``checkpoint``, ``--dataset``, ``--data-dir``,
  ``--split``, ``--n-chains``, ``--n-betas``/``--quick``, ``--max-examples``, ``--seed``). The bound
  is Salakhutdinov & Murray's (2008) variational lower bound on ``log p(v)`` with the top RBM's
  ``log Z`` from AIS (:func:`jdbn.dbn.log_likelihood_bound`), on a stochastic binarisation of the
  data; it is printed with the AIS interval carried through.
  """
  import jax
  import jax.numpy as jnp
  from jdbn import dbn as D
  from jdbn import likelihood
  model, meta = load_model(args.checkpoint)
  name = args.dataset or meta.get("dataset")
  if name is None:
    raise CLIError("the model does not record its dataset; pass --dataset")
  data_dir = _data_dir_for(args.data_dir, name, meta)
  test = _load_dataset(name, args.split, data_dir)
  n_in = D.layer_sizes(model)[0]
  if test.x.shape[1] != n_in:
    raise CLIError(f"{name} has {test.x.shape[1]} pixels but the DBN has {n_in} inputs")
  x, y = np.asarray(test.x), np.asarray(test.y)
  if args.max_examples:
    x, y = x[:args.max_examples], y[:args.max_examples]
  spec = meta.get("preprocess", {"binarize": "none"})
  key = make_key(args)
  k_x, k_b, k_ais, k_bound = jax.random.split(key, 4)
  result: dict[str, Any] = {"n_examples": int(len(x))}
  print(f"evaluating the DBN {_resolve_model(args.checkpoint)} on {name} {args.split} "
        f"({len(x)} examples)")
  x_in = _binarize(k_x, x, spec.get("binarize", "none"))
  if D.n_labels(model):
    err = _generative_error(model, x_in, y)
    result["generative_error"] = err
    print(f"generative classification error: {err:.4f} ({round(err * len(x))} of {len(x)})")
  folder = pathlib.Path(args.checkpoint)
  classifier = load_classifier(folder) if folder.is_dir() else None
  if classifier is not None:
    from jdbn import finetune as F
    err = F.error_rate(*classifier, x_in, y)
    result["finetuned_error"] = err
    print(f"fine-tuned network's classification error: {err:.4f} ({round(err * len(x))} of "
          f"{len(x)})")
  # Likelihood bound on binary data.
  xb = _binarize(k_b, x, "stochastic")
  train = _load_dataset(name, "train", data_dir)
  top_data = D.penultimate(model, jnp.asarray(train.x[:10_000]))
  if D.n_labels(model):
    top_data = jnp.concatenate([top_data, jax.nn.one_hot(train.y[:10_000], D.n_labels(model))],
                               -1)
  betas = betas_schedule(1000 if args.quick else args.n_betas)
  _, _, top = D._parts(model)  # pylint: disable=protected-access
  t0 = time.perf_counter()
  res = likelihood.ais(k_ais, top, n_chains=args.n_chains, betas=betas, data=top_data)
  bound_fn = jax.jit(lambda k, m, v, z: D.log_likelihood_bound(k, m, v, z, n_samples=10))
  bounds = np.concatenate([np.asarray(bound_fn(jax.random.fold_in(k_bound, i), model,
                                               jnp.asarray(xb[i:i + 1000]), res.log_z))
                           for i in range(0, len(xb), 1000)])
  mean = float(bounds.mean())
  shift = float(res.log_z) - np.array([float(res.log_z_upper), float(res.log_z_lower)])
  result.update({"log_z": float(res.log_z), "log_z_lower": float(res.log_z_lower),
                 "log_z_upper": float(res.log_z_upper), "ais_n_betas": int(len(betas)),
                 "ais_n_chains": args.n_chains, "log_likelihood_bound": mean,
                 "log_likelihood_bound_interval": [mean + shift[0], mean + shift[1]],
                 "seconds": time.perf_counter() - t0})
  print(f"top RBM log Z (AIS, {args.n_chains} chains, {len(betas):,} betas): "
        f"{_fmt(float(res.log_z))} [{_fmt(float(res.log_z_lower))}, "
        f"{_fmt(float(res.log_z_upper))}]")
  print(f"log-likelihood lower bound (Salakhutdinov & Murray 2008): {_fmt(mean)} "
        f"nats/example [{_fmt(mean + shift[0])}, {_fmt(mean + shift[1])}] over the AIS "
        f"interval, {result['seconds']:.1f} s")
  return 0


def add_evaluate_dbn(sub, name: str = "evaluate-dbn") -> None:
  """A separate ``evaluate-dbn`` subcommand, for wiring without touching ``cmd_evaluate``."""
  p = sub.add_parser(name, help="generative classification error and log-likelihood bound of a "
                     "DBN", description=cmd_evaluate_dbn.__doc__.split("\n\n")[0])
  p.add_argument("checkpoint", metavar="MODEL", help="DBN run folder or model file")
  p.add_argument("--dataset", choices=("digits", "mnist"), default=None)
  p.add_argument("--data-dir")
  p.add_argument("--split", choices=("train", "test"), default="test")
  p.add_argument("--n-chains", type=_positive_int, default=100)
  g = p.add_mutually_exclusive_group()
  g.add_argument("--n-betas", type=_positive_int, default=None)
  g.add_argument("--quick", action="store_true")
  p.add_argument("--max-examples", type=_positive_int, default=None)
  add_seed(p)
  p.set_defaults(func=cmd_evaluate_dbn)
