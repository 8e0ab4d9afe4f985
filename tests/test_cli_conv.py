"""`jdbn train crbm` and `jdbn train cdbn`, run in-process through jdbn.cli.main: outputs,
exact resumption, refusals of bad input before any training, and the natural-image patches."""

import json

import numpy as np
import pytest
from PIL import Image

from jdbn import checkpoint, cli
from jdbn.cli import conv as CC
from jdbn.datasets import photos
from jdbn.models import cdbn as CD
from jdbn.models import conv as C


def _run(capsys, *argv):
  code = cli.main([str(a) for a in argv])
  out, err = capsys.readouterr()
  return code, out, err


CRBM = ("train", "crbm", "--dataset", "digits", "--filters", 4, "--filter-size", 3, "--pool", 2,
        "--n-train", 200, "--batch-size", 20, "--sample-steps", 5, "--no-progress")


def _size(path):
  with Image.open(path) as im:
    assert im.format == "PNG"
    return im.size


def test_train_crbm_writes_its_outputs_and_resumes_exactly(tmp_path, capsys):
  """Two epochs in one run equal one epoch and a resumed second; the checkpoint holds the
  settings, the pictures are PNG grids."""
  once, twice = tmp_path / "once", tmp_path / "twice"
  assert _run(capsys, *CRBM, "--epochs", 2, "--out", once)[0] == 0
  assert _run(capsys, *CRBM, "--epochs", 1, "--out", twice)[0] == 0
  code, text, _ = _run(capsys, *CRBM, "--epochs", 2, "--out", twice)
  assert code == 0 and "resuming" in text
  a, meta = checkpoint.restore(once / "checkpoint.npz")
  b, _ = checkpoint.restore(twice / "checkpoint.npz")
  np.testing.assert_array_equal(np.asarray(a["state"].params.W), np.asarray(b["state"].params.W))
  assert meta["epoch"] == 2 and meta["user"]["settings"]["layers"] == [[4, 3, 2]]
  assert a["state"].params.W.shape == (4, 1, 3, 3)
  history = json.loads((once / "metrics.json").read_text())["history"]
  assert [r["epoch"] for r in history[0]] == [1, 2]
  assert all(0 < r["mean_activation"] < 1 for r in history[0])
  assert _size(once / "filters.png")[0] > 3 * 4 and _size(once / "samples.png")[0] > 8 * 8


def test_train_crbm_refuses_another_run_folder(tmp_path, capsys):
  out = tmp_path / "run"
  assert _run(capsys, *CRBM, "--epochs", 1, "--out", out)[0] == 0
  code, _, err = _run(capsys, *CRBM, "--epochs", 1, "--lr", 0.5, "--out", out)
  assert code == 2 and "other settings" in err and "--lr" in err


def test_train_cdbn_two_layers(tmp_path, capsys):
  """The digits' default stack: layer 2 on layer 1's pooled maps, its filters in pixel space."""
  out = tmp_path / "cdbn"
  code, text, _ = _run(capsys, "train", "cdbn", "--dataset", "digits", "--n-train", 100,
                       "--batch-size", 20, "--epochs", 1, "--sample-steps", 5, "--no-progress",
                       "--out", out)
  assert code == 0 and "2 layer(s)" in text
  top = checkpoint.restore(out / "layer2.npz")[0]["state"].params
  assert top.image_shape == (8, 3, 3) and top.W.shape == (8, 8, 2, 2)
  for name in ("filters.png", "filters2.png", "samples.png"):
    assert _size(out / name)[0] > 8


@pytest.mark.parametrize("argv, message", [
    (("crbm", "--filter-size", 12, "--dataset", "mnist"),
     "17 x 17 detection maps, which do not tile into 2 x 2 pooling blocks; use filter sizes "
     "such as 11 or 13"),
    (("crbm", "--filter-size", 9), "filters of 9 x 9 are larger than the images (8 x 8)"),
    (("cdbn", "--filter-sizes", "3,4"), "layer 2: filters of 4 x 4 are larger than layer 1's "
     "pooling maps (3 x 3)"),
    (("cdbn", "--filters", "4,4", "--pools", "2"), "--pools gives 1 layers, the other options 2"),
    (("crbm", "--n-train", 10, "--batch-size", 20), "--batch-size 20 exceeds --n-train 10"),
    (("crbm", "--sparsity-target", 1.5), "--sparsity-target must be in (0, 1)"),
])
def test_bad_input_exits_2_before_training(tmp_path, capsys, argv, message):
  out = tmp_path / "refused"
  code, _, err = _run(capsys, "train", *argv, "--out", out)
  assert code == 2 and message in err, err
  assert not out.exists()  # refused before the run folder is made


def test_unwritable_out_is_refused(tmp_path, capsys):
  blocker = tmp_path / "file"
  blocker.write_text("x")
  code, _, err = _run(capsys, *CRBM, "--out", blocker / "run")
  assert code == 2 and "cannot be written" in err


def test_help_shows_the_presets(capsys):
  with pytest.raises(SystemExit):
    cli.main(["train", "cdbn", "--help"])
  text = " ".join(capsys.readouterr().out.split())
  assert "24,40 for mnist" in text and "(default: 0.9)" in text


def test_layer_shapes_follow_the_pooling():
  assert CC.layer_shapes((1, 28, 28), (24, 40), (11, 6), (2, 2)) == [(1, 28, 28), (24, 9, 9)]


def test_pixel_filters_of_a_one_by_one_upper_layer_are_the_pooled_lower_filters():
  """A layer-2 filter of size 1 weighting one layer-1 filter by 1 draws that filter smeared over
  its c x c pooling block (divided by c^2)."""
  import jax
  low = C.init(jax.random.key(0), (1, 7, 7), 2, 4, pool=2)
  high = C.init(jax.random.key(1), (2, 2, 2), 1, 1)
  high = high.replace(W=high.W.at[...].set(0).at[0, 1, 0, 0].set(1.0))
  pix = CD.pixel_filters(CD.CDBN((low, high)), 1)
  w = np.asarray(low.W[1, 0], np.float64)
  want = np.zeros((5, 5))
  for di in range(2):
    for dj in range(2):
      want[di:di + 4, dj:dj + 4] += w / 4
  np.testing.assert_allclose(pix[0], want, atol=1e-7)
  np.testing.assert_allclose(CD.pixel_filters(CD.CDBN((low, high)), 0), low.W[:, 0], atol=0)


def test_whitening_flattens_the_spectrum_and_patches_fit():
  """A 1/f-amplitude image comes out with unit variance and a flat spectrum up to the roll-off;
  patches are cut from inside the images, and too large ones are refused."""
  import jax
  rng = np.random.default_rng(0)
  n = 128
  f = np.sqrt(np.fft.fftfreq(n)[:, None]**2 + np.fft.fftfreq(n)[None, :]**2) * n
  spec = np.where(f > 0, 1 / np.maximum(f, 1e-9), 0) * np.exp(2j * np.pi * rng.random((n, n)))
  image = np.real(np.fft.ifft2(spec))
  out = photos.whiten(image, f0_fraction=0.8)
  assert abs(out.mean()) < 1e-9 and abs(out.std() - 1) < 1e-9
  power = np.abs(np.fft.fft2(out))**2
  low, mid = power[(f > 4) & (f < 8)].mean(), power[(f > 16) & (f < 24)].mean()
  assert 0.5 < low / mid < 2  # flat where the input fell by a factor of 9 in power
  p = photos.patches(jax.random.key(0), [out, out[:40, :50]], 6, 10)
  assert p.shape == (6, 1, 10, 10) and p.dtype == np.float32
  with pytest.raises(ValueError, match="do not fit"):
    photos.patches(jax.random.key(0), [out[:8]], 2, 10)


def test_photos_without_scikit_learn_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
  import importlib.util
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "sklearn" else real(name, *a))
  code, _, err = _run(capsys, "train", "crbm", "--dataset", "photos", "--out", tmp_path / "run")
  assert code == 2 and "pip install scikit-learn" in err and not (tmp_path / "run").exists()
