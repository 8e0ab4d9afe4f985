"""Tests of jdbn.checkpoint: exact round trips, atomic writes, clear mismatch errors."""

import dataclasses
import functools
import json
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdbn import checkpoint, contrastive, gibbs
from jdbn import rbm as R
from jdbn import units as U


def _weights_only(params):
  return jax.tree.map(lambda _: False, params).replace(W=True)


def _rbm(n_visible, n_hidden, visible=U.Bernoulli(), hidden=U.Bernoulli()):
  """RBM params with distinct, arbitrary values (built in NumPy: no compilation needed)."""
  values = np.linspace(-1.0, 1.0, n_visible * n_hidden + 3 * (n_visible + n_hidden),
                       dtype=np.float32)
  take = iter(np.split(values, np.cumsum([n_visible * n_hidden, n_visible, n_hidden, n_visible,
                                          n_hidden])))
  W = next(take).reshape(n_visible, n_hidden)
  b, c, sv, sh = next(take), next(take), next(take), next(take)
  return R.RBM(jnp.asarray(W), jnp.asarray(b), jnp.asarray(c),
               jnp.asarray(sv) if visible.has_sigma else None,
               jnp.asarray(sh) if hidden.has_sigma else None, visible, hidden)


@functools.lru_cache(maxsize=None)
def _train_tree():
  """A tree like the one jdbn.train saves: PCD state with momentum and masked weight decay."""
  params = _rbm(6, 4)
  opt = optax.chain(optax.add_decayed_weights(1e-4, mask=_weights_only),
                    optax.sgd(0.1, momentum=0.9))
  opt_state = jax.tree.map(lambda x: x + 0.5, opt.init(params))  # distinct from the params
  chains = gibbs.ChainState(jnp.eye(3, 6), jnp.full((3, 4), 0.25))
  state = contrastive.TrainState(params, opt_state, chains, jnp.asarray(12, jnp.int32))
  return {"state": state, "key": jax.random.key(42), "epoch": 7, "lr": 0.5, "flag": True}


def _families():
  """A stack of RBMs whose unit families have fields, nested parts and learned sigmas."""
  joint = U.Joint(((U.Bernoulli(), 6), (U.Softmax(group_size=3), 6)))
  return [
      _rbm(12, 5, joint, U.Bernoulli()),
      _rbm(4, 3, U.Gaussian(learn_sigma=True), U.ReLU()),
      _rbm(6, 2, U.Softmax(group_size=2), U.Gaussian(learn_sigma=False)),
  ]


def _assert_same(a, b):
  """Same tree structure (incl. static fields), same leaf types, bit-identical data."""
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    assert type(x) is type(y) or (isinstance(x, jax.Array) and isinstance(y, jax.Array))
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      assert jax.dtypes.issubdtype(y.dtype, jax.dtypes.prng_key)
      assert jax.random.key_impl(x) == jax.random.key_impl(y)
      x, y = jax.random.key_data(x), jax.random.key_data(y)
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == y.dtype and x.shape == y.shape
    np.testing.assert_array_equal(np.atleast_1d(x).view(np.uint8), np.atleast_1d(y).view(np.uint8))


@pytest.mark.parametrize("with_template", [False, True])
def test_round_trip_training_state(tmp_path, with_template):
  tree = _train_tree()
  path = checkpoint.save(tmp_path / "ckpt.npz", tree, metadata={"epoch": 7, "history": [1.5]})
  loaded, meta = checkpoint.restore(path, like=tree if with_template else None)
  _assert_same(loaded, tree)
  assert meta == {"epoch": 7, "history": [1.5]}
  assert isinstance(loaded["state"], contrastive.TrainState)
  assert isinstance(loaded["state"].chains, gibbs.ChainState)
  assert type(loaded["epoch"]) is int and type(loaded["flag"]) is bool
  # The restored key draws the same numbers as the original.
  np.testing.assert_array_equal(jax.random.uniform(loaded["key"], (3,)),
                                jax.random.uniform(tree["key"], (3,)))


@pytest.mark.parametrize("with_template", [False, True])
def test_round_trip_unit_families_and_stacks(tmp_path, with_template):
  layers = _families()
  for tree in (layers, tuple(layers), {"layers": layers, "top": layers[0]}):
    path = checkpoint.save_params(tmp_path / "dbn.npz", tree)
    loaded = checkpoint.load_params(path, like=tree if with_template else None)
    _assert_same(loaded, tree)
    assert type(loaded) is type(tree)
  assert loaded["top"].visible == layers[0].visible  # Joint with a Softmax part, rebuilt equal
  assert loaded["layers"][1].visible == U.Gaussian(learn_sigma=True)
  assert loaded["layers"][2].hidden == U.Gaussian(learn_sigma=False)


def test_header_is_json_and_readable_without_pickle(tmp_path):
  path = checkpoint.save(tmp_path / "c.npz", _families()[1], metadata={"note": "x"})
  with np.load(path, allow_pickle=False) as z:
    header = json.loads(z["__header__"].tobytes().decode("utf-8"))
  assert header["format"] == checkpoint.FORMAT
  assert header["tree"]["static"]["visible"] == {"type": "Gaussian", "learn_sigma": True}
  assert header["tree"]["static"]["hidden"] == {"type": "ReLU"}
  assert [r["path"] for r in header["leaves"]] == [".W", ".b", ".c", ".log_sigma_v"]
  assert checkpoint.read_metadata(path) == {"note": "x"}


def test_optax_adam_state_and_other_leaves_round_trip(tmp_path):
  params = _families()[0]
  opt_state = optax.adam(1e-3).init(params)
  tree = {"opt": opt_state, "raw_key": jax.random.PRNGKey(5), "rbg": jax.random.key(1, impl="rbg"),
          "bf16": jnp.arange(4, dtype=jnp.bfloat16) / 3, "np": np.arange(3.0),
          "np_scalar": np.float64(0.1),
          "int_keys": {3: None, 1: jnp.zeros(1, jnp.int8)}}
  loaded = checkpoint.load(checkpoint.save(tmp_path / "a.npz", tree))
  _assert_same(loaded, tree)
  assert type(loaded["opt"][0]).__name__ == "ScaleByAdamState"


def test_load_accepts_an_eval_shape_template(tmp_path):
  tree = _train_tree()
  path = checkpoint.save(tmp_path / "c.npz", tree)
  template = jax.eval_shape(lambda: tree)
  loaded = checkpoint.load(path, like=template)
  assert jax.tree.structure(loaded) == jax.tree.structure(tree)
  # Python numbers come back as the 0-d arrays that the template asks for.
  assert loaded["epoch"].dtype == template["epoch"].dtype and int(loaded["epoch"]) == 7
  _assert_same(loaded["state"], tree["state"])
  _assert_same(loaded["key"], tree["key"])


def test_load_params_from_a_training_checkpoint(tmp_path):
  tree = _train_tree()
  path = checkpoint.save(tmp_path / "c.npz", tree)
  _assert_same(checkpoint.load_params(path), tree["state"].params)


def test_mismatched_shape_names_the_leaf(tmp_path):
  tree = _train_tree()
  path = checkpoint.save(tmp_path / "c.npz", tree)
  other = dict(tree, state=tree["state"].replace(params=_rbm(6, 5)))
  with pytest.raises(ValueError) as err:
    checkpoint.load(path, like=other)
  msg = str(err.value)
  assert "['state'].params.W" in msg and "(6, 5)" in msg and "(6, 4)" in msg


def test_mismatched_dtype_names_the_leaf(tmp_path):
  tree = {"w": jnp.zeros((2, 3), jnp.float32)}
  path = checkpoint.save(tmp_path / "c.npz", tree)
  with pytest.raises(ValueError, match=r"\['w'\].*float16.*float32"):
    checkpoint.load(path, like={"w": jnp.zeros((2, 3), jnp.float16)})


def test_mismatched_unit_family_names_the_field(tmp_path):
  layers = _families()
  path = checkpoint.save(tmp_path / "c.npz", layers)
  wrong = list(layers)
  wrong[0] = layers[0].replace(visible=U.Joint(((U.Bernoulli(), 6), (U.Softmax(2), 6))))
  with pytest.raises(ValueError) as err:
    checkpoint.load(path, like=wrong)
  assert "[0].visible" in str(err.value) and '"group_size": 3' in str(err.value)
  wrong[0] = layers[0].replace(hidden=U.ReLU())
  with pytest.raises(ValueError, match=r"\[0\]\.hidden.*ReLU.*Bernoulli"):
    checkpoint.load(path, like=wrong)


def test_mismatched_structure_is_reported(tmp_path):
  path = checkpoint.save(tmp_path / "c.npz", {"a": jnp.zeros(2), "b": [jnp.zeros(1)]})
  with pytest.raises(ValueError, match="missing from the checkpoint: \\['c'\\]"):
    checkpoint.load(path, like={"a": jnp.zeros(2), "b": [jnp.zeros(1)], "c": jnp.zeros(1)})
  with pytest.raises(ValueError, match=r"\['b'\].*2 children, found 1"):
    checkpoint.load(path, like={"a": jnp.zeros(2), "b": [jnp.zeros(1), jnp.zeros(1)]})


def _snapshot(folder):
  return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("where", ["during_write", "at_fsync", "at_rename"])
def test_crash_while_saving_keeps_the_old_checkpoint(tmp_path, monkeypatch, where):
  path = tmp_path / "ckpt.npz"
  old = _train_tree()
  checkpoint.save(path, old, metadata={"epoch": 1})
  before = _snapshot(tmp_path)

  class Crash(Exception):
    pass

  def crash(*args, **kwargs):
    raise Crash()

  if where == "during_write":

    def half_write(f, arrays):
      f.write(b"PK\x03\x04 half a zip file")
      raise Crash()

    monkeypatch.setattr(checkpoint, "_write_npz", half_write)
  elif where == "at_fsync":
    monkeypatch.setattr(checkpoint.os, "fsync", crash)
  else:
    monkeypatch.setattr(checkpoint.os, "replace", crash)
  new = dict(old, epoch=2)
  with pytest.raises(Crash):
    checkpoint.save(path, new, metadata={"epoch": 2})
  monkeypatch.undo()
  assert _snapshot(tmp_path) == before  # no temp files left, old bytes untouched
  loaded, meta = checkpoint.restore(path, like=old)
  _assert_same(loaded, old)
  assert meta == {"epoch": 1}


def test_save_replaces_atomically_and_leaves_no_temp_files(tmp_path):
  path = tmp_path / "sub" / "ckpt.npz"
  checkpoint.save(path, {"x": jnp.zeros(2)})
  checkpoint.save(path, {"x": jnp.ones(2)})
  assert [p.name for p in path.parent.iterdir()] == ["ckpt.npz"]
  np.testing.assert_array_equal(checkpoint.load(path)["x"], np.ones(2))
  assert zipfile.is_zipfile(path)


def test_unregistered_unit_family_is_refused_then_registered(tmp_path):

  @dataclasses.dataclass(frozen=True)
  class Spiky(U.Bernoulli):
    threshold: float = 0.5

  params = _rbm(3, 2, Spiky(0.25))
  with pytest.raises(TypeError, match="register_units"):
    checkpoint.save(tmp_path / "c.npz", params)
  checkpoint.register_units(Spiky)
  try:
    loaded = checkpoint.load(checkpoint.save(tmp_path / "c.npz", params))
    assert loaded.visible == Spiky(0.25)
  finally:
    checkpoint._UNITS.pop("Spiky")
  with pytest.raises(ValueError, match="unknown unit family 'Spiky'"):
    checkpoint.load(tmp_path / "c.npz")


def test_bad_files_and_values(tmp_path):
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    checkpoint.load(tmp_path / "missing.npz")
  (tmp_path / "junk.npz").write_bytes(b"not a zip")
  with pytest.raises(ValueError, match=r"not a jdbn checkpoint \(not an .npz file\)"):
    checkpoint.load(tmp_path / "junk.npz")
  (tmp_path / "m.json").write_text("{}")  # no hint at unsafe (pickle) loading
  with pytest.raises(ValueError, match="not an .npz file") as err:
    checkpoint.load(tmp_path / "m.json")
  assert "pickle" not in str(err.value)
  np.savez(tmp_path / "plain.npz", a=np.zeros(2))
  with pytest.raises(ValueError, match="not a readable jdbn checkpoint"):
    checkpoint.load(tmp_path / "plain.npz")
  with pytest.raises(TypeError, match="string"):
    checkpoint.save(tmp_path / "s.npz", {"name": "x"})
  with pytest.raises(TypeError, match="JSON"):
    checkpoint.save(tmp_path / "m.npz", {}, metadata={"f": object()})
  assert not list(tmp_path.glob(".*.tmp"))


def test_checkpoint_from_before_the_layout_move_loads(tmp_path):
  """tests/data/legacy_pcd_state.npz was written at 0eff6d8, when the trainer lived in
  jdbn.contrastive and gibbs.ChainState/RBM had their old paths: it loads without a template, to
  the same classes, and training continues from it exactly as from a fresh save of the same state."""
  import pathlib
  legacy = pathlib.Path(__file__).parent / "data" / "legacy_pcd_state.npz"
  tree = checkpoint.load(legacy)
  assert checkpoint.read_metadata(legacy) == {"written_by": "jdbn 0eff6d8"}
  state = tree["state"]
  assert isinstance(state, contrastive.TrainState)
  assert isinstance(state.params, R.RBM) and state.params.W.shape == (6, 4)
  assert isinstance(state.chains, gibbs.ChainState)
  again = checkpoint.load(checkpoint.save(tmp_path / "new.npz", tree))
  jax.tree.map(np.testing.assert_array_equal, jax.random.key_data(tree["key"]),
               jax.random.key_data(again["key"]))
  jax.tree.map(np.testing.assert_array_equal, state, again["state"])


def test_updown_checkpoint_from_before_the_dbn_split_resumes(tmp_path):
  """tests/data/legacy_updown_state.npz was written by jdbn.train.updown.fit at e3315c0, when
  UntiedDBN lived in jdbn.dbn (its header names jdbn.dbn.UntiedDBN): it loads, restores against
  a template of today's classes (jdbn.models.dbn.UntiedDBN), and up-down resumes from it."""
  import pathlib
  import shutil
  from jdbn.models import dbn as MD
  from jdbn.train import updown as UD
  legacy = pathlib.Path(__file__).parent / "data" / "legacy_updown_state.npz"
  tree = checkpoint.load(legacy)
  assert isinstance(tree["state"].params, MD.UntiedDBN)
  like = UD.updown(UD.optimizer(0.05)).init(None, tree["state"].params)
  restored, meta = checkpoint.restore(legacy, like={"state": like})
  assert meta["epoch"] == 2 and len(meta["history"]) == 2
  jax.tree.map(np.testing.assert_array_equal, tree["state"].params, restored["state"].params)
  path = shutil.copy(legacy, tmp_path / "updown.npz")
  x = jnp.zeros((8, 5)).at[::2].set(1.0)
  state, history = UD.fit(jax.random.key(0), tree["state"].params, (x, jnp.arange(8) % 3),
                          epochs=2, batch_size=4, opt=UD.optimizer(0.05), lr_of=lambda e: 0.05,
                          k_of=lambda e: 1, path=path, progress=False)
  assert history == meta["history"]  # nothing left to run: resumed, not restarted
  jax.tree.map(np.testing.assert_array_equal, state.params, restored["state"].params)
