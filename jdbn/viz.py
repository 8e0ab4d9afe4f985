"""Image grids of data, samples and RBM filters, written as PNG files.

:func:`tile` arranges flattened images ``[n, d]`` into one ``uint8`` grid; :func:`save_grid`,
:func:`save_filters` and :func:`save_rows` write such grids with Pillow. Inputs may be NumPy or JAX
arrays; everything here runs on the host.

Example::

    jdbn.viz.save_filters("runs/filters.png", params.W, (28, 28))       # W: [784, n_hidden]
    jdbn.viz.save_grid("runs/samples.png", v, (28, 28), scale=None)    # v: [n, 784] in [0, 1]
"""

from __future__ import annotations

import math
import operator
import os
import pathlib
import tempfile
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["save_filters", "save_grid", "save_rows", "tile"]

_SCALES = ("each", "global", None)


def tile(
    images: Any,
    image_shape: tuple[int, int],
    n_cols: int | None = None,
    padding: int = 1,
    scale: str | None = "each",
    pad_value: int = 255,
) -> np.ndarray:
  """Arranges flattened images into one grid image, row by row.

  The grid has ``n_rows = ceil(n / n_cols)`` rows of ``n_cols`` tiles, with ``padding`` pixels of
  ``pad_value`` between tiles (not around the border), so its shape is
  ``(n_rows * h + (n_rows - 1) * padding, n_cols * w + (n_cols - 1) * padding)``. Cells after
  the last image are filled with ``pad_value``.

  Args:
    images: ``[n, d]`` images, ``d = h * w``, each row-major (e.g. data, samples, or RBM filters
      ``W.T``: ``[n_hidden, n_visible]``).
    image_shape: ``(h, w)``.
    n_cols: tiles per row; default ``ceil(sqrt(n))``.
    padding: pixels between tiles, ``>= 0``.
    scale: ``"each"``: every tile mapped to [0, 255] by its own min and max (for filters);
      ``"global"``: by the min and max over all tiles; ``None``: values taken to be in [0, 1]
      (clipped) and multiplied by 255. A constant tile (or grid) maps to 0.
    pad_value: grey level 0..255 of the padding and empty cells (255: white).

  Returns:
    ``[H, W]`` uint8 grey-level grid.

  Raises:
    ValueError: ``images`` not ``[n, d]`` with ``n >= 1``, ``d != h * w``, non-finite values, or
      bad ``n_cols``/``padding``/``scale``/``pad_value``.
  """
  x, (h, w), n_cols, padding = _check_tile_args(images, image_shape, n_cols, padding, scale,
                                                pad_value)
  pixels = _to_pixels(x, scale).reshape(x.shape[0], h, w)
  return _arrange(pixels, n_cols, padding, pad_value)


def _check_tile_args(images, image_shape, n_cols, padding, scale, pad_value):
  """Validates :func:`tile`'s arguments; returns ``(x, (h, w), n_cols, padding)``, ``x`` float64
  ``[n, d]`` and the sizes as ints."""
  x = np.asarray(images, dtype=np.float64)
  if x.ndim != 2 or x.shape[0] == 0:
    raise ValueError(f"images must be [n, d] with n >= 1, got shape {x.shape}")
  h, w = (operator.index(s) for s in image_shape)
  n, d = x.shape
  if d != h * w:
    raise ValueError(f"images have d={d} pixels but image_shape {(h, w)} has {h * w}")
  if not np.all(np.isfinite(x)):
    raise ValueError("images contain NaN or inf")
  n_cols = math.ceil(math.sqrt(n)) if n_cols is None else operator.index(n_cols)
  padding = operator.index(padding)
  if n_cols < 1 or padding < 0:
    raise ValueError(f"need n_cols >= 1 and padding >= 0, got {n_cols} and {padding}")
  if not 0 <= pad_value <= 255:
    raise ValueError(f"pad_value must be in 0..255, got {pad_value}")
  if scale not in _SCALES:
    raise ValueError(f"scale must be 'each', 'global' or None, got {scale!r}")
  return x, (h, w), n_cols, padding


def _to_pixels(x: np.ndarray, scale: str | None) -> np.ndarray:
  """``[n, d]`` float values -> ``[n, d]`` uint8 grey levels, scaled as :func:`tile` says."""
  if scale is None:
    unit = np.clip(x, 0.0, 1.0)
  else:
    axis = 1 if scale == "each" else None
    lo = x.min(axis=axis, keepdims=True)
    span = x.max(axis=axis, keepdims=True) - lo
    unit = np.divide(x - lo, span, out=np.zeros_like(x), where=span > 0)
  return np.round(unit * 255.0).astype(np.uint8)


def _arrange(pixels: np.ndarray, n_cols: int, padding: int, pad_value: int) -> np.ndarray:
  """``[n, h, w]`` uint8 tiles -> the ``[H, W]`` grid of :func:`tile`, row by row."""
  n, h, w = pixels.shape
  n_rows = math.ceil(n / n_cols)
  grid = np.full(
      (n_rows * h + (n_rows - 1) * padding, n_cols * w + (n_cols - 1) * padding),
      pad_value,
      dtype=np.uint8,
  )
  for i in range(n):
    top, left = (i // n_cols) * (h + padding), (i % n_cols) * (w + padding)
    grid[top:top + h, left:left + w] = pixels[i]
  return grid


def save_grid(
    path: str | os.PathLike,
    images: Any,
    image_shape: tuple[int, int],
    *,
    zoom: int = 1,
    **tile_kwargs: Any,
) -> pathlib.Path:
  """Writes :func:`tile` of ``images`` to a PNG file.

  Parent folders are created; the file is written to a temporary name in the same folder and
  then renamed over ``path``, so a reader never sees a half-written image.

  Args:
    path: destination, normally ending in ``.png``.
    images: ``[n, d]`` images.
    image_shape: ``(h, w)`` with ``h * w = d``.
    zoom: integer upscaling factor, nearest neighbour (e.g. 4 to make 8x8 digits visible).
    **tile_kwargs: ``n_cols``, ``padding``, ``scale``, ``pad_value`` for :func:`tile`.

  Returns:
    ``path`` as a ``pathlib.Path``.
  """
  grid = tile(images, image_shape, **tile_kwargs)
  return _write_png(path, grid, zoom)


def save_filters(
    path: str | os.PathLike,
    W: Any,
    image_shape: tuple[int, int],
    max_filters: int = 100,
    **grid_kwargs: Any,
) -> pathlib.Path:
  """Writes the receptive fields of an RBM's hidden units, one tile per unit.

  Each tile is a column ``W[:, j]`` shown as an image, scaled by its own min and max unless
  ``scale`` says otherwise.

  Args:
    path: destination PNG.
    W: ``[n_visible, n_hidden]`` weights, ``n_visible = h * w``.
    image_shape: ``(h, w)``.
    max_filters: draw at most the first this many hidden units.
    **grid_kwargs: ``zoom`` and the :func:`tile` options.

  Returns:
    ``path`` as a ``pathlib.Path``.

  Raises:
    ValueError: ``W`` not 2-D, its first axis not ``h * w``, or ``max_filters < 1``.
  """
  W = np.asarray(W)
  h, w = image_shape
  if W.ndim != 2 or W.shape[0] != h * w:
    raise ValueError(f"W must be [n_visible, n_hidden] with n_visible = {h * w} for image_shape "
                     f"{tuple(image_shape)}, got shape {W.shape}")
  if max_filters < 1:
    raise ValueError(f"max_filters must be >= 1, got {max_filters}")
  grid_kwargs.setdefault("scale", "each")
  return save_grid(path, W[:, :max_filters].T, image_shape, **grid_kwargs)


def save_rows(
    path: str | os.PathLike,
    rows: Any,
    image_shape: tuple[int, int],
    **grid_kwargs: Any,
) -> pathlib.Path:
  """Writes a grid whose rows are given explicitly, e.g. one row of samples per digit class.

  Unlike :func:`save_grid`, the default is ``scale=None`` (values in [0, 1], as data and sample
  probabilities are), so rows stay comparable with each other.

  Args:
    path: destination PNG.
    rows: ``[n_rows, n_per_row, d]`` images.
    image_shape: ``(h, w)`` with ``h * w = d``.
    **grid_kwargs: ``zoom`` and the :func:`tile` options other than ``n_cols``.

  Returns:
    ``path`` as a ``pathlib.Path``.

  Raises:
    ValueError: ``rows`` not 3-D.
  """
  rows = np.asarray(rows)
  if rows.ndim != 3:
    raise ValueError(f"rows must be [n_rows, n_per_row, d], got shape {rows.shape}")
  if "n_cols" in grid_kwargs:
    raise ValueError("save_rows takes the number of columns from rows.shape[1]")
  n_rows, n_per_row, d = rows.shape
  grid_kwargs.setdefault("scale", None)
  return save_grid(
      path, rows.reshape(n_rows * n_per_row, d), image_shape, n_cols=n_per_row, **grid_kwargs)


def _write_png(path: str | os.PathLike, grid: np.ndarray, zoom: int) -> pathlib.Path:
  zoom = operator.index(zoom)
  if zoom < 1:
    raise ValueError(f"zoom must be an integer >= 1, got {zoom}")
  if zoom > 1:
    grid = np.repeat(np.repeat(grid, zoom, axis=0), zoom, axis=1)
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      Image.fromarray(grid).save(f, format="PNG")
    os.chmod(tmp, 0o644)  # mkstemp makes it 0600; an image is meant to be shared
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  return path
