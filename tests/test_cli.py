"""Tests of the jdbn command line, run in-process through jdbn.cli.main."""

import json
import math

import numpy as np
import pytest
from PIL import Image

from jdbn import checkpoint, cli, train


def _png(path):
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  with Image.open(path) as im:
    im.verify()
  with Image.open(path) as im:
    return im.size


def _run(capsys, *argv):
  code = cli.main([str(a) for a in argv])
  out, err = capsys.readouterr()
  return code, out, err


TRAIN = ("train", "rbm", "--dataset", "digits", "--n-hidden", 8, "--method", "cd", "--lr", 0.1,
         "--momentum", 0.5, "--batch-size", 100, "--binarize", "threshold", "--sample-steps", 20,
         "--no-progress")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  """A tiny RBM trained for 2 epochs by `jdbn train rbm`."""
  out = tmp_path_factory.mktemp("run")
  assert cli.main([str(a) for a in TRAIN + ("--epochs", 2, "--out", out)]) == 0
  return out


def test_train_rbm_writes_its_outputs(run_dir):
  for name in ("filters.png", "samples.png"):
    width, height = _png(run_dir / name)
    assert width > 8 and height > 8
  metrics = json.loads((run_dir / "metrics.json").read_text())
  assert [row["epoch"] for row in metrics["history"]] == [1, 2]
  assert all(math.isfinite(v) for row in metrics["history"] for v in row.values())
  meta = checkpoint.read_metadata(run_dir / train.CHECKPOINT_NAME)
  assert meta["user"]["image_shape"] == [8, 8]
  assert meta["user"]["settings"]["n_hidden"] == 8
  params = checkpoint.load_params(run_dir / train.CHECKPOINT_NAME)
  assert params.W.shape == (64, 8)


def test_train_rbm_resumes_and_refuses_other_settings(tmp_path, capsys):
  out = tmp_path / "run"
  code, _, _ = _run(capsys, *TRAIN, "--epochs", 1, "--out", out)
  assert code == 0
  code, text, _ = _run(capsys, *TRAIN, "--epochs", 2, "--out", out)
  assert code == 0 and "resuming" in text
  history = json.loads((out / "metrics.json").read_text())["history"]
  assert [row["epoch"] for row in history] == [1, 2]
  argv = list(TRAIN)
  argv[argv.index("--n-hidden") + 1] = 9
  code, _, err = _run(capsys, *argv, "--epochs", 3, "--out", out)
  assert code == 2 and "--n-hidden 8 there, 9 here" in err


@pytest.mark.parametrize("method,extra", [("pt", ("--replicas", 3, "--beta-min", 0.5)),
                                          ("fpcd", ("--fast-rate", 0.05))])
def test_train_rbm_with_tempering_or_fast_pcd_records_and_resumes(tmp_path, capsys, method,
                                                                  extra):
  """`--method pt` / `fpcd`: the sampler's options are part of the run's settings, the run
  resumes from its tempering replicas or fast weights, and other options are refused."""
  argv = list(TRAIN)
  argv[argv.index("--method") + 1] = method
  out = tmp_path / method
  code, _, _ = _run(capsys, *argv, *extra, "--n-chains", 5, "--epochs", 1, "--out", out)
  assert code == 0
  meta = checkpoint.read_metadata(out / train.CHECKPOINT_NAME)
  settings = meta["user"]["settings"]
  assert settings["method"] == method
  assert ({"replicas": 3, "beta_min": 0.5} if method == "pt" else {"fast_rate": 0.05}).items() \
      <= settings.items()
  code, text, _ = _run(capsys, *argv, *extra, "--n-chains", 5, "--epochs", 2, "--out", out)
  assert code == 0 and "resuming" in text
  changed = list(extra)
  changed[1] = 4 if method == "pt" else 0.1
  code, _, err = _run(capsys, *argv, *changed, "--n-chains", 5, "--epochs", 3, "--out", out)
  assert code == 2 and "other settings" in err


def test_train_rbm_centered_records_resumes_and_samples(tmp_path, capsys):
  """`--center`: the checkpoint holds the centered RBM (offsets included, so a resumed run goes
  on exactly), the settings record it, and `sample` / `evaluate` read it as the RBM it equals."""
  from jdbn.models import centered
  argv = list(TRAIN)
  argv[argv.index("--method") + 1] = "pcd"
  out = tmp_path / "centered"
  extra = ("--center", "--offset-rate", 0.05, "--n-chains", 5)
  code, _, _ = _run(capsys, *argv, *extra, "--epochs", 1, "--out", out)
  assert code == 0
  settings = checkpoint.read_metadata(out / train.CHECKPOINT_NAME)["user"]["settings"]
  assert settings["center"] is True and settings["offset_rate"] == 0.05
  model = checkpoint.load_params(out / train.CHECKPOINT_NAME)
  assert isinstance(model, centered.CenteredRBM)
  assert float(abs(model.mu).max()) > 0  # the offsets moved towards the data's means
  code, text, _ = _run(capsys, *argv, *extra, "--epochs", 2, "--out", out)
  assert code == 0 and "resuming" in text
  code, _, err = _run(capsys, *argv, "--n-chains", 5, "--epochs", 3, "--out", out)
  assert code == 2 and "other settings" in err  # dropping --center is another run
  code, text, _ = _run(capsys, "sample", out, "--n-samples", 4, "--n-steps", 5, "--out",
                       tmp_path / "s.png")
  assert code == 0
  code, text, _ = _run(capsys, "evaluate", out, "--quick")
  assert code == 0 and "log" in text.lower()
  argv[argv.index("--method") + 1] = "pt"
  code, _, err = _run(capsys, *argv, "--center", "--epochs", 1, "--out", tmp_path / "pt")
  assert code == 2 and "--center goes with --method cd or pcd" in err


def test_train_rbm_centered_resume_of_a_plain_run_is_refused_old_runs_resume(run_dir, tmp_path,
                                                                            capsys):
  """Adding --center to a plain run's folder is refused before any work; a run folder written
  before `center` was a setting (no key in its settings) counts as not centered and resumes."""
  import shutil
  argv = TRAIN
  before = (run_dir / train.CHECKPOINT_NAME).read_bytes()
  code, text, err = _run(capsys, *argv, "--center", "--epochs", 3, "--out", run_dir)
  assert code == 2 and "--center False there, True here" in err and "resuming" not in text
  assert (run_dir / train.CHECKPOINT_NAME).read_bytes() == before
  old = tmp_path / "old"
  shutil.copytree(run_dir, old)
  tree, meta = checkpoint.restore(old / train.CHECKPOINT_NAME)
  assert meta["user"]["settings"].pop("center") is False
  checkpoint.save(old / train.CHECKPOINT_NAME, tree, metadata=meta)
  code, text, err = _run(capsys, *TRAIN, "--epochs", 3, "--out", old)
  assert code == 0 and "resuming" in text, err
  assert checkpoint.read_metadata(old / train.CHECKPOINT_NAME)["epoch"] == 3
  code, _, err = _run(capsys, *argv, "--center", "--epochs", 4, "--out", old)
  assert code == 2 and "--center False there, True here" in err


def test_sample(run_dir, tmp_path, capsys):
  out = tmp_path / "more.png"
  code, text, _ = _run(capsys, "sample", run_dir, "--n-samples", 100, "--n-steps", 20, "--out",
                       out, "--seed", 3)
  assert code == 0 and str(out) in text
  assert _png(out)[0] > 8 * 10


def test_prng_choice_is_deterministic_and_kept_on_resume(run_dir, tmp_path, capsys):
  pictures = {}
  for name, prng in [("a", "philox4x32"), ("b", "philox4x32"), ("c", "threefry2x32")]:
    out = tmp_path / f"{name}.png"
    code, _, _ = _run(capsys, "sample", run_dir, "--n-samples", 10, "--n-steps", 5, "--out", out,
                      "--prng", prng)
    assert code == 0
    with Image.open(out) as im:
      pictures[name] = np.asarray(im)
  np.testing.assert_array_equal(pictures["a"], pictures["b"])
  assert not np.array_equal(pictures["a"], pictures["c"])
  # A run keeps the PRNG it started with: resuming with another one is refused.
  out = tmp_path / "run"
  code, _, _ = _run(capsys, *TRAIN, "--epochs", 1, "--out", out, "--prng", "philox4x32")
  assert code == 0
  code, _, err = _run(capsys, *TRAIN, "--epochs", 2, "--out", out)
  assert code == 2 and "--prng 'philox4x32' there, 'threefry2x32' here" in err


def test_betas_schedule_thins_and_subdivides():
  full = cli.betas_schedule(None)
  assert len(full) == 14501 and full[0] == 0 and full[-1] == 1
  thin = cli.betas_schedule(1000)
  assert len(thin) == 1000 and thin[0] == 0 and thin[-1] == 1 and np.all(np.diff(thin) > 0)
  fine = cli.betas_schedule(4 * 14500 + 1)  # four steps for each of the default's
  assert np.all(np.diff(fine) > 0)
  np.testing.assert_allclose(fine[::4], full, atol=1e-7)
  # The subdivided steps are even: a quarter of the default's step in each of its three ranges.
  steps = np.diff(fine.astype(np.float64))
  np.testing.assert_allclose([steps[:2000].mean(), steps[3000:4000].mean(), steps[50000:].mean()],
                             [2.5e-4, 2.5e-5, 2.5e-6], rtol=1e-3)
  with pytest.raises(cli.CLIError, match="at least 2"):
    cli.betas_schedule(1)


def test_ais_warning_below_a_tenth_of_the_runs(capsys):
  from jdbn.cli import common
  assert common.ais_warning(50.0, 100) is None and common.ais_warning(10.0, 100) is None
  assert common.ais_warning(float("nan"), 100) is None
  text = common.ais_warning(9.9, 100)
  assert "9.9 of 100 runs" in text and "--n-betas" in text
  common.warn(text)
  common.warn(None)
  out, err = capsys.readouterr()
  assert out == "" and err == f"jdbn: warning: {text}\n"


def test_evaluate_reports_ais_and_exact(run_dir, capsys, monkeypatch):
  from jdbn.cli import common
  monkeypatch.setattr(common, "AIS_MIN_ESS_FRACTION", 1.01)  # any ESS (at most the runs) warns
  code, text, err = _run(capsys, "evaluate", run_dir, "--n-chains", 20, "--n-betas", 300,
                         "--max-examples", 100)
  assert code == 0, text
  assert "warning: AIS effective sample size" in err and "of 20 runs" in err
  numbers = {}
  for line in text.splitlines():
    head, _, rest = line.partition(":")
    if rest.strip():
      numbers[head] = float(rest.split()[0])
  ais = numbers["log Z (AIS, 20 chains, 300 betas)"]
  exact = numbers["log Z (exact)"]
  # 8 hidden units: exact log Z by enumeration. A 2-epoch model is close to its base-rate
  # model, so even a short AIS run is within a small fraction of a nat.
  assert abs(ais - exact) < 0.5
  assert numbers["log-likelihood (exact)"] < 0
  assert abs(numbers["log-likelihood (AIS)"] - numbers["log-likelihood (exact)"]) < 0.5


def test_demo(tmp_path, capsys):
  out = tmp_path / "demo"
  code, text, _ = _run(capsys, "demo", "--out", out, "--epochs", 1, "--no-progress")
  assert code == 0
  for name in ("filters.png", "samples.png"):
    width, _ = _png(out / name)
    assert width >= 10 * 8 * 4  # 10 tiles of 8 pixels, zoomed for people to see
    assert str(out / name) in text
  metrics = json.loads((out / "metrics.json").read_text())
  assert len(metrics["history"]) == 1
  test = metrics["test"]
  assert test["log_likelihood_lower"] <= test["log_likelihood"] <= test["log_likelihood_upper"]
  assert -64 * math.log(2) - 30 < test["log_likelihood"] < 0
  assert test["pseudo_likelihood"] < 0
  # The demo's checkpoint works with the other commands.
  assert checkpoint.load_params(out / train.CHECKPOINT_NAME).W.shape == (64, 100)


@pytest.mark.parametrize("argv, message", [
    (("train", "rbm", "--n-hidden", "0", "--out", "x"), "must be a positive integer"),
    (("train", "rbm", "--lr", "-1", "--out", "x"), "must be a finite number >= 0"),
    (("sample", "x", "--n-steps", "many"), "expected a positive integer"),
    (("evaluate", "x", "--quick", "--n-betas", "10"), "not allowed with argument"),
    (("sample", "x", "--prng", "mt19937"), "invalid choice"),
])
def test_bad_arguments_exit_2(argv, message, capsys):
  with pytest.raises(SystemExit) as err:
    cli.main(list(argv))
  assert err.value.code == 2
  assert message in capsys.readouterr().err


def test_missing_mnist_folder_hints_at_data_dir(tmp_path, capsys):
  code, _, err = _run(capsys, "train", "rbm", "--dataset", "mnist", "--data-dir",
                      tmp_path / "nowhere", "--out", tmp_path / "run")
  assert code == 2
  assert "--data-dir" in err and "JDBN_MNIST_DIR" in err and "nowhere" in err


def test_unknown_checkpoint(tmp_path, capsys):
  for command in ("sample", "evaluate"):
    code, _, err = _run(capsys, command, tmp_path / "nope")
    assert code == 2 and "unknown checkpoint" in err
  code, _, err = _run(capsys, "sample", tmp_path)  # a folder without checkpoint.npz
  assert code == 2 and "holds no checkpoint.npz" in err
  (tmp_path / "junk.npz").write_bytes(b"junk")
  code, _, err = _run(capsys, "sample", tmp_path / "junk.npz")
  assert code == 2 and "is not a jdbn checkpoint (not an .npz file)" in err


def test_gaussian_preprocessing_round_trips():
  x = np.random.default_rng(0).uniform(size=(50, 6)).astype(np.float32)
  x[:, 0] = 0.0  # a constant pixel, like MNIST's border
  spec = cli._preprocess_spec(x, "gaussian", "none")
  z = cli._apply_preprocess(None, x, spec)
  assert np.all(np.isfinite(z)) and np.allclose(z[:, 1:].mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(cli._to_image(z, spec), x, atol=1e-5)
  json.dumps(spec)  # stored in the checkpoint's metadata


def test_dbn_train_generate_evaluate(tmp_path, capsys):
  """`jdbn train dbn`, `jdbn generate` and `jdbn evaluate` on a tiny DBN end to end."""
  out = tmp_path / "dbn"
  assert cli.main(["train", "dbn", "--dataset", "digits", "--sizes", "16,16", "--epochs", "1",
                   "--updown-epochs", "1", "--sample-steps", "5", "--out", str(out),
                   "--no-progress"]) == 0
  assert (out / "dbn.npz").is_file() and json.loads((out / "metrics.json").read_text())
  Image.open(out / "samples.png").verify()
  assert cli.main(["generate", str(out), "--n-steps", "5", "--out",
                   str(tmp_path / "gen.png")]) == 0
  Image.open(tmp_path / "gen.png").verify()
  capsys.readouterr()
  assert cli.main(["evaluate", str(out), "--dataset", "digits", "--n-chains", "10",
                   "--n-betas", "200"]) == 0
  text = capsys.readouterr().out
  assert "classification error" in text and "lower bound" in text


def test_dbn_updown_schedules_and_resume(tmp_path, capsys):
  """--updown-k-schedule and --updown-lr-decay-start set each epoch's sweeps and rate, recorded
  per epoch; a run resumes, also from a checkpoint written before the rate was a
  hyperparameter (plain SGD state)."""
  import optax
  from jdbn import checkpoint
  from jdbn import dbn as D
  out = tmp_path / "dbn"
  base = ["train", "dbn", "--dataset", "digits", "--sizes", "16,16", "--epochs", "1",
          "--sample-steps", "2", "--out", str(out), "--no-progress", "--updown-lr", "0.02",
          "--updown-k-schedule", "1:2,3", "--updown-lr-decay-start", "2"]
  assert cli.main(base + ["--updown-epochs", "4"]) == 0
  rows = json.loads((out / "metrics.json").read_text())["updown"]
  assert [r["k"] for r in rows] == [1, 1, 3, 3]
  np.testing.assert_allclose([r["lr"] for r in rows], [0.02, 0.02, 0.02, 0.01])
  # An old checkpoint: the same params under optax.sgd's state; resuming re-creates the rate.
  model = checkpoint.restore(out / "dbn.npz")[0]
  like = D.updown(optax.inject_hyperparams(optax.sgd)(learning_rate=0.02)).init(None, model)
  tree, meta = checkpoint.restore(out / "updown.npz", like={"state": like})
  old = D.updown(optax.sgd(0.02)).init(None, tree["state"].params)
  checkpoint.save(out / "updown.npz", {"state": old}, metadata=meta)
  assert cli.main(base + ["--updown-epochs", "5", "--updown-lr-decay-start", "4"]) == 0
  rows = json.loads((out / "metrics.json").read_text())["updown"]
  assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5] and rows[-1]["k"] == 3
  assert rows[-1]["lr"] == pytest.approx(0.02)
  capsys.readouterr()
  for bad in (["--updown-k-schedule", "3:5,2:1,1"], ["--updown-lr-decay-start", "4"]):
    assert cli.main(base[:-4] + ["--updown-epochs", "4"] + bad) == 2
    assert "--updown-" in capsys.readouterr().err


def test_dbn_updown_balanced(tmp_path, capsys):
  """--updown-balanced: up-down on class-balanced batches, recorded in the run's settings; a batch
  size that is not a multiple of the 10 classes, or no labels, is refused before any training."""
  out = tmp_path / "dbn"
  base = ["train", "dbn", "--dataset", "digits", "--sizes", "16,16", "--epochs", "1",
          "--sample-steps", "2", "--no-progress", "--updown-epochs", "1", "--updown-balanced"]
  assert cli.main(base + ["--out", str(out)]) == 0
  assert json.loads((out / "settings.json").read_text())["updown_balanced"] is True
  # 1,300 training digits whose rarest class has 128: 64 batches of 2 per class (batch 20),
  # where a shuffled epoch has 65.
  from jdbn import checkpoint
  tree, meta = checkpoint.restore(out / "updown.npz")
  assert meta["epoch"] == 1 and int(tree["state"].step) == 64
  capsys.readouterr()
  assert cli.main(base + ["--out", str(tmp_path / "b"), "--batch-size", "25"]) == 2
  assert "--updown-balanced: batch_size must be a positive multiple" in capsys.readouterr().err
  assert not (tmp_path / "b" / "pretrain").exists()
  assert cli.main(base + ["--out", str(tmp_path / "c"), "--no-labels"]) == 2
  assert "--updown-balanced needs the labels" in capsys.readouterr().err


def test_dbn_discriminative_fine_tuning_resumes_and_is_evaluated(tmp_path, capsys):
  """`jdbn train dbn --finetune-epochs`: classifier.npz, resumable, reported by `jdbn evaluate`."""
  from jdbn import checkpoint
  from jdbn import cli_dbn
  from jdbn import data
  from jdbn import finetune as F
  out = tmp_path / "dbn"
  base = ["train", "dbn", "--dataset", "digits", "--sizes", "16,16", "--epochs", "1",
          "--sample-steps", "2", "--out", str(out), "--no-progress", "--dropout", "0.2",
          "--max-norm", "3"]
  assert cli.main(base + ["--finetune-epochs", "2"]) == 0
  assert cli.main(base + ["--finetune-epochs", "3"]) == 0  # resumes: one more epoch
  metrics = json.loads((out / "metrics.json").read_text())["finetune"]
  assert [r["epoch"] for r in metrics["history"]] == [1, 2, 3] and metrics["epochs"] == 3
  ckpt_meta = checkpoint.read_metadata(out / "finetune.npz")
  assert ckpt_meta["epoch"] == 3
  module, variables = cli_dbn.load_classifier(out)
  assert module.hidden_sizes == (16, 16) and module.dropout_rate == 0.2
  for n in F.column_norms(variables).values():
    assert float(n.max()) <= 3 * (1 + 1e-5)
  valid = data.split_validation(data.load_digits("train"), 200)[1]
  assert F.error_rate(module, variables, valid.x, valid.y) == pytest.approx(
      metrics["valid_error"])
  capsys.readouterr()
  other = [("0.5" if a == "0.2" else a) for a in base]  # another dropout is another run
  assert cli.main(other + ["--finetune-epochs", "3"]) == 2
  assert "--dropout 0.2 there, 0.5 here" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    cli.main(base + ["--finetune-epochs", "3", "--input-dropout", "1"])  # not a probability
  # A rate that diverges stops with exit status 3, the last good epoch's checkpoint kept.
  diverging = base[:-4] + ["--finetune-lr", "1e38", "--finetune-epochs", "2"]
  diverging[diverging.index("--out") + 1] = str(tmp_path / "diverged")
  assert cli.main(diverging) == cli.EXIT_DIVERGED == 3
  assert "diverged" in capsys.readouterr().err
  assert cli.main(["evaluate", str(out), "--dataset", "digits", "--n-chains", "10",
                   "--n-betas", "100"]) == 0
  assert "fine-tuned network's classification error" in capsys.readouterr().out


def test_dbn_rejected_run_leaves_its_folder_usable(tmp_path, capsys):
  """Inputs refused against the data (here a batch larger than the training split) leave no
  settings behind, so the corrected command runs in the same --out."""
  out = tmp_path / "dbn"
  base = ["train", "dbn", "--dataset", "digits", "--sizes", "8", "--epochs", "1",
          "--sample-steps", "2", "--out", str(out), "--no-progress"]
  assert cli.main(base + ["--batch-size", "5000"]) == 2
  assert "exceeds the 1300 training examples" in capsys.readouterr().err
  assert not (out / "settings.json").exists()
  assert cli.main(base + ["--batch-size", "20"]) == 0


def test_dbn_resume_with_more_pretraining_redoes_the_later_stages(tmp_path, capsys):
  """More --epochs on resume pretrains further, and up-down and fine-tuning then start again
  from the new DBN instead of restoring states trained on the old one."""
  out = tmp_path / "dbn"
  base = ["train", "dbn", "--dataset", "digits", "--sizes", "8,8", "--sample-steps", "2",
          "--out", str(out), "--no-progress", "--updown-epochs", "2", "--finetune-epochs", "1"]
  assert cli.main(base + ["--epochs", "1"]) == 0
  first = checkpoint.restore(out / "dbn.npz")[0]
  capsys.readouterr()
  assert cli.main(base + ["--epochs", "2"]) == 0
  text = capsys.readouterr().out
  assert "up-down starts again" in text and "fine-tuning starts again" in text
  assert checkpoint.read_metadata(out / "updown.npz")["pretrain_epochs"] == 2
  assert checkpoint.read_metadata(out / "finetune.npz")["source"] == {
      "pretrain_epochs": 2, "updown_epochs": 2}
  second = checkpoint.restore(out / "dbn.npz")[0]
  assert not np.allclose(first.top.W, second.top.W)
  # The same settings again: everything is resumed as it is, nothing restarts.
  assert cli.main(base + ["--epochs", "2"]) == 0
  assert "starts again" not in capsys.readouterr().out
  np.testing.assert_array_equal(checkpoint.restore(out / "dbn.npz")[0].top.W, second.top.W)


def test_generate_refuses_labels_for_a_dbn_without_label_units(tmp_path, capsys):
  out = tmp_path / "nolab"
  assert cli.main(["train", "dbn", "--dataset", "digits", "--sizes", "8", "--epochs", "1",
                   "--no-labels", "--sample-steps", "2", "--out", str(out),
                   "--no-progress"]) == 0
  capsys.readouterr()
  for extra in (["--labels", "3,3,7"], ["--per-class", "2"]):
    assert cli.main(["generate", str(out), "--n-steps", "2", "--out",
                     str(tmp_path / "g.png")] + extra) == 2
    assert "no label units" in capsys.readouterr().err
  assert not (tmp_path / "g.png").exists()
  assert cli.main(["generate", str(out), "--n-steps", "2", "--n-samples", "4", "--out",
                   str(tmp_path / "g.png")]) == 0


def test_dbn_run_records_its_data_folder(tmp_path, mnist_dir, monkeypatch, capsys):
  """A DBN trained with --data-dir is evaluated on the same folder without naming it again."""
  from jdbn import data
  monkeypatch.delenv(data.MNIST_ENV_VAR, raising=False)
  out = tmp_path / "mdbn"
  assert cli.main(["train", "dbn", "--dataset", "mnist", "--data-dir", str(mnist_dir),
                   "--sizes", "8", "--epochs", "1", "--n-valid", "59000", "--sample-steps", "2",
                   "--out", str(out), "--no-progress"]) == 0
  assert checkpoint.read_metadata(out / "dbn.npz")["data_dir"] == str(mnist_dir.resolve())
  capsys.readouterr()
  assert cli.main(["evaluate", str(out), "--dataset", "mnist", "--max-examples", "200",
                   "--n-chains", "4", "--n-betas", "50"]) == 0
  assert "generative classification error" in capsys.readouterr().out


def test_rbm_evaluate_reuses_the_recorded_data_folder(tmp_path, mnist_dir, monkeypatch, capsys):
  """`jdbn evaluate` on an RBM trained with --data-dir finds the same MNIST folder by itself;
  an explicit --data-dir still wins (a missing one is reported)."""
  from jdbn import data
  monkeypatch.delenv(data.MNIST_ENV_VAR, raising=False)
  out = tmp_path / "mrbm"
  code, text, err = _run(capsys, "train", "rbm", "--dataset", "mnist", "--data-dir", mnist_dir,
                         "--n-hidden", 4, "--epochs", 1, "--sample-steps", 2, "--out", out,
                         "--no-progress")
  assert code == 0, text + err
  code, text, err = _run(capsys, "evaluate", out, "--n-chains", 4, "--n-betas", 50,
                         "--max-examples", 100)
  assert code == 0 and "log Z (exact)" in text, text + err
  code, _, err = _run(capsys, "evaluate", out, "--data-dir", tmp_path / "nowhere",
                      "--max-examples", 100)
  assert code == 2 and "nowhere" in err


# --------------------------------------------------------------------------- train dbm

# A constant joint rate (--lr-final = --lr), so that a run resumed with more --epochs must equal
# one trained straight through (a decaying rate spans each invocation's --epochs).
DBM = ("train", "dbm", "--dataset", "digits", "--hidden", "16,8", "--pretrain-epochs", 1,
       "--n-chains", 10, "-k", 2, "--batch-size", 50, "--lr", 0.01, "--lr-final", 0.01,
       "--sample-steps", 5, "--no-progress")


@pytest.fixture(scope="module")
def dbm_dir(tmp_path_factory):
  """A tiny 64-16-8 DBM: one joint epoch, then resumed for a second and fine-tuned for one."""
  out = tmp_path_factory.mktemp("dbm")
  assert cli.main([str(a) for a in DBM + ("--epochs", 1, "--out", out)]) == 0
  first = checkpoint.load_params(out / "checkpoint.npz")
  assert cli.main([str(a) for a in DBM + ("--epochs", 2, "--finetune-epochs", 1,
                                          "--out", out)]) == 0
  return out, first


def test_train_dbm_writes_every_file_and_resumes_exactly(dbm_dir, tmp_path):
  import jax
  from jdbn.models import dbm as D
  out, first = dbm_dir
  straight = tmp_path / "straight"
  assert cli.main([str(a) for a in DBM + ("--epochs", 2, "--out", straight)]) == 0
  resumed = checkpoint.load(out / "checkpoint.npz")["state"]
  for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(
      checkpoint.load(straight / "checkpoint.npz")["state"]), strict=True):
    np.testing.assert_array_equal(a, b)  # params, optimizer state, chains, step
  for name in ("filters.png", "samples.png"):
    width, height = _png(out / name)
    assert width > 8 and height > 8
  pretrained = checkpoint.load_params(out / "pretrained.npz")
  assert isinstance(pretrained, D.DBM) and pretrained.sizes == (64, 16, 8)
  tree, meta = checkpoint.restore(out / "checkpoint.npz")
  state = tree["state"]
  assert meta["epoch"] == 2 and meta["user"]["command"] == "train dbm"
  assert meta["user"]["settings"]["hidden"] == [16, 8]
  assert state.chains is not None and int(state.step) == 2 * (1300 // 50)
  assert not np.allclose(state.params.weights[0], first.weights[0])  # the resumed epoch trained
  metrics = json.loads((out / "metrics.json").read_text())
  assert [row["epoch"] for row in metrics["history"]] == [1, 2]
  for row in metrics["history"]:
    for name in ("loss", "recon_error", "grad_norm", "mf_sweeps", "mf_sweeps_max",
                 "mf_converged", "mf_unnormalised_bound", "seconds"):
      assert math.isfinite(row[name]), name
  assert [len(layer) for layer in metrics["pretrain"]] == [1, 1]
  assert [r["epoch"] for r in metrics["finetune"]["history"]] == [1]
  assert (out / "classifier.npz").is_file()


def test_train_dbm_refuses_other_settings_and_bad_hidden(dbm_dir, tmp_path, capsys):
  out, _ = dbm_dir
  argv = list(DBM)
  argv[argv.index("-k") + 1] = 3
  code, _, err = _run(capsys, *argv, "--epochs", 3, "--out", out)
  assert code == 2 and "-k 2 there, 3 here" in err
  code, _, err = _run(capsys, *DBM, "--epochs", 3, "--finetune-epochs", 2, "--dropout", 0.5,
                      "--out", out)
  assert code == 2 and "--dropout 0.0 there, 0.5 here" in err
  assert checkpoint.read_metadata(out / "checkpoint.npz")["epoch"] == 2  # nothing ran
  for bad, message in [("16,x", "expected hidden layer sizes such as 500,1000"),
                       ("16,0", "hidden layer sizes must be positive integers"),
                       ("", "expected hidden layer sizes")]:
    argv = list(DBM)
    argv[argv.index("--hidden") + 1] = bad
    with pytest.raises(SystemExit) as exc:
      cli.main([str(a) for a in argv + ["--out", tmp_path / "bad"]])
    assert exc.value.code == 2 and message in capsys.readouterr().err
  code, _, err = _run(capsys, *DBM[:4], "--hidden", 16, "--finetune-epochs", 1, "--out",
                      tmp_path / "one")
  assert code == 2 and "at least two layers" in err


def test_train_dbm_finetune_on_all_keeps_the_last_epoch(dbm_dir, tmp_path, capsys):
  """``--finetune-on-all``: the training and validation images together, a fixed number of
  epochs, the last epoch's network kept; refused on a folder fine-tuned without it."""
  import shutil

  import jax
  out, _ = dbm_dir
  code, _, err = _run(capsys, *DBM, "--epochs", 2, "--finetune-epochs", 2, "--finetune-on-all",
                      "--out", out)
  assert code == 2 and "--finetune-on-all False there, True here" in err
  copy = tmp_path / "all"
  shutil.copytree(out, copy)
  for name in ("finetune.npz", "classifier.npz"):
    (copy / name).unlink()
  code, text, err = _run(capsys, *DBM, "--epochs", 2, "--finetune-epochs", 2, "--finetune-on-all",
                         "--patience", 1, "--out", copy)
  assert code == 0, err
  assert "2 epochs on all 1500 images, the last kept" in text
  metrics = json.loads((copy / "metrics.json").read_text())["finetune"]
  assert metrics["on_all"] and metrics["epochs"] == 2 and len(metrics["history"]) == 2
  kept, meta = checkpoint.restore(copy / "classifier.npz")
  assert meta["on_all"] is True
  last = checkpoint.restore(copy / "finetune.npz")[0]["state"].variables
  for a, b in zip(jax.tree.leaves(kept), jax.tree.leaves(last), strict=True):
    np.testing.assert_array_equal(a, b)


def test_train_dbm_finetunes_on_the_intensities_of_binarized_data(tmp_path, capsys):
  """A DBM trained on thresholded images: its network is fine-tuned and evaluated on the grey
  levels (the paper's fine-tuning), unless ``--finetune-input binarized``; the folder remembers
  which."""
  from jdbn import data
  from jdbn.cli.dbm_run import load_dbm
  from jdbn.cli.dbn_run import load_classifier
  from jdbn.train import classifier_dbm
  from jdbn.train import finetune as F
  out = tmp_path / "thr"
  argv = (*DBM, "--binarize", "threshold", "--epochs", 1, "--finetune-epochs", 1)
  code, _, err = _run(capsys, *argv, "--out", out)
  assert code == 0, err
  assert checkpoint.read_metadata(out / "classifier.npz")["finetune_input"] == "intensities"
  code, text, err = _run(capsys, "evaluate", out, "--n-chains", 10, "--n-betas", 100)
  assert code == 0, err
  printed = float(text.split("fine-tuned network's classification error:")[1].split()[0])
  model, _, _ = load_dbm(out)
  test = data.load("digits", "test", None)
  module, variables = load_classifier(out)
  grey = F.error_rate(module, variables, classifier_dbm.features(model, test.x), test.y)
  assert printed == pytest.approx(grey, abs=1e-4)
  code, _, err = _run(capsys, *argv[:-1], 2, "--finetune-input", "binarized", "--out", out)
  assert code == 2 and "--finetune-input 'intensities' there, 'binarized' here" in err


def test_train_and_evaluate_a_dbm_with_a_label_block(dbm_dir, tmp_path, capsys):
  """``--labels``: the 64-16-8 DBM gets 10 label units on top, pretrained with the last RBM, the
  positive phase clamps them; training prints the label block's validation error and evaluate
  its test error; a folder trained without labels refuses to resume with them."""
  from jdbn.cli.dbm_run import load_dbm
  from jdbn.models import dbm as D
  out = tmp_path / "labels"
  code, text, err = _run(capsys, *DBM, "--labels", "--epochs", 2, "--finetune-epochs", 1,
                         "--out", out)
  assert code == 0, err
  model, _, _ = load_dbm(out)
  assert model.sizes == (64, 16, 8, 10) and D.has_label_block(model)
  assert checkpoint.load_params(out / "pretrained.npz").sizes == (64, 16, 8, 10)
  valid = float(text.split("label block's validation error:")[1].split()[0])
  assert valid < 0.9  # chance is 0.9: two epochs of a 16-8 DBM already beat it
  assert json.loads((out / "metrics.json").read_text())["label_valid_error"] == pytest.approx(
      valid, abs=1e-6)
  code, text, err = _run(capsys, "evaluate", out, "--n-chains", 50, "--n-betas", 300)
  assert code == 0, err
  # h1 (16 units) and the labels enumerated: the class-by-class AIS is close to the exact log Z
  ais = float(text.split("log Z (AIS, 50 chains, 5 per class, 300 betas):")[1].split()[0])
  assert abs(ais - float(text.split("log Z (exact):")[1].split()[0])) < 0.5
  test_error = float(text.split("label block's classification error:")[1].split()[0])
  assert 0 <= test_error < 0.9 and "fine-tuned network's classification error" in text
  png = tmp_path / "rows.png"
  code, text, err = _run(capsys, "sample", out, "--n-samples", 20, "--n-steps", 5, "--out", png)
  assert code == 0 and "20 samples" in text and "a row per class" in text, err
  width, height = _png(png)
  assert height > 4 * width  # 10 rows (one per class) of 2
  code, _, err = _run(capsys, *DBM, "--labels", "--epochs", 3, "--out", dbm_dir[0])
  assert code == 2 and "--labels False there, True here" in err


def test_evaluate_and_sample_a_dbm_run(dbm_dir, tmp_path, capsys):
  out, _ = dbm_dir
  code, text, err = _run(capsys, "evaluate", out, "--n-chains", 20, "--n-betas", 300)
  assert code == 0, text + err
  numbers = {}
  for line in text.splitlines():
    head, _, rest = line.partition(":")
    if rest.strip():
      numbers[head] = float(rest.split()[0])
  # h1 has 16 units: exact log Z by enumerating them; a short AIS run is close to it.
  ais, exact = numbers["log Z (AIS, 20 chains, 300 betas)"], numbers["log Z (exact)"]
  assert abs(ais - exact) < 0.5
  bound = numbers["variational lower bound (AIS log Z)"]
  assert -64 * math.log(2) - 20 < bound < 0
  assert "over 297 examples" in text and "mean-field converged" in text
  error = numbers["fine-tuned network's classification error"]
  assert 0 <= error <= 1
  png = tmp_path / "dbm.png"
  code, text, _ = _run(capsys, "sample", out, "--n-samples", 20, "--n-steps", 10, "--out", png)
  assert code == 0 and str(png) in text and "DBM 64-16-8" in text
  assert _png(png)[0] > 8 * 5
  # Joint training goes on without fine-tuning: the network no longer matches the DBM's q, so
  # evaluate says so instead of scoring it; metrics.json keeps the fine-tuning record.
  assert cli.main([str(a) for a in DBM + ("--epochs", 3, "--out", out)]) == 0
  code, text, _ = _run(capsys, "evaluate", out, "--n-chains", 5, "--n-betas", 50)
  assert code == 0 and "after 2 joint epochs and the run has 3 now" in text
  assert "classification error" not in text
  assert len(json.loads((out / "metrics.json").read_text())["finetune"]["history"]) == 1


def test_train_dbm_divergence_exits_3(tmp_path, capsys):
  code, _, err = _run(capsys, *DBM, "--epochs", 1, "--lr", 1e30, "--out", tmp_path / "nan")
  assert code == cli.EXIT_DIVERGED
  assert "joint training: training diverged in epoch 1" in err


# --------------------------------------------------------------------------- train dbm --center

# No pretraining, a centered DBM with offsets that move quickly (--offset-rate 0.05).
_P = DBM.index("--pretrain-epochs") + 1
CENTERED_DBM = DBM[:_P] + (0,) + DBM[_P + 1:] + ("--center", "--offset-rate", 0.05)


@pytest.fixture(scope="module")
def centered_dbm_dir(tmp_path_factory):
  """A tiny centered 64-16-8 DBM without pretraining: one joint epoch, then resumed for a second
  and fine-tuned for one; ``(folder, the model after one epoch)``."""
  out = tmp_path_factory.mktemp("centered_dbm")
  assert cli.main([str(a) for a in CENTERED_DBM + ("--epochs", 1, "--out", out)]) == 0
  first = checkpoint.load_params(out / "checkpoint.npz")
  assert cli.main([str(a) for a in CENTERED_DBM + ("--epochs", 2, "--finetune-epochs", 1,
                                                   "--out", out)]) == 0
  return out, first


def test_train_dbm_centered_without_pretraining_resumes_exactly(centered_dbm_dir, tmp_path):
  """`--center --pretrain-epochs 0`: no pretrained.npz, the checkpoint holds the CenteredDBM
  (rebuilt from its header alone), its offsets moved in training, and the run resumed from it
  equals one trained straight through, offsets, chains and optimizer state included."""
  import jax
  from jdbn.models import centered as CM
  out, first = centered_dbm_dir
  assert not (out / "pretrained.npz").exists()
  assert isinstance(first, CM.CenteredDBM) and first.sizes == (64, 16, 8)
  tree, meta = checkpoint.restore(out / "checkpoint.npz")
  state = tree["state"]
  assert isinstance(state.params, CM.CenteredDBM) and meta["epoch"] == 2
  settings = meta["user"]["settings"]
  assert settings["center"] is True and settings["offset_rate"] == 0.05
  assert settings["pretrain_epochs"] == 0
  for a, b in zip(state.params.offsets, first.offsets):
    assert not np.allclose(a, b)  # the resumed epoch moved the offsets
  straight = tmp_path / "straight"
  assert cli.main([str(a) for a in CENTERED_DBM + ("--epochs", 2, "--out", straight)]) == 0
  again = checkpoint.load(straight / "checkpoint.npz")["state"]
  assert jax.tree.structure(again) == jax.tree.structure(state)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(again), strict=True):
    np.testing.assert_array_equal(a, b)
  metrics = json.loads((out / "metrics.json").read_text())
  assert metrics["pretrain"] == [] and [r["epoch"] for r in metrics["history"]] == [1, 2]
  assert all(math.isfinite(r["mf_unnormalised_bound"]) for r in metrics["history"])
  assert [r["epoch"] for r in metrics["finetune"]["history"]] == [1]
  for name in ("filters.png", "samples.png"):
    assert _png(out / name)[0] > 8


def test_a_centered_dbm_run_is_read_as_the_dbm_it_equals(centered_dbm_dir):
  """`load_dbm` (evaluate, sample) gives an ordinary DBM with the centered one's distribution:
  free energies that differ by the constant ``sum_l mu_l W_l mu_{l+1}`` and the same normalised
  ``log p(v, h2)``, in float64. The uncentered biases were rounded to float32 once, which moves
  these by about 1e-6 here; 1e-5 is the bound."""
  import jax
  import jax.numpy as jnp
  from jdbn.cli.dbm_run import load_dbm
  from jdbn.models import dbm as D
  out, _ = centered_dbm_dir
  centered = checkpoint.load_params(out / "checkpoint.npz")
  model, user, _ = load_dbm(str(out))
  assert type(model) is D.DBM and user["settings"]["center"] is True
  rng = np.random.default_rng(0)
  v = (rng.random((50, 64)) < 0.3).astype(np.float64)
  h2 = (rng.random((50, 8)) < 0.5).astype(np.float64)
  with jax.enable_x64(True):
    c64, u64 = (jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), m) for m in (centered, model))
    f_c = np.asarray(D.free_energy(c64, (v, None, h2)))
    f_u = np.asarray(D.free_energy(u64, (v, None, h2)))
    const = sum(float(o @ w @ p) for o, w, p in zip(c64.offsets, c64.weights, c64.offsets[1:]))
    log_z_c, log_z_u = float(D.exact_log_z(c64)), float(D.exact_log_z(u64))
  assert abs(const) > 1e-3  # the offsets are not zero: the two energies do differ
  np.testing.assert_allclose(f_u - f_c, const, rtol=0, atol=1e-5)
  np.testing.assert_allclose(-f_u - log_z_u, -f_c - log_z_c, rtol=0, atol=1e-5)


def test_evaluate_and_sample_a_centered_dbm_run(centered_dbm_dir, tmp_path, capsys):
  out, _ = centered_dbm_dir
  code, text, err = _run(capsys, "evaluate", out, "--n-chains", 20, "--n-betas", 300)
  assert code == 0, text + err
  numbers = {}
  for line in text.splitlines():
    head, _, rest = line.partition(":")
    if rest.strip():
      numbers[head] = float(rest.split()[0])
  ais, exact = numbers["log Z (AIS, 20 chains, 300 betas)"], numbers["log Z (exact)"]
  assert math.isfinite(ais) and abs(ais - exact) < 0.5
  bound = numbers["variational lower bound (AIS log Z)"]
  assert -64 * math.log(2) - 20 < bound < 0
  assert 0 <= numbers["fine-tuned network's classification error"] <= 1
  png = tmp_path / "centered.png"
  code, text, _ = _run(capsys, "sample", out, "--n-samples", 20, "--n-steps", 10, "--out", png)
  assert code == 0 and "DBM 64-16-8" in text and _png(png)[0] > 8 * 5


def test_train_dbm_refuses_a_changed_center_and_a_bad_offset_rate(centered_dbm_dir, dbm_dir,
                                                                  tmp_path, capsys):
  """Resuming with --center dropped, added or with another --offset-rate is refused before any
  work; an older run folder with no `center` in its settings counts as not centered."""
  import shutil
  out, _ = centered_dbm_dir
  plain = [a for a in CENTERED_DBM if a != "--center"]
  code, text, err = _run(capsys, *plain, "--epochs", 3, "--out", out)
  assert code == 2 and "--center True there, False here" in err and "resuming" not in text
  argv = list(CENTERED_DBM)
  argv[argv.index("--offset-rate") + 1] = 0.1
  code, _, err = _run(capsys, *argv, "--epochs", 3, "--out", out)
  assert code == 2 and "--offset-rate 0.05 there, 0.1 here" in err
  assert checkpoint.read_metadata(out / "checkpoint.npz")["epoch"] == 2  # nothing ran
  pretrained, _ = dbm_dir
  old = tmp_path / "old"
  shutil.copytree(pretrained, old)
  for name in ("pretrained.npz", "checkpoint.npz"):
    tree, meta = checkpoint.restore(old / name)
    assert meta["user"]["settings"].pop("center") is False
    checkpoint.save(old / name, tree, metadata=meta)
  code, _, err = _run(capsys, *DBM, "--center", "--epochs", 9, "--out", old)
  assert code == 2 and "--center False there, True here" in err
  argv = list(CENTERED_DBM)
  argv[argv.index("--offset-rate") + 1] = 1.5
  code, _, err = _run(capsys, *argv, "--epochs", 1, "--out", tmp_path / "bad")
  assert code == 2 and "--offset-rate must be in (0, 1], got 1.5" in err
  for flag, bad, message in [("--offset-rate", 0, "must be > 0"),
                             ("--pretrain-epochs", -1, "must be an integer >= 0")]:
    argv = list(CENTERED_DBM)
    argv[argv.index(flag) + 1] = bad
    with pytest.raises(SystemExit) as exc:
      cli.main([str(a) for a in argv + ["--epochs", 1, "--out", tmp_path / "bad"]])
    assert exc.value.code == 2 and message in capsys.readouterr().err
  assert not (tmp_path / "bad" / "checkpoint.npz").exists()
