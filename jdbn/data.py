"""Datasets and batching: MNIST (IDX files or TFDS), an embedded offline digits set, mini-batches.

Every loader returns a :class:`Dataset` of host (NumPy) arrays: images flattened to
``x: [n, n_pixels]`` float32 in [0, 1] and labels ``y: [n]`` int32, plus the 2-D ``image_shape``
needed to draw them. The transforms (:func:`binarize`, :func:`binarize_stochastic`,
:func:`shuffle`, :func:`batch`) are pure ``jax.numpy`` functions taking an explicit PRNG key first
where they are random; they return JAX arrays.

Example::

    ds = jdbn.data.load("mnist", "train", data_dir="path/to/idx")   # or JDBN_MNIST_DIR, or TFDS
    train, valid = jdbn.data.split_validation(ds, 10_000)
    batches = jdbn.data.batch(key, train.x, batch_size=100)        # [n_batches, 100, 784]
"""

from __future__ import annotations

import gzip
import importlib.resources
import math
import operator
import os
import pathlib
import zlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = [
    "MNIST_ENV_VAR",
    "NAMES",
    "Dataset",
    "balanced_order",
    "batch",
    "binarize",
    "binarize_stochastic",
    "check_finite",
    "load",
    "load_digits",
    "load_mnist",
    "read_idx",
    "shuffle",
    "split_validation",
]

NAMES = ("digits", "mnist")
"""Dataset names accepted by :func:`load`."""

MNIST_ENV_VAR = "JDBN_MNIST_DIR"
"""Environment variable naming a folder of the four MNIST IDX files."""

DIGITS_N_TEST = 297
"""Size of the deterministic digits test split: the last 297 of the 1,797 examples."""

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
# IDX type code -> big-endian NumPy dtype (LeCun's format description).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_TFDS_CHUNK = 4096


class Dataset(NamedTuple):
  """A labelled image dataset, flattened.

  Attributes:
    x: ``[n, d]`` float32 pixel intensities in [0, 1], ``d = prod(image_shape)``.
    y: ``[n]`` int32 class labels.
    image_shape: ``(height, width)`` of one image; static metadata, not an array. Pass ``x`` and
      ``y`` rather than the whole ``Dataset`` through ``jax.jit``, which would trace these ints.
  """

  x: Any
  y: Any
  image_shape: tuple[int, int]


# --------------------------------------------------------------------------- loaders


def load(name: str, split: str = "train", data_dir: str | os.PathLike | None = None) -> Dataset:
  """Loads a dataset by name.

  Args:
    name: ``"digits"`` (embedded, offline; see :func:`load_digits`) or ``"mnist"`` (see
      :func:`load_mnist`).
    split: ``"train"`` or ``"test"``; digits also accepts ``"all"``. The digits split is fixed:
      ``"train"`` is the first 1,500 examples, ``"test"`` the last 297.
    data_dir: for MNIST, a folder of the four IDX files; ignored for digits.

  Returns:
    A :class:`Dataset` with ``x: [n, d]`` float32 in [0, 1] and ``y: [n]`` int32.

  Raises:
    ValueError: unknown name or split.
  """
  if name == "digits":
    return load_digits(split)
  if name == "mnist":
    return load_mnist(split, data_dir)
  raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(map(repr, NAMES))}")


def load_digits(split: str = "all") -> Dataset:
  """Loads the embedded 8x8 handwritten digits; needs no network.

  The UCI "Optical Recognition of Handwritten Digits" data (E. Alpaydin and C. Kaynak, 1998, UCI
  Machine Learning Repository, https://doi.org/10.24432/C50P49, licensed CC BY 4.0), in the copy
  that scikit-learn bundles: the 1,797 examples of the UCI test file ``optdigits.tes``. Each image
  is 8x8 blocks of counts 0..16 of the "on" pixels in 4x4 cells of a 32x32 bitmap; they are
  divided by 16 here. Shipped as ``jdbn/_assets/digits.csv.gz`` (64 pixel columns, then the
  label); ``jdbn/_assets/README.md`` gives the attribution and licence.

  Args:
    split: ``"all"`` (1,797 examples), ``"train"`` (the first 1,500) or ``"test"`` (the last 297).
      The split is deterministic; class counts are roughly balanced in both parts.

  Returns:
    A :class:`Dataset` with ``x: [n, 64]`` float32 in [0, 1], ``y: [n]`` int32 in 0..9,
    ``image_shape=(8, 8)``.

  Raises:
    ValueError: unknown split.
  """
  if split not in ("all", "train", "test"):
    raise ValueError(f"unknown digits split {split!r}; expected 'train', 'test' or 'all'")
  resource = importlib.resources.files("jdbn").joinpath("_assets", "digits.csv.gz")
  with resource.open("rb") as raw, gzip.open(raw, "rt") as text:
    table = np.loadtxt(text, delimiter=",", dtype=np.int64)
  if table.ndim != 2 or table.shape[1] != 65:
    raise ValueError(f"digits asset has shape {table.shape}; expected [n, 65]")
  x = (table[:, :64] / 16.0).astype(np.float32)
  y = table[:, 64].astype(np.int32)
  n_train = len(y) - DIGITS_N_TEST
  if split == "train":
    x, y = x[:n_train], y[:n_train]
  elif split == "test":
    x, y = x[n_train:], y[n_train:]
  return Dataset(x, y, (8, 8))


def load_mnist(
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    *,
    tfds_data_dir: str | os.PathLike | None = None,
) -> Dataset:
  """Loads MNIST (LeCun, Cortes and Burges) from IDX files or through TFDS.

  The source is, in order: the folder ``data_dir``; the folder in the environment variable
  ``JDBN_MNIST_DIR``; otherwise ``tfds.data_source("mnist")`` (no TensorFlow needed), which may
  download the data. A folder must hold ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` for the split asked, each plain or
  gzipped (``.gz``). Training examples keep their original order, so the usual validation set is
  ``split_validation(ds, 10_000)``.

  Args:
    split: ``"train"`` (60,000 examples) or ``"test"`` (10,000).
    data_dir: folder of the IDX files.
    tfds_data_dir: TFDS's own data folder, used only on the TFDS path (default: TFDS's default).

  Returns:
    A :class:`Dataset` with ``x: [n, 784]`` float32 in [0, 1] (pixel / 255), ``y: [n]`` int32,
    ``image_shape=(28, 28)``.

  Raises:
    ValueError: unknown split, or a malformed IDX file.
    FileNotFoundError: the folder or its files for the split are missing.
    RuntimeError: no folder was given and TFDS could not provide MNIST (e.g. no network).
  """
  if split not in _MNIST_FILES:
    raise ValueError(f"unknown MNIST split {split!r}; expected 'train' or 'test'")
  if data_dir is None:
    data_dir = os.environ.get(MNIST_ENV_VAR) or None
  if data_dir is not None:
    return _load_mnist_idx(pathlib.Path(data_dir), split)
  return _load_mnist_tfds(split, tfds_data_dir)


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


def _load_mnist_idx(folder: pathlib.Path, split: str) -> Dataset:
  names = _MNIST_FILES[split]
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
  return _to_dataset(images, labels)


def _to_dataset(images: np.ndarray, labels: np.ndarray) -> Dataset:
  """uint8 ``[n, h, w]`` images and integer labels -> a flattened float32 :class:`Dataset`."""
  n, h, w = images.shape
  x = images.reshape(n, h * w).astype(np.float32) / np.float32(255.0)
  return Dataset(x, labels.astype(np.int32), (h, w))


def _get_many(source: Any, keys: list[int]) -> list[Any]:
  """Reads records by batch where the data source can (``__getitems__``), else one by one."""
  try:
    return list(source.__getitems__(keys))
  except (AttributeError, TypeError, NotImplementedError):
    # tfds.testing.mock_data installs a __getitems__ that cannot be called (TFDS 4.9.x).
    return [source[k] for k in keys]


def _load_mnist_tfds(split: str, tfds_data_dir: str | os.PathLike | None) -> Dataset:
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
  for start in range(0, n, _TFDS_CHUNK):
    records = _get_many(source, list(range(start, min(n, start + _TFDS_CHUNK))))
    images.append(np.stack([np.asarray(r["image"]) for r in records]))
    labels.append(np.asarray([r["label"] for r in records]))
  if not images:
    raise RuntimeError(hint.format(err=f"split {split!r} is empty"))
  image_array = np.concatenate(images)
  if image_array.ndim == 4:  # TFDS images are [n, 28, 28, 1]
    image_array = image_array[..., 0]
  return _to_dataset(image_array, np.concatenate(labels))


# --------------------------------------------------------------------------- transforms


def split_validation(ds: Dataset, n_validation: int) -> tuple[Dataset, Dataset]:
  """Splits off the last ``n_validation`` examples as a validation set.

  For MNIST this is the usual convention: train on the first 50,000 training images, validate on
  the last 10,000.

  Args:
    ds: a dataset with ``n`` examples.
    n_validation: number of validation examples, ``1 <= n_validation < n``.

  Returns:
    ``(train, validation)`` with ``n - n_validation`` and ``n_validation`` examples.

  Raises:
    ValueError: ``n_validation`` out of range.
  """
  n_validation = operator.index(n_validation)
  n = len(ds.x)
  if not 0 < n_validation < n:
    raise ValueError(f"n_validation must be in [1, {n - 1}] for {n} examples, got {n_validation}")
  cut = n - n_validation
  return (
      Dataset(ds.x[:cut], ds.y[:cut], ds.image_shape),
      Dataset(ds.x[cut:], ds.y[cut:], ds.image_shape),
  )


def binarize(x: ArrayLike, threshold: float = 0.5) -> jax.Array:
  """Deterministic binarisation: ``1`` where ``x > threshold``, else ``0``.

  Args:
    x: ``[..., d]`` intensities.
    threshold: the cut.

  Returns:
    ``[..., d]`` array of 0.0/1.0 in ``x``'s float dtype (float32 for integer input).
  """
  x = jnp.asarray(x)
  dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
  return (x > threshold).astype(dtype)


def binarize_stochastic(key: jax.Array, x: ArrayLike) -> jax.Array:
  """Stochastic binarisation: independent ``Bernoulli(p = x)`` per pixel.

  The usual way to binarise MNIST for RBMs (Salakhutdinov and Murray, 2008); a fresh key per epoch
  gives fresh binary data.

  Args:
    key: PRNG key.
    x: ``[..., d]`` intensities in [0, 1], read as probabilities.

  Returns:
    ``[..., d]`` array of 0.0/1.0 in ``x``'s float dtype (float32 for integer input).
  """
  x = jnp.asarray(x)
  dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
  return jax.random.bernoulli(key, x).astype(dtype)


def shuffle(key: jax.Array, ds: Dataset) -> Dataset:
  """Permutes the examples of a dataset, the same permutation for ``x`` and ``y``.

  Args:
    key: PRNG key; the same key gives the same permutation.
    ds: a dataset with ``x: [n, d]``, ``y: [n]``.

  Returns:
    The permuted :class:`Dataset` (JAX arrays), ``image_shape`` unchanged.
  """
  n = len(ds.x)
  if len(ds.y) != n:
    raise ValueError(f"x has {n} examples but y has {len(ds.y)}")
  perm = jax.random.permutation(key, n)
  return Dataset(
      jnp.take(jnp.asarray(ds.x), perm, axis=0),
      jnp.take(jnp.asarray(ds.y), perm, axis=0),
      ds.image_shape,
  )


def batch(key: jax.Array | None, x: Any, batch_size: int) -> Any:
  """Cuts data into equal mini-batches after a random permutation, dropping the remainder.

  Jit-friendly with ``batch_size`` static: ``jax.jit(batch, static_argnames="batch_size")``.
  The result is shaped for ``lax.scan`` over an epoch.

  Args:
    key: PRNG key for the permutation; ``None`` keeps the order.
    x: ``[n, ...]`` array, or a pytree of such arrays sharing ``n`` (e.g. ``(x, y)``), all
      permuted alike.
    batch_size: examples per batch, ``1 <= batch_size <= n``.

  Returns:
    Same structure as ``x``, each leaf ``[n // batch_size, batch_size, ...]``; the
    ``n % batch_size`` examples left over (after the permutation) are dropped.

  Raises:
    ValueError: bad ``batch_size``, or leaves with different ``n``.
  """
  leaves, treedef = jax.tree.flatten(x)
  if not leaves:
    raise ValueError("batch needs at least one array")
  leaves = [jnp.asarray(leaf) for leaf in leaves]
  if any(leaf.ndim == 0 for leaf in leaves):
    raise ValueError("batch needs arrays with a leading example axis, got a scalar")
  n = leaves[0].shape[0]
  if any(leaf.shape[0] != n for leaf in leaves):
    raise ValueError(f"leading sizes differ: {[leaf.shape[0] for leaf in leaves]}")
  batch_size = operator.index(batch_size)
  if not 0 < batch_size <= n:
    raise ValueError(f"batch_size must be in [1, {n}] for {n} examples, got {batch_size}")
  n_batches = n // batch_size
  if key is None:
    idx = jnp.arange(n_batches * batch_size)
  else:
    idx = jax.random.permutation(key, n)[:n_batches * batch_size]
  leaves = [
      jnp.take(leaf, idx, axis=0).reshape(n_batches, batch_size, *leaf.shape[1:]) for leaf in leaves
  ]
  return jax.tree.unflatten(treedef, leaves)


def balanced_order(key: jax.Array, labels: ArrayLike, batch_size: int,
                   n_classes: int | None = None) -> jax.Array:
  """Example indices cut into class-balanced mini-batches: the same count of every class in each.

  Hinton, Osindero and Teh (2006) trained their DBN on "mini-batches containing 10 examples of
  each digit class". Every class contributes ``batch_size // n_classes`` examples to every batch,
  drawn without replacement from a random permutation of that class, so an epoch holds
  ``n_batches = min_c count_c // (batch_size // n_classes)`` batches and leaves out a fresh random
  surplus of the larger classes each time (on MNIST's first 50,000 training images, 450 batches of
  100: 45,000 images). Within a batch the classes are shuffled together.

  Not jit-able (the batch count depends on the labels' values); the labels are read once on the
  host, the indices are drawn with ``key``.

  Args:
    key: PRNG key; the same key gives the same order.
    labels: ``[n]`` integer class labels in ``[0, n_classes)``.
    batch_size: examples per batch, a multiple of ``n_classes``.
    n_classes: number of classes; default ``max(labels) + 1``. Every class must occur at least
      ``batch_size // n_classes`` times.

  Returns:
    ``[n_batches, batch_size]`` int32 indices into ``labels``, no index twice; feed them to an
    epoch's ``order`` (e.g. :func:`jdbn.dbn.updown`'s) or index the data with them.

  Raises:
    ValueError: labels not a 1-D integer array in range, ``batch_size`` not a positive multiple of
      ``n_classes``, or a class too rare for one batch.
  """
  y = np.asarray(labels)
  if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"labels must be a 1-D integer array, got {y.dtype} of shape {y.shape}")
  if n_classes is None:
    n_classes = int(y.max()) + 1 if y.size else 0
  n_classes = operator.index(n_classes)
  if n_classes < 1 or y.size == 0 or y.min() < 0 or y.max() >= n_classes:
    raise ValueError(f"labels must lie in [0, {n_classes}) for {n_classes} classes, got "
                     f"{(int(y.min()), int(y.max())) if y.size else 'none'}")
  batch_size = operator.index(batch_size)
  if batch_size < n_classes or batch_size % n_classes:
    raise ValueError(f"batch_size must be a positive multiple of the {n_classes} classes, got "
                     f"{batch_size}")
  per_class = batch_size // n_classes
  counts = np.bincount(y, minlength=n_classes)
  if counts.min() < per_class:
    raise ValueError(f"class {int(counts.argmin())} has {int(counts.min())} examples, fewer than "
                     f"the {per_class} each batch needs")
  n_batches = int(counts.min()) // per_class
  keys = jax.random.split(key, n_classes + 1)
  parts = []
  for c in range(n_classes):
    members = jnp.asarray(np.flatnonzero(y == c), jnp.int32)
    pick = jax.random.permutation(keys[c], members)[:n_batches * per_class]
    parts.append(pick.reshape(n_batches, per_class))
  order = jnp.concatenate(parts, axis=1)  # [n_batches, batch_size], classes in blocks
  mix = jax.vmap(jax.random.permutation, in_axes=(0, None))(
      jax.random.split(keys[-1], n_batches), batch_size)
  return jnp.take_along_axis(order, mix, axis=1)


def check_finite(x: ArrayLike, name: str, *, ndim: int | None = 2) -> ArrayLike:
  """Checks that ``x`` is a float array of the given rank with no NaN or inf.

  A host-side check for entry points. Under ``jit`` (a tracer) only dtype and rank are checked.

  Args:
    x: the array, typically data ``[n, d]``.
    name: the argument's name, for the error message.
    ndim: required rank; ``None`` to skip the rank check.

  Returns:
    ``x`` unchanged, so it can be used inline.

  Raises:
    ValueError: wrong rank, non-float dtype, or non-finite values (with their count).
  """
  shape, dtype = np.shape(x), jnp.result_type(x)
  if ndim is not None and len(shape) != ndim:
    expected = "[n, d]" if ndim == 2 else f"{ndim}-D"
    raise ValueError(f"{name} must be {expected}, got shape {shape}")
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"{name} must be a float array, got dtype {dtype}")
  if isinstance(x, jax.core.Tracer):
    return x
  n_bad = int(np.size(x) - np.count_nonzero(np.isfinite(np.asarray(x))))
  if n_bad:
    raise ValueError(f"{name} has {n_bad} non-finite values (NaN or inf)")
  return x
