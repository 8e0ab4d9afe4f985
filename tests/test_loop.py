"""jdbn.loop: the one training loop every trainer runs through."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from jdbn import loop


@struct.dataclass
class _State:
  params: dict


def _epoch_fn(blow_up_at=None):
  def epoch_fn(e, state):
    w = state.params["w"] + 1.0
    if e == blow_up_at:
      w = w * jnp.nan
    return _State({"w": w}), {"loss": float(w.sum())}
  return epoch_fn


def test_fit_runs_saves_and_resumes():
  saved = []
  state, history = loop.fit(_State({"w": jnp.zeros(3)}), _epoch_fn(), epochs=3, progress=False,
                            save=lambda done, s, h: saved.append((done, len(h))),
                            evaluate=lambda done, s: {"twice": 2.0 * done})
  np.testing.assert_array_equal(state.params["w"], 3.0)
  assert [r["epoch"] for r in history] == [1, 2, 3] and history[-1]["twice"] == 6.0
  assert list(history[0]) == ["epoch", "loss", "twice", "seconds"]
  assert saved == [(1, 1), (2, 2), (3, 3)]
  # Resuming at epoch 2 runs only the third epoch and keeps the earlier rows.
  again, more = loop.fit(_State({"w": jnp.full(3, 2.0)}), _epoch_fn(), epochs=3, start=2,
                         history=history[:2], progress=False)
  np.testing.assert_array_equal(again.params["w"], 3.0)
  assert len(more) == 3


def test_fit_stops_on_divergence_with_the_last_good_state(tmp_path):
  ckpt = tmp_path / "ckpt.npz"
  ckpt.write_bytes(b"last good")
  with pytest.raises(loop.TrainingDiverged, match="epoch 3 of 5.*loss=nan.*ckpt.npz") as err:
    loop.fit(_State({"w": jnp.zeros(2)}), _epoch_fn(blow_up_at=2), epochs=5, progress=False,
             checkpoint=ckpt)
  assert err.value.epoch == 3 and len(err.value.history) == 2
  np.testing.assert_array_equal(err.value.state.params["w"], 2.0)
  assert isinstance(err.value, FloatingPointError)
  assert ckpt.read_bytes() == b"last good"


def test_fit_callback_stops():
  _, history = loop.fit(_State({"w": jnp.zeros(1)}), _epoch_fn(), epochs=10, progress=False,
                        callback=lambda e, s, row: e == 4)
  assert len(history) == 4


def test_rate_schedule_and_set_learning_rate():
  """The rate of each epoch, constant or falling linearly to 0 from decay_start, set in an
  inject_hyperparams optimizer's state with the momentum kept."""
  import optax
  const, decay = loop.rate_schedule(0.1, 4), loop.rate_schedule(0.1, 4, decay_start=2)
  assert [const(e) for e in range(4)] == [0.1] * 4
  np.testing.assert_allclose([decay(e) for e in range(4)], [0.1, 0.1, 0.1, 0.05], rtol=1e-6)
  opt = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9)
  params = {"w": jnp.ones(2)}

  @struct.dataclass
  class _Train:
    params: dict
    opt_state: object

  s = _Train(params, opt.init(params))
  _, s_opt = opt.update({"w": jnp.ones(2)}, s.opt_state, params)  # builds momentum
  s = loop.set_learning_rate(s.replace(opt_state=s_opt), 0.025)
  assert float(s.opt_state.hyperparams["learning_rate"]) == pytest.approx(0.025)
  momentum = lambda st: st.inner_state[0].trace["w"]  # noqa: E731
  np.testing.assert_array_equal(momentum(s.opt_state), momentum(s_opt))
