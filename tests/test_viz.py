"""Tests for jdbn.viz: grid geometry, pixel placement and scaling, PNG files, errors."""

import os

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jdbn import viz


@pytest.mark.parametrize(
    "n,n_cols,padding,expected",
    [
        (1, None, 1, (2, 3)),
        (4, None, 1, (5, 7)),  # 2x2 tiles of 2x3
        (5, None, 1, (5, 11)),  # ceil(sqrt(5)) = 3 columns, 2 rows
        (5, 2, 0, (6, 6)),  # 3 rows of 2
        (5, 5, 2, (2, 23)),
        (3, 7, 1, (2, 27)),  # more columns than images: empty cells
    ],
)
def test_tile_shape(n, n_cols, padding, expected):
  grid = viz.tile(np.zeros((n, 6)), (2, 3), n_cols=n_cols, padding=padding)
  assert grid.shape == expected and grid.dtype == np.uint8


def test_tile_places_pixels_row_major():
  # Three 2x2 images with distinct values 0..11, scale=None after dividing by 11.
  images = np.arange(12, dtype=np.float64).reshape(3, 4) / 11
  grid = viz.tile(images, (2, 2), n_cols=2, padding=1, scale=None, pad_value=7)
  expected = np.full((5, 5), 7, np.uint8)

  def level(v):
    return np.uint8(round(v / 11 * 255))

  for i, (top, left) in enumerate([(0, 0), (0, 3), (3, 0)]):
    for r in range(2):
      for c in range(2):
        expected[top + r, left + c] = level(4 * i + 2 * r + c)
  np.testing.assert_array_equal(grid, expected)


def test_tile_scales():
  images = np.array([[0.0, 1.0, 2.0, 4.0], [-1.0, -1.0, -1.0, -1.0], [10.0, 20.0, 10.0, 20.0]])
  each = viz.tile(images, (1, 4), n_cols=1, padding=0, scale="each")
  np.testing.assert_array_equal(each[0], [0, 64, 128, 255])  # round(255 * k / 4)
  np.testing.assert_array_equal(each[1], [0, 0, 0, 0])  # constant tile
  np.testing.assert_array_equal(each[2], [0, 255, 0, 255])
  glob = viz.tile(images, (1, 4), n_cols=1, padding=0, scale="global")
  np.testing.assert_array_equal(glob[1], [0, 0, 0, 0])  # the global minimum
  np.testing.assert_array_equal(glob[2, 1], 255)  # the global maximum
  np.testing.assert_array_equal(glob[0], np.round(255 * (images[0] + 1) / 21))
  none = viz.tile(np.array([[-0.5, 0.0, 0.5, 2.0]]), (2, 2), scale=None)
  np.testing.assert_array_equal(none, [[0, 0], [128, 255]])  # clipped to [0, 1]


def test_tile_accepts_jax_arrays():
  x = jnp.linspace(0, 1, 16).reshape(2, 8)
  np.testing.assert_array_equal(viz.tile(x, (2, 4)), viz.tile(np.asarray(x), (2, 4)))


def test_tile_errors():
  with pytest.raises(ValueError, match="d=6 pixels but image_shape"):
    viz.tile(np.zeros((2, 6)), (2, 2))
  with pytest.raises(ValueError, match=r"\[n, d\]"):
    viz.tile(np.zeros(6), (2, 3))
  with pytest.raises(ValueError, match=r"\[n, d\]"):
    viz.tile(np.zeros((0, 6)), (2, 3))
  with pytest.raises(ValueError, match="NaN"):
    viz.tile(np.full((1, 6), np.nan), (2, 3))
  with pytest.raises(ValueError, match="scale"):
    viz.tile(np.zeros((1, 6)), (2, 3), scale="log")
  with pytest.raises(ValueError, match="n_cols"):
    viz.tile(np.zeros((1, 6)), (2, 3), n_cols=0)
  with pytest.raises(ValueError, match="padding"):
    viz.tile(np.zeros((1, 6)), (2, 3), padding=-1)


def test_save_grid_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.random((7, 12))
  path = tmp_path / "new" / "dir" / "grid.png"
  out = viz.save_grid(str(path), images, (3, 4), n_cols=3, scale="global")
  assert out == path and path.is_file()
  assert [p.name for p in path.parent.iterdir()] == ["grid.png"]  # no temporary left behind
  with Image.open(path) as img:
    assert img.format == "PNG" and img.mode == "L"
    read = np.asarray(img)
  np.testing.assert_array_equal(read, viz.tile(images, (3, 4), n_cols=3, scale="global"))


def test_save_grid_zoom_and_overwrite(tmp_path):
  images = np.array([[0.0, 1.0, 1.0, 0.0]])
  path = tmp_path / "z.png"
  viz.save_grid(path, images, (2, 2), zoom=3, scale=None)
  viz.save_grid(path, images, (2, 2), zoom=3, scale=None)  # replaces the file in place
  read = np.asarray(Image.open(path))
  assert read.shape == (6, 6)
  np.testing.assert_array_equal(read, np.kron([[0, 255], [255, 0]], np.ones((3, 3))))
  with pytest.raises(ValueError, match="zoom"):
    viz.save_grid(path, images, (2, 2), zoom=0)
  assert os.listdir(tmp_path) == ["z.png"]


def test_save_filters(tmp_path):
  n_visible, n_hidden = 6, 5
  W = np.arange(n_visible * n_hidden, dtype=np.float32).reshape(n_visible, n_hidden)
  path = viz.save_filters(tmp_path / "f.png", W, (2, 3), max_filters=4, n_cols=4, padding=0)
  read = np.asarray(Image.open(path))
  assert read.shape == (2, 12)
  np.testing.assert_array_equal(read, viz.tile(W[:, :4].T, (2, 3), n_cols=4, padding=0))
  # Each filter W[:, j] increases by n_hidden per pixel: scaled alone it spans 0..255.
  np.testing.assert_array_equal(read[:, :3].reshape(-1), [0, 51, 102, 153, 204, 255])
  with pytest.raises(ValueError, match="n_visible = 6"):
    viz.save_filters(tmp_path / "g.png", W.T, (2, 3))
  with pytest.raises(ValueError, match="max_filters"):
    viz.save_filters(tmp_path / "g.png", W, (2, 3), max_filters=0)


def test_save_rows(tmp_path):
  rows = np.zeros((3, 4, 4))
  for r in range(3):
    rows[r, :, :] = r / 2  # row r is uniformly r / 2
  path = viz.save_rows(tmp_path / "rows.png", rows, (2, 2), padding=1, pad_value=9)
  read = np.asarray(Image.open(path))
  assert read.shape == (3 * 2 + 2, 4 * 2 + 3)
  for r, level in enumerate([0, 128, 255]):
    band = read[3 * r:3 * r + 2]
    tiles = np.delete(band, [2, 5, 8], axis=1)
    np.testing.assert_array_equal(tiles, level)
  with pytest.raises(ValueError, match="n_rows, n_per_row, d"):
    viz.save_rows(tmp_path / "bad.png", np.zeros((4, 4)), (2, 2))


def test_save_grid_file_is_readable_by_others(tmp_path):
  """The atomic write goes through a private temporary file (mode 0600); the PNG itself gets
  the usual 0644, like the checkpoints."""
  path = viz.save_grid(tmp_path / "m.png", np.zeros((1, 4)), (2, 2))
  assert os.stat(path).st_mode & 0o777 == 0o644
