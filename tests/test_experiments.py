"""The paper reproductions in experiments/: each script's smoke run, so that none of them rots."""

import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(*argv, env=None):
  result = subprocess.run([sys.executable, *map(str, argv)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600, env=env)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  return result.stdout


@pytest.mark.slow
def test_likelihood_benchmark_quick_run_resumes(tmp_path):
  """The issue-3 table's script: train, checkpoint, AIS; run again, it resumes and re-evaluates."""
  out = _run("-m", "experiments.likelihood_mnist", "--quick", "--dataset", "digits", "--out-dir",
             tmp_path, "--prng", "philox4x32")
  row = [line for line in out.splitlines() if line.startswith("| CD1 |")]
  assert len(row) == 1
  test_ll = float(row[0].split("|")[3].split()[0])
  assert -60 < test_ll < -15  # 64 binary pixels: between a trained model and the uniform -44.4
  again = _run("-m", "experiments.likelihood_mnist", "--quick", "--dataset", "digits", "--out-dir",
               tmp_path, "--prng", "philox4x32")
  assert "resuming after epoch 1" in again
  # A constant-rate run resumes with a decay: epochs 2 and 3 fall linearly towards 0 at 3.
  _run("-m", "experiments.likelihood_mnist", "--quick", "--dataset", "digits", "--out-dir", tmp_path,
       "--prng", "philox4x32", "--epochs", "3", "--lr-decay-start", "1")
  meta = json.loads((tmp_path / "quick" / "digits_cd1_h100_e3.json").read_text())
  assert meta["lr_per_epoch"] == pytest.approx([0.05, 0.05, 0.025]) and len(meta["recon"]) == 3
  refused = subprocess.run([sys.executable, "-m", "experiments.likelihood_mnist", "--quick",
                            "--dataset", "digits", "--out-dir", tmp_path, "--epochs", "4"],
                           cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=600)
  assert refused.returncode != 0 and "threefry2x32" in refused.stderr


@pytest.mark.slow
def test_dbn_benchmark_quick_run(tmp_path, mnist_dir):
  """The issue-4 script on a tiny DBN: every stage runs and writes its result."""
  import os
  env = {**os.environ, "JDBN_MNIST_DIR": str(mnist_dir)}
  _run("-m", "experiments.dbn_mnist", "--quick", "--out", tmp_path, "--no-progress", "--prng",
       "philox4x32", "--dropout", "0.2", "--finetune-schedule", "cosine", "--updown-k-schedule",
       "2:1,1", "--updown-lr-decay-start", "0", "--finetune-on-all", "--max-norm", "20",
       "--updown-on-all", "--updown-all-max-epochs", "3", "--reconstruction", "mean",
       "--updown-mean-labels", "--updown-momentum", "0.5", "--updown-weight-decay", "1e-4",
       "--updown-balanced", env=env)
  results = json.loads((tmp_path / "results.json").read_text())
  settings = json.loads((tmp_path / "settings.json").read_text())
  assert settings["reconstruction"] == "mean" and settings["updown_mean_labels"] is True
  assert settings["updown_momentum"] == 0.5 and settings["updown_weight_decay"] == 1e-4
  assert settings["updown_balanced"] is True
  for stage in ("pretrain", "gen_pretrained", "updown", "gen_updown", "updown_all", "finetune",
                "finetune_all", "ablation", "ll_bound_pretrained", "timing", "samples", "run"):
    assert stage in results, stage
  assert results["finetune"]["schedule"] == "cosine"
  assert results["finetune"]["max_norm"] == results["ablation"]["max_norm"] == 20
  assert results["updown"]["final"]["k"] == 2  # the schedule's first entry
  assert results["updown"]["final"]["lr"] == pytest.approx(0.01)  # 1 epoch: decay starts at 0
  assert 0 <= results["updown"]["final"]["valid_error"] <= 1  # recorded at the last epoch
  assert 0 <= results["finetune"]["test_error"] <= 1
  # HOT's last phase on all 3,000 images: stops once their error is the training split's, or at
  # the epoch limit; k is that of the last up-down epoch.
  ud_all = results["updown_all"]
  assert ud_all["n_train"] == 3000 and ud_all["k"] == 2 and 0 <= ud_all["test_error"] <= 1
  assert ud_all["finished"] == (ud_all["train_error_all"] <= ud_all["target_train_error"])
  assert ud_all["finished"] or ud_all["epochs"] == 3
  # All training images: 2,000 of the quick run's training split and its 1,000 validation images.
  assert results["finetune_all"]["n_train"] == 3000
  assert 0 <= results["finetune_all"]["test_error"] <= 1
  assert (tmp_path / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # finetune_all alone (its epochs chosen already): reloads the pretrained DBN, skips the 50,000.
  del results["finetune_all"]
  (tmp_path / "results.json").write_text(json.dumps(results))
  (tmp_path / "finetune_all.npz").unlink()
  _run("-m", "experiments.dbn_mnist", "--quick", "--out", tmp_path, "--no-progress", "--prng",
       "philox4x32", "--dropout", "0.2", "--finetune-schedule", "cosine", "--finetune-on-all",
       "--max-norm", "20", "--stages", "finetune_all", "--reconstruction", "mean",
       "--updown-mean-labels", "--updown-momentum", "0.5", "--updown-weight-decay", "1e-4",
       "--updown-balanced", env=env)
  again = json.loads((tmp_path / "results.json").read_text())
  assert again["finetune_all"]["n_train"] == 3000 and again["finetune"] == results["finetune"]
  bad = subprocess.run([sys.executable, "-m", "experiments.dbn_mnist", "--quick", "--out",
                        tmp_path / "bad", "--stages", "pretrain,finetuning"], cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=600, env=env)
  assert bad.returncode != 0 and "unknown stages ['finetuning']" in bad.stderr
  assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_dbn_benchmark_finetunes_from_updown(tmp_path, mnist_dir):
  """``--finetune-from updown`` starts fine-tuning from the up-down DBN and says so; without the
  updown stage it refuses before training anything."""
  import os
  env = dict(os.environ, JDBN_MNIST_DIR=str(mnist_dir))
  common = ["-m", "experiments.dbn_mnist", "--quick", "--no-progress", "--prng", "philox4x32",
            "--finetune-from", "updown", "--finetune-momentum", "0.5"]
  refused = subprocess.run([sys.executable, *common, "--out", str(tmp_path / "bad"), "--stages",
                            "pretrain,finetune"], cwd=REPO_ROOT, capture_output=True, text=True,
                           timeout=600, env=env)
  assert refused.returncode != 0 and "needs stage updown" in refused.stderr
  _run(*common, "--out", tmp_path, "--stages", "pretrain,updown,finetune", env=env)
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["finetune"]["init"] == "updown" and results["finetune"]["momentum"] == 0.5
  assert 0 <= results["finetune"]["test_error"] <= 1


@pytest.mark.slow
def test_dbn_benchmark_pretrains_on_all_images(tmp_path, mnist_dir):
  """``--pretrain-on-all`` pretrains on the training split and the validation images together,
  and refuses the stages that would then select on images pretraining has seen."""
  import os
  env = dict(os.environ, JDBN_MNIST_DIR=str(mnist_dir))
  common = ["-m", "experiments.dbn_mnist", "--quick", "--no-progress", "--prng", "philox4x32",
            "--pretrain-on-all", "--finetune-on-all"]
  refused = subprocess.run([sys.executable, *common, "--out", str(tmp_path / "bad")],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=env)
  assert refused.returncode != 0 and "['ablation', 'finetune']" in refused.stderr
  assert not (tmp_path / "bad").exists()
  both = subprocess.run([sys.executable, *common, "--updown-on-all", "--out", str(tmp_path / "bad"),
                        "--stages", "pretrain,updown"], cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=600, env=env)
  assert both.returncode != 0 and "drop --updown-on-all" in both.stderr
  _run(*common, "--out", tmp_path, "--stages", "pretrain,updown,finetune_all", env=env)
  results = json.loads((tmp_path / "results.json").read_text())
  assert (results["pretrain"]["n_train"] == results["updown"]["n_train"]
          == results["finetune_all"]["n_train"] == 3000)
  assert 0 <= results["finetune_all"]["test_error"] <= 1
  # The validation images are training images here, and the up-down record says so.
  final = results["updown"]["final"]
  assert "valid_error" not in final and 0 <= final["error_on_last_10000_training_images"] <= 1


def test_updown_curves_plots_run_folders(tmp_path, monkeypatch):
  """experiments/updown_curves.py reads a run's up-down history and test error into a PNG, and
  names a folder without up-down instead of failing obscurely."""
  pytest.importorskip("matplotlib")
  from PIL import Image
  from jdbn import checkpoint
  run = tmp_path / "run"
  run.mkdir()
  history = [{"epoch": e, "gen_nll": 100.0 + e, **({"valid_error": 0.03 - e / 1000}
                                                   if e % 2 == 0 else {})} for e in range(1, 7)]
  checkpoint.save(run / "updown.npz", {"x": np.zeros(1)}, metadata={"epoch": 6,
                                                                    "history": history})
  (run / "results.json").write_text(json.dumps({"updown": {"epochs": 6},
                                                "gen_updown": {"test_error": 0.02}}))
  spec = importlib.util.spec_from_file_location("updown_curves",
                                                REPO_ROOT / "experiments" / "updown_curves.py")
  curves = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(curves)
  loaded = curves.load_run(run)
  assert loaded["test_error"] == 0.02 and loaded["epochs"] == 6 and len(loaded["history"]) == 6
  import matplotlib.axes
  labels = []
  legend = matplotlib.axes.Axes.legend
  monkeypatch.setattr(matplotlib.axes.Axes, "legend", lambda ax, *a, **k: (
      labels.extend(ax.get_legend_handles_labels()[1]), legend(ax, *a, **k))[1])
  # A run trained on all images records its error on training images, and is labelled so.
  all_images = [{"epoch": e, "gen_nll": 90.0, curves.TRAIN_MONITOR: 0.02} for e in (1, 2)]
  out = curves.plot({"a run": loaded, "on all": {"history": all_images, "test_error": None,
                                                 "epochs": 2}}, tmp_path / "curves.png")
  assert "on all (last 10,000 training images)" in labels
  with Image.open(out) as im:
    assert im.format == "PNG" and im.size[0] > 500
  with pytest.raises(SystemExit, match="has no updown.npz"):
    curves.main([str(tmp_path), "--out", str(tmp_path / "x.png")])


@pytest.mark.slow
def test_ising_onsager_quick_run():
  """The issue-28 physics benchmark on a 16 x 16 torus: every temperature reports against
  Onsager and the speed is measured; nothing is written."""
  before = (REPO_ROOT / "benchmarks" / "RESULTS.md").read_text()
  out = _run("-m", "experiments.ising_onsager", "--quick")
  for T in ("1.5", "2.0", "2.2"):
    assert f"T={T}: <|m|> = " in out and "Onsager" in out
  assert "Mflips/s" in out and "nothing written" in out
  assert (REPO_ROOT / "benchmarks" / "RESULTS.md").read_text() == before
  # Far below T_c a 16 x 16 torus is within a few percent of the infinite lattice.
  m = float(out.split("T=1.5: <|m|> = ")[1].split()[0])
  assert abs(m - 0.9865) < 0.02


@pytest.mark.slow
def test_hopfield_capacity_quick_run(tmp_path):
  """The issue-28 capacity script: --quick prints its table and writes nothing; the capacity
  curve draws a PNG from the recorded figures."""
  results = REPO_ROOT / "benchmarks" / "RESULTS.md"
  before = results.read_text()
  out = _run("-m", "experiments.hopfield_capacity", "--quick")
  rows = [line for line in out.splitlines() if line.startswith("| 0.")]
  assert [row.split("|")[1].strip() for row in rows] == ["0.05", "0.14", "0.30"]
  for row in rows:  # fractions and overlaps
    assert all(-1 <= float(cell) <= 1 for cell in row.split("|")[3:7])
  assert "N / (2 ln N) = 7.3" in out
  assert results.read_text() == before
  refused = subprocess.run([sys.executable, "-m", "experiments.hopfield_capacity", "--quick",
                            "--write"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
  assert refused.returncode != 0 and "writes nothing" in refused.stderr
  from PIL import Image
  from experiments import hopfield_capacity
  res = json.loads((REPO_ROOT / "experiments" / "results" / "hopfield_capacity.json").read_text())
  with Image.open(hopfield_capacity.capacity_curve(res, tmp_path / "curve.png")) as im:
    assert im.format == "PNG" and im.size == (760, 440)
