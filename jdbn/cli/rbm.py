"""The RBM subcommands ``jdbn train rbm`` and ``jdbn sample``, and the RBM run helpers that
``jdbn evaluate`` and ``jdbn demo`` share with them (loading a checkpoint, samples, pictures).

::

    jdbn train rbm --dataset {digits,mnist} [--data-dir DIR] --n-hidden N --out DIR [...]
    jdbn sample CHECKPOINT [--n-samples N] [--n-steps K] [--out samples.png]
                           [--seed S] [--prng IMPL]
"""

from __future__ import annotations

import functools
import math
import pathlib
import time

import numpy as np

from jdbn.cli.common import (CLIError, add_seed, apply_preprocess, apply_preset, fmt, image_shape,
                             load_dataset, make_key, make_trainer, non_negative_float,
                             positive_float, positive_int, preprocess_spec, preset_help,
                             resolved_data_dir, settings_diff, split_train, to_image, units,
                             writable_file, writable_folder, zoom_for)
from jdbn.cli.dbm_run import cmd_sample_dbm, is_dbm

# --------------------------------------------------------------------------- RBM runs


def samples(key, params, n_samples: int, n_steps: int) -> np.ndarray:
  """Visible means ``E[v | h]`` after ``n_steps`` Gibbs sweeps from random starts: ``[n, d]``."""
  return np.asarray(_sample_fn()(key, params, n_samples=n_samples, n_steps=n_steps))


@functools.cache
def _sample_fn():
  """One jitted sampler for the process (jax is imported lazily, so ``jdbn --help`` is quick)."""
  import jax
  from jdbn import gibbs
  from jdbn.models import rbm as R

  @functools.partial(jax.jit, static_argnames=("n_samples", "n_steps"))
  def run(key, params, n_samples, n_steps):
    key_init, key_run = jax.random.split(key)
    state = gibbs.init_random(key_init, params, n_samples)
    state, _ = gibbs.chain(key_run, params, state, n_steps)
    return R.visible_mean(params, state.h)

  return run


def save_pictures(out: pathlib.Path, key, params, image_shape, spec: dict, n_samples: int,
                  n_steps: int) -> dict:
  from jdbn import viz
  zoom = zoom_for(image_shape)
  paths = {"filters": viz.save_filters(out / "filters.png", np.asarray(params.W), image_shape,
                                       max_filters=100, zoom=zoom)}
  v = to_image(samples(key, params, n_samples, n_steps), spec)
  paths["samples"] = viz.save_grid(out / "samples.png", v, image_shape, scale=None, zoom=zoom)
  return paths


def resolve_checkpoint(text: str) -> pathlib.Path:
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


def as_rbm(params):
  """A centered RBM (``train rbm --center``) as the plain RBM it equals; anything else as is."""
  from jdbn.models import centered
  return centered.uncentered(params) if isinstance(params, centered.CenteredRBM) else params


def load_model(path: pathlib.Path):
  """``(params, user_metadata)`` of a checkpoint, params a single RBM."""
  from jdbn import checkpoint
  from jdbn.models import rbm as R
  try:
    params, meta = checkpoint.load_params(path), checkpoint.read_metadata(path)
  except ValueError as err:
    raise CLIError(str(err)) from err
  params = as_rbm(params)
  if not isinstance(params, R.RBM):
    raise CLIError(f"{path} holds a {type(params).__name__}, not a single RBM; this command "
                   f"handles RBM checkpoints")
  return params, meta.get("user", meta)


def image_shape_of(params, user: dict, given) -> tuple[int, int]:
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


def print_row(row: dict) -> None:
  if not row:
    return
  keys = ("loss", "recon_error", "pseudo_likelihood", "free_energy_train", "free_energy_valid",
          "free_energy_gap")
  print(f"epoch {row['epoch']}: " + ", ".join(f"{k} {fmt(row[k], 4)}" for k in keys if k in row))


# --------------------------------------------------------------------------- train rbm

# Settings that define a run: a rerun with the same --out must repeat them to resume.
_RUN_SETTINGS = ("dataset", "n_hidden", "visible", "hidden", "method", "k", "n_chains", "lr",
                 "momentum", "weight_decay", "sparsity_target", "sparsity_cost", "batch_size",
                 "binarize", "seed", "prng", "n_valid")


def add_train_rbm(sub) -> None:
  p = sub.add_parser(
      "rbm", help="train an RBM with CD-k, PCD, parallel tempering, fast PCD or centering",
      description="Train an RBM with CD-k, PCD, PCD with parallel tempering, fast PCD, or CD/PCD "
      "on a centered RBM (--center); writes checkpoint.npz, metrics.json, "
      "filters.png and samples.png into --out. Rerun with the same --out (and a larger --epochs) "
      "to resume.")
  p.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
  p.add_argument("--data-dir", help="folder of the MNIST IDX files (default: $JDBN_MNIST_DIR)")
  p.add_argument("--n-hidden", type=positive_int, default=100)
  p.add_argument("--visible", choices=("bernoulli", "gaussian"), default="bernoulli")
  p.add_argument("--hidden", choices=("bernoulli", "relu"), default="bernoulli")
  p.add_argument("--method", choices=("cd", "pcd", "pt", "fpcd"), default="pcd",
                 help="pt: PCD with parallel tempering (Desjardins et al. 2010); fpcd: fast PCD "
                 "(Tieleman & Hinton 2009)")
  p.add_argument("-k", type=positive_int, default=1, help="Gibbs sweeps per update")
  p.add_argument("--n-chains", type=positive_int, default=100,
                 help="persistent chains (pcd, fpcd; per temperature for pt)")
  p.add_argument("--replicas", type=positive_int, default=10,
                 help="--method pt: temperatures, geometric from 1 down to --beta-min")
  p.add_argument("--beta-min", type=positive_float, default=0.1,
                 help="--method pt: the hottest replica's inverse temperature, in (0, 1]")
  p.add_argument("--center", action="store_true",
                 help="--method cd or pcd on a centered RBM (Montavon & Mueller 2012; Melchior et "
                 "al. 2016): offsets at running means of the states; the same model, a "
                 "better-conditioned gradient")
  p.add_argument("--offset-rate", type=positive_float, default=0.01,
                 help="--center: the offsets' running-mean rate, in (0, 1]")
  p.add_argument("--fast-rate", type=non_negative_float, default=None,
                 help="--method fpcd: the fast weights' rate (default: --lr); they decay by "
                 "19/20 an update")
  p.add_argument("--lr", type=positive_float, default=0.05)
  p.add_argument("--momentum", type=non_negative_float, default=None,
                 help=preset_help("momentum"))
  p.add_argument("--weight-decay", type=non_negative_float, default=None,
                 help=preset_help("weight_decay"))
  p.add_argument("--sparsity-target", type=positive_float, default=None,
                 help="target mean activation of the hidden units, in (0, 1) (Hinton's guide, "
                 "section 11); off by default")
  p.add_argument("--sparsity-cost", type=non_negative_float, default=0.1,
                 help="weight of the sparsity penalty when --sparsity-target is given")
  p.add_argument("--epochs", type=positive_int, default=None, help=preset_help("epochs"))
  p.add_argument("--batch-size", type=positive_int, default=None,
                 help=preset_help("batch_size"))
  p.add_argument("--binarize", choices=("none", "threshold", "stochastic"), default="none",
                 help="none: intensities as probabilities; threshold: > 0.5; stochastic: one "
                 "Bernoulli draw per pixel, fixed for the run")
  p.add_argument("--n-valid", type=positive_int, default=None,
                 help="training examples held out for validation (default: 10000 for mnist, "
                 "200 for digits)")
  p.add_argument("--sample-steps", type=positive_int, default=1000,
                 help="Gibbs sweeps for samples.png")
  add_seed(p)
  p.add_argument("--out", required=True, help="run folder")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  p.set_defaults(func=cmd_train_rbm)


def _check_train_rbm(args) -> None:
  """Fills in the data set's presets and rejects settings that do not go together."""
  apply_preset(args)
  if args.momentum >= 1:
    raise CLIError(f"--momentum must be in [0, 1), got {args.momentum}")
  if args.visible == "gaussian" and args.binarize != "none":
    raise CLIError("--visible gaussian models real values: use --binarize none")
  if args.sparsity_target is not None and not args.sparsity_target < 1:
    raise CLIError(f"--sparsity-target must be in (0, 1), got {args.sparsity_target}")
  if args.method == "pt" and not args.beta_min <= 1:
    raise CLIError(f"--beta-min must be in (0, 1], got {args.beta_min}")
  if args.method == "fpcd" and args.fast_rate is None:
    args.fast_rate = args.lr
  if args.center:
    if args.method not in ("cd", "pcd"):
      raise CLIError(f"--center goes with --method cd or pcd, not {args.method}")
    if args.sparsity_target is not None:
      raise CLIError("--center has no sparsity penalty: drop --sparsity-target")
    if not args.offset_rate <= 1:
      raise CLIError(f"--offset-rate must be in (0, 1], got {args.offset_rate}")


def _settings(args) -> dict:
  """What defines a run (a rerun with the same --out must repeat it); the sampler's own options
  only for the methods that use them, so older runs' settings still match."""
  settings = {k: getattr(args, k) for k in _RUN_SETTINGS}
  if settings["n_valid"] is None:
    settings["n_valid"] = 10_000 if args.dataset == "mnist" else 200
  if args.method == "pt":
    settings.update(replicas=args.replicas, beta_min=args.beta_min)
  if args.method == "fpcd":
    settings.update(fast_rate=args.fast_rate)
  settings["center"] = args.center  # missing from older runs' settings: False (settings_diff)
  if args.center:
    settings["offset_rate"] = args.offset_rate
  return settings


def _check_resume(args, out: pathlib.Path, ckpt: pathlib.Path, settings: dict) -> None:
  """If ``ckpt`` exists, checks that it was written with ``settings`` (only --epochs may change)."""
  from jdbn import checkpoint
  if not ckpt.is_file():
    return
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


def _sampler_options(args) -> tuple:
  if args.method == "pt":
    return (("replicas", args.replicas), ("beta_min", args.beta_min))
  if args.method == "fpcd":
    return (("fast_rate", args.fast_rate),)
  if args.center:
    return (("center", True), ("offset_rate", args.offset_rate))
  return ()


def cmd_train_rbm(args) -> int:
  import jax
  from jdbn import checkpoint, train
  from jdbn.models import rbm

  _check_train_rbm(args)
  out = writable_folder(args.out)
  settings = _settings(args)
  ckpt = out / train.CHECKPOINT_NAME
  _check_resume(args, out, ckpt, settings)

  ds = load_dataset(args.dataset, "train", args.data_dir)
  train_ds, valid_ds = split_train(ds, settings["n_valid"], args.batch_size)
  key = make_key(args)
  k_train, k_valid, key_init, key_fit, key_sample = jax.random.split(key, 5)
  spec = preprocess_spec(np.asarray(train_ds.x), args.visible, args.binarize)
  x = apply_preprocess(k_train, np.asarray(train_ds.x), spec)
  v = apply_preprocess(k_valid, np.asarray(valid_ds.x), spec)

  params = rbm.init(key_init, x.shape[1], args.n_hidden, units(args.visible),
                    units(args.hidden), data=x)
  if args.center:
    from jdbn.models import centered
    params = centered.center(params, x)
  trainer = make_trainer(args.method, args.lr, args.momentum, args.weight_decay, args.k,
                         args.n_chains, None, args.sparsity_target,
                         args.sparsity_cost if args.sparsity_target is not None else 0.0,
                         sampler=_sampler_options(args))
  user = {"command": "train rbm", "dataset": args.dataset, "image_shape": list(ds.image_shape),
          "preprocess": spec, "settings": settings, "data_dir": resolved_data_dir(args)}
  done_before = 0
  if ckpt.is_file():
    done_before = int(checkpoint.read_metadata(ckpt).get("epoch", 0))
  t0 = time.perf_counter()
  state, history = train.fit(key_fit, trainer, params, x, epochs=args.epochs,
                             batch_size=args.batch_size, validation=v, checkpoint_dir=out,
                             progress=False if args.no_progress else "rbm", metadata=user)
  seconds = time.perf_counter() - t0
  paths = save_pictures(out, key_sample, as_rbm(state.params), ds.image_shape, spec, 100,
                        args.sample_steps)
  print_row(history[-1] if history else {})
  print(f"{len(history)} epochs in all, {max(0, len(history) - done_before)} in this run "
        f"({seconds:.1f} s)")
  for name, path in [("checkpoint", ckpt), ("metrics", out / train.METRICS_NAME), *paths.items()]:
    print(f"  {name:<10} {path}")
  return 0


# --------------------------------------------------------------------------- sample


def add_sample(sub) -> None:
  p = sub.add_parser("sample", help="draw samples from a trained RBM or DBM",
                     description="Run Gibbs chains from random starts and save the visible means "
                     "of their last states as an image grid.")
  p.add_argument("checkpoint", metavar="CHECKPOINT", help="run folder or checkpoint file")
  p.add_argument("--n-samples", type=positive_int, default=100)
  p.add_argument("--n-steps", type=positive_int, default=1000, help="Gibbs sweeps per chain")
  p.add_argument("--out", default="samples.png", help="PNG file to write")
  add_seed(p)
  p.add_argument("--image-shape", type=image_shape, default=None,
                 help="HxW, if the checkpoint does not record it")
  p.set_defaults(func=cmd_sample)


def cmd_sample(args) -> int:
  from jdbn import viz
  if is_dbm(args.checkpoint):
    return cmd_sample_dbm(args)
  writable_file(args.out)
  path = resolve_checkpoint(args.checkpoint)
  params, user = load_model(path)
  shape = image_shape_of(params, user, args.image_shape)
  v = samples(make_key(args), params, args.n_samples, args.n_steps)
  out = viz.save_grid(args.out, to_image(v, user.get("preprocess", {})), shape, scale=None,
                      zoom=zoom_for(shape))
  print(f"{args.n_samples} samples after {args.n_steps} Gibbs sweeps: {out}")
  return 0
