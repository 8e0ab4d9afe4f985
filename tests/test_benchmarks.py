"""The benchmark suite's smoke run, so that it never rots (issue 5)."""

import importlib.util
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_suite_quick_run():
  result = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  assert "jdbn" in result.stdout
  # every question ran, the AIS one with its chain-sharded subprocess
  for section in ("CD-1 / PCD-1 epoch", "Gibbs sampling throughput", "AIS against its GEMM bound",
                  "chains over 2 devices", "DBM training epoch"):
    assert section in result.stdout, section


@pytest.mark.slow
def test_dbm_benchmark_quick_run():
  """``benchmarks.run --quick --only dbm``: jdbn, the NumPy peer, the GEMM bound; no file."""
  results = REPO_ROOT / "benchmarks" / "RESULTS.md"
  before = results.read_text() if results.exists() else None
  out = _run("-m", "benchmarks.run", "--quick", "--only", "dbm")
  assert "== DBM training epoch ==" in out and "(nothing written)" in out
  rows = {line.split("|")[1].strip(): line for line in out.splitlines()
          if line.startswith("| jdbn (") or line.startswith("| NumPy |")}
  assert set(rows) == {"jdbn (threefry2x32)", "NumPy"}, out[-3000:]
  assert "GEMM bound:" in out and "46 products" in out
  assert (results.read_text() if results.exists() else None) == before


@pytest.mark.slow
def test_tempering_benchmark_quick_run():
  """``benchmarks.tempering_speed --quick``: the PT step against M sweeps; no file."""
  results = REPO_ROOT / "benchmarks" / "RESULTS.md"
  before = results.read_text() if results.exists() else None
  out = _run("-m", "benchmarks.tempering_speed", "--quick")
  assert "| PT step, M replicas |" in out and "x M sweeps" in out
  assert (results.read_text() if results.exists() else None) == before


def _run(*argv, env=None):
  result = subprocess.run([sys.executable, *map(str, argv)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600, env=env)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  return result.stdout


def _bench_module(name):
  """``benchmarks/<name>.py`` as a module, whatever the working directory."""
  spec = importlib.util.spec_from_file_location(f"bench_{name}",
                                                REPO_ROOT / "benchmarks" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


class _Uniforms:
  """Stands in for the NumPy generator: hands out the given uniforms in order."""

  def __init__(self, arrays):
    self.arrays = list(arrays)

  def random(self, size=None, dtype=None, out=None):
    out[...] = self.arrays.pop(0)
    return out


def test_numpy_dbm_peer_does_jdbns_update():
  """The DBM benchmark's NumPy peer computes jdbn's update: the same mean-field states and sweeps,
  the same Gibbs conditionals in the same order, and (given jdbn's negative states) the same
  params after two momentum-SGD updates."""
  import jax
  import jax.numpy as jnp
  import optax
  from jdbn.models import dbm as D
  from jdbn.train import contrastive
  from jdbn.train import dbm as TD
  from jdbn.train import phases as PH
  peers = _bench_module("peers")
  sizes, B, N, S, k, lr, momentum = (12, 8, 6), 5, 4, 6, 2, 0.1, 0.9
  model = D.init(jax.random.key(0), sizes, weight_scale=0.5)
  model = model.replace(biases=tuple(
      0.3 * jax.random.normal(kb, b.shape) for kb, b in zip(jax.random.split(jax.random.key(1), 3),
                                                            model.biases)))
  params = {"W0": model.weights[0], "W1": model.weights[1],
            **{f"a{l}": a for l, a in enumerate(model.biases)}}
  params = {name: np.asarray(a) for name, a in params.items()}
  rng = np.random.default_rng(0)
  data = (rng.random((2, B, sizes[0])) < 0.4).astype(np.float32)

  # Positive phase: to the sweep cap (tol=0) and stopped early by a tolerance.
  stopped_early = False
  for tol in (0.0, 1e-2, 0.1):
    peer = peers.NumpyDBM(params, B, N, S, tol, lr, momentum, rng)
    peer.X0[:B] = data[0]
    sweeps = peer.positive()
    mf = D.mean_field(model, data[0], tol=tol, max_iter=S)
    assert sweeps == int(mf.n_iter)
    stopped_early |= sweeps < S
    for got, want in zip(peer.q[1:], mf.states[1:]):
      np.testing.assert_allclose(got, np.asarray(want), atol=1e-5)
  assert stopped_early

  # One Gibbs sweep of the chains with given uniforms, against jdbn's fields: h1 first, then v
  # and h2 from the new h1.
  states = [(rng.random((N, s)) < 0.5).astype(np.float32) for s in sizes]
  uniforms = [rng.random((N, s)).astype(np.float32) for s in (sizes[1], sizes[0], sizes[2])]
  peer = peers.NumpyDBM(params, B, N, S, 0.0, lr, momentum, rng)
  peer.reset(states)
  peer.rng = _Uniforms(uniforms)
  peer.negative(1)
  want = list(states)
  mean = lambda l: jax.nn.sigmoid(model.field(want, l) + model.biases[l])
  want[1] = np.asarray(uniforms[0] < mean(1), np.float32)
  want[0], want[2] = (np.asarray(uniforms[1] < mean(0), np.float32),
                      np.asarray(uniforms[2] < mean(2), np.float32))
  for got, w in zip(peer.chains, want):
    np.testing.assert_array_equal(got, w)

  # Two updates (the second with momentum), the peer given jdbn's negative states.
  trainer = TD.pcd(optax.sgd(lr, momentum=momentum), n_chains=N, k=k, tol=0.0, max_iter=S)
  phases = PH.Phases(TD.mean_field_phase(0.0, S), PH.persistent(k, N), PH.energy_score)
  state = trainer.init(jax.random.key(2), model)
  peer = peers.NumpyDBM(params, B, N, S, 0.0, lr, momentum, rng)
  for i in range(2):
    key = jax.random.key(10 + i)
    est = contrastive.gradient(key, phases, state.params, state.chains, jnp.asarray(data[i]))
    state, _ = trainer.update(key, state, data[i])
    peer.X0[:B] = data[i]
    assert peer.positive() == S
    for chain, negative in zip(peer.chains, est.negatives):
      chain[...] = np.asarray(negative)
    peer.step()
    got = (peer.p["W0"], peer.p["W1"], peer.p["a0"], peer.p["a1"], peer.p["a2"])
    for g, w in zip(got, state.params.weights + state.params.biases):
      np.testing.assert_allclose(g, np.asarray(w), atol=1e-5, rtol=1e-5)
