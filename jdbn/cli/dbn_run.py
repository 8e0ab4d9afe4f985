"""A DBN run folder as the ``jdbn`` DBN subcommands see it: the names of its files, loading its
model and fine-tuned network, its picture sheets and the generative classification error.

A run folder written by ``jdbn train dbn`` holds ``dbn.npz`` (the model), ``settings.json``,
``metrics.json``, ``samples.png``, ``pretrain/`` (a checkpoint per layer), ``updown.npz`` when it
was fine-tuned by up-down, and ``finetune.npz`` and ``classifier.npz`` when it was fine-tuned
discriminatively.
"""

from __future__ import annotations

import functools
import pathlib

import numpy as np

from jdbn.cli.common import CLIError, zoom_for

MODEL_NAME = "dbn.npz"
UPDOWN_NAME = "updown.npz"
FINETUNE_NAME = "finetune.npz"  # the fine-tuning state, for resuming
CLASSIFIER_NAME = "classifier.npz"  # the fine-tuned network's early-stopped variables
N_CLASSES = 10  # both datasets' classes: the label units dbn.pretrain adds by default


def resolve_model(text: str) -> pathlib.Path:
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
  path = resolve_model(text)
  try:
    model, meta = checkpoint.restore(path)
  except ValueError as err:
    raise CLIError(str(err)) from err
  try:
    D.check(model)
  except (TypeError, ValueError) as err:
    raise CLIError(f"{path} does not hold a DBN: {err}") from err
  return model, meta


def load_classifier(folder: pathlib.Path):
  """``(module, variables)`` of the fine-tuned network in a run folder, or None."""
  from jdbn import checkpoint
  from jdbn.train import finetune as F
  path = folder / CLASSIFIER_NAME
  if not path.is_file():
    return None
  variables, meta = checkpoint.restore(path)
  module = F.Classifier(tuple(meta["hidden_sizes"]), meta["n_classes"], meta["dropout"],
                        meta["input_dropout"])
  return module, variables


def image_shape(model, meta: dict) -> tuple[int, int]:
  from jdbn import dbn as D
  n = D.layer_sizes(model)[0]
  if meta.get("image_shape"):
    return tuple(meta["image_shape"])
  side = int(round(n**0.5))
  if side * side != n:
    raise CLIError(f"the model does not record an image shape and {n} inputs are not a "
                   f"square")
  return side, side


def save_sheet(path, images: np.ndarray, n_rows: int, shape) -> pathlib.Path:
  from jdbn import viz
  images = np.clip(np.asarray(images), 0, 1)
  return viz.save_rows(path, images.reshape(n_rows, -1, images.shape[-1]), shape,
                       zoom=zoom_for(shape))


def generative_error(model, x, y) -> float:
  """The error rate of the DBN's generative classifier (:func:`jdbn.dbn.classify`) on ``x``."""
  import jax.numpy as jnp
  pred = _classify()(model, jnp.asarray(x))
  return float(jnp.mean(pred != jnp.asarray(y)))


@functools.cache
def _classify():
  """One jitted classifier for the process (compiled once per shape, not once per call)."""
  import jax
  from jdbn import dbn as D
  return jax.jit(lambda m, a: D.classify(m, a, batch_size=500))
