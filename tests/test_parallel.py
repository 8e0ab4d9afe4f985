"""Tests of jdbn.parallel: sharded training, sampling and AIS against one device.

The sharded tests need 4 devices. On CPU they come from ``XLA_FLAGS=
--xla_force_host_platform_device_count=4``, which must be set before JAX starts; the rest of a
test session has started it with one device, so :func:`test_sharded_on_four_cpu_devices` reruns
this module in a subprocess with that flag (on a machine with 4 or more real devices the sharded
tests run directly).

What is checked, and why it can be:

* The arrays really are split: ``sharding.spec``, the shapes of ``addressable_shards``,
  ``is_fully_replicated``; and in the compiled HLO every matrix product of the chains or the
  batch runs on ``rows / 4`` rows, with no all-gather of any chain or batch array.
* Same key, same result as on one device. ``jax.random``'s partitionable Threefry (the default,
  ``jax_threefry_partitionable=True``) makes element ``i``'s bits a function of the key and ``i``
  only, so the sharded run draws the same numbers; the rows are split, never a contraction axis,
  so each chain does the same arithmetic. Samples and AIS weights therefore agree exactly unless
  XLA rounds a per-row product differently for the smaller shard shape; a Bernoulli draw then
  flips only if its uniform lies within that rounding (~1e-7) of its probability, so of the
  2e4 (sampling) and 1e5 (AIS) draws here at most ~1e-2 flip in expectation, and the tests
  allow 2 of 64 chains to differ (failure probability below 1e-6).
* Training differs from one device by the rounding of the cross-device gradient sum (about one
  ulp, 6e-8, in the params after an update), so params are compared with ``atol=1e-5``. That
  rounding moves a later draw's probability by at most ~1.5e-7; over the 1,280 draws after the
  first of the two updates in an epoch here, the chance that one flips (which would break the
  comparison) is below 2e-4, and typically ~3e-5.

The HLO row counts are read from CPU ``dot`` instructions (GPUs lower products to library calls),
so those checks run on CPU only; the rest runs on any 4 devices.
"""

import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jdbn import contrastive, gibbs, likelihood, loop, parallel, sharding
from jdbn import rbm as R

N_DEV = 4
N_VIS, N_HID = 10, 6
N_CHAINS = 64  # sampling and AIS: 16 per device
BATCH = 32  # training: 8 rows per device
PCD_CHAINS = 48  # 12 per device

# the dims of the params and of scalars: the only arrays training may reduce across devices
_PARAM_DIMS = {f"{N_VIS},{N_HID}", f"{N_HID},{N_VIS}", f"{N_VIS}", f"{N_HID}", ""}

sharded = pytest.mark.skipif(jax.device_count() < N_DEV,
                             reason=f"needs {N_DEV} devices (run in a subprocess below)")

# ----------------------------------------------------------------------------- one device


def test_make_mesh_one_device():
  mesh = parallel.make_mesh(1)
  assert mesh.size == 1 and mesh.axis_names == ("data",)
  assert mesh.axis_types == (AxisType.Auto,)
  with pytest.raises(ValueError, match="n_devices"):
    parallel.make_mesh(jax.device_count() + 1)


def test_data_parallel_without_mesh_is_the_trainer():
  trainer = contrastive.cd(optax.sgd(0.1))
  assert parallel.data_parallel(trainer, None) is trainer


def test_epoch_on_one_device_adds_no_constraint():
  x = jnp.zeros((8, N_VIS))
  assert sharding.epoch_batch_sharding(x, 4) is None  # pylint: disable=protected-access
  x = jax.device_put(x, NamedSharding(parallel.make_mesh(1), P("data")))
  assert sharding.epoch_batch_sharding(x, 4) is None  # pylint: disable=protected-access


@pytest.mark.skipif(jax.device_count() >= N_DEV, reason="already running with several devices")
@pytest.mark.slow
def test_sharded_on_four_cpu_devices():
  flags = os.environ.get("XLA_FLAGS", "")
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         # LLVM -O0 compiles ~3x faster; the sharding (HLO) and the comparisons are unaffected
         "XLA_FLAGS": (f"{flags} --xla_force_host_platform_device_count={N_DEV} "
                       "--xla_backend_optimization_level=0").strip()}
  proc = subprocess.run(
      [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", __file__],
      env=env, capture_output=True, text=True, timeout=600, check=False)
  out = proc.stdout + proc.stderr
  assert proc.returncode == 0, out
  # everything ran but this test itself, which skips with 4 devices
  summary = re.search(r"(\d+) passed, 1 skipped", out)
  assert summary and int(summary.group(1)) >= 9, out


# ----------------------------------------------------------------------------- helpers


def _params():
  return R.init(jax.random.key(0), N_VIS, N_HID, weight_scale=0.5)


def _data(n=2 * BATCH):
  return (jax.random.uniform(jax.random.key(1), (n, N_VIS)) < 0.3).astype(jnp.float32)


def _dot_rows(hlo: str) -> set:
  """Leading dims of the outputs of the matrix products in compiled CPU HLO (per device)."""
  return {int(m) for m in re.findall(r"= f32\[(\d+),\d+\]\{[^}]*\} dot\(", hlo)}


def _assert_dot_rows(hlo: str, allowed: set, required: set = frozenset()):
  if jax.default_backend() != "cpu":
    return
  rows = _dot_rows(hlo)
  assert required <= rows <= allowed, (rows, allowed, required)


def _collectives(hlo: str) -> dict:
  """``{op: [[result dims, ...], ...]}`` of the cross-device collectives in compiled HLO."""
  found = {}
  for op in ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute"):
    results = re.findall(r"^\s*\S+ = (.*?) " + op + r"(?:-start)?\(", hlo, re.MULTILINE)
    if results:
      found[op] = [re.findall(r"[a-z]+\d*\[([\d,]*)\]", r) for r in results]
  return found


def _assert_split(x, axis=0):
  """``x`` is split over the 4 devices along ``axis``, a quarter on each."""
  assert not x.sharding.is_fully_replicated
  assert len(x.sharding.device_set) == N_DEV
  want = x.shape[:axis] + (x.shape[axis] // N_DEV,) + x.shape[axis + 1:]
  assert [s.data.shape for s in x.addressable_shards] == [want] * N_DEV


def _assert_replicated(tree):
  for x in jax.tree.leaves(tree):
    assert x.sharding.is_fully_replicated and len(x.sharding.device_set) == N_DEV


def _differing_chains(a, b):
  a, b = np.asarray(a), np.asarray(b)
  return int(np.sum(np.any(a != b, axis=tuple(range(1, a.ndim)))))


@pytest.fixture(scope="module")
def mesh():
  return parallel.make_mesh(N_DEV)


# ----------------------------------------------------------------------------- four devices


@sharded
def test_shard_batch_and_replicate(mesh):
  assert mesh.size == N_DEV and parallel.make_mesh(2).size == 2
  x = parallel.shard_batch(np.arange(8 * 3.0).reshape(8, 3), mesh)
  _assert_split(x)
  assert x.sharding.spec == P("data")
  _assert_replicated(parallel.replicate(_params(), mesh))
  with pytest.raises(ValueError, match="multiple of 4"):
    parallel.shard_batch(np.zeros((6, 3)), mesh)
  y = parallel.from_process_local(np.arange(8 * 3.0).reshape(8, 3), mesh)  # one process
  _assert_split(y)
  np.testing.assert_array_equal(y, x)


@sharded
def test_sample_sharded_matches_one_device(mesh):
  params, key = _params(), jax.random.key(3)
  fn = parallel._sample_fn(mesh, N_CHAINS, 20, 5)  # pylint: disable=protected-access
  compiled = fn.lower(*parallel.replicate((key, params), mesh), None, None).compile()
  hlo = compiled.as_text()
  _assert_dot_rows(hlo, {N_CHAINS // N_DEV}, {N_CHAINS // N_DEV})
  assert not _collectives(hlo), _collectives(hlo)  # chains never talk to each other

  v, trace = parallel.sample_sharded(key, params, N_CHAINS, 20, mesh, thin=5)
  _assert_split(v)
  _assert_split(trace, axis=1)
  ref_v, ref_trace = jax.jit(gibbs.sample, static_argnums=(2, 3),
                             static_argnames="thin")(key, params, N_CHAINS, 20, thin=5)
  assert _differing_chains(v, ref_v) <= 2
  assert _differing_chains(np.swapaxes(trace, 0, 1), np.swapaxes(ref_trace, 0, 1)) <= 2

  with pytest.raises(ValueError, match="multiple"):
    parallel.sample_sharded(key, params, 30, 1, mesh)


@sharded
def test_ais_sharded_matches_one_device(mesh):
  params, key = _params(), jax.random.key(4)
  betas = np.linspace(0.0, 1.0, 101).astype(np.float32)
  fn = parallel._ais_fn(mesh, N_CHAINS)  # pylint: disable=protected-access
  args = parallel.replicate((key, params, jnp.zeros(N_VIS), jnp.asarray(betas)), mesh)
  hlo = fn.lower(*args).compile().as_text()
  _assert_dot_rows(hlo, {N_CHAINS // N_DEV}, {N_CHAINS // N_DEV})
  coll = _collectives(hlo)
  assert set(coll) <= {"all-reduce"}, coll  # only the summary of the weights is reduced
  assert all(dims == "" for r in coll.get("all-reduce", []) for dims in r), coll  # scalars

  res = parallel.ais_sharded(key, params, mesh, n_chains=N_CHAINS, betas=betas, data=_data())
  ref = likelihood.ais(key, params, n_chains=N_CHAINS, betas=betas, data=_data())
  _assert_split(res.log_w)
  _assert_replicated((res.log_z, res.log_z_lower, res.log_z_upper, res.ess))
  close = np.isclose(res.log_w, ref.log_w, rtol=1e-5, atol=1e-5)
  assert np.sum(~close) <= 2
  if close.all():
    np.testing.assert_allclose(res.log_z, ref.log_z, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(res.ess, ref.ess, rtol=1e-5)


@sharded
def test_philox_keys_on_a_mesh(mesh):
  """Philox keys: a clear error where the partitioner cannot compile them, else one-device results.

  With Shardy (JAX's default), JAX 0.10 fails to lower Philox's ``mulhi`` on several devices; the
  check must say so up front, and only when the compiler really fails. Under GSPMD the same keys
  work and, being partitionable, draw the one-device numbers.
  """
  params, key = _params(), jax.random.key(4, impl="philox4x32")
  betas = np.linspace(0.0, 1.0, 101).astype(np.float32)
  draw = jax.jit(lambda k: jax.random.bits(k, (N_DEV,)), out_shardings=parallel.batch_sharding(mesh))
  try:
    draw.lower(parallel.replicate(key, mesh)).compile()
    compiles = True
  except Exception:  # pylint: disable=broad-except
    compiles = False
  if jax.config.jax_use_shardy_partitioner and not compiles:
    for call in (lambda: parallel.ais_sharded(key, params, mesh, n_chains=N_CHAINS, betas=betas),
                 lambda: parallel.sample_sharded(key, params, N_CHAINS, 3, mesh),
                 lambda: parallel.data_parallel(contrastive.cd(optax.sgd(0.1)), mesh).init(
                     key, params),
                 lambda: contrastive.cd(optax.sgd(0.1)).epoch(
                     key, contrastive.cd(optax.sgd(0.1)).init(key, params),
                     parallel.shard_batch(_data(), mesh), BATCH)):
      with pytest.raises(ValueError, match="threefry2x32.*jax_use_shardy_partitioner"):
        call()
  else:
    assert compiles
  previous = jax.config.jax_use_shardy_partitioner
  jax.config.update("jax_use_shardy_partitioner", False)
  try:
    res = parallel.ais_sharded(key, params, mesh, n_chains=N_CHAINS, betas=betas)
    ref = likelihood.ais(key, params, n_chains=N_CHAINS, betas=betas)
  finally:
    jax.config.update("jax_use_shardy_partitioner", previous)
  _assert_split(res.log_w)
  assert np.sum(~np.isclose(res.log_w, ref.log_w, rtol=1e-5, atol=1e-5)) <= 2


def _epoch_hlo(trainer, key, state, data, batch_sharding, **kw):
  """The compiled HLO of ``trainer.epoch``'s one jitted function, :func:`jdbn.loop.run_epoch`."""
  return loop.run_epoch.lower(trainer.update, key, state, data, BATCH, layout=batch_sharding,
                              **kw).compile().as_text()


@pytest.fixture(scope="module")
def pcd_reference():
  trainer = contrastive.pcd(optax.sgd(0.1, momentum=0.9), k=1, n_chains=PCD_CHAINS)
  key = jax.random.key(5)
  state = trainer.init(key, _params())
  return trainer, key, state, trainer.epoch(key, state, _data(), BATCH)


def _assert_same_training(out, info, ref_out, ref_info):
  np.testing.assert_allclose(out.params.W, ref_out.params.W, atol=1e-5)
  np.testing.assert_allclose(out.params.b, ref_out.params.b, atol=1e-5)
  np.testing.assert_allclose(out.params.c, ref_out.params.c, atol=1e-5)
  assert _differing_chains(out.chains.v, ref_out.chains.v) <= 2
  for a, b in zip(info, ref_info):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@sharded
def test_data_parallel_pcd_epoch(mesh, pcd_reference):
  trainer, key, state, (ref_out, ref_info) = pcd_reference
  dp = parallel.data_parallel(trainer, mesh)
  state = dp.init(key, _params())
  _assert_replicated((state.params, state.opt_state, state.step))
  _assert_split(state.chains.v)

  data = parallel.replicate(_data(), mesh)
  batch_sharding = sharding.epoch_batch_sharding(data, BATCH)
  assert tuple(batch_sharding.spec)[:2] == (None, "data")
  hlo = _epoch_hlo(trainer, key, state, data, batch_sharding)
  # positive phase on BATCH / 4 rows, chains on PCD_CHAINS / 4 rows; the gradient dots contract
  # the rows away ([N_VIS, N_HID] products)
  _assert_dot_rows(hlo, {BATCH // N_DEV, PCD_CHAINS // N_DEV, N_VIS, N_HID},
                   {BATCH // N_DEV, PCD_CHAINS // N_DEV})
  coll = _collectives(hlo)
  assert set(coll) == {"all-reduce"}, coll  # no gathers: each device keeps its rows
  assert {d for r in coll["all-reduce"] for d in r} <= _PARAM_DIMS, coll  # the gradient, Info

  out, info = dp.epoch(key, state, _data(), BATCH)
  _assert_replicated(out.params)
  _assert_split(out.chains.v)
  _assert_same_training(out, info, ref_out, ref_info)
  lean, none = dp.epoch(key, state, _data(), BATCH, metrics=False)
  assert none is None
  _assert_replicated(lean.params)
  _assert_same_training(lean, (), ref_out, ())
  with pytest.raises(ValueError, match="multiple of 4"):
    dp.epoch(key, state, _data(), 30)


@sharded
def test_epoch_follows_sharded_data_on_an_explicit_mesh(pcd_reference):
  """Plain ``trainer.epoch`` on data split by ``jax.make_mesh``'s default (Explicit) mesh."""
  trainer, key, state, (ref_out, ref_info) = pcd_reference
  mesh = jax.make_mesh((N_DEV,), ("data",))
  assert mesh.axis_types == (AxisType.Explicit,)
  state = parallel.shard_train_state(state, mesh)
  data = jax.device_put(_data(), NamedSharding(mesh, P("data")))
  batch_sharding = sharding.epoch_batch_sharding(data, BATCH)
  hlo = _epoch_hlo(trainer, key, state, data, batch_sharding)
  _assert_dot_rows(hlo, {BATCH // N_DEV, PCD_CHAINS // N_DEV, N_VIS, N_HID},
                   {BATCH // N_DEV, PCD_CHAINS // N_DEV})
  coll = _collectives(hlo)
  # split data costs one all-gather of the data set per epoch (the global shuffle), no more
  assert coll.get("all-gather") == [[f"{2 * BATCH},{N_VIS}"]], coll
  assert {d for r in coll["all-reduce"] for d in r} <= _PARAM_DIMS, coll
  out, info = trainer.epoch(key, state, data, BATCH)
  _assert_replicated(out.params)
  _assert_split(out.chains.v)
  _assert_same_training(out, info, ref_out, ref_info)


@sharded
def test_data_parallel_cd_update_under_jit(mesh):
  trainer = contrastive.cd(optax.adam(1e-2), k=1)
  dp = parallel.data_parallel(trainer, mesh)
  key, batch = jax.random.key(6), _data(BATCH)
  state = dp.init(key, _params())
  assert state.chains is None
  update = jax.jit(dp.update)
  hlo = update.lower(key, state, batch).compile().as_text()
  _assert_dot_rows(hlo, {BATCH // N_DEV, N_VIS, N_HID}, {BATCH // N_DEV})
  coll = _collectives(hlo)
  assert set(coll) == {"all-reduce"}, coll
  assert {d for r in coll["all-reduce"] for d in r} <= _PARAM_DIMS, coll
  out, info = update(key, state, batch)
  ref_out, ref_info = jax.jit(trainer.update)(key, trainer.init(key, _params()), batch)
  _assert_replicated(out.params)
  for a, b in zip(jax.tree.leaves((out.params, info)), jax.tree.leaves((ref_out.params, ref_info))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
