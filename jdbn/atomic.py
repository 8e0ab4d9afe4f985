"""Atomic file writes: a file is replaced whole or not at all, and JSON written that way.

:func:`atomic_write` writes under a temporary name in the destination folder, flushes and
``fsync``-s, then renames over the destination with ``os.replace`` (and ``fsync``-s the folder),
so a crash leaves either the previous file or the new one, never half of one. :func:`write_json`
writes indented JSON through it; NumPy and JAX scalars and arrays and paths are converted.
Checkpoints (:mod:`jdbn.checkpoint`) and metrics files are written this way. Example::

    atomic.write_json("run/metrics.json", {"epoch": 3, "loss": np.float32(0.5)})
    atomic.atomic_write("run/blob.bin", lambda f: f.write(payload))
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import tempfile
from typing import Any, BinaryIO, Callable, Union

import jax
import numpy as np

__all__ = ["atomic_write", "dumps", "write_json"]

PathLike = Union[str, os.PathLike]


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> pathlib.Path:
  """Writes a file atomically: ``write(f)`` into a temp file beside ``path``, fsync, rename.

  Parent folders are created. If ``write`` raises (or the process is interrupted), the temp file
  is removed and whatever was at ``path`` before stays as it was.

  Args:
    path: destination.
    write: called with the temp file opened for binary writing.

  Returns:
    ``path`` as a ``pathlib.Path``.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp)
    raise
  _fsync_dir(path.parent)
  return path


def _fsync_dir(folder: pathlib.Path) -> None:
  """Makes a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
  try:
    fd = os.open(folder, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def _json_default(x):
  if isinstance(x, (np.generic, jax.Array)) and np.ndim(x) == 0:
    return np.asarray(x).item()
  if isinstance(x, (np.ndarray, jax.Array)):
    return np.asarray(x).tolist()
  if isinstance(x, (pathlib.PurePath,)):
    return str(x)
  raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def dumps(obj, **kw) -> str:
  """``json.dumps`` that also writes NumPy/JAX scalars and arrays and paths.

  Raises:
    TypeError: a value that is still not JSON serialisable (named as checkpoint metadata).
  """
  try:
    return json.dumps(obj, default=_json_default, **kw)
  except (TypeError, ValueError) as err:
    raise TypeError(f"checkpoint metadata must be JSON serialisable: {err}") from err


def write_json(path: PathLike, obj: Any) -> pathlib.Path:
  """Writes ``obj`` as indented JSON, atomically (see :func:`atomic_write`)."""
  text = dumps(obj, indent=2) + "\n"
  return atomic_write(path, lambda f: f.write(text.encode("utf-8")))

