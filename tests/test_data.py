"""Tests for jdbn.data: loaders (digits, IDX, TFDS, real MNIST), transforms, batching, checks."""

import gzip
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdbn import data

KEY = jax.random.key(0)

DIGITS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def write_idx(path, array, *, gz=False, magic=None):
  """Writes ``array`` as a uint8 IDX file; ``magic`` overrides the header's first 4 bytes."""
  array = np.asarray(array, dtype=np.uint8)
  header = magic if magic is not None else (0x08 << 8) | array.ndim
  content = header.to_bytes(4, "big")
  content += b"".join(int(s).to_bytes(4, "big") for s in array.shape) + array.tobytes()
  with gzip.open(path, "wb") if gz else open(path, "wb") as f:
    f.write(content)
  return path


def write_mnist_folder(folder, n_train=7, n_test=5, *, gz=True, seed=0):
  """A small MNIST-format folder; train files gzipped if ``gz``, test files plain."""
  rng = np.random.default_rng(seed)
  arrays = {}
  specs = (("train", n_train, "train", gz), ("test", n_test, "t10k", False))
  for split, n, prefix, zipped in specs:
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    suffix = ".gz" if zipped else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, gz=zipped)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz=zipped)
    arrays[split] = (images, labels)
  return arrays


@pytest.fixture(autouse=True)
def no_mnist_env(monkeypatch):
  """Tests choose their own MNIST source; the caller's JDBN_MNIST_DIR must not leak in."""
  monkeypatch.delenv(data.MNIST_ENV_VAR, raising=False)


# --------------------------------------------------------------------------- digits


def test_digits_all():
  ds = data.load_digits()
  assert ds.x.shape == (1797, 64) and ds.x.dtype == np.float32
  assert ds.y.shape == (1797,) and ds.y.dtype == np.int32
  assert ds.image_shape == (8, 8)
  assert ds.x.min() == 0.0 and ds.x.max() == 1.0
  # Pixels are counts 0..16 divided by 16: exact multiples of 1/16.
  np.testing.assert_array_equal(ds.x * 16, np.round(ds.x * 16))
  counts = np.bincount(ds.y, minlength=10)
  assert len(counts) == 10 and counts.sum() == 1797
  np.testing.assert_array_equal(counts, DIGITS_COUNTS)


def test_digits_match_scikit_learn():
  datasets = pytest.importorskip("sklearn.datasets")
  ref = datasets.load_digits()
  ds = data.load_digits()
  np.testing.assert_array_equal(ds.x * 16, ref.data)
  np.testing.assert_array_equal(ds.y, ref.target)


def test_digits_splits():
  full = data.load_digits("all")
  train, test = data.load("digits", "train"), data.load("digits", "test")
  assert len(train.x) == 1500 and len(test.x) == 297
  np.testing.assert_array_equal(np.concatenate([train.x, test.x]), full.x)
  np.testing.assert_array_equal(np.concatenate([train.y, test.y]), full.y)
  assert set(np.unique(test.y)) == set(range(10))
  with pytest.raises(ValueError, match="digits split"):
    data.load_digits("validation")


def test_load_unknown_name():
  with pytest.raises(ValueError, match="'digits', 'mnist'"):
    data.load("cifar10")


# --------------------------------------------------------------------------- IDX files


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
  array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  path = write_idx(tmp_path / "a.idx", array, gz=gz)  # gzip found from content, not name
  out = data.read_idx(path, expected_magic=2051)
  assert out.dtype == np.uint8
  np.testing.assert_array_equal(out, array)


def test_read_idx_int32_big_endian(tmp_path):
  values = np.array([[1, -2], [300000, 4]], dtype=">i4")
  path = tmp_path / "b.idx"
  path.write_bytes(bytes([0, 0, 0x0C, 2]) + (2).to_bytes(4, "big") * 2 + values.tobytes())
  out = data.read_idx(path)
  assert out.dtype == np.int32 and out.dtype.isnative
  np.testing.assert_array_equal(out, values)


def test_read_idx_errors(tmp_path):
  images = np.zeros((2, 3, 3), np.uint8)
  with pytest.raises(ValueError, match="magic number 2051, expected 2049"):
    data.read_idx(write_idx(tmp_path / "a", images), expected_magic=2049)
  with pytest.raises(ValueError, match="not an IDX file"):
    data.read_idx(write_idx(tmp_path / "b", images, magic=0x12345678))
  truncated = tmp_path / "c"
  truncated.write_bytes(write_idx(tmp_path / "d", images).read_bytes()[:-1])
  with pytest.raises(ValueError, match="holds 17 bytes"):
    data.read_idx(truncated)
  (tmp_path / "e").write_bytes(b"\x00\x00")
  with pytest.raises(ValueError, match="too short"):
    data.read_idx(tmp_path / "e")
  cut = tmp_path / "f.gz"  # a download cut short
  cut.write_bytes(write_idx(tmp_path / "g", np.zeros((50, 28, 28), np.uint8), gz=True)
                  .read_bytes()[:40])
  with pytest.raises(ValueError, match="damaged gzip file"):
    data.read_idx(cut)


def test_load_mnist_from_folder(tmp_path):
  arrays = write_mnist_folder(tmp_path)
  for split in ("train", "test"):
    images, labels = arrays[split]
    ds = data.load_mnist(split, data_dir=tmp_path)
    assert ds.x.shape == (len(images), 784) and ds.x.dtype == np.float32
    assert ds.y.dtype == np.int32 and ds.image_shape == (28, 28)
    np.testing.assert_allclose(ds.x, images.reshape(len(images), -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y, labels)
  via_load = data.load("mnist", "test", data_dir=str(tmp_path))
  np.testing.assert_array_equal(via_load.x, data.load_mnist("test", tmp_path).x)


def test_load_mnist_env_var_and_precedence(tmp_path, monkeypatch):
  a, b = tmp_path / "a", tmp_path / "b"
  a.mkdir()
  b.mkdir()
  write_mnist_folder(a, n_test=3, seed=1)
  write_mnist_folder(b, n_test=4, seed=2)
  monkeypatch.setenv(data.MNIST_ENV_VAR, str(a))
  assert len(data.load_mnist("test").x) == 3
  assert len(data.load_mnist("test", data_dir=b).x) == 4  # the argument wins


def test_load_mnist_folder_errors(tmp_path):
  missing = tmp_path / "nowhere"
  with pytest.raises(FileNotFoundError, match="nowhere.*does not exist"):
    data.load_mnist("train", data_dir=missing)
  write_mnist_folder(tmp_path)
  (tmp_path / "t10k-labels-idx1-ubyte").unlink()
  data.load_mnist("train", data_dir=tmp_path)  # the train files are all there
  with pytest.raises(FileNotFoundError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\]"):
    data.load_mnist("test", data_dir=tmp_path)
  with pytest.raises(ValueError, match="split"):
    data.load_mnist("validation", data_dir=tmp_path)


def test_load_mnist_bad_files(tmp_path):
  write_mnist_folder(tmp_path, n_test=5)
  # Labels written where images belong: wrong magic.
  write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros(5, np.uint8))
  with pytest.raises(ValueError, match="expected 2051"):
    data.load_mnist("test", data_dir=tmp_path)
  # Counts that disagree.
  write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
  with pytest.raises(ValueError, match="4 images.*5 labels"):
    data.load_mnist("test", data_dir=tmp_path)


# --------------------------------------------------------------------------- TFDS


@pytest.mark.parametrize("split,n", [("train", 37), ("test", 10)])
def test_load_mnist_tfds_mock(monkeypatch, split, n):
  tfds = pytest.importorskip("tensorflow_datasets")
  monkeypatch.setattr(data, "_TFDS_CHUNK", 8)  # several chunks and a ragged last one
  with tfds.testing.mock_data(num_examples=n):
    ds = data.load_mnist(split)
  assert ds.x.shape == (n, 784) and ds.x.dtype == np.float32
  assert ds.y.shape == (n,) and ds.y.dtype == np.int32
  assert ds.image_shape == (28, 28)
  assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0
  np.testing.assert_array_equal(ds.x * 255, np.round(ds.x * 255))  # came from uint8
  assert set(np.unique(ds.y)) <= set(range(10))


def test_tfds_download_path_has_its_dependencies():
  """TFDS prepares a data set (the download path, which mock_data skips) with modules it imports
  lazily; on a fresh install without ``importlib_resources`` that path failed with
  ModuleNotFoundError before reaching the network. jdbn's dependencies must bring them."""
  pytest.importorskip("tensorflow_datasets")
  from tensorflow_datasets.core import dataset_builder  # pylint: disable=import-outside-toplevel
  assert dataset_builder.importlib_resources.abc.Traversable  # resolves the lazy import
  assert dataset_builder.epath.Path
  assert dataset_builder.termcolor.colored


def test_load_mnist_tfds_failure_is_explained(monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")

  def offline(*args, **kwargs):
    raise ConnectionError("no route to host")

  monkeypatch.setattr(tfds, "data_source", offline)
  with pytest.raises(RuntimeError, match="JDBN_MNIST_DIR") as info:
    data.load_mnist("train")
  assert "data_dir" in str(info.value) and "no route to host" in str(info.value)
  assert isinstance(info.value.__cause__, ConnectionError)


# --------------------------------------------------------------------------- real MNIST


def test_real_mnist(mnist_dir):
  train = data.load_mnist("train", data_dir=mnist_dir)
  test = data.load_mnist("test", data_dir=mnist_dir)
  for ds, counts, first_label in ((train, MNIST_TRAIN_COUNTS, 5), (test, MNIST_TEST_COUNTS, 7)):
    assert ds.x.shape == (sum(counts), 784) and ds.x.dtype == np.float32
    assert ds.image_shape == (28, 28)
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    np.testing.assert_array_equal(np.bincount(ds.y, minlength=10), counts)
    assert ds.y[0] == first_label
  assert train.x.shape == (60000, 784) and test.x.shape == (10000, 784)
  fit, valid = data.split_validation(train, 10_000)
  assert fit.x.shape == (50000, 784) and valid.x.shape == (10000, 784)


# --------------------------------------------------------------------------- transforms


def toy_dataset(n=11, d=3):
  """Row i of x is i repeated, label i: lets a test see which rows went where."""
  x = np.repeat(np.arange(n, dtype=np.float32)[:, None], d, axis=1)
  return data.Dataset(x, np.arange(n, dtype=np.int32), (1, d))


def test_split_validation():
  ds = toy_dataset(10)
  train, valid = data.split_validation(ds, 3)
  np.testing.assert_array_equal(train.y, np.arange(7))
  np.testing.assert_array_equal(valid.y, [7, 8, 9])
  assert train.x.shape == (7, 3) and valid.image_shape == ds.image_shape
  for bad in (0, -1, 10, 11):
    with pytest.raises(ValueError, match="n_validation"):
      data.split_validation(ds, bad)


def test_binarize():
  x = jnp.array([[0.0, 0.49, 0.5, 0.51, 1.0]])
  out = data.binarize(x)
  np.testing.assert_array_equal(out, [[0, 0, 0, 1, 1]])
  assert out.dtype == jnp.float32
  np.testing.assert_array_equal(data.binarize(x, threshold=0.2), [[0, 1, 1, 1, 1]])
  assert data.binarize(np.array([[0, 200]], np.uint8), 100).dtype == jnp.float32


def test_binarize_stochastic():
  n = 20_000
  p = jnp.array([0.0, 0.1, 0.5, 0.9, 1.0])
  x = jnp.broadcast_to(p, (n, p.size))
  key = jax.random.key(0)
  out = data.binarize_stochastic(key, x)
  assert out.shape == x.shape and out.dtype == jnp.float32
  assert set(np.unique(np.asarray(out))) <= {0.0, 1.0}
  np.testing.assert_array_equal(out, data.binarize_stochastic(key, x))  # same key, same draw
  other = data.binarize_stochastic(jax.random.key(1), x)
  assert not np.array_equal(out, other)
  # Column means are binomial proportions: within 5 standard deviations of p.
  mean = np.asarray(out.mean(axis=0))
  sd = np.sqrt(np.asarray(p) * (1 - np.asarray(p)) / n)
  assert np.all(np.abs(mean - np.asarray(p)) <= 5 * sd + 1e-12), (mean, p)


def test_shuffle():
  ds = toy_dataset(50)
  key = jax.random.key(3)
  a, b = data.shuffle(key, ds), data.shuffle(key, ds)
  np.testing.assert_array_equal(a.x, b.x)
  np.testing.assert_array_equal(a.y, b.y)
  np.testing.assert_array_equal(np.sort(np.asarray(a.y)), ds.y)  # a permutation
  np.testing.assert_array_equal(a.x[:, 0], a.y)  # rows and labels moved together
  assert a.image_shape == ds.image_shape
  assert not np.array_equal(data.shuffle(jax.random.key(4), ds).y, a.y)


def test_batch_shapes_and_order():
  x = toy_dataset(11).x
  out = data.batch(None, x, 4)
  assert out.shape == (2, 4, 3)
  np.testing.assert_array_equal(out[..., 0].reshape(-1), np.arange(8))  # order kept
  assert data.batch(None, x, 11).shape == (1, 11, 3)
  assert data.batch(None, x, 1).shape == (11, 1, 3)


def test_batch_shuffled():
  ds = toy_dataset(103)
  key = jax.random.key(7)
  xb, yb = data.batch(key, (ds.x, ds.y), 10)
  assert xb.shape == (10, 10, 3) and yb.shape == (10, 10)
  np.testing.assert_array_equal(xb[..., 0], yb)  # same permutation for every leaf
  rows = np.asarray(yb).reshape(-1)
  assert len(np.unique(rows)) == 100  # no repeats: 3 examples dropped
  np.testing.assert_array_equal(data.batch(key, ds.x, 10), xb)  # same key, same batches
  jitted = jax.jit(data.batch, static_argnames="batch_size")
  np.testing.assert_array_equal(jitted(key, ds.x, batch_size=10), xb)
  np.testing.assert_array_equal(jitted(None, ds.x, batch_size=10), data.batch(None, ds.x, 10))


def test_batch_errors():
  x = jnp.zeros((5, 2))
  for bad in (0, -3, 6):
    with pytest.raises(ValueError, match="batch_size"):
      data.batch(None, x, bad)
  with pytest.raises(ValueError, match="leading sizes differ"):
    data.batch(None, (x, jnp.zeros(4)), 2)


def test_balanced_order():
  """Every batch holds ``batch_size // n_classes`` examples of each class, no example twice; the
  larger classes' surplus left out is drawn afresh, so every example is used across keys."""
  y = np.array([0] * 7 + [1] * 9 + [2] * 12)
  np.random.default_rng(0).shuffle(y)
  order = data.balanced_order(jax.random.key(0), y, 6)
  assert order.shape == (3, 6) and order.dtype == jnp.int32  # min count 7 // 2 per class
  assert len(np.unique(order)) == order.size
  for row in np.asarray(order):
    np.testing.assert_array_equal(np.bincount(y[row], minlength=3), [2, 2, 2])
  np.testing.assert_array_equal(order, data.balanced_order(jax.random.key(0), y, 6))
  seen = set()
  for i in range(50):  # a given example is left out with probability <= 1/2 per key
    seen.update(np.asarray(data.balanced_order(jax.random.key(i), y, 6)).ravel().tolist())
  assert seen == set(range(len(y)))
  assert data.balanced_order(jax.random.key(0), y, 3, n_classes=3).shape == (7, 3)


def test_balanced_order_errors():
  y = np.array([0, 0, 1, 1, 2, 2])
  with pytest.raises(ValueError, match="multiple of the 3 classes"):
    data.balanced_order(KEY, y, 4)
  with pytest.raises(ValueError, match="class 0 has 2 examples, fewer than the 3"):
    data.balanced_order(KEY, y, 9)
  with pytest.raises(ValueError, match="class 3 has 0 examples"):
    data.balanced_order(KEY, y, 4, n_classes=4)
  with pytest.raises(ValueError, match="must lie in"):
    data.balanced_order(KEY, y, 2, n_classes=2)
  with pytest.raises(ValueError, match="1-D integer array"):
    data.balanced_order(KEY, y.astype(float), 3)


def test_check_finite():
  x = jnp.ones((3, 2))
  assert data.check_finite(x, "v") is x
  data.check_finite(np.ones((3, 2), np.float64), "v")
  for value in (math.nan, math.inf, -math.inf):
    with pytest.raises(ValueError, match="data has 1 non-finite"):
      data.check_finite(x.at[1, 1].set(value), "data")
  with pytest.raises(ValueError, match=r"v must be \[n, d\], got shape \(3,\)"):
    data.check_finite(jnp.ones(3), "v")
  with pytest.raises(ValueError, match="v must be a float array"):
    data.check_finite(np.ones((3, 2), np.int32), "v")
  data.check_finite(jnp.ones(3), "v", ndim=None)
  # Under jit only the static checks run, and they still raise.
  jax.jit(lambda a: data.check_finite(a, "v"))(x)
  with pytest.raises(ValueError, match="v must be"):
    jax.jit(lambda a: data.check_finite(a, "v"))(jnp.ones(3))
