"""MNIST's raw sources: the four IDX files in a folder (plain or gzipped), or TFDS.

:func:`read_idx` reads one IDX file (LeCun's format); :func:`load_idx_folder` and
:func:`load_tfds` return one split as ``uint8`` images ``[n, 28, 28]`` and integer labels
``[n]``, exactly as stored. :func:`jdbn.data.load_mnist` chooses the source and turns the result
into a :class:`jdbn.data.Dataset`; use that. Example::

    images, labels = jdbn.mnist.load_idx_folder(pathlib.Path("path/to/idx"), "test")
"""

from __future__ import annotations

import gzip
import math
import os
import pathlib
import zlib
from typing import Any

import numpy as np

__all__ = ["FILES", "MNIST_ENV_VAR", "load_idx_folder", "load_tfds", "read_idx"]

MNIST_ENV_VAR = "JDBN_MNIST_DIR"
"""Environment variable naming a folder of the four MNIST IDX files."""

#: Split -> (images file, labels file), each possibly with a ``.gz`` suffix.
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
# IDX type code -> big-endian NumPy dtype (LeCun's format description).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
  """Reads one IDX file (the MNIST format), plain or gzipped.

  Format: a big-endian header of two zero bytes, a type code (0x08 = uint8, ...), the number of
  dimensions k, then k big-endian int32 sizes; then the values in C order. The magic number is
  the first four bytes read as a big-endian int, e.g. 2051 for MNIST images, 2049 for labels.

  Args:
    path: the file; gzip is detected from its content, not its name.
    expected_magic: if given, the magic number the file must have.

  Returns:
    An array of the file's shape and dtype (native byte order).

  Raises:
    ValueError: bad magic number, unknown type code, or a size that does not match the header.
  """
  path = pathlib.Path(path)
  with open(path, "rb") as f:
    gzipped = f.read(2) == b"\x1f\x8b"
  try:
    with gzip.open(path, "rb") if gzipped else open(path, "rb") as f:
      data = f.read()
  except (EOFError, gzip.BadGzipFile, zlib.error) as err:
    raise ValueError(f"{path}: damaged gzip file ({err}); download it again") from err
  if len(data) < 4:
    raise ValueError(f"{path}: too short for an IDX header ({len(data)} bytes)")
  magic = int.from_bytes(data[:4], "big")
  if expected_magic is not None and magic != expected_magic:
    raise ValueError(f"{path}: magic number {magic}, expected {expected_magic}")
  if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
    raise ValueError(f"{path}: not an IDX file (magic number {magic})")
  ndim = data[3]
  header = 4 + 4 * ndim
  if len(data) < header:
    raise ValueError(f"{path}: truncated IDX header")
  shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  dtype = np.dtype(_IDX_DTYPES[data[2]])
  expected = math.prod(shape) * dtype.itemsize
  if len(data) - header != expected:
    raise ValueError(f"{path}: header says shape {shape} ({expected} bytes of data) "
                     f"but the file holds {len(data) - header} bytes")
  array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
  return array.astype(dtype.newbyteorder("="))


def _find_idx(folder: pathlib.Path, name: str) -> pathlib.Path | None:
  for candidate in (folder / name, folder / (name + ".gz")):
    if candidate.is_file():
      return candidate
  return None


def load_idx_folder(folder: pathlib.Path, split: str) -> tuple[np.ndarray, np.ndarray]:
  """One MNIST split from a folder of IDX files.

  Args:
    folder: holds the split's two files of :data:`FILES`, plain or ``.gz``.
    split: ``"train"`` or ``"test"``.

  Returns:
    ``(images, labels)``: ``[n, h, w]`` uint8 and ``[n]`` integers.

  Raises:
    FileNotFoundError: no such folder, or files missing.
    ValueError: malformed files, or images and labels that do not match.
  """
  names = FILES[split]
  if not folder.is_dir():
    raise FileNotFoundError(f"MNIST folder {str(folder)!r} does not exist; it should hold "
                            f"{', '.join(n + '[.gz]' for n in names)}")
  paths = [_find_idx(folder, n) for n in names]
  missing = [n + "[.gz]" for n, p in zip(names, paths, strict=True) if p is None]
  if missing:
    raise FileNotFoundError(f"MNIST folder {str(folder)!r} lacks {', '.join(missing)}")
  images = read_idx(paths[0], _IDX_IMAGES_MAGIC)
  labels = read_idx(paths[1], _IDX_LABELS_MAGIC)
  if images.ndim != 3 or labels.ndim != 1:
    raise ValueError(f"MNIST {split}: images {images.shape} and labels {labels.shape}")
  if len(images) != len(labels):
    raise ValueError(f"MNIST {split}: {len(images)} images in {paths[0].name} "
                     f"but {len(labels)} labels in {paths[1].name}")
  return images, labels


def _get_many(source: Any, keys: list[int]) -> list[Any]:
  """Reads records by batch where the data source can (``__getitems__``), else one by one."""
  try:
    return list(source.__getitems__(keys))
  except (AttributeError, TypeError, NotImplementedError):
    # tfds.testing.mock_data installs a __getitems__ that cannot be called (TFDS 4.9.x).
    return [source[k] for k in keys]


def load_tfds(split: str, tfds_data_dir: str | os.PathLike | None,
              chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
  """One MNIST split through ``tfds.data_source("mnist")`` (no TensorFlow needed; may download).

  Args:
    split: ``"train"`` or ``"test"``.
    tfds_data_dir: TFDS's data folder (``None``: TFDS's default).
    chunk: records read per batch.

  Returns:
    ``(images, labels)``: ``[n, 28, 28]`` uint8 and ``[n]`` integers.

  Raises:
    RuntimeError: TFDS could not provide MNIST (e.g. no network); the message says how to use
      IDX files instead.
  """
  hint = (
      f"MNIST is not available through TFDS ({{err}}). Pass data_dir= (--data-dir on the "
      f"command line) or set {MNIST_ENV_VAR} to a folder holding train-images-idx3-ubyte, "
      f"train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (.gz or not).")
  try:
    import tensorflow_datasets as tfds

    source = tfds.data_source("mnist", split=split, data_dir=tfds_data_dir)
    n = len(source)
  except Exception as err:  # TFDS raises many kinds here: network, missing deps, format.
    raise RuntimeError(hint.format(err=f"{type(err).__name__}: {err}")) from err
  images, labels = [], []
  for start in range(0, n, chunk):
    records = _get_many(source, list(range(start, min(n, start + chunk))))
    images.append(np.stack([np.asarray(r["image"]) for r in records]))
    labels.append(np.asarray([r["label"] for r in records]))
  if not images:
    raise RuntimeError(hint.format(err=f"split {split!r} is empty"))
  image_array = np.concatenate(images)
  if image_array.ndim == 4:  # TFDS images are [n, 28, 28, 1]
    image_array = image_array[..., 0]
  return image_array, np.concatenate(labels)
