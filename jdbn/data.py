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

The raw MNIST readers are :mod:`jdbn.mnist` and the batch orders :mod:`jdbn.batching`; their
public names (:func:`read_idx`, :func:`batch`, :func:`balanced_order`) are re-exported here.
"""

from __future__ import annotations

import gzip
import importlib.resources
import operator
import os
import pathlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jdbn import mnist
from jdbn.batching import balanced_order, batch
from jdbn.mnist import MNIST_ENV_VAR, read_idx

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

DIGITS_N_TEST = 297
"""Size of the deterministic digits test split: the last 297 of the 1,797 examples."""

#: MNIST records read per batch through TFDS.
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
  if split not in mnist.FILES:
    raise ValueError(f"unknown MNIST split {split!r}; expected 'train' or 'test'")
  if data_dir is None:
    data_dir = os.environ.get(MNIST_ENV_VAR) or None
  if data_dir is not None:
    return _to_dataset(*mnist.load_idx_folder(pathlib.Path(data_dir), split))
  return _to_dataset(*mnist.load_tfds(split, tfds_data_dir, _TFDS_CHUNK))


def _to_dataset(images: np.ndarray, labels: np.ndarray) -> Dataset:
  """uint8 ``[n, h, w]`` images and integer labels -> a flattened float32 :class:`Dataset`."""
  n, h, w = images.shape
  x = images.reshape(n, h * w).astype(np.float32) / np.float32(255.0)
  return Dataset(x, labels.astype(np.int32), (h, w))


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
