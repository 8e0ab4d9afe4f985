"""The ``jdbn`` command line: train, sample, evaluate, demo.

::

    jdbn demo [--out DIR] [--epochs E]
    jdbn train rbm --dataset {digits,mnist} [--data-dir DIR] --n-hidden N --out DIR [...]
    jdbn sample CHECKPOINT [--n-samples N] [--n-steps K] [--out samples.png]
                           [--seed S] [--prng IMPL]
    jdbn evaluate CHECKPOINT [--dataset mnist] [--data-dir DIR] [--n-chains C]
                             [--n-betas B | --quick]

``CHECKPOINT`` is a run folder (holding ``checkpoint.npz``) or a checkpoint file. Each subcommand is
one ``add_*`` function that declares its arguments and one ``cmd_*`` function that runs it; a new
subcommand is a pair of these plus a line in :func:`build_parser`. The CLI only wires the library
together: every number it prints comes from ``jdbn.train``, ``jdbn.likelihood`` and friends.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import pathlib
import tempfile
import sys
import time
from typing import Any, Optional, Sequence

import numpy as np

PROG = "jdbn"


#: The exit status of a run that diverged (NaN or inf); 2 is bad input, 1 an unexpected error.
EXIT_DIVERGED = 3


class CLIError(Exception):
  """A user-facing error: printed as ``jdbn: error: ...`` with exit status 2, no traceback."""


# --------------------------------------------------------------------------- argument types


def _positive_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
  if value < 1:
    raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
  return value


def _non_negative_float(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
  if not (math.isfinite(value) and value >= 0):
    raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
  return value


def _positive_float(text: str) -> float:
  value = _non_negative_float(text)
  if value == 0:
    raise argparse.ArgumentTypeError("must be > 0, got 0")
  return value


def _image_shape(text: str) -> tuple[int, int]:
  try:
    h, w = (int(t) for t in text.lower().split("x"))
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected HxW such as 28x28, got {text!r}") from None
  if h < 1 or w < 1:
    raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
  return h, w


#: PRNG implementations a run's key can use (``jax.random.key(seed, impl=...)``). The streams
#: differ, so a run keeps the implementation it started with. See README, "Randomness".
PRNG_IMPLS = ("threefry2x32", "philox4x32", "philox2x32", "rbg", "unsafe_rbg")


def add_seed(p) -> None:
  """``--seed`` and ``--prng``: every subcommand's randomness comes from one key made of both."""
  p.add_argument("--seed", type=int, default=0, help="seed of the run's PRNG key")
  p.add_argument("--prng", choices=PRNG_IMPLS, default="threefry2x32",
                 help="PRNG implementation: threefry2x32 (JAX's default), philox4x32 (about 3x "
                 "faster random numbers on CPUs), rbg or unsafe_rbg (fast on TPUs and GPUs)")


def make_key(args):
  """The run's key from ``--seed`` and ``--prng``."""
  import jax
  return jax.random.key(args.seed, impl=args.prng)


def settings_diff(old: dict, new: dict) -> list:
  """Settings of a run to resume that differ from the saved ones, as ``--flag`` messages.

  A setting missing from an older checkpoint counts as its default (``--prng`` threefry2x32).
  """
  defaults = {"prng": "threefry2x32"}
  return [f"--{k.replace('_', '-')} {old.get(k, defaults.get(k))!r} there, {v!r} here"
          for k, v in new.items() if old.get(k, defaults.get(k)) != v]


# --------------------------------------------------------------------------- shared helpers


def _units(name: str):
  from jdbn import units as U
  return {"bernoulli": U.Bernoulli(), "gaussian": U.Gaussian(), "relu": U.ReLU()}[name]


def _optimizer(lr: float, momentum: float, weight_decay: float,
               decay_steps: Optional[int] = None):
  """``optax.chain(add_decayed_weights(wd) on the weights W only, sgd(lr, momentum))``.

  With ``decay_steps``, the learning rate falls linearly to 5% of ``lr`` over that many updates.
  """
  import optax
  from jdbn.models.base import weights_only

  if decay_steps:
    lr = optax.linear_schedule(lr, 0.05 * lr, decay_steps)
  return optax.chain(optax.add_decayed_weights(weight_decay, mask=weights_only),
                     optax.sgd(lr, momentum=momentum or None))


@functools.lru_cache(maxsize=8)
def _trainer(method: str, lr: float, momentum: float, weight_decay: float, k: int,
             n_chains: int, decay_steps: Optional[int] = None,
             sparsity_target: Optional[float] = None, sparsity_cost: float = 0.0):
  """The contrastive trainer; cached so that equal settings reuse one compiled epoch."""
  from jdbn import contrastive
  optimizer = _optimizer(lr, momentum, weight_decay, decay_steps)
  sparsity = {"sparsity_target": sparsity_target, "sparsity_cost": sparsity_cost}
  if method == "cd":
    return contrastive.cd(optimizer, k=k, **sparsity)
  return contrastive.pcd(optimizer, k=k, n_chains=n_chains, **sparsity)


def _data_dir_for(given: Optional[str], name: str, meta: dict) -> Optional[str]:
  """The data folder to evaluate a model on: ``given`` (``--data-dir``) if set; else, unless the
  MNIST environment variable is set, the folder the model was trained from (recorded in its
  metadata) when it is the same dataset and the folder still exists."""
  from jdbn import data
  recorded = meta.get("data_dir")
  if given is None and not os.environ.get(data.MNIST_ENV_VAR) and recorded and \
     name == meta.get("dataset") and pathlib.Path(recorded).is_dir():
    return recorded
  return given


def _load_dataset(name: str, split: str, data_dir: Optional[str]):
  from jdbn import data
  try:
    return data.load(name, split, data_dir)
  except (FileNotFoundError, RuntimeError) as err:
    hint = ""
    if name == "mnist" and data.MNIST_ENV_VAR not in str(err):
      hint = (f"\nhint: pass --data-dir DIR or set {data.MNIST_ENV_VAR}=DIR, where DIR holds "
              f"train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
              f"t10k-labels-idx1-ubyte (.gz or not)")
    raise CLIError(f"cannot load {name} {split}: {err}{hint}") from err


def _preprocess_spec(x: np.ndarray, visible: str, binarize: str) -> dict:
  """How raw intensities become model inputs; stored in the checkpoint so others can redo it.

  Bernoulli visible units: ``binarize`` only. Gaussian visible units: every pixel standardised
  with the training set's mean and standard deviation (JSON lists in the spec).
  """
  spec: dict[str, Any] = {"binarize": binarize}
  if visible == "gaussian":
    # Hinton's guide, section 13.2: unit variance per pixel so that sigma = 1 fits. Near-constant
    # pixels (MNIST's border) keep a floor of 0.1 so they do not explode.
    spec["mean"] = np.asarray(x.mean(0), np.float64).round(8).tolist()
    spec["std"] = np.maximum(x.std(0), 0.1).round(8).tolist()
  return spec


def _binarize(key, x: np.ndarray, mode: str) -> np.ndarray:
  from jdbn import data
  if mode == "threshold":
    return np.asarray(data.binarize(x))
  if mode == "stochastic":
    return np.asarray(data.binarize_stochastic(key, x))
  return np.asarray(x, np.float32)


def _apply_preprocess(key, x: np.ndarray, spec: dict) -> np.ndarray:
  x = _binarize(key, x, spec.get("binarize", "none"))
  if "mean" in spec:
    x = (x - np.asarray(spec["mean"], np.float32)) / np.asarray(spec["std"], np.float32)
  return x.astype(np.float32)


def _to_image(v: np.ndarray, spec: dict) -> np.ndarray:
  """Model visible means back to [0, 1] intensities for pictures."""
  v = np.asarray(v, np.float64)
  if "mean" in spec:
    v = v * np.asarray(spec["std"]) + np.asarray(spec["mean"])
  return np.clip(v, 0.0, 1.0)


def _zoom(image_shape) -> int:
  return max(1, round(56 / max(image_shape)))


def _samples(key, params, n_samples: int, n_steps: int) -> np.ndarray:
  """Visible means ``E[v | h]`` after ``n_steps`` Gibbs sweeps from random starts: ``[n, d]``."""
  return np.asarray(_sample_fn()(key, params, n_samples=n_samples, n_steps=n_steps))


@functools.cache
def _sample_fn():
  """One jitted sampler for the process (jax is imported lazily, so ``jdbn --help`` is quick)."""
  import jax
  from jdbn import gibbs
  from jdbn import rbm as R

  @functools.partial(jax.jit, static_argnames=("n_samples", "n_steps"))
  def run(key, params, n_samples, n_steps):
    key_init, key_run = jax.random.split(key)
    state = gibbs.init_random(key_init, params, n_samples)
    state, _ = gibbs.chain(key_run, params, state, n_steps)
    return R.visible_mean(params, state.h)

  return run


def _save_pictures(out: pathlib.Path, key, params, image_shape, spec: dict, n_samples: int,
                   n_steps: int) -> dict:
  from jdbn import viz
  zoom = _zoom(image_shape)
  paths = {"filters": viz.save_filters(out / "filters.png", np.asarray(params.W), image_shape,
                                       max_filters=100, zoom=zoom)}
  v = _to_image(_samples(key, params, n_samples, n_steps), spec)
  paths["samples"] = viz.save_grid(out / "samples.png", v, image_shape, scale=None, zoom=zoom)
  return paths


def writable_folder(text: str, what: str = "--out") -> pathlib.Path:
  """The folder ``text``, created if need be, after writing and removing a probe file in it.

  Raises :class:`CLIError` before any work if the folder cannot be made or written (a read-only
  mount, ``/proc``, a path through a file), so that hours of training are not lost at the end.
  """
  out = pathlib.Path(text)
  if out.exists() and not out.is_dir():
    raise CLIError(f"{what} {text!r} exists and is not a folder")
  try:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out, prefix=".jdbn-write-probe-"):
      pass
  except OSError as err:
    raise CLIError(f"{what} {text!r} cannot be written ({err.strerror or err}); choose a folder "
                   f"you can write to") from err
  return out


def writable_file(text: str, what: str = "--out") -> pathlib.Path:
  """The file path ``text``, after checking that its folder can be written (see above)."""
  path = pathlib.Path(text)
  if path.is_dir():
    raise CLIError(f"{what} {text!r} is a folder; give a file name such as samples.png")
  writable_folder(str(path.parent), what=f"the folder of {what} {text!r}:")
  return path


def _resolve_checkpoint(text: str) -> pathlib.Path:
  from jdbn import train
  path = pathlib.Path(text)
  if path.is_dir():
    path = path / train.CHECKPOINT_NAME
    if not path.is_file():
      raise CLIError(f"unknown checkpoint: folder {text!r} holds no {train.CHECKPOINT_NAME}; "
                     f"give a run folder written by `jdbn train rbm --out DIR` / `jdbn demo` or "
                     f"a checkpoint file")
  elif not path.is_file():
    raise CLIError(f"unknown checkpoint: {text!r} does not exist; give a run folder written by "
                   f"`jdbn train rbm --out DIR` / `jdbn demo` or a checkpoint file")
  return path


def _load_model(path: pathlib.Path):
  """``(params, user_metadata)`` of a checkpoint, params a single RBM."""
  from jdbn import checkpoint
  from jdbn import rbm as R
  try:
    params, meta = checkpoint.load_params(path), checkpoint.read_metadata(path)
  except ValueError as err:
    raise CLIError(str(err)) from err
  if not isinstance(params, R.RBM):
    raise CLIError(f"{path} holds a {type(params).__name__}, not a single RBM; this command "
                   f"handles RBM checkpoints")
  return params, meta.get("user", meta)


def _image_shape_of(params, user: dict, given) -> tuple[int, int]:
  if given is not None:
    shape = tuple(given)
  elif user.get("image_shape"):
    shape = tuple(user["image_shape"])
  else:
    side = math.isqrt(params.n_visible)
    if side * side != params.n_visible:
      raise CLIError(f"the checkpoint does not record an image shape and n_visible="
                     f"{params.n_visible} is not a square; pass --image-shape HxW")
    shape = (side, side)
  if shape[0] * shape[1] != params.n_visible:
    raise CLIError(f"--image-shape {shape[0]}x{shape[1]} has {shape[0] * shape[1]} pixels, the "
                   f"model has {params.n_visible} visible units")
  return shape


def _fmt(x: float, digits: int = 3) -> str:
  return f"{x:.{digits}f}" if math.isfinite(x) else str(x)


# --------------------------------------------------------------------------- train rbm

# Settings that define a run: a rerun with the same --out must repeat them to resume.
#: ``train rbm``'s defaults that depend on the data set: 1,300 digits need small batches, many
#: epochs and the demo's momentum and decay to learn visible strokes (with MNIST's settings
#: every sample was the same blur); MNIST's 50,000 images need few epochs of large batches.
PRESETS = {
    "digits": {"momentum": 0.9, "weight_decay": 1e-3, "batch_size": 10, "epochs": 50},
    "mnist": {"momentum": 0.5, "weight_decay": 1e-4, "batch_size": 100, "epochs": 10},
}


def _preset_help(name: str) -> str:
  return "default: " + ", ".join(f"{v[name]:g} for {k}" for k, v in PRESETS.items())


def apply_preset(args) -> None:
  """Fills the options left at ``None`` with the data set's :data:`PRESETS`."""
  for name, value in PRESETS[args.dataset].items():
    if getattr(args, name, None) is None:
      setattr(args, name, value)


_RUN_SETTINGS = ("dataset", "n_hidden", "visible", "hidden", "method", "k", "n_chains", "lr",
                 "momentum", "weight_decay", "sparsity_target", "sparsity_cost", "batch_size",
                 "binarize", "seed", "prng", "n_valid")


def add_train(sub) -> None:
  p = sub.add_parser("train", help="train a model", description="Train a model.")
  models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
  add_train_rbm(models)
  from jdbn import cli_dbn
  cli_dbn.add_train_dbn(models)


def add_train_rbm(sub) -> None:
  p = sub.add_parser(
      "rbm", help="train an RBM with CD-k or PCD",
      description="Train an RBM with CD-k or PCD; writes checkpoint.npz, metrics.json, "
      "filters.png and samples.png into --out. Rerun with the same --out (and a larger --epochs) "
      "to resume.")
  p.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
  p.add_argument("--data-dir", help="folder of the MNIST IDX files (default: $JDBN_MNIST_DIR)")
  p.add_argument("--n-hidden", type=_positive_int, default=100)
  p.add_argument("--visible", choices=("bernoulli", "gaussian"), default="bernoulli")
  p.add_argument("--hidden", choices=("bernoulli", "relu"), default="bernoulli")
  p.add_argument("--method", choices=("cd", "pcd"), default="pcd")
  p.add_argument("-k", type=_positive_int, default=1, help="Gibbs sweeps per update")
  p.add_argument("--n-chains", type=_positive_int, default=100, help="PCD persistent chains")
  p.add_argument("--lr", type=_positive_float, default=0.05)
  p.add_argument("--momentum", type=_non_negative_float, default=None,
                 help=_preset_help("momentum"))
  p.add_argument("--weight-decay", type=_non_negative_float, default=None,
                 help=_preset_help("weight_decay"))
  p.add_argument("--sparsity-target", type=_positive_float, default=None,
                 help="target mean activation of the hidden units, in (0, 1) (Hinton's guide, "
                 "section 11); off by default")
  p.add_argument("--sparsity-cost", type=_non_negative_float, default=0.1,
                 help="weight of the sparsity penalty when --sparsity-target is given")
  p.add_argument("--epochs", type=_positive_int, default=None, help=_preset_help("epochs"))
  p.add_argument("--batch-size", type=_positive_int, default=None,
                 help=_preset_help("batch_size"))
  p.add_argument("--binarize", choices=("none", "threshold", "stochastic"), default="none",
                 help="none: intensities as probabilities; threshold: > 0.5; stochastic: one "
                 "Bernoulli draw per pixel, fixed for the run")
  p.add_argument("--n-valid", type=_positive_int, default=None,
                 help="training examples held out for validation (default: 10000 for mnist, "
                 "200 for digits)")
  p.add_argument("--sample-steps", type=_positive_int, default=1000,
                 help="Gibbs sweeps for samples.png")
  add_seed(p)
  p.add_argument("--out", required=True, help="run folder")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  p.set_defaults(func=cmd_train_rbm)


def cmd_train_rbm(args) -> int:
  import jax
  from jdbn import checkpoint, data, rbm, train

  apply_preset(args)
  if args.momentum >= 1:
    raise CLIError(f"--momentum must be in [0, 1), got {args.momentum}")
  if args.visible == "gaussian" and args.binarize != "none":
    raise CLIError("--visible gaussian models real values: use --binarize none")
  if args.sparsity_target is not None and not args.sparsity_target < 1:
    raise CLIError(f"--sparsity-target must be in (0, 1), got {args.sparsity_target}")
  out = writable_folder(args.out)
  settings = {k: getattr(args, k) for k in _RUN_SETTINGS}
  if settings["n_valid"] is None:
    settings["n_valid"] = 10_000 if args.dataset == "mnist" else 200
  ckpt = out / train.CHECKPOINT_NAME
  if ckpt.is_file():
    try:
      old = checkpoint.read_metadata(ckpt).get("user", {}).get("settings", {})
    except ValueError as err:
      raise CLIError(f"--out {args.out!r} holds an unreadable checkpoint: {err}") from err
    diff = settings_diff(old, settings)
    if diff:
      raise CLIError(f"--out {args.out!r} holds a run with other settings ({'; '.join(diff)}); "
                     f"use a new --out, or the same settings to resume (only --epochs may "
                     f"change)")
    print(f"resuming the run in {out}")

  ds = _load_dataset(args.dataset, "train", args.data_dir)
  try:
    train_ds, valid_ds = data.split_validation(ds, settings["n_valid"])
  except ValueError as err:
    raise CLIError(f"--n-valid: {err}") from err
  if args.batch_size > len(train_ds.x):
    raise CLIError(f"--batch-size {args.batch_size} exceeds the {len(train_ds.x)} training "
                   f"examples")
  key = make_key(args)
  k_train, k_valid, key_init, key_fit, key_sample = jax.random.split(key, 5)
  spec = _preprocess_spec(np.asarray(train_ds.x), args.visible, args.binarize)
  x = _apply_preprocess(k_train, np.asarray(train_ds.x), spec)
  v = _apply_preprocess(k_valid, np.asarray(valid_ds.x), spec)

  params = rbm.init(key_init, x.shape[1], args.n_hidden, _units(args.visible),
                    _units(args.hidden), data=x)
  trainer = _trainer(args.method, args.lr, args.momentum, args.weight_decay, args.k,
                     args.n_chains, None, args.sparsity_target,
                     args.sparsity_cost if args.sparsity_target is not None else 0.0)
  user = {"command": "train rbm", "dataset": args.dataset, "image_shape": list(ds.image_shape),
          "preprocess": spec, "settings": settings,
          "data_dir": None if args.data_dir is None else str(pathlib.Path(args.data_dir).resolve())}
  done_before = 0
  if ckpt.is_file():
    done_before = int(checkpoint.read_metadata(ckpt).get("epoch", 0))
  t0 = time.perf_counter()
  state, history = train.fit(key_fit, trainer, params, x, epochs=args.epochs,
                             batch_size=args.batch_size, validation=v, checkpoint_dir=out,
                             progress=False if args.no_progress else "rbm", metadata=user)
  seconds = time.perf_counter() - t0
  paths = _save_pictures(out, key_sample, state.params, ds.image_shape, spec, 100,
                         args.sample_steps)
  _print_row(history[-1] if history else {})
  print(f"{len(history)} epochs in all, {max(0, len(history) - done_before)} in this run "
        f"({seconds:.1f} s)")
  for name, path in [("checkpoint", ckpt), ("metrics", out / train.METRICS_NAME), *paths.items()]:
    print(f"  {name:<10} {path}")
  return 0


def _print_row(row: dict) -> None:
  if not row:
    return
  keys = ("loss", "recon_error", "pseudo_likelihood", "free_energy_train", "free_energy_valid",
          "free_energy_gap")
  print(f"epoch {row['epoch']}: " + ", ".join(f"{k} {_fmt(row[k], 4)}" for k in keys if k in row))


# --------------------------------------------------------------------------- sample


def add_sample(sub) -> None:
  p = sub.add_parser("sample", help="draw samples from a trained RBM",
                     description="Run Gibbs chains from random starts and save the visible means "
                     "of their last states as an image grid.")
  p.add_argument("checkpoint", metavar="CHECKPOINT", help="run folder or checkpoint file")
  p.add_argument("--n-samples", type=_positive_int, default=100)
  p.add_argument("--n-steps", type=_positive_int, default=1000, help="Gibbs sweeps per chain")
  p.add_argument("--out", default="samples.png", help="PNG file to write")
  add_seed(p)
  p.add_argument("--image-shape", type=_image_shape, default=None,
                 help="HxW, if the checkpoint does not record it")
  p.set_defaults(func=cmd_sample)


def cmd_sample(args) -> int:
  from jdbn import viz
  writable_file(args.out)
  path = _resolve_checkpoint(args.checkpoint)
  params, user = _load_model(path)
  shape = _image_shape_of(params, user, args.image_shape)
  v = _samples(make_key(args), params, args.n_samples, args.n_steps)
  out = viz.save_grid(args.out, _to_image(v, user.get("preprocess", {})), shape, scale=None,
                      zoom=_zoom(shape))
  print(f"{args.n_samples} samples after {args.n_steps} Gibbs sweeps: {out}")
  return 0


# --------------------------------------------------------------------------- evaluate


def add_evaluate(sub) -> None:
  p = sub.add_parser("evaluate", help="AIS log Z and test log-likelihood of an RBM",
                     description="Estimate log Z by annealed importance sampling (Salakhutdinov & "
                     "Murray 2008) and the test log-likelihood in nats per example, with +-3 "
                     "standard-error bounds; exact log Z too when a layer is small enough.")
  p.add_argument("checkpoint", metavar="CHECKPOINT", help="run folder or checkpoint file")
  p.add_argument("--dataset", choices=("digits", "mnist"), default=None,
                 help="default: the dataset the model was trained on")
  p.add_argument("--data-dir", help="folder of the MNIST IDX files (default: $JDBN_MNIST_DIR)")
  p.add_argument("--split", choices=("train", "test"), default="test")
  p.add_argument("--n-chains", type=_positive_int, default=100, help="AIS runs")
  g = p.add_mutually_exclusive_group()
  g.add_argument("--n-betas", type=_positive_int, default=None,
                 help="inverse temperatures (default 14501, Salakhutdinov & Murray's schedule; "
                 "fewer: that schedule thinned)")
  g.add_argument("--quick", action="store_true", help="1000 betas (a rough estimate, seconds)")
  p.add_argument("--max-examples", type=_positive_int, default=None,
                 help="score only the first this many examples")
  add_seed(p)
  p.set_defaults(func=cmd_evaluate)


def betas_schedule(n_betas: Optional[int]) -> np.ndarray:
  """Salakhutdinov & Murray's 14,501 inverse temperatures, thinned evenly to ``n_betas``."""
  from jdbn import likelihood
  full = np.asarray(likelihood.default_betas(), np.float64)
  if n_betas is None or n_betas >= len(full):
    return full.astype(np.float32)
  if n_betas < 2:
    raise CLIError(f"--n-betas must be at least 2, got {n_betas}")
  idx = np.linspace(0, len(full) - 1, n_betas)
  return np.interp(idx, np.arange(len(full)), full).astype(np.float32)


def evaluate_model(key, params, test_x: np.ndarray, train_x: Optional[np.ndarray], *,
                   n_chains: int, n_betas: Optional[int]) -> dict:
  """AIS log Z, the mean log-likelihood of ``test_x`` and, where feasible, their exact values."""
  import jax
  import jax.numpy as jnp
  from jdbn import likelihood
  from jdbn import units as U

  out: dict[str, Any] = {"n_examples": int(test_x.shape[0])}
  betas = betas_schedule(n_betas)
  t0 = time.perf_counter()
  est = likelihood.estimate_log_likelihood(key, params, test_x, n_chains=n_chains, betas=betas,
                                           **({} if train_x is None else {"data": train_x}))
  res = est.ais
  out.update({"ais_n_chains": n_chains, "ais_n_betas": int(len(betas)),
              "log_z": float(res.log_z), "log_z_lower": float(res.log_z_lower),
              "log_z_upper": float(res.log_z_upper), "ais_ess": float(res.ess),
              "log_likelihood": float(est.mean), "log_likelihood_lower": float(est.lower),
              "log_likelihood_upper": float(est.upper),
              "ais_seconds": time.perf_counter() - t0})
  sizes = [u.n_states(n) for u, n in ((params.hidden, params.n_hidden),
                                      (params.visible, params.n_visible)) if u.enumerable]
  if sizes and min(sizes) <= 2**20:
    log_z = likelihood.exact_log_z(params)
    out["log_z_exact"] = float(log_z)
    out["log_likelihood_exact"] = float(
        jnp.mean(likelihood.log_likelihood(params, jnp.asarray(test_x), log_z)))
  if isinstance(params.visible, U.Bernoulli):
    # Exact (n_visible free energies per example) where cheap, else the one-unit estimate.
    exact = params.n_visible <= 256
    pl_x = jnp.asarray(test_x[:1000])
    pl = likelihood.pseudo_likelihood(None if exact else jax.random.fold_in(key, 1), params, pl_x)
    out["pseudo_likelihood"] = float(jnp.mean(pl))
    out["pseudo_likelihood_method"] = (f"{'exact' if exact else 'one random unit per example'}, "
                                       f"{pl_x.shape[0]} examples")
  return out


def _print_evaluation(r: dict) -> None:
  print(f"log Z (AIS, {r['ais_n_chains']} chains, {r['ais_n_betas']:,} betas): "
        f"{_fmt(r['log_z'])}  [{_fmt(r['log_z_lower'])}, {_fmt(r['log_z_upper'])}] "
        f"(+-3 s.e.; ESS {r['ais_ess']:.1f} of {r['ais_n_chains']}; {r['ais_seconds']:.1f} s)")
  if "log_z_exact" in r:
    print(f"log Z (exact):     {_fmt(r['log_z_exact'])}")
  print(f"log-likelihood (AIS): {_fmt(r['log_likelihood'])} nats/example  "
        f"[{_fmt(r['log_likelihood_lower'])}, {_fmt(r['log_likelihood_upper'])}] "
        f"over {r['n_examples']} examples")
  if "log_likelihood_exact" in r:
    print(f"log-likelihood (exact): {_fmt(r['log_likelihood_exact'])} nats/example")
  if "pseudo_likelihood" in r:
    print(f"pseudo-log-likelihood: {_fmt(r['pseudo_likelihood'])} nats/example "
          f"({r['pseudo_likelihood_method']})")


def cmd_evaluate(args) -> int:
  import jax
  from jdbn import data
  from jdbn import units as U
  from jdbn import cli_dbn
  if cli_dbn.is_dbn(args.checkpoint):
    return cli_dbn.cmd_evaluate_dbn(args)
  path = _resolve_checkpoint(args.checkpoint)
  params, user = _load_model(path)
  name = args.dataset or user.get("dataset")
  if name is None:
    raise CLIError(f"{path} does not record its dataset; pass --dataset")
  spec = dict(user.get("preprocess", {"binarize": "none"}))
  if isinstance(params.visible, U.Bernoulli) and spec.get("binarize", "none") == "none":
    # log p(v) is a probability only for binary v: score a fixed stochastic binarisation.
    spec["binarize"] = "stochastic"
    print("scoring a stochastic binarisation of the data (the model was trained on "
          "intensities; a likelihood needs binary vectors)")
  key = make_key(args)
  k_test, k_ais = jax.random.split(key)
  data_dir = _data_dir_for(args.data_dir, name, user)
  test = _load_dataset(name, args.split, data_dir)
  train = _load_dataset(name, "train", data_dir)
  if test.x.shape[1] != params.n_visible:
    raise CLIError(f"{name} has {test.x.shape[1]} pixels but the model has {params.n_visible} "
                   f"visible units")
  test_x = _apply_preprocess(k_test, np.asarray(test.x), spec)
  if args.max_examples:
    test_x = test_x[:args.max_examples]
  # AIS's base-rate model only needs the training set's means: no binarisation draw needed.
  base_spec = dict(spec, binarize="none" if spec["binarize"] == "stochastic" else spec["binarize"])
  train_x = _apply_preprocess(None, np.asarray(train.x), base_spec)
  n_betas = 1000 if args.quick else args.n_betas
  print(f"evaluating {path} on {name} {args.split} ({len(test_x)} examples)")
  if "mean" in spec:
    print("(log-likelihoods are densities of the standardised pixels, as the model saw them)")
  _print_evaluation(evaluate_model(k_ais, params, test_x, train_x, n_chains=args.n_chains,
                                   n_betas=n_betas))
  return 0


# --------------------------------------------------------------------------- demo


def add_demo(sub) -> None:
  p = sub.add_parser("demo", help="train an RBM on the embedded 8x8 digits (offline, ~1 min)",
                     description="Train a 64-100 RBM with PCD on the embedded 8x8 digits "
                     "(offline), then write filters.png, samples.png, metrics.json and "
                     "checkpoint.npz and print AIS and pseudo log-likelihoods of the test digits.")
  p.add_argument("--out", default="jdbn-demo", help="folder for the outputs")
  p.add_argument("--epochs", type=_positive_int, default=DEMO["epochs"])
  add_seed(p)
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  p.set_defaults(func=cmd_demo)


#: The demo's settings, chosen for clear filters and samples in about a minute on 2 CPU cores.
DEMO = {"n_hidden": 100, "method": "pcd", "k": 1, "n_chains": 100, "lr": 0.05,
        "momentum": 0.9, "weight_decay": 1e-3, "sparsity_target": None, "sparsity_cost": 0.0,
        "batch_size": 10, "epochs": 50, "binarize": "none", "n_valid": 200, "sample_steps": 2000,
        "ais_betas": 2000, "ais_chains": 100}


def cmd_demo(args) -> int:
  import jax
  from jdbn import checkpoint, data, rbm, train

  out = writable_folder(args.out)
  s = DEMO
  t_start = time.perf_counter()
  ds = data.load_digits("train")
  test = data.load_digits("test")
  train_ds, valid_ds = data.split_validation(ds, s["n_valid"])
  spec = {"binarize": s["binarize"]}
  key = make_key(args)
  k_train, k_valid, k_test, key_init, key_fit, key_sample, key_eval = jax.random.split(key, 7)
  x = _apply_preprocess(k_train, np.asarray(train_ds.x), spec)
  v = _apply_preprocess(k_valid, np.asarray(valid_ds.x), spec)
  params = rbm.init(key_init, 64, s["n_hidden"], data=x)
  # PCD with a learning rate that decays linearly to 5%: the persistent chains mix fast while
  # the rate is high and the final model is sharp (Tieleman 2008 decays it too). Weight decay
  # 1e-3 keeps the filters local (Hinton's guide, section 10). Settings compared by eye on
  # filters.png and samples.png: momentum 0.9 gave more stroke-like filters than 0.5, and a
  # sparsity target (0.02-0.1) gave whole-digit templates with inhibitory weights.
  trainer = _trainer(s["method"], s["lr"], s["momentum"], s["weight_decay"], s["k"],
                     s["n_chains"], args.epochs * (len(x) // s["batch_size"]),
                     s["sparsity_target"], s["sparsity_cost"])
  print(f"training a 64-{s['n_hidden']} RBM on {len(x)} 8x8 digits with PCD-{s['k']} "
        f"for {args.epochs} epochs")
  t0 = time.perf_counter()
  state, history = train.fit(key_fit, trainer, params, x, epochs=args.epochs,
                             batch_size=s["batch_size"], validation=v,
                             progress=False if args.no_progress else "demo")
  train_seconds = time.perf_counter() - t0
  _print_row(history[-1])
  paths = _save_pictures(out, key_sample, state.params, ds.image_shape, spec, 100,
                         s["sample_steps"])
  # Test log-likelihood: binary vectors needed, so a fixed stochastic binarisation of the data.
  # (AIS's base-rate model takes the training intensities' means.)
  test_x = _apply_preprocess(k_test, np.asarray(test.x), {"binarize": "stochastic"})
  print(f"evaluating on {len(test_x)} stochastically binarised test digits")
  evaluation = evaluate_model(key_eval, state.params, test_x, x,
                              n_chains=s["ais_chains"], n_betas=s["ais_betas"])
  _print_evaluation(evaluation)
  user = {"command": "demo", "dataset": "digits", "image_shape": list(ds.image_shape),
          "preprocess": spec, "settings": {**s, "epochs": args.epochs, "seed": args.seed,
                                            "prng": args.prng}}
  ckpt = checkpoint.save(out / train.CHECKPOINT_NAME, {"state": state, "key": key_fit},
                         metadata={"epoch": len(history), "epochs": args.epochs,
                                   "batch_size": s["batch_size"], "history": history,
                                   "user": user})
  metrics = checkpoint.write_json(out / train.METRICS_NAME, {
      "epochs_completed": len(history), "history": history, "test": evaluation,
      "train_seconds": train_seconds, "user": user})
  print(f"done in {time.perf_counter() - t_start:.1f} s (training {train_seconds:.1f} s)")
  for name, path in [*paths.items(), ("metrics", metrics), ("checkpoint", ckpt)]:
    print(f"  {name:<10} {path}")
  print(f"next: jdbn sample {out} --out more.png; jdbn evaluate {out}")
  return 0


# --------------------------------------------------------------------------- main


def _show_defaults(parser: argparse.ArgumentParser) -> None:
  """``--help`` shows every option's default, with or without a help text of its own."""
  for action in parser._actions:  # pylint: disable=protected-access
    if isinstance(action, argparse._SubParsersAction):  # pylint: disable=protected-access
      for child in action.choices.values():
        _show_defaults(child)
    elif (action.option_strings and not any(action.default is v for v in
                                             (None, False, argparse.SUPPRESS))
          and "default" not in (action.help or "")):
      action.help = ((action.help + " ") if action.help else "") + "(default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
  """The argument parser; add a subcommand with an ``add_*`` function here."""
  parser = argparse.ArgumentParser(
      prog=PROG, description="RBMs and DBNs in JAX: train, sample, evaluate, demo.")
  from jdbn import __version__
  parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
  sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
  add_train(sub)
  add_sample(sub)
  add_evaluate(sub)
  add_demo(sub)
  from jdbn import cli_dbn
  cli_dbn.add_generate(sub)
  _show_defaults(parser)
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Runs the command line; returns the exit status: 0 ok, 2 bad input (a one-line message),
  3 training diverged (the last good checkpoint is kept). An unexpected error is a traceback with
  Python's status 1."""
  parser = build_parser()
  args = parser.parse_args(argv)
  from jdbn.train import TrainingDiverged
  try:
    return args.func(args)
  except (TrainingDiverged, FloatingPointError) as err:  # the last good checkpoint is kept
    print(f"{PROG}: {err}", file=sys.stderr)
    return EXIT_DIVERGED
  except (CLIError, ValueError) as err:
    print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
