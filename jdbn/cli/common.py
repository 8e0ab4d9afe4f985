"""What every ``jdbn`` subcommand shares: errors and exit statuses, argument types, ``--seed`` and
``--prng``, writable output paths, dataset loading and preprocessing, the contrastive trainer, the
data-set presets of ``train rbm`` and number formatting.

The command modules (:mod:`jdbn.cli.rbm`, :mod:`jdbn.cli.dbn` ...) import from here and nothing
here imports them. Library modules are imported inside the functions that need them, so that
``jdbn --help`` does not load jax.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import pathlib
import sys
import tempfile
from typing import Any, Optional

import numpy as np

PROG = "jdbn"


#: The exit status of a run that diverged (NaN or inf); 2 is bad input, 1 an unexpected error.
EXIT_DIVERGED = 3


class CLIError(Exception):
  """A user-facing error: printed as ``jdbn: error: ...`` with exit status 2, no traceback."""


# --------------------------------------------------------------------------- argument types


def positive_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
  if value < 1:
    raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
  return value


def non_negative_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
  if value < 0:
    raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
  return value


def non_negative_float(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
  if not (math.isfinite(value) and value >= 0):
    raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
  return value


def positive_float(text: str) -> float:
  value = non_negative_float(text)
  if value == 0:
    raise argparse.ArgumentTypeError("must be > 0, got 0")
  return value


def probability(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    value = float("nan")
  if not 0 <= value < 1:
    raise argparse.ArgumentTypeError(f"expected a probability in [0, 1), got {text!r}")
  return value


def add_finetune_group(p: argparse.ArgumentParser, title: str, model: str):
  """The back-propagation fine-tuning arguments that ``train dbn`` and ``train dbm`` share, as an
  argument group titled ``title`` (returned, for a command's own additions)."""
  g = p.add_argument_group(title)
  g.add_argument("--finetune-epochs", type=int, default=0,
                 help=f"epochs of back-propagation fine-tuning of the network made from the {model} "
                 "(0: none)")
  g.add_argument("--finetune-lr", type=positive_float, default=0.1,
                 help="SGD learning rate (momentum 0.9)")
  g.add_argument("--finetune-schedule", choices=("constant", "cosine"), default="constant",
                 help="cosine: the rate decays to 0 over --finetune-epochs")
  g.add_argument("--dropout", type=probability, default=0.0, help="hidden-unit dropout")
  g.add_argument("--input-dropout", type=probability, default=0.0, help="input dropout")
  g.add_argument("--max-norm", type=positive_float, default=None,
                 help="bound on the norm of each unit's incoming weights")
  g.add_argument("--patience", type=positive_int, default=None,
                 help="stop after this many epochs without a lower validation error")
  return g


def image_shape(text: str) -> tuple[int, int]:
  try:
    h, w = (int(t) for t in text.lower().split("x"))
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected HxW such as 28x28, got {text!r}") from None
  if h < 1 or w < 1:
    raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
  return h, w


def sizes(text: str) -> tuple[int, ...]:
  try:
    values = tuple(int(t) for t in text.split(","))
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected sizes such as 500,500,2000, got {text!r}") from None
  if not values or min(values) < 1:
    raise argparse.ArgumentTypeError(f"sizes must be positive integers, got {text!r}")
  return values


def labels_list(text: str) -> list[int]:
  try:
    return [int(t) for t in text.split(",")]
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected labels such as 0,1,7, got {text!r}") from None


# --------------------------------------------------------------------------- seeds and settings


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

  A setting missing from an older checkpoint counts as what those runs did (``--prng``
  threefry2x32, no ``--center``, no ``--labels``, no ``--finetune-on-all``, ``--finetune-input
  binarized``), so run folders written before the setting existed still resume.
  """
  defaults = {"prng": "threefry2x32", "center": False, "labels": False,
              "finetune_on_all": False, "finetune_input": "binarized"}
  return [f"--{k.replace('_', '-')} {old.get(k, defaults.get(k))!r} there, {v!r} here"
          for k, v in new.items() if old.get(k, defaults.get(k)) != v]


#: ``train rbm``'s defaults that depend on the data set: 1,300 digits need small batches, many
#: epochs and the demo's momentum and decay to learn visible strokes (with MNIST's settings
#: every sample was the same blur); MNIST's 50,000 images need few epochs of large batches.
PRESETS = {
    "digits": {"momentum": 0.9, "weight_decay": 1e-3, "batch_size": 10, "epochs": 50},
    "mnist": {"momentum": 0.5, "weight_decay": 1e-4, "batch_size": 100, "epochs": 10},
}


def preset_help(name: str, presets: Optional[dict] = None) -> str:
  """``default: 0.9 for digits, 0.5 for mnist`` from ``presets`` (default :data:`PRESETS`)."""
  def show(v):
    return ",".join(map(str, v)) if isinstance(v, tuple) else f"{v:g}"
  return "default: " + ", ".join(f"{show(v[name])} for {k}"
                                 for k, v in (presets or PRESETS).items())


def apply_preset(args, presets: Optional[dict] = None) -> None:
  """Fills the options left at ``None`` with the data set's ``presets`` (default
  :data:`PRESETS`, ``train rbm``'s)."""
  for name, value in (presets or PRESETS)[args.dataset].items():
    if getattr(args, name, None) is None:
      setattr(args, name, value)


def resolved_data_dir(args) -> Optional[str]:
  """``--data-dir`` as an absolute path for a run's metadata, or None if it was not given."""
  return None if args.data_dir is None else str(pathlib.Path(args.data_dir).resolve())


# --------------------------------------------------------------------------- training


def units(name: str):
  from jdbn import units as U
  return {"bernoulli": U.Bernoulli(), "gaussian": U.Gaussian(), "relu": U.ReLU()}[name]


def optimizer(lr: float, momentum: float, weight_decay: float,
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
def make_trainer(method: str, lr: float, momentum: float, weight_decay: float, k: int,
                 n_chains: int, decay_steps: Optional[int] = None,
                 sparsity_target: Optional[float] = None, sparsity_cost: float = 0.0,
                 sampler: tuple = ()):
  """The contrastive trainer; cached so that equal settings reuse one compiled epoch.

  ``sampler`` holds the options of ``pt`` (``replicas``, ``beta_min``), ``fpcd``
  (``fast_rate``) and of centering (``center``, ``offset_rate``) as ``(name, value)`` pairs."""
  from jdbn.train import contrastive, variants
  from jdbn.samplers import tempering
  opt = optimizer(lr, momentum, weight_decay, decay_steps)
  sparsity = {"sparsity_target": sparsity_target, "sparsity_cost": sparsity_cost}
  extra = dict(sampler)
  if method == "cd":
    return contrastive.cd(opt, k=k, **sparsity)
  if method == "pt":
    betas = tempering.ladder(extra["replicas"], extra["beta_min"])
    return variants.pt(opt, k=k, n_chains=n_chains, betas=betas, **sparsity)
  if method == "fpcd":
    return variants.fpcd(opt, k=k, n_chains=n_chains, fast_rate=extra["fast_rate"], **sparsity)
  if extra.get("center"):
    return variants.centered(opt, k=k, n_chains=None if method == "cd" else n_chains,
                             offset_rate=extra["offset_rate"])
  return contrastive.pcd(opt, k=k, n_chains=n_chains, **sparsity)


# --------------------------------------------------------------------------- data


def data_dir_for(given: Optional[str], name: str, meta: dict) -> Optional[str]:
  """The data folder to evaluate a model on: ``given`` (``--data-dir``) if set; else, unless the
  MNIST environment variable is set, the folder the model was trained from (recorded in its
  metadata) when it is the same dataset and the folder still exists."""
  from jdbn import data
  recorded = meta.get("data_dir")
  if given is None and not os.environ.get(data.MNIST_ENV_VAR) and recorded and \
     name == meta.get("dataset") and pathlib.Path(recorded).is_dir():
    return recorded
  return given


def load_dataset(name: str, split: str, data_dir: Optional[str]):
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


def split_train(ds, n_valid: int, batch_size: int):
  """``(train, valid)`` of ``ds`` with ``n_valid`` held out; CLIError if a batch does not fit."""
  from jdbn import data
  try:
    train_ds, valid_ds = data.split_validation(ds, n_valid)
  except ValueError as err:
    raise CLIError(f"--n-valid: {err}") from err
  if batch_size > len(train_ds.x):
    raise CLIError(f"--batch-size {batch_size} exceeds the {len(train_ds.x)} training "
                   f"examples")
  return train_ds, valid_ds


def preprocess_spec(x: np.ndarray, visible: str, binarize: str) -> dict:
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


def binarize(key, x: np.ndarray, mode: str) -> np.ndarray:
  from jdbn import data
  if mode == "threshold":
    return np.asarray(data.binarize(x))
  if mode == "stochastic":
    return np.asarray(data.binarize_stochastic(key, x))
  return np.asarray(x, np.float32)


def apply_preprocess(key, x: np.ndarray, spec: dict) -> np.ndarray:
  x = binarize(key, x, spec.get("binarize", "none"))
  if "mean" in spec:
    x = (x - np.asarray(spec["mean"], np.float32)) / np.asarray(spec["std"], np.float32)
  return x.astype(np.float32)


def to_image(v: np.ndarray, spec: dict) -> np.ndarray:
  """Model visible means back to [0, 1] intensities for pictures."""
  v = np.asarray(v, np.float64)
  if "mean" in spec:
    v = v * np.asarray(spec["std"]) + np.asarray(spec["mean"])
  return np.clip(v, 0.0, 1.0)


def zoom_for(shape) -> int:
  return max(1, round(56 / max(shape)))


# --------------------------------------------------------------------------- output paths


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


# --------------------------------------------------------------------------- evaluation


def betas_schedule(n_betas: Optional[int]) -> np.ndarray:
  """Salakhutdinov & Murray's 14,501 inverse temperatures resampled to ``n_betas``: fewer thins
  them, more subdivides each of their steps (the dense end near ``beta = 1`` stays dense)."""
  from jdbn import likelihood
  full = np.asarray(likelihood.default_betas(), np.float64)
  if n_betas is None or n_betas == len(full):
    return full.astype(np.float32)
  if n_betas < 2:
    raise CLIError(f"--n-betas must be at least 2, got {n_betas}")
  idx = np.linspace(0, len(full) - 1, n_betas)
  return np.interp(idx, np.arange(len(full)), full).astype(np.float32)


AIS_MIN_ESS_FRACTION = 0.1


def ais_warning(ess: float, n_runs: int) -> Optional[str]:
  """A caution when a few AIS runs carry the estimate (an ESS below a tenth of the runs), else
  ``None``. Such a log Z is usually low (the weights' heavy tail is unseen), and a likelihood or
  bound built on it high; a finer schedule or more runs should leave a sound one where it is."""
  if not math.isfinite(ess) or ess >= AIS_MIN_ESS_FRACTION * n_runs:
    return None
  return (f"AIS effective sample size {ess:.1f} of {n_runs} runs: a few runs carry the estimate, "
          f"so log Z may be low and the likelihood high. Check that it holds with a finer schedule "
          f"(--n-betas above 14501) or more runs (--n-chains).")


def warn(text: Optional[str]) -> None:
  """Print ``text``, if any, as a warning on stderr."""
  if text:
    print(f"{PROG}: warning: {text}", file=sys.stderr)


def fmt(x: float, digits: int = 3) -> str:
  return f"{x:.{digits}f}" if math.isfinite(x) else str(x)
