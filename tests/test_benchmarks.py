"""The benchmark suite's smoke run, so that it never rots (issue 5)."""

import importlib.util
import json
import pathlib
import re
import subprocess
import sys
import types

import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


HISTORY = REPO_ROOT / "benchmarks" / "HISTORY.md"


def _snapshot(folder):
  """``{path: bytes}`` of the files under ``folder`` (``quick/`` left out): did anything move?"""
  return {f: f.read_bytes() for f in sorted(pathlib.Path(folder).rglob("*"))
          if f.is_file() and "quick" not in f.relative_to(folder).parts}


def _top(page_text):
  """The generated top of a page: the lines down to the end-of-table marker."""
  from benchmarks import page
  lines = page_text.splitlines()
  return lines[:lines.index(page.END) + 1]


def _anchors(path):
  """GitHub's anchors of a markdown file's headings: lower case, punctuation dropped, spaces to
  hyphens, a repeated one suffixed ``-1``, ``-2`` ..."""
  counts, out = {}, set()
  for line in pathlib.Path(path).read_text().splitlines():
    m = re.match(r"#{1,6} (.*)$", line)
    if m:
      base = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
      out.add(base if base not in counts else f"{base}-{counts[base]}")
      counts[base] = counts.get(base, 0) + 1
  return out


def _check_links(lines, page_dir):
  """Every markdown link of ``lines`` names a file that exists, and its anchor a heading there."""
  links = [m for line in lines for m in re.findall(r"\]\(([^)]+)\)", line)]
  assert links
  for link in links:
    target, _, frag = link.partition("#")
    path = (pathlib.Path(page_dir) / target).resolve()
    assert path.exists(), link
    assert not frag or frag in _anchors(path), link
  return links


@pytest.mark.slow
def test_benchmark_suite_quick_run(tmp_path):
  """``benchmarks.run --quick``: every speed benchmark runs, writes its latest JSON and markdown
  into ``--out``, and the page there has a row for every question; the real figures and the
  dated log are left alone."""
  from benchmarks import page, record
  before = _snapshot(record.RESULTS_DIR), HISTORY.read_bytes()
  result = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--out",
                           str(tmp_path)], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  # every question ran, the AIS one with its chain-sharded subprocess
  for section in ("CD-1 / PCD-1 epoch", "Gibbs sampling throughput", "AIS against its GEMM bound",
                  "chains over 2 devices", "DBM training epoch", "Parallel tempering step",
                  "Gibbs sampling against thrml", "Convolutional RBM CD-1 epoch"):
    assert section in result.stdout, section
  # thrml is no dependency: without it its benchmark says so and writes nothing
  unmeasured = {"cd_mnist"} | (set() if _have_thrml() else {"thrml"})
  measured = {}
  for stem in page.SPEED_FILES:
    if stem == "thrml_peer" and not _have_thrml():
      assert "thrml is not installed" in result.stdout and not (tmp_path / f"{stem}.json").exists()
      continue
    data = json.loads((tmp_path / f"{stem}.json").read_text())
    assert set(record.PAYLOAD_KEYS) <= set(data) and data["quick"] is True, stem
    assert data["name"] == stem and data["machine"] and data["machine_info"]["cpu"]
    for row in data["rows"]:
      assert set(record.ROW_KEYS) <= set(row) and "x" in row["figure"], row
      measured[row["id"]] = row
    assert (tmp_path / f"{stem}.md").read_text().startswith("# ")
  # --quick measures every row but the MNIST epoch, which needs a full run (and thrml's, without it)
  assert set(measured) == {row_id for _, row_id, _ in page.ROWS} - unmeasured
  top = _top((tmp_path / "README.md").read_text())
  assert len(top) < 40 and "--quick" in top[2]
  table = "\n".join(top)
  for _, row_id, question in page.ROWS:
    row = measured.get(row_id)
    assert (row["question"] if row else question) in table, row_id
    if row:
      assert row["figure"].replace("|", "\\|") in table, row_id
  assert "not measured in this run" in table  # the MNIST epoch's row says so
  _check_links(top, tmp_path)
  assert (_snapshot(record.RESULTS_DIR), HISTORY.read_bytes()) == before
  _check_dbm_row(result.stdout, tmp_path)
  _check_tempering_row(result.stdout, tmp_path)
  _check_conv_row(result.stdout, tmp_path)


def _check_dbm_row(out, folder):
  """The DBM benchmark's quick run: jdbn, the NumPy peer, the GEMM bound of its 46 products."""
  rows = {line.split("|")[1].strip(): line for line in out.splitlines()
          if line.startswith("| jdbn (") or line.startswith("| NumPy |")}
  assert {"jdbn (threefry2x32)", "NumPy"} <= set(rows), out[-3000:]
  assert "GEMM bound:" in out and "46 products" in out
  data = json.loads((folder / "dbm_speed.json").read_text())
  assert [r["id"] for r in data["rows"]] == ["dbm"] and "x NumPy" in data["rows"][0]["figure"]
  assert set(data["results"]["median_s"]) == {"jdbn (threefry2x32)", "NumPy"}
  assert "46 products" in (folder / "dbm_speed.md").read_text()


def _check_tempering_row(out, folder):
  """The PT benchmark's quick run: the PT step against M sweeps."""
  assert "| PT step, M replicas |" in out and "x M sweeps" in out
  data = json.loads((folder / "tempering_speed.json").read_text())
  assert data["results"]["pt_over_M_sweeps"] > 0 and data["rows"][0]["id"] == "pt"


def _check_conv_row(out, folder):
  """The conv RBM benchmark's quick run: jdbn's epoch against the convolutions alone (PyTorch
  skipped in quick mode)."""
  assert "skipping PyTorch" in out and "Convolution bound:" in out
  for kind in ("`conv`", "`conv_transpose`", "`weight_grad`"):
    assert f"| {kind} |" in out, kind
  data = json.loads((folder / "conv_epoch.json").read_text())
  assert [r["id"] for r in data["rows"]] == ["conv"]
  assert "of the convolution bound" in data["rows"][0]["figure"]
  assert set(data["results"]["config"]["median_s"]) == {"jdbn CD-1", "jdbn CD-1 (metrics=False)"}
  assert data["results"]["config"]["bound_s"] > 0


def test_no_write_writes_nothing(tmp_path, monkeypatch):
  """``--no-write`` reaches every benchmark's ``run`` as ``write=False`` (so nothing lands
  in ``--out`` or the dated log), without running anything."""
  from benchmarks import run as B
  seen = []
  benchmarks = [m for m in vars(B).values() if isinstance(m, types.ModuleType)
                and m.__name__.startswith("benchmarks.") and hasattr(m, "run")]

  def fake_run(name):
    def run(*args, **kwargs):
      seen.append((name, kwargs["write"]))
      return {"targets": {}}
    return run

  for module in benchmarks:
    monkeypatch.setattr(module, "run", fake_run(module.__name__))
  B.main(["--quick", "--no-write", "--out", str(tmp_path)])
  assert len(seen) == len(benchmarks) >= 5 and not any(write for _, write in seen), seen
  assert not any(tmp_path.iterdir())


def test_results_page_is_generated_and_fits_one_screen():
  """benchmarks/README.md's top is what ``benchmarks.page`` makes of benchmarks/results/ (so a
  re-run benchmark updates its row, and nobody edits the table by hand), under 40 lines, with a
  figure in every row and every link resolving."""
  from benchmarks import page, record
  top = _top(page.PAGE_PATH.read_text())
  assert "\n".join(top) == page.render(record.RESULTS_DIR, page.PAGE_PATH.parent), (
      "benchmarks/README.md is stale: run `python -m benchmarks.page`")
  assert len(top) < 40
  table = [line for line in top if line.startswith("| ") and "---" not in line][1:]
  quality = json.loads(record.QUALITY_PATH.read_text())["rows"]
  assert len(table) == len(page.ROWS) + len(quality)
  assert all(line.split(" | ")[3] for line in table), table  # a machine, so a figure: measured
  links = _check_links(top, page.PAGE_PATH.parent)
  for stem in page.SPEED_FILES:
    assert f"results/{stem}.md" in links


def test_latest_results_files_have_the_page_keys():
  """Each committed speed result has every key the page reads, a row for each of its questions,
  a full (not --quick) run's figures, an ISO date and its markdown beside it; a transcribed one
  names a section HISTORY.md has. Each quality row names its command, machine, date and detail."""
  from benchmarks import page, record
  history = HISTORY.read_text().splitlines()
  for stem in page.SPEED_FILES:
    data = json.loads((record.RESULTS_DIR / f"{stem}.json").read_text())
    assert set(record.PAYLOAD_KEYS) <= set(data) and data["name"] == stem, stem
    assert data["quick"] is False and re.fullmatch(r"\d{4}-\d\d-\d\d", data["date"]), stem
    assert {r["id"] for r in data["rows"]} >= {i for f, i, _ in page.ROWS if f == stem}, stem
    for row in data["rows"]:
      assert set(record.ROW_KEYS) <= set(row) and row["figure"], row
    if data["source"] != "measured":
      assert f"## {data['source_section']}" in history, data["source"]
    assert (record.RESULTS_DIR / f"{stem}.md").read_text().startswith(f"# {data['title']}")
  for row in json.loads(record.QUALITY_PATH.read_text())["rows"]:
    assert set(record.QUALITY_KEYS) <= set(row), row
    assert (REPO_ROOT / row["detail"]["file"]).exists(), row["detail"]


def test_write_latest_replaces_and_appends_history(tmp_path):
  """``write_latest`` replaces both files (never appends to them) and logs a dated entry only
  when asked; ``update_quality`` replaces the row with the same id and keeps the others."""
  from benchmarks import record
  log = tmp_path / "HISTORY.md"
  log.write_text("# log\n")
  for i in (1, 2):
    paths = record.write_latest("x", {"title": "X", "date": f"2026-12-0{i}", "v": i}, f"# X {i}",
                                tmp_path / "out", history=f"run {i}" if i == 2 else None,
                                history_path=log)
    assert json.loads(paths[0].read_text())["v"] == i and paths[1].read_text() == f"# X {i}\n"
  assert log.read_text() == "# log\n\n## X (2026-12-02)\n\nrun 2\n"
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.json", "x.md"]
  quality = tmp_path / "quality.json"
  base = dict(command="c", machine="m", date="2026-12-05", source="s",
              detail={"file": "README.md", "section": None})
  for id_, figure in (("a", "1"), ("b", "2"), ("a", "3")):
    record.update_quality(dict(record.row(id_, "q", figure), **base), quality)
  assert [(r["id"], r["figure"]) for r in json.loads(quality.read_text())["rows"]] == [
      ("a", "3"), ("b", "2")]
  with pytest.raises(ValueError, match="lacks"):
    record.update_quality(record.row("c", "q", "f"), quality)


def test_page_marks_missing_rows_and_guards_the_real_figures(tmp_path):
  """A results folder with one benchmark's file gives a page whose other rows say they were not
  measured; a --quick payload aimed at benchmarks/results is refused before anything is written."""
  from benchmarks import page, record
  info = {"cpu": "Test CPU", "usable_cpus": 2, "jax_backend": "cpu (cpu)"}
  data = record.payload("tempering_speed", "PT", "python -m benchmarks.tempering_speed --quick",
                        [record.row("pt", "PT step, test", "0.50x M sweeps")], machine_info=info,
                        quick=True, targets={}, results={})
  page.publish("tempering_speed", data, "tables", tmp_path, log=lambda *_: None)
  top = _top((tmp_path / "README.md").read_text())
  rows = [line for line in top if line.startswith("| ") and "---" not in line][1:]
  assert sum("not measured yet" in line for line in rows) == len(page.ROWS) - 1
  assert any("| PT step, test |" in line and "2-core Test" in line for line in rows)
  assert "0.50x M sweeps" in (tmp_path / "tempering_speed.md").read_text()
  _check_links(top, tmp_path)
  before = _snapshot(record.RESULTS_DIR)
  with pytest.raises(ValueError, match="--quick"):
    page.publish("tempering_speed", data, "tables", record.RESULTS_DIR)
  assert _snapshot(record.RESULTS_DIR) == before


def test_page_anchors_follow_github(tmp_path):
  """The page's anchors are GitHub's: punctuation dropped, repeated headings numbered."""
  from benchmarks import page
  doc = tmp_path / "doc.md"
  doc.write_text("# T\n## CD-1 (`x.py`, issue 3): run\n### digits 64x32\n## B\n"
                 "### digits 64x32\n")
  assert page.anchor(doc, "CD-1 (`x.py`, issue 3): run") == "cd-1-xpy-issue-3-run"
  assert page.anchor(doc, "digits 64x32") == "digits-64x32"
  assert {"digits-64x32", "digits-64x32-1"} <= _anchors(doc)
  with pytest.raises(ValueError, match="no heading"):
    page.anchor(doc, "missing")


def _have_thrml():
  return importlib.util.find_spec("thrml") is not None


def test_thrml_peer_spin_form_is_the_rbm():
  """The RBM handed to thrml is the same distribution: with ``s = 2v - 1``, ``t = 2h - 1``, the
  Bernoulli energy minus the spin energy of :func:`spin_form` is one constant for all states."""
  import jax.numpy as jnp
  from jdbn.models import rbm
  module = _bench_module("thrml_peer")
  rng = np.random.default_rng(0)
  W, b, c = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in ((6, 4), (6,), (4,)))
  params = rbm.RBM(W=W, b=b, c=c)
  bias_v, bias_h, J = (np.asarray(a, np.float64) for a in module.spin_form(W, b, c))
  v = (rng.random((50, 6)) < 0.5).astype(np.float32)
  h = (rng.random((50, 4)) < 0.5).astype(np.float32)
  s, t = 2 * v - 1, 2 * h - 1
  spin = -(s @ bias_v + t @ bias_h + np.einsum("ni,ij,nj->n", s, J, t))
  gap = np.asarray(rbm.energy(params, v, h), np.float64) - spin
  np.testing.assert_allclose(gap, gap[0], atol=1e-4)


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


def test_torch_conv_peer_does_jdbns_update():
  """The conv benchmark's PyTorch peer: its pooling probabilities are PoolingSoftmax's means, its
  block sampler draws from them (one unit on at most per block, frequencies within 5 s.e.), and
  its CD gradient is ``jax.grad`` of jdbn's surrogate ``mean F(v0) - mean F(v1)`` (needs torch;
  CI skips it)."""
  torch = pytest.importorskip("torch")
  import jax
  import jax.numpy as jnp
  from jdbn.models import base
  from jdbn.models import conv
  P = _bench_module("conv_peers")
  m = conv.init(jax.random.key(0), (2, 7, 7), 3, 4, pool=2, weight_scale=0.5)
  m = m.replace(b=jnp.asarray([0.2, -0.3]), c=jnp.asarray([0.1, -0.5, 0.4]))
  rng = np.random.default_rng(0)
  v0, v1 = ((rng.random((5, 2 * 49)) < 0.5).astype(np.float32) for _ in range(2))
  tv = lambda v: torch.from_numpy(v.reshape(5, 2, 7, 7))
  W, c = torch.from_numpy(np.array(m.W)), torch.from_numpy(np.array(m.c))
  probs = lambda v: P.pool_probabilities(torch, torch.nn.functional.conv2d(tv(v), W, c), 2)
  p0, p1 = probs(v0), probs(v1)
  np.testing.assert_allclose(P.from_blocks(p0, 2).reshape(5, -1).numpy(),
                             conv.hidden_mean(m, v0), atol=1e-6)
  surrogate = lambda p: (jnp.mean(base.free_energy(p, (v0, None), (1,))) -
                         jnp.mean(base.free_energy(p, (v1, None), (1,))))
  want = jax.grad(surrogate)(m)
  for fused in (True, False):
    got = P.cd_grads(torch, W, tv(v0), P.from_blocks(p0, 2), tv(v1), P.from_blocks(p1, 2), fused)
    for g, w in zip(got, (want.W, want.b, want.c)):
      np.testing.assert_allclose(g.numpy(), np.asarray(w), rtol=1e-4, atol=1e-5)
  n = 4000
  g = p0[:1, :1, :1, :1].expand(n, 1, 1, 1, 4).contiguous()
  s = P.sample_blocks(torch, g, torch.Generator().manual_seed(0)).numpy()
  assert set(np.unique(s)) <= {0.0, 1.0} and s.sum(-1).max() <= 1
  freq, p = s.reshape(n, 4).mean(0), g[0].reshape(4).numpy()
  assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-3), (freq, p)
