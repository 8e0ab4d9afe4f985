"""jdbn against thrml (Extropic's JAX block-Gibbs library): the same samplers, in one run.

Two questions of issue 28, each at the same chain counts and the same number of sweeps for both
libraries, in the same process, with interleaved repeats (the order rotating) and medians:

* **(a) a dense 784x500 bipartite model.** jdbn's batched block Gibbs on a Bernoulli RBM
  (``jdbn.gibbs.chain``: two matrix products per sweep) against thrml sampling the same
  distribution written as thrml's ``IsingEBM`` on spins: ``v = (1 + s) / 2``, ``h = (1 + t) / 2``
  turn ``E = -b.v - c.h - v W h`` into ``-(s.(b/2 + W 1/4) + t.(c/2 + W' 1/4) + s (W/4) t)`` plus a
  constant (:func:`spin_form`), built from its edge list (784 x 500 edges) with the blocks
  ``[hidden, visible]``, so a sweep samples ``h | v`` then ``v | h`` as jdbn does. Figure:
  chain-sweeps per second; target **30x thrml**. At 100 and 1,000 chains: thrml gathers each
  chain's ``[500, 784]`` neighbour states per half sweep, and 1,000 chains in one ``vmap`` already
  peak near 2 GB, so 10,000 (about 20 GB) is not run on the project's shared 23 GB machine.
* **(b) a 256 x 256 Ising torus at T_c**, checkerboard blocks: jdbn's ``models.lattice`` (one
  ``jnp.roll`` sum per half sweep) against thrml's ``IsingEBM`` on the lattice's edge list with
  the black and the white sites as blocks. Figure: spin flips (site updates) per second; target
  **2x thrml**. Also timed: jdbn's generic lattice path (the same checkerboard as a colour map:
  join, couple, gather), which the checkerboard's own path (``jdbn/models/_checkerboard.py``)
  replaced.

thrml is run the way its README and its spin-models notebook do: ``IsingEBM`` +
``IsingSamplingProgram``, ``sample_states`` with a ``SamplingSchedule(n_sweeps, 1, 1)``, and
``jax.jit(jax.vmap(...))`` over per-chain keys and initial states. Both libraries get keys of the
same PRNG implementation (``--impl``, default JAX's ``threefry2x32``) and start from the same
states. The exact thrml programs are :func:`thrml_rbm` and :func:`thrml_ising` below, and their
source is copied into the results ``.md``. Building thrml's program (Python, from the edge list)
and compiling either library (``jit(...).lower(...).compile()``) are reported apart from the run
time. After the timing, one extra call per library gives a statistic of the final states (the
mean visible unit, the mean ``|m|``) as a check that both sample the same model.

thrml is not a dependency of jdbn. ``thrml==0.1.4`` (which needs ``equinox`` and ``jaxtyping``)
installs beside jdbn's own ``jax`` (0.10.2 here) without changing it; put it in its own venv::

    python -m venv /path/venv-thrml
    /path/venv-thrml/bin/pip install -e ".[bench]" thrml==0.1.4
    /path/venv-thrml/bin/python -m benchmarks.thrml_peer            # the figures
    python -m benchmarks.thrml_peer --quick    # tiny sizes; without thrml: a message, exit 0

A run writes ``benchmarks/results/thrml_peer.json`` and ``.md`` (``--quick``: in
``benchmarks/results/quick/``; ``--out`` elsewhere), regenerates the results page and, for a full
run, appends a short dated entry to ``benchmarks/HISTORY.md``.
"""

from __future__ import annotations

import argparse
import inspect
import math
import pathlib
import time

import numpy as np

from benchmarks import common as C
from benchmarks import page
from benchmarks import record as R

T_C = 2.0 / math.log(1.0 + math.sqrt(2.0))
TARGETS = {"rbm": 30.0, "ising": 2.0}
FULL = dict(shape=(784, 500), rbm_chains=(100, 1_000), rbm_work=5_000, size=256,
            ising_chains=(1, 16), ising_sweeps=20, repeats=5)
QUICK = dict(shape=(64, 32), rbm_chains=(1, 100), rbm_work=2_000, size=32, ising_chains=(1, 4),
             ising_sweeps=10, repeats=3)
INSTALL = "pip install thrml==0.1.4 (in its own venv: see benchmarks/thrml_peer.py)"

# ------------------------------------------------------------------------- the thrml programs


def thrml_rbm(bias_v, bias_h, J, n_sweeps: int):
  """thrml's sampler of the bipartite spin model ``(bias_v [n_v], bias_h [n_h], J [n_v, n_h])``.

  Returns ``run(keys [n], h0 [n, n_h] bool, v0 [n, n_v] bool) -> v [n, n_v] bool`` after
  ``n_sweeps`` sweeps (``h | v``, then ``v | h``) of ``n`` chains.
  """
  import jax
  import jax.numpy as jnp
  from thrml import Block, SamplingSchedule, SpinNode, sample_states
  from thrml.models import IsingEBM, IsingSamplingProgram

  n_v, n_h = J.shape
  vis = [SpinNode() for _ in range(n_v)]
  hid = [SpinNode() for _ in range(n_h)]
  edges = [(vis[i], hid[j]) for i in range(n_v) for j in range(n_h)]  # row-major, as J
  model = IsingEBM(vis + hid, edges, jnp.concatenate([bias_v, bias_h]), J.reshape(-1),
                   jnp.array(1.0))
  free_blocks = [Block(hid), Block(vis)]  # one sweep: h | v, then v | h
  program = IsingSamplingProgram(model, free_blocks, clamped_blocks=[])
  schedule = SamplingSchedule(n_warmup=n_sweeps, n_samples=1, steps_per_sample=1)

  def run(keys, h0, v0):
    one = lambda k, h, v: sample_states(k, program, schedule, [h, v], [], [Block(vis)])[0][0]
    return jax.vmap(one)(keys, h0, v0)

  return run


def thrml_ising(size: int, beta: float, n_sweeps: int):
  """thrml's checkerboard sampler of the ``size x size`` Ising torus (``J = 1``, ``h = 0``).

  Returns ``run(keys [n], black0 [n, size^2/2] bool, white0 [n, size^2/2] bool) -> (black,
  white)`` after ``n_sweeps`` sweeps; a site ``(r, c)`` is black when ``r + c`` is even, and
  each block lists its sites in row-major order (as ``jdbn.models.lattice`` does).
  """
  import jax
  import jax.numpy as jnp
  from thrml import Block, SamplingSchedule, SpinNode, sample_states
  from thrml.models import IsingEBM, IsingSamplingProgram

  grid = [[SpinNode() for _ in range(size)] for _ in range(size)]
  nodes = [node for row in grid for node in row]
  edges = [(grid[r][c], grid[r][(c + 1) % size]) for r in range(size) for c in range(size)]
  edges += [(grid[r][c], grid[(r + 1) % size][c]) for r in range(size) for c in range(size)]
  model = IsingEBM(nodes, edges, jnp.zeros(len(nodes)), jnp.ones(len(edges)), jnp.array(beta))
  black = Block([grid[r][c] for r in range(size) for c in range(size) if (r + c) % 2 == 0])
  white = Block([grid[r][c] for r in range(size) for c in range(size) if (r + c) % 2 == 1])
  program = IsingSamplingProgram(model, [black, white], clamped_blocks=[])
  schedule = SamplingSchedule(n_warmup=n_sweeps, n_samples=1, steps_per_sample=1)

  def run(keys, s_black, s_white):
    one = lambda k, b, w: [x[0] for x in sample_states(k, program, schedule, [b, w], [],
                                                       [black, white])]
    return jax.vmap(one)(keys, s_black, s_white)

  return run


# --------------------------------------------------------------------------- the jdbn programs


def spin_form(W, b, c):
  """A Bernoulli RBM as a spin model, ``E = -(s.bias_v + t.bias_h + s J t) + const``.

  Args:
    W: ``[n_v, n_h]`` weights; b: ``[n_v]``, c: ``[n_h]`` biases of ``E = -b.v - c.h - v W h``.

  Returns:
    ``(bias_v [n_v], bias_h [n_h], J [n_v, n_h])`` for spins ``s = 2 v - 1``, ``t = 2 h - 1``.
  """
  return b / 2 + W.sum(1) / 4, c / 2 + W.sum(0) / 4, W / 4


def jdbn_rbm(params, n_sweeps: int):
  """``run(key, v0 [n, n_v]) -> v [n, n_v]``: ``n_sweeps`` batched sweeps of ``jdbn.gibbs``."""
  from jdbn import gibbs

  def run(key, v0):
    return gibbs.chain(key, params, gibbs.init(params, v0), n_sweeps)[0].v

  return run


def jdbn_ising(size: int, beta: float, n_sweeps: int, generic: bool = False):
  """``run(key, (black, white)) -> (black, white)``: checkerboard sweeps of the Ising torus.

  ``generic``: the same checkerboard given as a colour map, which takes the lattice's generic
  path (join the blocks, couple the image, gather the block) instead of its checkerboard one.
  """
  from jdbn.models import lattice
  from jdbn.samplers import gibbs

  colouring = np.indices((size, size)).sum(0) % 2 if generic else "checkerboard"
  model = lattice.init((size, size), J=1.0, colouring=colouring).tempered(beta)

  def run(key, states):
    return gibbs.chain(key, model, states, n_sweeps)[0]

  return run


def compiled(fn, *args):
  """``(call, compile seconds)``: ``fn`` compiled for ``args``; ``call()`` runs it on them."""
  import jax
  t = time.perf_counter()
  exe = jax.jit(fn).lower(*args).compile()
  return (lambda: exe(*args)), time.perf_counter() - t


# ------------------------------------------------------------------------------- measurements


def sweeps_for(n_chains: int, work: int) -> int:
  """Sweeps per timed call: about ``work`` chain-sweeps, 2 to 200 sweeps."""
  return int(max(2, min(200, work // n_chains)))


def _mean_se(x) -> tuple:
  """The mean of ``x [n_chains, ...]`` and its standard error over the chains (NaN for one)."""
  per_chain = np.asarray(x, np.float64).reshape(len(x), -1).mean(1)
  se = per_chain.std(ddof=1) / math.sqrt(len(per_chain)) if len(per_chain) > 1 else math.nan
  return float(per_chain.mean()), float(se)


def _race(fns: dict, builds: dict, compiles: dict, stats: dict, repeats: int, log) -> dict:
  """Interleaved timings of ``fns``; then one more call each for ``stats`` of its output."""
  timings = C.interleaved(fns, repeats=repeats, log=log)
  checks = {name: _mean_se(stats[name](fns[name]())) for name in fns}
  return dict(timings=timings, build=builds, compile=compiles, check=checks)


def measure_rbm(n_chains: int, cfg: dict, impl: str, repeats: int, log=print) -> dict:
  """Chain-sweeps of the ``cfg["shape"]`` RBM, jdbn against thrml, at ``n_chains`` chains."""
  import jax
  import jax.numpy as jnp
  from jdbn import rbm

  n_visible, n_hidden = cfg["shape"]
  n_sweeps = sweeps_for(n_chains, cfg["rbm_work"])
  log(f"RBM {n_visible}x{n_hidden}: {n_chains:,} chains x {n_sweeps} sweeps")
  params = rbm.init(jax.random.key(0), n_visible, n_hidden)
  params = params.replace(b=0.1 * jax.random.normal(jax.random.key(1), (n_visible,)))
  v0 = jax.random.bernoulli(jax.random.key(2), 0.5, (n_chains, n_visible))
  key = jax.random.key(3, impl=impl)
  t = time.perf_counter()
  thrml_run = thrml_rbm(*spin_form(params.W, params.b, params.c), n_sweeps)
  builds = {"thrml": time.perf_counter() - t}
  fns, compiles = {}, {}
  fns["jdbn"], compiles["jdbn"] = compiled(jdbn_rbm(params, n_sweeps), key,
                                           v0.astype(params.W.dtype))
  fns["thrml"], compiles["thrml"] = compiled(thrml_run, jax.random.split(key, n_chains),
                                             jnp.zeros((n_chains, n_hidden), bool), v0)
  log(f"  thrml build {builds['thrml']:.1f} s; compile: jdbn {compiles['jdbn']:.2f} s, "
      f"thrml {compiles['thrml']:.2f} s")
  stats = {"jdbn": lambda v: v, "thrml": lambda v: v}
  res = _race(fns, builds, compiles, stats, repeats, log)
  return dict(res, n_chains=n_chains, n_sweeps=n_sweeps, units=n_chains * n_sweeps,
              unit="chain-sweeps")


def measure_ising(n_chains: int, cfg: dict, impl: str, repeats: int, log=print) -> dict:
  """Spin flips of checkerboard Gibbs on the ``cfg["size"]`` torus at ``T_c``, jdbn against
  thrml, at ``n_chains`` chains (every spin +1 at the start)."""
  import jax
  import jax.numpy as jnp

  size, n_sweeps = cfg["size"], cfg["ising_sweeps"]
  log(f"Ising {size}x{size} at T_c: {n_chains:,} chains x {n_sweeps} sweeps")
  half = size * size // 2
  key = jax.random.key(3, impl=impl)
  t = time.perf_counter()
  thrml_run = thrml_ising(size, 1.0 / T_C, n_sweeps)
  builds = {"thrml": time.perf_counter() - t}
  fns, compiles = {}, {}
  for name, generic in (("jdbn", False), ("jdbn, generic lattice path", True)):
    fns[name], compiles[name] = compiled(jdbn_ising(size, 1.0 / T_C, n_sweeps, generic), key,
                                         (jnp.ones((n_chains, half)),) * 2)
  fns["thrml"], compiles["thrml"] = compiled(thrml_run, jax.random.split(key, n_chains),
                                             jnp.ones((n_chains, half), bool),
                                             jnp.ones((n_chains, half), bool))
  log(f"  thrml build {builds['thrml']:.1f} s; compile: jdbn {compiles['jdbn']:.2f} s, "
      f"thrml {compiles['thrml']:.2f} s")
  abs_m = lambda s: np.abs(np.mean(np.concatenate(  # noqa: E731
      [np.asarray(x, np.float32) for x in s], -1), -1))
  stats = {name: abs_m for name in fns}
  stats["thrml"] = lambda s: abs_m([2 * np.asarray(x, np.float32) - 1 for x in s])
  res = _race(fns, builds, compiles, stats, repeats, log)
  return dict(res, n_chains=n_chains, n_sweeps=n_sweeps, units=n_chains * n_sweeps * size * size,
              unit="spin flips")


# ------------------------------------------------------------------------------------ reports


def ratio(res: dict) -> float:
  """jdbn's speed over thrml's: thrml's median seconds over jdbn's, for the same work."""
  return res["timings"]["thrml"].median / res["timings"]["jdbn"].median


def report(res: dict) -> str:
  """One chain count's table: rates, medians, CPU rates, the ratio, build and compile times."""
  t, units = res["timings"], res["units"]
  rows = []
  for name in t:
    mean, se = res["check"][name]
    rows.append([
        name, f"{units / t[name].median:,.0f}", t[name].fmt(1e3, "ms"),
        f"{units / t[name].cpu_median:,.0f}", f"{t['thrml'].median / t[name].median:.2f}x",
        f"{res['build'][name]:.1f} s" if name in res["build"] else "",
        f"{res['compile'][name]:.2f} s", f"{mean:.4f}" + (f" ± {se:.4f}" if se == se else "")
    ])
  stat = "mean v" if res["unit"] == "chain-sweeps" else r"mean \|m\|"
  return C.markdown_table([
      "library", f"{res['unit']}/s", f"median per call ({res['n_sweeps']} sweeps)",
      f"{res['unit']} per CPU-s", "speed / thrml", "build (Python)", "compile",
      f"{stat} at the end (± s.e. over chains)"
  ], rows)


def targets_for(kind: str, res: dict) -> dict:
  r, n = ratio(res), res["n_chains"]
  what = "chain-sweeps/s" if kind == "rbm" else "spin flips/s"
  return {f"{kind.upper() if kind == 'rbm' else 'Ising'}, {n:,} chains: jdbn >= "
          f"{TARGETS[kind]:g}x thrml's {what}": (f"{r:.1f}x", r >= TARGETS[kind])}


def headline(rbm_res: list, ising_res: list, cfg: dict) -> dict:
  """The page's row: jdbn's speed over thrml's at each chain count, against the targets."""
  rbm = ", ".join(f"{ratio(r):.1f}x at {r['n_chains']:,} chains" for r in rbm_res[::-1])
  ising = ", ".join(f"{ratio(r):.1f}x at {r['n_chains']:,}" for r in ising_res[::-1])
  (n_v, n_h), size = cfg["shape"], cfg["size"]
  return R.row("thrml", f"Gibbs against thrml 0.1.4: {n_v}x{n_h} RBM; {size}x{size} Ising torus",
               f"RBM chain-sweeps/s {rbm} (target 30x); Ising spin flips/s {ising} "
               f"(target 2x)")


def programs_markdown() -> str:
  """The thrml programs that ran, and the RBM's conversion to spins, as python blocks."""
  src = "\n".join(inspect.getsource(f) for f in (spin_form, thrml_rbm, thrml_ising))
  return f"```python\n{src.rstrip()}\n```"


def summary(res: dict) -> dict:
  t = res["timings"]
  return {"n_chains": res["n_chains"], "n_sweeps": res["n_sweeps"], "unit": res["unit"],
          "median_s": {k: v.median for k, v in t.items()},
          "per_s": {k: res["units"] / v.median for k, v in t.items()},
          "jdbn_over_thrml": ratio(res), "build_s": res["build"], "compile_s": res["compile"],
          "check_mean_se": res["check"]}


# -------------------------------------------------------------------------------------- run


def thrml_missing() -> str | None:
  """Why thrml cannot be measured here (a message), or None."""
  if not C.have("thrml"):
    return f"skipping the thrml comparison: thrml is not installed ({INSTALL})"
  return None


def run(*, quick=False, rbm_chains=None, ising_chains=None, repeats=None, impl="threefry2x32",
        only=None, write=False, log=print, out_dir=None) -> dict:
  """Measures both questions; with ``write``, publishes the latest results (``out_dir``).

  Returns ``{"sections", "targets", "rows", "skipped"}``; ``skipped`` is the message (and
  nothing is measured or written) when thrml is not installed.
  """
  why = thrml_missing()
  if why:
    log(why)
    return dict(sections=[], targets={}, rows=[], skipped=why)
  cfg = dict(QUICK if quick else FULL)
  cfg.update({k: v for k, v in (("rbm_chains", rbm_chains), ("ising_chains", ising_chains),
                                ("repeats", repeats)) if v})
  sections, targets, rbm_res, ising_res = [], {}, [], []
  for kind, chains, measure, out in (("rbm", cfg["rbm_chains"], measure_rbm, rbm_res),
                                     ("ising", cfg["ising_chains"], measure_ising, ising_res)):
    for n in chains if only in (None, kind) else ():
      t0 = time.perf_counter()
      res = measure(n, cfg, impl, cfg["repeats"], log)
      out.append(res)
      targets.update(targets_for(kind, res))
      title = (f"{cfg['shape'][0]}x{cfg['shape'][1]} RBM, {n:,} chains" if kind == "rbm" else
               f"{cfg['size']}x{cfg['size']} Ising torus, {n:,} chains")
      sections.append((title, report(res)))
      log(f"\n### {title} ({time.perf_counter() - t0:.0f} s)\n\n{sections[-1][1]}\n")
  machine = C.machine_info()
  machine.update({d: R._version(d) for d in ("thrml", "equinox")})
  log("Targets:\n" + R.targets_summary(targets))
  rows = [headline(rbm_res, ising_res, cfg)]
  if write:
    command = "python -m benchmarks.thrml_peer" + (" --quick" if quick else "")
    data = R.payload("thrml_peer", "Gibbs sampling against thrml", command, rows,
                     machine_info=machine, quick=quick, targets=targets,
                     results={"repeats": cfg["repeats"], "impl": impl, "config": cfg,
                              "rbm": [summary(r) for r in rbm_res],
                              "ising": [summary(r) for r in ising_res]})
    page.publish("thrml_peer", data, body(cfg, impl, sections), out_dir or
                 (R.QUICK_DIR if quick else R.RESULTS_DIR), log=log)
  return dict(sections=sections, targets=targets, rows=rows, skipped=None)


def body(cfg: dict, impl: str, sections: list) -> str:
  (n_v, n_h), size = cfg["shape"], cfg["size"]
  lines = [
      f"jdbn and thrml in one process, the same work at the same chain counts: (a) block Gibbs "
      f"on a {n_v}x{n_h} Bernoulli RBM (jdbn: `gibbs.chain`, batched; thrml: the same model as a "
      f"bipartite `IsingEBM` on spins, {n_v * n_h:,} edges), (b) checkerboard Gibbs on a "
      f"{size}x{size} Ising torus at T_c (jdbn: `models.lattice`; thrml: `IsingEBM` on its "
      f"{2 * size * size:,} edges). Keys: `{impl}` for both. Medians of {cfg['repeats']} "
      f"interleaved repeats; compile (and thrml's Python build of its program) apart. Compare "
      f"ratios within a table: the machine is shared. The last column samples the final "
      f"states: both libraries should agree within a few standard errors.", ""]
  for name, text in sections:
    lines += [f"## {name}", "", text, ""]
  lines += ["## The thrml programs", "",
            "Exactly what ran (`benchmarks/thrml_peer.py`), built as thrml's README and its "
            "spin-models notebook do; `jax.jit` of `run` is what was timed:", "",
            programs_markdown()]
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true", help="tiny sizes, seconds; skips without thrml")
  p.add_argument("--rbm-chains", default=None, help="comma-separated chain counts (RBM)")
  p.add_argument("--ising-chains", default=None, help="comma-separated chain counts (Ising)")
  p.add_argument("--impl", default="threefry2x32", help="the PRNG of both libraries' keys")
  p.add_argument("--only", choices=("rbm", "ising"), default=None,
                 help="one question (writes nothing)")
  p.add_argument("--repeats", type=int, default=None)
  p.add_argument("--no-write", action="store_true", help="write no file")
  p.add_argument("--out", type=pathlib.Path, default=None,
                 help="results folder (default benchmarks/results; --quick: results/quick)")
  args = p.parse_args(argv)
  ints = lambda s: tuple(int(c) for c in s.split(",")) if s else None  # noqa: E731
  res = run(quick=args.quick, rbm_chains=ints(args.rbm_chains),
            ising_chains=ints(args.ising_chains), repeats=args.repeats, impl=args.impl,
            only=args.only, write=not (args.no_write or args.only), out_dir=args.out)
  return 1 if res["skipped"] and not args.quick else 0


if __name__ == "__main__":
  raise SystemExit(main())
