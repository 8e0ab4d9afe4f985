"""Shared pytest fixtures."""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@pytest.fixture(scope="session")
def mnist_dir() -> pathlib.Path:
  """The folder of the four MNIST IDX files, or a skip saying where it was looked for.

  Taken from the environment variable ``JDBN_MNIST_DIR`` if set, else
  ``<repo root>/../shared/data/mnist``.
  """
  env = os.environ.get("JDBN_MNIST_DIR")
  folder = pathlib.Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "mnist"
  source = "JDBN_MNIST_DIR" if env else "the default location"
  if not folder.is_dir():
    pytest.skip(f"real MNIST not found: {folder} ({source}) is not a folder; "
                "set JDBN_MNIST_DIR to a folder of the four IDX files")
  missing = [
      n for n in _MNIST_FILES
      if not (folder / n).is_file() and not (folder / (n + ".gz")).is_file()
  ]
  if missing:
    pytest.skip(f"real MNIST incomplete in {folder} ({source}): missing {', '.join(missing)}")
  return folder


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """Drops JAX's compiled programs after each test module.

  The suite compiles thousands of XLA programs in one process; each CPU executable keeps its own
  memory mappings, and without this the process reaches the kernel's limit on mappings
  (``vm.max_map_count``, 65,530 by default) before the last module, where XLA's compiler then
  crashes with a segmentation fault instead of an error.
  """
  yield
  import gc  # pylint: disable=import-outside-toplevel

  import jax  # pylint: disable=import-outside-toplevel
  jax.clear_caches()
  gc.collect()
