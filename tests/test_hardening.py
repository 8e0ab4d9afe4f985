"""Probes a new user (or a crash) would make: damaged checkpoints, unwritable output folders.

Every damaged file must end in one clear error that names the file (exit status 2 from the
command line), never in a traceback from inside zipfile or NumPy, and never be overwritten.
"""

import pathlib
import pickle

import jax
import numpy as np
import pytest

from jdbn import checkpoint, cli, train

TRAIN = ("train", "rbm", "--dataset", "digits", "--n-hidden", 8, "--method", "cd", "--lr", 0.1,
         "--batch-size", 100, "--binarize", "threshold", "--sample-steps", 10, "--no-progress")


def _run(capsys, *argv):
  code = cli.main([str(a) for a in argv])
  out, err = capsys.readouterr()
  return code, out, err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("run")
  assert cli.main([str(a) for a in TRAIN + ("--epochs", 1, "--out", out)]) == 0
  return out


def _weights_offset(data: bytes, path: pathlib.Path) -> int:
  """The byte offset of the RBM's weights inside the checkpoint file."""
  tree = checkpoint.load(path)
  w = np.asarray(tree["state"].params.W)
  return data.index(w.tobytes()[:64])


def _damaged_copies(path: pathlib.Path, folder: pathlib.Path) -> dict:
  data = path.read_bytes()
  flip = bytearray(data)
  flip[_weights_offset(data, path) + 100] ^= 0x10
  hostile = pickle.dumps(print)  # what an unpickling loader would execute
  return {
      "truncated": data[:len(data) // 2],
      "bit-flipped weights": bytes(flip),
      "random bytes": np.random.default_rng(0).bytes(len(data)),
      "hostile pickle": hostile,
      "zip of a pickle": _zip_of(folder, hostile),
  }


def _zip_of(folder, payload):
  import zipfile  # pylint: disable=import-outside-toplevel
  target = folder / "zip.npz"
  with zipfile.ZipFile(target, "w") as z:
    z.writestr("__header__.npy", payload)
  return target.read_bytes()


@pytest.mark.parametrize("kind", ["truncated", "bit-flipped weights", "random bytes",
                                  "hostile pickle", "zip of a pickle"])
def test_damaged_checkpoint_is_one_clear_error_everywhere(run_dir, tmp_path, capsys, kind):
  bad = tmp_path / "run"
  bad.mkdir()
  content = _damaged_copies(run_dir / train.CHECKPOINT_NAME, tmp_path)[kind]
  (bad / train.CHECKPOINT_NAME).write_bytes(content)
  with pytest.raises(checkpoint.CheckpointError, match="checkpoint.npz"):
    checkpoint.load(bad / train.CHECKPOINT_NAME)
  for argv in (("sample", bad, "--out", tmp_path / "s.png"), ("evaluate", bad),
               TRAIN + ("--epochs", 2, "--out", bad)):
    code, _, err = _run(capsys, *argv)
    assert code == 2, (argv, err)
    assert "checkpoint.npz" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
  # Resuming refused to touch it: the damaged file is exactly as it was.
  assert (bad / train.CHECKPOINT_NAME).read_bytes() == content
  assert not (tmp_path / "s.png").exists()


def test_fuzzed_checkpoints_load_correctly_or_fail_clearly(run_dir, tmp_path):
  """Random truncations and byte flips of a real checkpoint (seeded): each one either loads
  and equals the original, or raises CheckpointError; nothing else escapes."""
  path = run_dir / train.CHECKPOINT_NAME
  data = path.read_bytes()
  good = checkpoint.load(path)
  rng = np.random.default_rng(1)
  outcomes = {"error": 0, "same": 0}
  target = tmp_path / "fuzz.npz"
  for i in range(150):
    b = bytearray(data)
    if i % 3 == 0:
      b = b[:rng.integers(0, len(data))]
    else:
      for pos in rng.integers(0, len(data), size=rng.integers(1, 4)):
        b[pos] ^= 1 << int(rng.integers(0, 8))
    target.write_bytes(bytes(b))
    try:
      tree = checkpoint.load(target)
    except checkpoint.CheckpointError as err:
      assert "fuzz.npz" in str(err)
      outcomes["error"] += 1
      continue
    for x, y in zip(jax.tree.leaves(tree), jax.tree.leaves(good)):
      np.testing.assert_array_equal(np.asarray(jax.random.key_data(x) if _is_key(x) else x),
                                    np.asarray(jax.random.key_data(y) if _is_key(y) else y))
    outcomes["same"] += 1
  assert outcomes["error"] > 100, outcomes


def _is_key(x):
  return jax.dtypes.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key)


@pytest.mark.parametrize("command", ["train", "demo", "sample", "train dbn"])
def test_unwritable_out_is_refused_before_any_work(run_dir, tmp_path, capsys, command):
  blocker = tmp_path / "a-file"
  blocker.write_text("x")
  out = blocker / "sub"  # a folder cannot be made inside a file, even by root
  argv = {
      "train": TRAIN + ("--epochs", 1, "--out", out),
      "demo": ("demo", "--out", out),
      "sample": ("sample", run_dir, "--out", out / "s.png"),
      "train dbn": ("train", "dbn", "--dataset", "digits", "--sizes", "8", "--epochs", 1,
                    "--out", out, "--no-progress"),
  }[command]
  code, text, err = _run(capsys, *argv)
  assert code == 2 and "cannot be written" in err, err
  assert "training" not in text and "epoch" not in text  # refused before any work


def test_small_library_checks():
  from jdbn import contrastive, gibbs, rbm  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  params = rbm.init(jax.random.key(0), 6, 4)
  with pytest.raises(ValueError, match="v0 has shape .7, 6. for n_chains=5"):
    gibbs.sample(jax.random.key(0), params, 5, 3, v0=np.zeros((7, 6), np.float32))
  state = gibbs.init_random(jax.random.key(0), params, 3)
  final, _ = gibbs.chain(jax.random.key(1), params, state, np.int64(3))
  assert final.v.shape == (3, 6)
  with pytest.raises(ValueError, match="batch shapes"):
    rbm.energy(params, np.zeros((3, 6)), np.zeros((2, 4)))
  with pytest.raises(ValueError, match=r"params.c has shape \(1,\)"):
    rbm.energy(params.replace(c=np.zeros(1, np.float32)), np.zeros((3, 6)), np.zeros((3, 4)))
  with pytest.raises(ValueError, match="params.b"):
    rbm.free_energy(params.replace(b=np.zeros(5, np.float32)), np.zeros((3, 6)))
  with pytest.raises(ValueError, match="k "):
    contrastive.cd(optax.sgd(0.1), k=True)
  with pytest.raises(ValueError, match="n_hidden"):
    rbm.init(jax.random.key(0), 6, True)


@pytest.mark.parametrize("bad,message", [
    (np.full((20, 6), np.nan, np.float32), "NaN"),
    (np.full((20, 6), 2.0, np.float32), r"\[0, 1\]"),
    (np.zeros((0, 6), np.float32), "empty"),
])
def test_public_entry_points_check_their_data(bad, message):
  """Every public function that takes a user's data refuses NaN, out-of-range and empty data
  with a message naming it, instead of training to NaN or returning NaN."""
  from jdbn import contrastive, likelihood, rbm  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  params = rbm.init(jax.random.key(0), 6, 4)
  for trainer in (contrastive.cd(optax.sgd(0.1)), contrastive.pcd(optax.sgd(0.1), n_chains=4)):
    state = trainer.init(jax.random.key(0), params)
    with pytest.raises(ValueError, match=message):
      trainer.epoch(jax.random.key(1), state, bad, 10)
  with pytest.raises(ValueError, match=message):
    rbm.init(jax.random.key(0), 6, 4, data=bad)
  with pytest.raises(ValueError, match=message):
    likelihood.estimate_log_likelihood(jax.random.key(0), params, bad, n_chains=4,
                                       betas=np.linspace(0, 1, 5))
  with pytest.raises(ValueError, match=message):
    likelihood.ais(jax.random.key(0), params, n_chains=4, data=bad)
  with pytest.raises(ValueError, match=message):
    likelihood.raise_log_likelihood(jax.random.key(0), params, bad, betas=np.linspace(0, 1, 5))


def test_epoch_check_can_be_turned_off_and_runs_under_jit():
  from jdbn import contrastive, rbm  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  params = rbm.init(jax.random.key(0), 6, 4)
  trainer = contrastive.cd(optax.sgd(0.1))
  state = trainer.init(jax.random.key(0), params)
  x = np.full((20, 6), 2.0, np.float32)  # out of range: refused when checked
  out, _ = trainer.epoch(jax.random.key(1), state, x, 10, check=False)
  assert out.step == 2
  good = np.ones((20, 6), np.float32)
  inside = jax.jit(lambda s, d: trainer.epoch(jax.random.key(1), s, d, 10)[0])(state, good)
  assert inside.step == 2


def test_fit_refuses_to_resume_with_other_settings(tmp_path):
  from jdbn import contrastive, rbm  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  x = (np.random.default_rng(0).random((40, 6)) < 0.5).astype(np.float32)
  params = rbm.init(jax.random.key(0), 6, 4)
  key = jax.random.key(1)

  def fit(trainer, data=x, batch_size=10, epochs=1):
    return train.fit(key, trainer, params, data, epochs=epochs, batch_size=batch_size,
                     checkpoint_dir=tmp_path, progress=False)

  fit(contrastive.cd(optax.sgd(0.1), k=1))
  changes = {
      "batch_size": lambda: fit(contrastive.cd(optax.sgd(0.1), k=1), batch_size=20, epochs=2),
      "learning rate": lambda: fit(contrastive.cd(optax.sgd(0.2), k=1), epochs=2),
      "k:": lambda: fit(contrastive.cd(optax.sgd(0.1), k=2), epochs=2),
      "algorithm": lambda: fit(contrastive.pcd(optax.sgd(0.1), n_chains=10), epochs=2),
  }
  for name, call in changes.items():
    with pytest.raises(ValueError, match=f"other settings.*{name}"):
      call()
  _, history = fit(contrastive.cd(optax.sgd(0.1), k=1), epochs=2)  # only epochs changed
  assert [r["epoch"] for r in history] == [1, 2]
  # Other data is named in a warning (a DBN's upper layers resume on changed features).
  with pytest.warns(UserWarning, match="trained on other data"):
    fit(contrastive.cd(optax.sgd(0.1), k=1), data=1 - x, epochs=3)


def test_help_shows_defaults_and_digits_get_their_preset(tmp_path, capsys):
  with pytest.raises(SystemExit):
    cli.main(["train", "rbm", "--help"])
  text = capsys.readouterr().out
  assert "(default: 0.05)" in text  # --lr
  assert "default: 0.9 for digits, 0.5 for mnist" in text
  assert "(default: pcd)" in text
  out = tmp_path / "run"
  code, _, _ = _run(capsys, "train", "rbm", "--dataset", "digits", "--n-hidden", 8, "--epochs",
                    1, "--sample-steps", 5, "--no-progress", "--out", out)
  assert code == 0
  settings = checkpoint.read_metadata(out / train.CHECKPOINT_NAME)["user"]["settings"]
  assert settings["batch_size"] == 10 and settings["momentum"] == 0.9
  assert settings["weight_decay"] == 1e-3
