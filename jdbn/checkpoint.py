"""Checkpoints: any pytree of params, optimizer state, chains, keys and step in one atomic file.

A checkpoint is one ``.npz`` file (NumPy's zip of ``.npy`` arrays, readable by any NumPy with
``allow_pickle=False``) holding

* ``leaf_0``, ``leaf_1``, ...: the pytree's array leaves, bit for bit (typed PRNG keys as their
  ``jax.random.key_data``, rebuilt with ``jax.random.wrap_key_data``);
* ``__header__``: UTF-8 JSON with the format version, one record per leaf (its path such as
  ``['state'].params.W``, shape, dtype, kind), the tree's structure (dicts, lists, tuples,
  NamedTuples, ``flax.struct`` dataclasses such as :class:`jdbn.rbm.RBM`) with the static fields
  written by name and value (a unit family is ``{"type": "Softmax", "group_size": 10}``), and the
  caller's JSON ``metadata`` (epoch, history, ...).

Nothing is pickled, so loading a checkpoint never runs code from the file: classes are rebuilt
only from a registry (jdbn's own types, anything given to :func:`register_node` /
:func:`register_units`) or, for NamedTuple and ``flax.struct`` classes, from the ``jdbn``,
``optax`` and ``flax`` packages.

Writes are atomic: the file is written under a temporary name in the destination folder,
flushed and ``fsync``-ed, then renamed over the destination with ``os.replace``, so a crash
leaves either the previous checkpoint or the new one, never half of one. Example::

    checkpoint.save("run/ckpt.npz", {"state": state, "key": key}, metadata={"epoch": 3})
    tree = checkpoint.load("run/ckpt.npz", like={"state": state, "key": key})  # checked
    tree, meta = checkpoint.restore("run/ckpt.npz")        # rebuilt from the header alone

The pieces live in :mod:`jdbn.tree_codec` (the pytree <-> header and arrays codec) and
:mod:`jdbn.atomic` (atomic writes); this module is the file format and the public API.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, BinaryIO, Optional, Union

import jax
import numpy as np

from jdbn import tree_codec
from jdbn.atomic import dumps, atomic_write, write_json
from jdbn.tree_codec import compare, decode, encode_tree, host_array, leaf_value
from jdbn.tree_codec import register_node, register_units

__all__ = [
    "CheckpointError",
    "FORMAT",
    "VERSION",
    "atomic_write",
    "load",
    "load_params",
    "read_metadata",
    "register_node",
    "register_units",
    "restore",
    "save",
    "save_params",
    "write_json",
]

PathLike = Union[str, os.PathLike]

FORMAT = "jdbn-checkpoint"
VERSION = 1
_HEADER = "__header__"
#: The registries of :mod:`jdbn.tree_codec` (the same dicts).
_UNITS = tree_codec._UNITS  # pylint: disable=protected-access
_NODES = tree_codec._NODES  # pylint: disable=protected-access


class CheckpointError(ValueError):
  """A file that is not a readable jdbn checkpoint: damaged (truncated, altered bytes), another
  kind of file, or written by a newer jdbn. The message names the file and what to do."""


def _damaged(path, err: BaseException) -> CheckpointError:
  detail = str(err).splitlines()[0] if str(err) else type(err).__name__
  return CheckpointError(
      f"{str(path)!r} is damaged or not a jdbn checkpoint ({type(err).__name__}: {detail}); "
      f"restore it from a copy, or move it aside to start again")



def save(path: PathLike, tree: Any, *, metadata: Optional[dict] = None) -> pathlib.Path:
  """Saves a pytree (params, optimizer state, chains, step, PRNG keys, ...) atomically.

  Args:
    path: destination file, conventionally ``*.npz``; parent folders are created.
    tree: a pytree of arrays, typed or raw PRNG keys and Python numbers, built from dicts (str or
      int keys), lists, tuples, NamedTuples (e.g. Optax states) and ``flax.struct`` dataclasses
      (e.g. :class:`jdbn.rbm.RBM`, whose unit families are written by name and fields).
    metadata: JSON-serialisable dict stored in the header (epoch, history, settings).

  Returns:
    ``path`` as a ``pathlib.Path``.

  Raises:
    TypeError: a leaf, static field or metadata value that cannot be written.
  """
  structure, leaves, records = encode_tree(tree)
  arrays = {
      f"leaf_{i}": host_array(x, r)
      for i, (x, r) in enumerate(zip(leaves, records, strict=True))
  }
  header = {"format": FORMAT, "version": VERSION, "jax_version": jax.__version__,
            "leaves": records, "tree": structure, "metadata": metadata or {}}
  arrays[_HEADER] = np.frombuffer(dumps(header).encode("utf-8"), np.uint8)
  return atomic_write(path, lambda f: _write_npz(f, arrays))


def _write_npz(f: BinaryIO, arrays: dict) -> None:
  np.savez(f, **arrays)


def _read(path: PathLike, with_arrays: bool = True):
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"no checkpoint at {str(path)!r}" +
                            (" (it is a folder)" if path.is_dir() else ""))
  with open(path, "rb") as f:
    if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
      raise CheckpointError(f"{str(path)!r} is not a jdbn checkpoint (not an .npz file)")
  try:
    with np.load(path, allow_pickle=False) as z:
      if _HEADER not in z.files:
        raise ValueError("no header")
      header = json.loads(z[_HEADER].tobytes().decode("utf-8"))
      arrays = {n: z[n] for n in z.files if n != _HEADER} if with_arrays else {}
    if not isinstance(header, dict) or not isinstance(header.get("metadata", {}), dict):
      raise ValueError("malformed header")
  except Exception as err:  # pylint: disable=broad-except  (zipfile, zlib, NumPy, JSON, ...)
    if "no header" in str(err):
      raise CheckpointError(f"{str(path)!r} is not a readable jdbn checkpoint: {err}") from err
    raise _damaged(path, err) from err
  if header.get("format") != FORMAT:
    raise CheckpointError(
        f"{str(path)!r} is not a jdbn checkpoint (format {header.get('format')!r})")
  if header.get("version", 0) > VERSION:
    raise CheckpointError(f"{str(path)!r} has checkpoint format version {header['version']}; this "
                     f"jdbn reads up to version {VERSION}: upgrade jdbn")
  return header, arrays



def restore(path: PathLike, like: Any = None) -> tuple[Any, dict]:
  """Loads a checkpoint and its metadata.

  Args:
    path: a file written by :func:`save`.
    like: optional template pytree with the expected structure (arrays or
      ``jax.ShapeDtypeStruct`` leaves, e.g. from ``jax.eval_shape``). Every leaf's shape and
      dtype, every node type and every static field (unit families) is checked against it, and
      the result takes the template's tree structure and leaf types. Without a template the tree
      is rebuilt from the header (RBMs, chains, Optax states, dicts, lists, tuples).

  Returns:
    ``(tree, metadata)``.

  Raises:
    FileNotFoundError: no file at ``path``.
    ValueError: not a checkpoint, or a mismatch with ``like`` (naming the leaf path and the
      expected and found shapes, dtypes or unit types).
  """
  header, arrays = _read(path)
  try:
    records = header["leaves"]
    raw = [arrays[f"leaf_{i}"] for i in range(len(records))]
    if like is None:
      leaves = [leaf_value(a, r) for a, r in zip(raw, records, strict=True)]
      return decode(header["tree"], "", leaves), header["metadata"]
  except ValueError:
    raise
  except Exception as err:  # pylint: disable=broad-except  (a header that contradicts itself)
    raise _damaged(path, err) from err
  want_structure, want_leaves, want_records = encode_tree(like)
  for r in want_records:  # a template key leaf from eval_shape names its dtype, not its impl
    r.pop("impl", None)
  saved_records = [{k: v for k, v in r.items() if k != "impl"} for r in records]
  try:
    compare(header["tree"], want_structure, "", saved_records, want_records, repr(str(path)))
  except ValueError:
    raise
  except Exception as err:  # pylint: disable=broad-except  (a header that contradicts itself)
    raise _damaged(path, err) from err
  try:
    leaves = [leaf_value(a, r, w) for a, r, w in zip(raw, records, want_leaves, strict=True)]
  except Exception as err:  # pylint: disable=broad-except
    raise _damaged(path, err) from err
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(like), leaves), header[
      "metadata"]


def load(path: PathLike, like: Any = None) -> Any:
  """Loads the pytree of a checkpoint; see :func:`restore` (which also returns the metadata)."""
  return restore(path, like)[0]


def read_metadata(path: PathLike) -> dict:
  """The JSON metadata stored with a checkpoint, without reading its arrays."""
  return _read(path, with_arrays=False)[0]["metadata"]


def save_params(path: PathLike, params: Any, *, metadata: Optional[dict] = None) -> pathlib.Path:
  """Saves a bare model (an :class:`~jdbn.rbm.RBM`, or a list/tuple/dict of them)."""
  return save(path, params, metadata=metadata)


def load_params(path: PathLike, like: Any = None) -> Any:
  """Loads a model's params from a bare-model file or a training checkpoint.

  A training checkpoint written by :func:`jdbn.train.fit` holds ``{"state": TrainState, "key":
  ...}``; its ``state.params`` is returned. ``like``, if given, is a template of the params.
  """
  tree = load(path)
  if isinstance(tree, dict) and "state" in tree and hasattr(tree["state"], "params"):
    tree = tree["state"].params
  elif hasattr(tree, "params") and hasattr(tree, "opt_state"):
    tree = tree.params
  if like is not None:
    got, _, got_records = encode_tree(tree)
    want, _, want_records = encode_tree(like)
    for r in got_records + want_records:
      r.pop("impl", None)
    compare(got, want, "", got_records, want_records, repr(str(path)))
  return tree
