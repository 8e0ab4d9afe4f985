"""A DBM run folder as the ``jdbn`` commands see it, and the DBM side of ``jdbn evaluate`` and
``jdbn sample``.

A run folder written by ``jdbn train dbm`` holds ``pretrained.npz`` (the DBM composed from the
greedily pretrained RBMs; none with ``--pretrain-epochs 0``), ``checkpoint.npz`` (the joint
training state: the DBM, a :class:`~jdbn.models.centered.CenteredDBM` with ``--center``, optimizer
state, persistent chains and step, with the run's settings and epoch history in its metadata),
``metrics.json``, ``filters.png``, ``samples.png`` and, when fine-tuned, ``finetune.npz`` (the
fine-tuning state, for resuming) and ``classifier.npz`` (the early-stopped network). A run is
recognised by the ``"command": "train dbm"`` of its checkpoints' metadata.

::

    jdbn evaluate RUN [--dataset ...] [--split test] [--n-chains C] [--n-betas B | --quick]
    jdbn sample RUN [--n-samples N] [--n-steps K] [--out samples.png]
"""

from __future__ import annotations

import functools
import math
import pathlib
import time
from typing import Any, Optional

import numpy as np

from jdbn.cli.common import (CLIError, ais_warning, apply_preprocess, betas_schedule, binarize,
                             data_dir_for, fmt, load_dataset, make_key, to_image, warn,
                             writable_file, zoom_for)
from jdbn.cli.dbn_run import CLASSIFIER_NAME, load_classifier

__all__ = ["COMMAND", "PRETRAINED_NAME", "CHECKPOINT_NAME", "FINETUNE_NAME", "CLASSIFIER_NAME",
           "METRICS_NAME", "is_dbm", "label_error", "load_dbm", "visible_samples", "save_pictures",
           "cmd_evaluate_dbm", "cmd_sample_dbm"]

COMMAND = "train dbm"  # the "command" in a DBM run's checkpoint metadata
PRETRAINED_NAME = "pretrained.npz"
CHECKPOINT_NAME = "checkpoint.npz"  # jdbn.train.CHECKPOINT_NAME, as for an RBM run
FINETUNE_NAME = "finetune.npz"
METRICS_NAME = "metrics.json"
_MAX_EXACT_STATES = 2**20  # exact log Z when the odd layers have at most this many states


def _user(path: pathlib.Path) -> Optional[dict]:
  """The ``user`` metadata of a checkpoint written by ``train dbm``, else None."""
  from jdbn import checkpoint
  try:
    meta = checkpoint.read_metadata(path)
  except (ValueError, OSError, KeyError):
    return None
  user = meta.get("user", {})
  return user if isinstance(user, dict) and user.get("command") == COMMAND else None


def _model_file(text: str) -> Optional[pathlib.Path]:
  """The DBM checkpoint ``text`` names (a run folder: the joint checkpoint, else the pretrained
  DBM), or None if it names none."""
  path = pathlib.Path(text)
  if path.is_dir():
    for name in (CHECKPOINT_NAME, PRETRAINED_NAME):
      if _user(path / name) is not None:
        return path / name
    return None
  return path if path.is_file() and _user(path) is not None else None


def is_dbm(text: str) -> bool:
  """Whether ``text`` names a ``train dbm`` run folder or one of its checkpoints."""
  return _model_file(text) is not None


def load_dbm(text: str):
  """``(model, user_metadata, path)`` of a DBM run folder or checkpoint; a centered DBM
  (``train dbm --center``) as the ordinary :class:`~jdbn.models.dbm.DBM` it equals."""
  from jdbn import checkpoint
  from jdbn.models import dbm as D
  path = _model_file(text)
  if path is None:
    raise CLIError(f"no DBM run at {text!r}: give a folder written by `jdbn train dbm --out DIR`")
  try:
    model = checkpoint.load_params(path)
  except ValueError as err:
    raise CLIError(str(err)) from err
  if not isinstance(model, D.DBM):
    raise CLIError(f"{path} holds a {type(model).__name__}, not a DBM")
  return model.uncentered(), _user(path), path


# --------------------------------------------------------------------------- samples, pictures


def class_rows(model, n_samples: int) -> Optional[np.ndarray]:
  """The clamped classes of ``n_samples`` chains of a DBM with a label block: ``n_samples //
  n_classes`` (at least one) of each class in turn, a row per class; None without a label
  block."""
  from jdbn.models import dbm as D
  if not D.has_label_block(model):
    return None
  n = model.sizes[-1]
  return np.repeat(np.arange(n, dtype=np.int32), max(1, n_samples // n))


def visible_samples(key, model, n_samples: int, n_steps: int,
                    labels: Optional[np.ndarray] = None) -> np.ndarray:
  """``E[v | h1]`` after ``n_steps`` even/odd Gibbs sweeps of ``n_samples`` chains started from
  the base rates, as the persistent chains of training start: ``[n, n_visible]``. With
  ``labels`` (``[n_samples]`` classes), the label block is clamped at them."""
  if labels is None:
    return np.asarray(_sample_fn()(key, model, None, n_samples=n_samples, n_steps=n_steps))
  from jdbn.models import dbm as D
  y = D.label_states(model, np.asarray(labels, np.int32), (n_samples,))
  return np.asarray(_sample_fn()(key, model, y, n_samples=n_samples, n_steps=n_steps))


@functools.cache
def _sample_fn():
  import jax
  from jdbn.models import base
  from jdbn.samplers import gibbs

  @functools.partial(jax.jit, static_argnames=("n_samples", "n_steps"))
  def run(key, model, y, n_samples, n_steps):
    key_init, key_run = jax.random.split(key)
    state = gibbs.init_random(key_init, model, n_samples)
    clamp = None
    if y is not None:  # the label block (the top layer) held at the given classes
      state = (*state[:-1], y)
      clamp = {len(state) - 1: True}
    state, _ = gibbs.chain(key_run, model, state, n_steps, clamp=clamp)
    return base.conditional_mean(model, state, 0)

  return run


def save_pictures(out: pathlib.Path, key, model, image_shape, spec: dict,
                  n_steps: int) -> dict:
  """``filters.png`` (the first layer's weights) and ``samples.png`` (100 chains' ``E[v | h1]``
  after ``n_steps`` sweeps; a row per class with a label block) in ``out``."""
  from jdbn import viz
  zoom = zoom_for(image_shape)
  paths = {"filters": viz.save_filters(out / "filters.png", np.asarray(model.weights[0]),
                                       image_shape, max_filters=100, zoom=zoom)}
  labels = class_rows(model, 100)
  v = to_image(visible_samples(key, model, 100 if labels is None else len(labels), n_steps,
                               labels), spec)
  cols = {} if labels is None else {"n_cols": len(labels) // model.sizes[-1]}
  paths["samples"] = viz.save_grid(out / "samples.png", v, image_shape, scale=None, zoom=zoom,
                                   **cols)
  return paths


def _image_shape(model, user: dict, given) -> tuple[int, int]:
  shape = tuple(given or user.get("image_shape") or ())
  if not shape:
    side = int(round(model.sizes[0]**0.5))
    if side * side != model.sizes[0]:
      raise CLIError(f"the run does not record an image shape and {model.sizes[0]} visible units "
                     f"are not a square; pass --image-shape HxW")
    shape = (side, side)
  if shape[0] * shape[1] != model.sizes[0]:
    raise CLIError(f"--image-shape {shape[0]}x{shape[1]} has {shape[0] * shape[1]} pixels, the "
                   f"DBM has {model.sizes[0]} visible units")
  return shape


def cmd_sample_dbm(args) -> int:
  """``jdbn sample`` on a DBM run: a PNG of ``E[v | h1]`` after ``--n-steps`` Gibbs sweeps; a
  DBM with a label block draws a row per class, its labels clamped."""
  from jdbn import viz
  writable_file(args.out)
  model, user, _ = load_dbm(args.checkpoint)
  shape = _image_shape(model, user, args.image_shape)
  labels = class_rows(model, args.n_samples)
  n = args.n_samples if labels is None else len(labels)
  v = visible_samples(make_key(args), model, n, args.n_steps, labels)
  cols = {} if labels is None else {"n_cols": n // model.sizes[-1]}
  out = viz.save_grid(args.out, to_image(v, user.get("preprocess", {})), shape, scale=None,
                      zoom=zoom_for(shape), **cols)
  rows = "" if labels is None else ", a row per class with its label clamped"
  print(f"{n} samples of the DBM {'-'.join(map(str, model.sizes))} after {args.n_steps} Gibbs "
        f"sweeps{rows}: {out}")
  return 0


# --------------------------------------------------------------------------- evaluate


def cmd_evaluate_dbm(args) -> int:
  """``jdbn evaluate`` on a DBM run: AIS log Z (exact too when small), the test set's variational
  lower bound on ``log p(v)`` over AIS's +-3 s.e. interval, how often mean-field met its
  tolerance, the label block's test error (``--labels``) and the fine-tuned network's (if the run
  was fine-tuned)."""
  import jax
  from jdbn.models import dbm as D
  model, user, path = load_dbm(args.checkpoint)
  name = args.dataset or user.get("dataset")
  data_dir = data_dir_for(args.data_dir, name, user)
  test = load_dataset(name, args.split, data_dir)
  if test.x.shape[1] != model.sizes[0]:
    raise CLIError(f"{name} has {test.x.shape[1]} pixels but the DBM has {model.sizes[0]} "
                   f"visible units")
  x, y = np.asarray(test.x), np.asarray(test.y)
  if args.max_examples:
    x, y = x[:args.max_examples], y[:args.max_examples]
  spec = user.get("preprocess", {"binarize": "none"})
  k_x, k_b, k_ais = jax.random.split(make_key(args), 3)
  print(f"evaluating the DBM {'-'.join(map(str, model.sizes))} in {path} on {name} {args.split} "
        f"({len(x)} examples)")
  if spec.get("binarize", "none") == "none":
    print("scoring a stochastic binarisation of the data (the model was trained on "
          "intensities; a likelihood needs binary vectors)")
  xb = binarize(k_b, x, "stochastic" if spec.get("binarize", "none") == "none" else
                spec["binarize"])
  # AIS's base rates need only the training set's means: no binarisation draw.
  base_mode = "threshold" if spec.get("binarize") == "threshold" else "none"
  base = apply_preprocess(None, np.asarray(load_dataset(name, "train", data_dir).x),
                          {"binarize": base_mode})
  result = _bound(k_ais, model, xb, base, args, user.get("settings", {}))
  if D.has_label_block(model):
    result["label_error"] = err = label_error(model, x, y, user.get("settings", {}).get(
        "mf_tol", 1e-6))
    print(f"label block's classification error: {err:.4f} ({round(err * len(x))} of {len(x)}; "
          f"the class with the largest variational bound, on the grey levels)")
  folder = pathlib.Path(args.checkpoint)
  if folder.is_dir() and (folder / CLASSIFIER_NAME).is_file():
    result["finetuned_error"] = _finetuned_error(folder, model, x, k_x, spec, y,
                                                 user.get("settings", {}))
  return 0


def label_error(model, x: np.ndarray, y: np.ndarray, tol: float, batch_size: int = 1000) -> float:
  """The error rate of ``model``'s label block on ``(x, y)``: the class whose clamped mean-field
  gives the largest variational bound (:func:`jdbn.models.dbm_labels.classify`), in batches.
  ``x`` may be grey levels in [0, 1]: mean-field then reads them as the visible units' means."""
  from jdbn.models import dbm_labels
  pred = np.concatenate([np.asarray(dbm_labels.classify(model, x[i:i + batch_size], tol=tol))
                         for i in range(0, len(x), batch_size)])
  return float(np.mean(pred != np.asarray(y)))


def _bound(key, model, xb: np.ndarray, base: np.ndarray, args, settings: dict) -> dict:
  """AIS log Z, the variational bound on ``xb`` and mean-field's convergence, printed."""
  from jdbn import likelihood
  from jdbn.models import dbm as D
  betas = betas_schedule(1000 if args.quick else args.n_betas)
  t0 = time.perf_counter()
  est = likelihood.variational_bound(key, model, xb, base_data=base, n_chains=args.n_chains,
                                     betas=betas, tol=settings.get("mf_tol", 1e-6))
  ais = est.ais
  r: dict[str, Any] = {"log_z": float(ais.log_z), "log_z_lower": float(ais.log_z_lower),
                       "log_z_upper": float(ais.log_z_upper), "ess": float(ais.ess),
                       "bound": float(est.mean), "bound_lower": float(est.lower),
                       "bound_upper": float(est.upper),
                       "mean_field_converged": float(est.mean_field_converged),
                       "seconds": time.perf_counter() - t0}
  runs = (f"{args.n_chains} chains, {-(-args.n_chains // model.sizes[-1])} per class"
          if D.has_label_block(model) else f"{args.n_chains} chains")
  print(f"log Z (AIS, {runs}, {len(betas):,} betas): {fmt(r['log_z'])}  "
        f"[{fmt(r['log_z_lower'])}, {fmt(r['log_z_upper'])}] (+-3 s.e.; ESS {r['ess']:.1f} of "
        f"{args.n_chains}; {r['seconds']:.1f} s)")
  warn(ais_warning(r["ess"], args.n_chains))
  odd_states = math.prod(model.units[l].n_states(model.sizes[l]) if model.units[l].enumerable
                         else _MAX_EXACT_STATES + 1 for l in model.schedule[0])
  if odd_states <= _MAX_EXACT_STATES:
    r["log_z_exact"] = float(D.exact_log_z(model))
    print(f"log Z (exact):     {fmt(r['log_z_exact'])}")
  print(f"variational lower bound (AIS log Z): {fmt(r['bound'])} nats/example  "
        f"[{fmt(r['bound_lower'])}, {fmt(r['bound_upper'])}] over {len(xb)} examples")
  if "log_z_exact" in r:
    r["bound_exact"] = r["bound"] + r["log_z"] - r["log_z_exact"]
    print(f"variational lower bound (exact log Z): {fmt(r['bound_exact'])} nats/example")
  print(f"mean-field converged: {r['mean_field_converged']:.2f} of the batches met tol "
        f"{settings.get('mf_tol', 1e-6):g}")
  return r


def _finetuned_error(folder: pathlib.Path, model, x: np.ndarray, key, spec: dict, y: np.ndarray,
                     settings: dict) -> Optional[float]:
  """The test error of the run's fine-tuned network, on ``[x, q(h2 | x)]`` with ``x`` the
  intensities or, as ``spec`` binarizes them (``key``), the images that the network was
  fine-tuned on; None (said) when the DBM has been trained further since it was fine-tuned, so
  that its ``q`` is not the network's."""
  from jdbn import checkpoint
  from jdbn.train import classifier_dbm
  from jdbn.train import finetune as F
  meta = checkpoint.read_metadata(folder / CLASSIFIER_NAME)
  source = meta.get("source", {})
  # Networks saved before --finetune-input existed were fine-tuned on the binarized images.
  if meta.get("finetune_input", "binarized") == "binarized":
    x = binarize(key, x, spec.get("binarize", "none"))
  ckpt = folder / CHECKPOINT_NAME
  epochs = checkpoint.read_metadata(ckpt).get("epoch", 0) if ckpt.is_file() else 0
  if source.get("joint_epochs", epochs) != epochs:
    print(f"fine-tuned network: not evaluated, it was fine-tuned from the DBM after "
          f"{source['joint_epochs']} joint epochs and the run has {epochs} now; rerun `jdbn "
          f"train dbm` with --finetune-epochs to fine-tune the current DBM")
    return None
  module, variables = load_classifier(folder)
  feats = classifier_dbm.features(model, x, tol=settings.get("mf_tol", 1e-6))
  err = F.error_rate(module, variables, feats, y)
  print(f"fine-tuned network's classification error: {err:.4f} ({round(err * len(x))} of "
        f"{len(x)})")
  return err
