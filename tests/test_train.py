"""Tests of jdbn.train.fit: exact resumption, divergence handling, metrics, data checks."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdbn import checkpoint, contrastive, data, train
from jdbn import rbm as R

N_HIDDEN = 16
BATCH = 50


def _weights_only(params):
  return jax.tree.map(lambda _: False, params).replace(W=True)


# One trainer for the whole module, so that its epoch compiles once. PCD with momentum and weight
# decay: the resumed run must restore params, optimizer state, chains and step exactly.
TRAINER = contrastive.pcd(
    optax.chain(optax.add_decayed_weights(1e-4, mask=_weights_only), optax.sgd(0.05, momentum=0.5)),
    n_chains=20)


@pytest.fixture(scope="module")
def digits():
  ds = data.load_digits("train")
  return ds.x[:300], ds.x[300:400]


@pytest.fixture(scope="module")
def params(digits):
  return R.init(jax.random.key(1), 64, N_HIDDEN, data=digits[0])


def _fit(params, x, v, **kw):
  kw.setdefault("progress", False)
  kw.setdefault("eval_size", 100)
  return train.fit(jax.random.key(0), TRAINER, params, x, batch_size=BATCH, validation=v, **kw)


@pytest.fixture(scope="module")
def straight(params, digits):
  """Four epochs in one call, no checkpoints."""
  return _fit(params, *digits, epochs=4)


def _bits_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _without_seconds(history):
  return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_resume_is_bit_identical(tmp_path, params, digits, straight):
  state4, history4 = straight
  state2, history2 = _fit(params, *digits, epochs=2, checkpoint_dir=tmp_path)
  assert checkpoint.read_metadata(tmp_path / train.CHECKPOINT_NAME)["epoch"] == 2
  # A new call finds the checkpoint and runs epochs 3 and 4 only.
  calls = []
  resumed, history = _fit(params, *digits, epochs=4, checkpoint_dir=tmp_path,
                          callback=lambda e, s, m: calls.append(e))
  assert calls == [3, 4]
  _bits_equal(resumed, state4)
  assert int(resumed.step) == 4 * (len(digits[0]) // BATCH)
  assert _without_seconds(history) == _without_seconds(history4)
  assert _without_seconds(history[:2]) == _without_seconds(history2)
  # Nothing left to do: returns the checkpoint's state without training.
  again, history_again = _fit(params, *digits, epochs=3, checkpoint_dir=tmp_path)
  _bits_equal(again, state4)
  assert len(history_again) == 4


def test_metrics_are_present_and_finite(tmp_path, params, digits, straight):
  state, history = straight
  assert [row["epoch"] for row in history] == [1, 2, 3, 4]
  keys = {"loss", "recon_error", "grad_norm", "pseudo_likelihood", "pseudo_likelihood_valid",
          "free_energy_train", "free_energy_valid", "free_energy_gap", "seconds"}
  for row in history:
    assert keys <= set(row)
    assert all(isinstance(row[k], float) and math.isfinite(row[k]) for k in keys)
    assert row["free_energy_gap"] == pytest.approx(row["free_energy_valid"] -
                                                   row["free_energy_train"])
    # log PL of 64 binary-ish units: between 64 log(1/2)-ish and 0.
    assert -64 * 10 < row["pseudo_likelihood"] < 0
  # The monitor's free energies match F(v) = -b.v - sum_j softplus(c_j + (v W)_j), in NumPy.
  x, v = digits[0][:100], digits[1][:100]
  p = jax.tree.map(np.asarray, state.params)
  direct = train.evaluate_metrics(jax.random.key(3), state.params, x, v)
  for name, batch in (("free_energy_train", x), ("free_energy_valid", v)):
    f = -batch @ p.b - np.logaddexp(0.0, p.c + batch @ p.W).sum(-1)
    assert direct[name] == pytest.approx(f.mean(), rel=1e-5)


def test_checkpoint_dir_holds_metrics_json(tmp_path, params, digits):
  _, history = _fit(params, *digits, epochs=1, checkpoint_dir=tmp_path, metadata={"layer": 1})
  saved = json.loads((tmp_path / train.METRICS_NAME).read_text())
  assert saved["epochs_completed"] == 1 and saved["history"] == history
  assert saved["user"] == {"layer": 1}
  tree = checkpoint.load(tmp_path / train.CHECKPOINT_NAME)
  assert isinstance(tree["state"], contrastive.TrainState)


def _poisoned(at_epoch):
  """TRAINER, except that the epoch ``at_epoch`` (1-based) returns NaN weights."""
  calls = []

  def epoch(key, state, x, batch_size):
    calls.append(1)
    state, info = TRAINER.epoch(key, state, x, batch_size)
    if int(state.step) == at_epoch * (len(x) // batch_size):
      state = state.replace(params=state.params.replace(W=state.params.W * jnp.nan))
    return state, info

  return contrastive.Trainer(TRAINER.init, TRAINER.update, epoch)


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, params, digits):
  _fit(params, *digits, epochs=2, checkpoint_dir=tmp_path)
  before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
  with pytest.raises(train.TrainingDiverged) as err:
    train.fit(jax.random.key(0), _poisoned(3), params, digits[0], epochs=5, batch_size=BATCH,
              validation=digits[1], checkpoint_dir=tmp_path, progress=False, eval_size=100)
  assert isinstance(err.value, FloatingPointError)
  msg = str(err.value)
  assert "epoch 3 of 5" in msg and "params.W" in msg and "learning rate" in msg
  assert err.value.epoch == 3 and len(err.value.history) == 2
  assert err.value.checkpoint == tmp_path / train.CHECKPOINT_NAME
  assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
  saved = checkpoint.load(tmp_path / train.CHECKPOINT_NAME)["state"]
  _bits_equal(saved, err.value.state)


def test_divergence_without_checkpoints(params, digits):
  with pytest.raises(train.TrainingDiverged, match="epoch 1 of 2.*no checkpoint"):
    train.fit(jax.random.key(0), _poisoned(1), params, digits[0], epochs=2, batch_size=BATCH,
              progress=False, eval_size=100)


def test_callback_can_stop_training_and_progress_takes_a_name(params, digits, capsys):
  state, history = _fit(params, *digits, epochs=3, callback=lambda e, s, m: e == 1,
                        progress="layer 1")
  assert len(history) == 1 and int(state.step) == len(digits[0]) // BATCH
  assert "layer 1" in capsys.readouterr().err


def test_bad_data_is_rejected_with_the_argument_name(params, digits):
  x, v = digits
  bad = np.array(x)
  bad[3, 5] = np.nan
  with pytest.raises(ValueError, match="data contains NaN"):
    _fit(params, bad, v, epochs=1)
  with pytest.raises(ValueError, match=r"validation must lie in \[0, 1\]"):
    _fit(params, x, v * 2, epochs=1)
  with pytest.raises(ValueError, match=r"data must have shape \[\.\.\., 64\]"):
    _fit(params, x[:, :10], v, epochs=1)
  with pytest.raises(ValueError, match="validation must have shape"):
    _fit(params, x, v[0], epochs=1)
  with pytest.raises(ValueError, match="batch_size=500 is larger"):
    train.fit(jax.random.key(0), TRAINER, params, x, epochs=1, batch_size=500, progress=False)
  with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
    _fit(params, x, v, epochs=0)


def test_resuming_with_other_params_names_the_leaf(tmp_path, params, digits):
  _fit(params, *digits, epochs=1, checkpoint_dir=tmp_path)
  other = R.init(jax.random.key(1), 64, N_HIDDEN + 1)
  with pytest.raises(ValueError, match=r"cannot resume.*\['state'\]\.params\.W.*\(64, 17\)"):
    _fit(other, *digits, epochs=2, checkpoint_dir=tmp_path)


def test_hinton_sgd_switches_momentum_after_five_epochs_and_decays_only_the_weights():
  """train.hinton_sgd: momentum 0.5 for the first 5 epochs' updates, 0.9 after; the L2 decay
  moves W and leaves the biases (a zero gradient: only the decay acts)."""
  from flax import struct
  from jdbn.train import hinton_sgd, loop
  params = R.init(jax.random.key(0), 3, 2)
  opt = hinton_sgd(0.1, weight_decay=0.5, steps_per_epoch=2)
  state = opt.init(params)
  zero = jax.tree.map(jnp.zeros_like, params)
  momenta = []
  for _ in range(12):
    updates, state = opt.update(zero, state, params)
    momenta.append(float(state[1].hyperparams["momentum"]))
  assert momenta[:10] == [0.5] * 10 and momenta[10:] == pytest.approx([0.9, 0.9])
  updates, _ = opt.update(zero, opt.init(params), params)
  np.testing.assert_allclose(updates.W, -0.1 * 0.5 * params.W, rtol=1e-6)
  assert not np.any(np.asarray(updates.b)) and not np.any(np.asarray(updates.c))
  # Its rate is a hyperparameter that loop.set_learning_rate sets between epochs.
  @struct.dataclass
  class _S:
    opt_state: object
  assert float(loop.set_learning_rate(_S(state), 0.01).opt_state[1].hyperparams[
      "learning_rate"]) == pytest.approx(0.01)
