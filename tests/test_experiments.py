"""The paper reproductions in experiments/: the registry, and each script's smoke run (in this
process, so the runs share JAX's compiled programs), so that none of them rots."""

import importlib
import json
import math
import pathlib
import shlex

import numpy as np
import pytest

from experiments import configs, record

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "experiments" / "results"
UNIFORM_DIGITS = -64 * math.log(2)  # nats of the uniform distribution over 64 binary pixels


def _parse(step: str) -> None:
  """Parses one registry command with its script's own options (SystemExit if one is wrong)."""
  argv = shlex.split(step)
  if argv[:2] == ["python", "-m"]:
    module = importlib.import_module(argv[2])
    if hasattr(module, "parse_args"):
      module.parse_args(argv[3:])
    else:
      module.parser().parse_args(argv[3:])
  elif argv[0] == "jdbn":
    from jdbn import cli
    cli.build_parser().parse_args(argv[1:])
  else:
    assert argv[0] in ("mkdir", "cp", "rm"), step


def test_registry_is_the_readme_table_and_every_command_parses():
  """experiments/README.md's table is configs.markdown(), and every row's commands, for every
  seed, parse with the options of the script they run (a renamed option fails here)."""
  assert configs.markdown() in (REPO_ROOT / "experiments" / "README.md").read_text()
  for name, row in configs.ROWS.items():
    assert row.steps and row.seeds and row.result, name
    for seed in row.seeds:
      for step in row.commands(seed):
        assert "{" not in step, step
        for part in step.split("&&"):
          _parse(part)
  with pytest.raises(SystemExit):
    _parse("python -m experiments.dbn_mnist --updown-k-schedule 3:100,6:200")  # bounded last


def test_record_merges_rows_and_renders_them(tmp_path):
  record.merge("x", {"a": {"v": 1}}, lambda rows: "|".join(rows), folder=tmp_path)
  rows = record.merge("x", {"b": {"v": 2}, "a": {"v": 3}}, lambda rows: "|".join(rows),
                      folder=tmp_path)
  assert rows == {"a": {"v": 3}, "b": {"v": 2}}
  assert json.loads((tmp_path / "x.json").read_text()) == rows
  assert (tmp_path / "x.md").read_text() == "a|b\n"


def _snapshot():
  """The committed results, to check that quick runs leave them alone."""
  return {p.name: p.read_bytes() for p in RESULTS.iterdir() if p.is_file()}


@pytest.mark.slow
def test_dbn_quick_run_every_stage_and_option(tmp_path, mnist_dir, capsys):
  """dbn_mnist on a tiny DBN with every option: each stage writes its result; finetune_all runs
  alone; --pretrained-from starts another run from this one's pretraining, refusing other
  settings; settings that do not go together are refused before anything is written."""
  from experiments import dbn_mnist
  before = _snapshot()
  common = ["--quick", "--data-dir", str(mnist_dir), "--no-progress", "--prng", "philox4x32"]
  options = ["--dropout", "0.2", "--finetune-schedule", "cosine", "--updown-k-schedule", "2:1,1",
             "--updown-lr-decay-start", "0", "--finetune-on-all", "--max-norm", "20",
             "--updown-on-all", "--updown-all-max-epochs", "3", "--reconstruction", "mean",
             "--updown-mean-labels", "--updown-momentum", "0.5", "--updown-weight-decay", "1e-4",
             "--updown-balanced", "--finetune-from", "updown", "--finetune-momentum", "0.5"]
  run = tmp_path / "run"
  results = dbn_mnist.main(common + options + ["--out", str(run)])
  settings = json.loads((run / "settings.json").read_text())
  assert settings["reconstruction"] == "mean" and settings["updown_mean_labels"] is True
  assert settings["updown_momentum"] == 0.5 and settings["updown_weight_decay"] == 1e-4
  assert settings["updown_balanced"] is True
  for stage in ("pretrain", "gen_pretrained", "updown", "gen_updown", "updown_all", "finetune",
                "finetune_all", "ablation", "ll_bound_pretrained", "timing", "samples", "run"):
    assert stage in results, stage
  assert json.loads((run / "results.json").read_text()) == json.loads(json.dumps(results))
  ft = results["finetune"]
  assert ft["schedule"] == "cosine" and ft["max_norm"] == results["ablation"]["max_norm"] == 20
  assert ft["init"] == "updown" and ft["momentum"] == 0.5 and 0 <= ft["test_error"] <= 1
  final = results["updown"]["final"]
  assert final["k"] == 2 and final["lr"] == pytest.approx(0.01)  # the schedule's first epoch
  assert 0 <= final["valid_error"] <= 1  # recorded at the last epoch
  # HOT's last phase on all 3,000 images: stops once their error is the training split's, or at
  # the epoch limit; k is that of the last up-down epoch.
  ud_all = results["updown_all"]
  assert ud_all["n_train"] == 3000 and ud_all["k"] == 2 and 0 <= ud_all["test_error"] <= 1
  assert ud_all["finished"] == (ud_all["train_error_all"] <= ud_all["target_train_error"])
  assert ud_all["finished"] or ud_all["epochs"] == 3
  assert results["finetune_all"]["n_train"] == 3000
  bound = results["ll_bound_pretrained"]
  assert bound["bound_interval"][0] <= bound["bound_nats"] <= bound["bound_interval"][1] < 0
  assert (run / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # finetune_all alone (its epochs chosen already): the pretraining and up-down it starts from
  # are reloaded, not trained again.
  del results["finetune_all"]
  (run / "results.json").write_text(json.dumps(results))
  (run / "finetune_all.npz").unlink()
  again = dbn_mnist.main(common + options + ["--out", str(run), "--stages", "updown,finetune_all"])
  assert again["updown"] == results["updown"] and again["updown_all"] == results["updown_all"]
  assert again["finetune_all"]["n_train"] == 3000 and again["finetune"] == results["finetune"]
  # Another seed from this run's pretraining: copied, not retrained.
  seed1 = tmp_path / "seed1"
  other = dbn_mnist.main(common + ["--out", str(seed1), "--seed", "1", "--reconstruction", "mean",
                                   "--pretrained-from", str(run), "--stages", "pretrain"])
  assert other["pretrain"] == results["pretrain"] and (seed1 / "pretrain").is_dir()
  with pytest.raises(SystemExit, match="pretrained with other settings"):
    dbn_mnist.main(common + ["--out", str(tmp_path / "bad"), "--pretrained-from", str(run),
                             "--stages", "pretrain"])  # sampled reconstructions, not means
  capsys.readouterr()
  refusals = [(["--stages", "pretrain,finetuning"], "unknown stages ['finetuning']"),
              (["--finetune-from", "updown", "--stages", "pretrain,finetune"],
               "needs stage updown"),
              (["--pretrain-on-all", "--finetune-on-all"], "['ablation', 'finetune']"),
              (["--pretrain-on-all", "--updown-on-all", "--stages", "pretrain,updown"],
               "drop --updown-on-all")]
  for argv, message in refusals:
    with pytest.raises(SystemExit) as err:
      dbn_mnist.main(common + ["--out", str(tmp_path / "refused")] + argv)
    assert message in str(err.value.code) + capsys.readouterr().err, argv
  assert not (tmp_path / "refused").exists() and _snapshot() == before


def test_dbn_pretrained_on_all_images(tmp_path, mnist_dir):
  """--pretrain-on-all pretrains and runs up-down on the training split and the validation
  images together, and the up-down record names its monitor as training images."""
  from experiments import dbn_mnist
  results = dbn_mnist.main(["--quick", "--data-dir", str(mnist_dir), "--no-progress", "--prng",
                            "philox4x32", "--pretrain-on-all", "--finetune-on-all", "--n-train",
                            "500", "--finetune-epochs", "1", "--out", str(tmp_path), "--stages",
                            "pretrain,updown,finetune_all"])
  assert (results["pretrain"]["n_train"] == results["updown"]["n_train"]
          == results["finetune_all"]["n_train"] == 1500)
  assert 0 <= results["finetune_all"]["test_error"] <= 1
  final = results["updown"]["final"]
  assert "valid_error" not in final and 0 <= final[dbn_mnist.TRAIN_MONITOR] <= 1


def test_likelihood_quick_run_resumes_with_a_decay(tmp_path, capsys):
  """likelihood_mnist on the digits: train, checkpoint, AIS; run again with more epochs, it
  resumes and the rate decays over the new ones; another PRNG is refused."""
  from experiments import likelihood_mnist
  before = _snapshot()
  common = ["--quick", "--dataset", "digits", "--out-dir", str(tmp_path)]
  first, = likelihood_mnist.main(common + ["--prng", "philox4x32"])
  # 64 binary pixels: between a trained model and the uniform distribution's -44.4 nats.
  assert UNIFORM_DIGITS < first["test_ll_lower"] <= first["test_ll"] <= first["test_ll_upper"]
  assert first["log_z_lower"] <= first["log_z"] <= first["log_z_upper"]
  again, = likelihood_mnist.main(common + ["--prng", "philox4x32", "--epochs", "3",
                                           "--lr-decay-start", "1"])
  assert "resuming after epoch 1" in capsys.readouterr().out
  assert again["lr_per_epoch"] == pytest.approx([0.05, 0.05, 0.025])
  assert again["recon"][0] == first["recon"][0] and len(again["recon"]) == 3
  saved = json.loads((tmp_path / "quick" / "digits_cd1_h100_e3.json").read_text())
  assert saved["test_ll"] == again["test_ll"]
  with pytest.raises(SystemExit, match="threefry2x32"):
    likelihood_mnist.main(common + ["--epochs", "4"])
  assert _snapshot() == before


@pytest.mark.slow
def test_samplers_quick_run():
  """samplers_mnist on the digits: every sampler trains and is scored by AIS and RAISE, above
  the uniform distribution, RAISE (a lower bound) not above AIS on the same images."""
  from experiments import samplers_mnist
  before = _snapshot()
  out = samplers_mnist.main(["--quick", "--no-progress"])
  assert list(out["rows"]) == list(samplers_mnist.METHODS)
  for method, r in out["rows"].items():
    assert r["epochs"] >= 1, method
    assert UNIFORM_DIGITS < r["ais_lower"] <= r["ais_mean"] < 0, method
    assert UNIFORM_DIGITS < r["raise_mean"] < r["ais_mean_on_raise_subset"] + 0.5, method
  assert _snapshot() == before


@pytest.mark.slow
def test_dbm_centering_quick_run():
  """dbm_centering --quick on the digits: the plain and the centered DBM train from the same
  random start without pretraining and are scored by the AIS bound and a linear classifier."""
  from experiments import dbm_centering
  before = _snapshot()
  out = dbm_centering.main(["--quick", "--no-progress"])
  assert list(out["rows"]) == list(dbm_centering.METHODS) and out["pretraining"] is None
  for method, r in out["rows"].items():
    assert r["epochs_done"] == out["epochs"] == 3 and r["diverged"] is None, method
    assert UNIFORM_DIGITS < r["bound_lower"] <= r["bound"] <= r["bound_upper"] < 0, method
    assert 0 <= r["linear_error"] < 0.9 and r["mf_converged"] == 1.0, method
  assert "| quick | centered |" in dbm_centering.render({"quick": out})
  assert _snapshot() == before


@pytest.mark.slow
def test_crbm_tasks_quick_run(mnist_dir):
  """crbm_tasks --quick: both tasks train a CRBM and measure it against its baseline."""
  from experiments import crbm_tasks
  before = _snapshot()
  res = crbm_tasks.main(["--quick", "--mnist-dir", str(mnist_dir)])
  b, m = res["balls"], res["mnist"]
  assert 0 < b["mse_copy_last"] < 1 and 0 < b["mse_crbm"] < 1
  assert b["reduction"] == pytest.approx(1 - b["mse_crbm"] / b["mse_copy_last"])
  assert 0 < m["log_loss_crbm"] < math.log(2) and 0 < m["log_loss_logreg"] < math.log(2)
  # the structured metric: -log p(y | x) / 392 by AIS and by RAISE, against the logistic
  # regression's loss on the same images
  j = m["joint_log_loss_crbm"]
  assert 0 < j["ais"] < 1 and 0 < j["raise_"] < 1
  assert 1 <= j["median_ess"] <= m["config"]["ais_chains"]
  assert m["joint_reduction"] == pytest.approx(1 - j["raise_"] / m["log_loss_logreg_ais_examples"])
  assert "-log p(y \\| x) / 392" in crbm_tasks._markdown(res)
  assert _snapshot() == before


def test_ising_quick_run():
  """ising_onsager on a 16 x 16 torus: every temperature against Onsager, and the speed."""
  from experiments import ising_onsager
  before = _snapshot()
  res = ising_onsager.run(quick=True)
  assert [r["T"] for r in res["rows"]] == [1.5, 2.0, 2.2]
  for r in res["rows"]:
    assert r["onsager"] == pytest.approx(ising_onsager.onsager(r["T"]))
    assert 0 < r["mean_abs_m"] <= 1 and r["stderr"] > 0
  # Far below T_c a 16 x 16 torus is within a few percent of the infinite lattice.
  assert abs(res["rows"][0]["mean_abs_m"] - 0.9865) < 0.02
  assert all(v > 0 for v in res["flips_per_second"].values())
  assert _snapshot() == before


def test_hopfield_capacity_quick_run(tmp_path):
  """hopfield_capacity --quick prints its table and writes nothing; the capacity curve draws a
  PNG from the committed figures."""
  from PIL import Image
  from experiments import hopfield_capacity
  before, lines = _snapshot(), []
  res = hopfield_capacity.run(quick=True, log=lines.append)
  rows = [line for line in lines[0].splitlines() if line.startswith("| 0.")]
  assert [row.split("|")[1].strip() for row in rows] == ["0.05", "0.14", "0.30"]
  for row in rows:  # fractions and overlaps
    assert all(-1 <= float(cell) <= 1 for cell in row.split("|")[3:7])
  assert "N / (2 ln N) = 7.3" in lines[0] and res["n"] == 60
  with pytest.raises(SystemExit, match="writes nothing"):
    hopfield_capacity.run(quick=True, write=True)
  assert _snapshot() == before
  committed = json.loads((RESULTS / "hopfield_capacity.json").read_text())
  with Image.open(hopfield_capacity.capacity_curve(committed, tmp_path / "curve.png")) as im:
    assert im.format == "PNG" and im.size == (760, 440)


def test_updown_curves_plots_run_folders(tmp_path, monkeypatch):
  """experiments/updown_curves.py reads a run's up-down history and test error into a PNG, and
  names a folder without up-down instead of failing obscurely."""
  pytest.importorskip("matplotlib")
  from PIL import Image
  from experiments import updown_curves as curves
  from jdbn import checkpoint
  run = tmp_path / "run"
  run.mkdir()
  history = [{"epoch": e, "gen_nll": 100.0 + e, **({"valid_error": 0.03 - e / 1000}
                                                   if e % 2 == 0 else {})} for e in range(1, 7)]
  checkpoint.save(run / "updown.npz", {"x": np.zeros(1)}, metadata={"epoch": 6,
                                                                    "history": history})
  (run / "results.json").write_text(json.dumps({"updown": {"epochs": 6},
                                                "gen_updown": {"test_error": 0.02}}))
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


def test_cdbn_mnist_quick_run(mnist_dir):
  """cdbn_mnist --quick: a tiny two-layer CDBN, its features and the pixels classified with
  all labels and with balanced subsets, every loss and L2 cost tried; writes nothing."""
  from experiments import cdbn_mnist
  before = _snapshot()
  res = cdbn_mnist.main(["--quick", "--data-dir", str(mnist_dir), "--no-progress"])
  cfg = res["config"]
  k1, k2 = (layer["n_filters"] for layer in cfg["layers"])
  assert res["n_features"] == k1 * 9 * 9 + k2 * 2 * 2
  for arm in ("cdbn", "pixels"):
    assert 0 <= res[arm]["all"]["test_error"] <= 1
    assert len(res[arm]["all"]["valid_error"]) == len(cfg["losses"]) * len(cfg["l2_grid"])
    assert res[arm]["all"]["loss"] in cfg["losses"]
    runs = res[arm]["small"]["runs"]
    assert [r["subset_seed"] for r in runs] == list(range(cfg["label_subsets"]))
    assert res[arm]["small"]["mean"] == pytest.approx(np.mean([r["test_error"] for r in runs]))
  assert [len(h) for h in res["layer_history"]] == [1, 1]
  assert _snapshot() == before


def test_cdbn_balanced_subsets_hold_each_class_equally():
  import jax
  from experiments import cdbn_mnist
  y = np.repeat(np.arange(10), 30)
  idx = cdbn_mnist.balanced_subset(jax.random.key(0), y, 100)
  assert len(set(idx.tolist())) == 100 and np.all(np.bincount(y[idx]) == 10)


def test_crbm_natural_quick_run():
  """crbm_natural --quick on scikit-learn's photographs: trains and measures how oriented the
  filters are; writes nothing."""
  pytest.importorskip("sklearn", reason="the natural images are scikit-learn's sample photos "
                      "(pip install jdbn[bench])")
  from experiments import crbm_natural
  before = _snapshot()
  res = crbm_natural.main(["--quick", "--no-progress"])
  sel = res["orientation_selectivity"]
  assert len(sel) == res["config"]["n_filters"] and all(1 / 8 <= s <= 1 for s in sel)
  assert _snapshot() == before


def test_orientation_selectivity_tells_edges_from_blobs():
  from experiments import crbm_natural
  r = 9
  yy, xx = np.mgrid[:r, :r] - r // 2
  gabor = np.exp(-(xx**2 + yy**2) / 8) * np.cos(1.5 * xx)
  blob = np.exp(-(xx**2 + yy**2) / 4)
  sel = crbm_natural.orientation_selectivity(np.stack([gabor, blob])[:, None])
  assert sel[0] > 0.5 > 0.25 > sel[1]
