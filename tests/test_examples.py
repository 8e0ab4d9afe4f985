"""Every script in ``examples/`` runs at a tiny size and does what its docstring promises.

Each example runs in a subprocess (as a user runs it: ``python examples/NAME.py ...`` from the
repository root, this checkout's ``jdbn`` first on the path), with a timeout, its outputs in
``tmp_path``. The checks are properties a broken example or library could not meet: the PNGs
are real grey-level images of the promised grids, the chains' marginals agree with the exact
ones, AIS's bounds hold the exact log Z, the fine-tuned classifier is far better than chance,
and the sharded run holds its arrays split over 4 devices with the one-device results.
"""

import math
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "examples"


def _run(name: str, *args, env: dict | None = None, devices: int = 1) -> str:
  """Runs ``examples/name`` with ``args``; returns its stdout, failing with its output."""
  full_env = {**os.environ, **(env or {})}
  full_env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), full_env.get("PYTHONPATH", "")])
  full_env.pop("XLA_FLAGS", None)
  if devices > 1:
    full_env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  result = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env=full_env)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  return result.stdout


def _number(pattern: str, text: str) -> float:
  match = re.search(pattern, text)
  assert match, f"{pattern!r} not in:\n{text}"
  return float(match.group(1).replace(",", ""))


def _check_grid(path: pathlib.Path, n_tiles: int, side: int, zoom: int) -> None:
  """``path`` is a grey-level PNG of ``n_tiles`` square tiles in ``ceil(sqrt(n))`` columns,
  1-pixel padding, upscaled by ``zoom``, and it is not blank."""
  assert path.is_file() and path.stat().st_size > 0, path
  with Image.open(path) as image:
    assert image.format == "PNG" and image.mode == "L"
    pixels = np.asarray(image)
  cols = math.ceil(math.sqrt(n_tiles))
  rows = math.ceil(n_tiles / cols)
  assert pixels.shape == ((rows * side + rows - 1) * zoom, (cols * side + cols - 1) * zoom)
  first_tile = pixels[:side * zoom, :side * zoom]
  assert first_tile.std() > 0, f"{path}: the first tile is blank"


def test_rbm_mnist(tmp_path, mnist_dir):
  out = _run("rbm_mnist.py", "--n-hidden", 16, "--epochs", 1, "--n-train", 1000,
             "--n-samples", 25, "--sample-steps", 10, "--out", tmp_path,
             env={"JDBN_MNIST_DIR": str(mnist_dir)})
  assert "784-16 RBM" in out and "1000 images of 28x28" in out and "unavailable" not in out
  assert 0 < _number(r"reconstruction error ([\d.]+)", out) < 0.25
  _check_grid(tmp_path / "filters.png", 16, 28, zoom=2)
  _check_grid(tmp_path / "samples.png", 25, 28, zoom=2)


def test_rbm_mnist_falls_back_to_digits(tmp_path):
  """No IDX files where JDBN_MNIST_DIR points: the embedded 8x8 digits, said so."""
  empty = tmp_path / "no_mnist"
  empty.mkdir()
  out = _run("rbm_mnist.py", "--n-hidden", 9, "--epochs", 1, "--n-samples", 16,
             "--sample-steps", 10, "--out", tmp_path / "out", env={"JDBN_MNIST_DIR": str(empty)})
  assert "MNIST unavailable" in out and "embedded 8x8 digits" in out
  assert "64-9 RBM" in out and "1500 images of 8x8" in out
  _check_grid(tmp_path / "out" / "filters.png", 9, 8, zoom=4)
  _check_grid(tmp_path / "out" / "samples.png", 16, 8, zoom=4)


def test_many_chains():
  out = _run("many_chains.py", "--n-chains", 1000, "--n-steps", 100, "--epochs", 20)
  assert "1000 chains x 100 sweeps of a 64-16 RBM" in out
  assert _number(r"([\d,]+) samples/s", out) > 0
  # 1000 independent chains: each pixel's mean is within a few standard errors of the exact
  # marginal, and the mean squared z-score over the 64 pixels is about 1. (This model, 20
  # epochs, needs its sweeps: after 10 the mean z^2 was 13, after 1 it was 101.)
  assert _number(r"max \|z\| = ([\d.]+)", out) < 5
  assert _number(r"mean z\^2 = ([\d.]+)", out) < 2


def test_ais_bounds_hold_exact_log_z():
  # 20 epochs: a model far enough from AIS's base model that 100 temperatures do not pass the
  # checks below (bounds 0.2 nats apart) and 10 miss by 0.2 nats (bounds 3 nats apart).
  out = _run("ais.py", "--n-hidden", 10, "--epochs", 20, "--n-chains", 100, "--n-betas", 1000)
  ais = _number(r"AIS   log Z = ([-\d.]+)", out)
  lower, upper = (float(v) for v in re.search(r"= \[([-\d.inf]+), ([-\d.inf]+)\]", out).groups())
  exact = _number(r"exact log Z = ([-\d.]+)", out)
  assert lower <= exact <= upper, out
  assert abs(ais - exact) < 0.05 and upper - lower < 0.1, out
  assert "bounds hold the exact value: True" in out
  # a trained model beats the uniform distribution over 64 pixels, -64 ln 2 = -44.4 nats
  assert _number(r"test log-likelihood: ([-\d.]+) nats", out) > -64 * math.log(2)


def test_dbn_classifier_beats_chance():
  out = _run("dbn_classifier.py", "--dataset", "digits", "--hidden", 64, "--epochs", 2,
             "--finetune-epochs", 5, "--batch-size", 20)
  assert "pretrained a 64-64 DBN" in out
  # chance is 90% error on the ten digit classes
  assert _number(r"DBN-initialised: .* test error ([\d.]+)%", out) < 40, out


@pytest.fixture(scope="module")
def sharding_one_device() -> str:
  return _run("sharding.py", *_SHARDING_TINY)


_SHARDING_TINY = ("--epochs", 1, "--n-chains", 64, "--n-steps", 10, "--n-betas", 100)


def test_sharding_one_device(sharding_one_device):
  out = sharding_one_device
  assert "1 device(s): " in out and "v (64, 64): cpu:0 all" in out
  assert "same samples as on one device: True" in out


def test_sharding_four_devices(sharding_one_device):
  out = _run("sharding.py", *_SHARDING_TINY, devices=4)
  assert "4 device(s): " in out
  assert "params W (64, 100): cpu:0 all, cpu:1 all, cpu:2 all, cpu:3 all" in out
  assert "PCD chains v (40, 64): cpu:0 [0:10], cpu:1 [10:20], cpu:2 [20:30], cpu:3 [30:40]" in out
  assert "v (64, 64): cpu:0 [0:16], cpu:1 [16:32], cpu:2 [32:48], cpu:3 [48:64]" in out
  assert "same samples as on one device: True" in out
  # Data-parallel training differs from one device only by the rounding of the gradient sums.
  log_z = r"AIS log Z = ([-\d.]+)"
  assert abs(_number(log_z, out) - _number(log_z, sharding_one_device)) < 1e-2
