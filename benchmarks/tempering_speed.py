"""What a parallel-tempering step costs against plain Gibbs sweeps, on a 784 x 500 RBM.

Issue target: a PT step with ``M`` replicas costs no more than ``1.1 M`` PCD sweeps (one batched
product per half-sweep, the swaps' energies taken from the sweep's own fields). Timed in one
interleaved run, ``n_steps`` steps inside one ``lax.scan`` each:

* ``jdbn.samplers.tempering.chain``: ``M`` replicas of ``n_chains`` chains;
* ``jdbn.samplers.gibbs.chain``: ``n_chains`` chains (the PCD sweep the ratio divides by);
* ``jdbn.samplers.gibbs.chain`` of ``M * n_chains`` chains of one model: the same number of
  chain-sweeps as one product per half-sweep, what the batched replicas could at best reach.

    python -m benchmarks.tempering_speed            # 784 x 500
    python -m benchmarks.tempering_speed --quick    # 64 x 32

A run writes ``benchmarks/results/tempering_speed.json`` and ``.md`` (``--quick``: in
``benchmarks/results/quick/``; ``--out`` elsewhere), regenerates the results page and, for a full
run, appends a short dated entry to ``benchmarks/HISTORY.md``.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

from benchmarks import common as C
from benchmarks import page
from benchmarks import record as R

TARGET = 1.1


def measure(*, quick: bool, repeats: int, replicas: int = 10, n_chains: int = 100,
            n_steps: int = 50, log=print) -> dict:
  import jax
  from jdbn import rbm
  from jdbn.samplers import gibbs as G
  from jdbn.samplers import tempering as T
  n_v, n_h = (64, 32) if quick else (784, 500)
  n_steps = 5 if quick else n_steps
  key = jax.random.key(0)
  params = rbm.init(key, n_v, n_h, weight_scale=0.1)
  betas = T.ladder(replicas, 0.1)
  pt_state = T.init_random(key, params, replicas, n_chains)
  one = G.init_random(key, params, n_chains)
  many = G.init_random(key, params, replicas * n_chains)
  pt = jax.jit(lambda k, s: T.chain(k, params, s, betas, n_steps))
  gibbs = jax.jit(lambda k, s: G.chain(k, params, s, n_steps)[0])
  fns = {"pt": lambda: pt(key, pt_state), "sweep": lambda: gibbs(key, one),
         "sweep x M chains": lambda: gibbs(key, many)}
  times = C.interleaved(fns, warmup=1, repeats=repeats, log=log)
  med = {k: float(np.median(t.times)) for k, t in times.items()}
  return {"shape": [n_v, n_h], "replicas": replicas, "n_chains": n_chains, "n_steps": n_steps,
          "repeats": repeats, "median_seconds": med,
          "pt_over_M_sweeps": med["pt"] / (replicas * med["sweep"]),
          "pt_over_batched": med["pt"] / med["sweep x M chains"]}


def headline(res: dict) -> dict:
  """The page's row: a PT step's time over M sweeps' (the target) and over one batched sweep."""
  m, c = res["replicas"], res["n_chains"]
  return R.row("pt", f"Parallel tempering step, M = {m} replicas of {c} chains, "
               f"{res['shape'][0]}x{res['shape'][1]}",
               f"takes {res['pt_over_M_sweeps']:.2f}x the time of M sweeps (target <= {TARGET}x);"
               f" {res['pt_over_batched']:.2f}x one sweep of {m * c:,} chains")


def report(res: dict) -> str:
  m, c, k = res["replicas"], res["n_chains"], res["n_steps"]
  rows = [["PT step, M replicas", f"{res['median_seconds']['pt'] / k * 1e3:.3f} ms",
           f"{res['pt_over_M_sweeps']:.2f}x M sweeps", "MET" if
           res["pt_over_M_sweeps"] <= TARGET else "NOT MET"],
          ["Gibbs sweep, n_chains", f"{res['median_seconds']['sweep'] / k * 1e3:.3f} ms", "1", ""],
          ["Gibbs sweep, M x n_chains", f"{res['median_seconds']['sweep x M chains'] / k * 1e3:.3f}"
           " ms", f"PT is {res['pt_over_batched']:.2f}x this", ""]]
  return (f"RBM {res['shape'][0]} x {res['shape'][1]}, M = {m} replicas (geometric ladder to "
          f"beta 0.1), {c} chains each, {k} steps per timed call, median of {res['repeats']} "
          f"interleaved rounds. Target: a PT step <= {TARGET} x M sweeps.\n\n" +
          C.markdown_table(["what", "per step", "ratio", "target"], rows) + "\n")


def run(*, quick=False, repeats=None, write=False, log=print, out_dir=None) -> dict:
  """Times a PT step against sweeps; with ``write``, publishes the latest results (``out_dir``)."""
  repeats = repeats or (3 if quick else 7)
  res = measure(quick=quick, repeats=repeats, log=log)
  machine = C.machine_info()
  text = report(res)
  log(text)
  targets = {} if quick else {
      "PT step / (M sweeps)": (f"{res['pt_over_M_sweeps']:.2f} (<= {TARGET})",
                               res["pt_over_M_sweeps"] <= TARGET)}
  rows = [headline(res)]
  if write:
    data = R.payload("tempering_speed", "Parallel tempering: a step against M Gibbs sweeps",
                     "python -m benchmarks.tempering_speed" + (" --quick" if quick else ""), rows,
                     machine_info=machine, quick=quick, targets=targets, results=res)
    page.publish("tempering_speed", data, text,
                 out_dir or (R.QUICK_DIR if quick else R.RESULTS_DIR), log=log)
  return {"result": res, "targets": targets, "rows": rows}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true")
  p.add_argument("--repeats", type=int, default=None)
  p.add_argument("--no-write", action="store_true", help="write no file")
  p.add_argument("--out", type=pathlib.Path, default=None,
                 help="results folder (default benchmarks/results; --quick: results/quick)")
  args = p.parse_args(argv)
  run(quick=args.quick, repeats=args.repeats, write=not args.no_write, out_dir=args.out)


if __name__ == "__main__":
  main()
