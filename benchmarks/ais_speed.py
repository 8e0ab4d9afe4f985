"""AIS wall time for Salakhutdinov & Murray's schedule against its GEMM bound (issue 5, question 3).

For a 784x500 Bernoulli RBM, 100 chains and the paper's 14,500 temperatures
(:func:`jdbn.likelihood.default_betas`) this times

* ``jdbn.likelihood.ais`` on one device, with each PRNG implementation in ``--impls``;
* ``jdbn.parallel.ais_sharded`` with the chains split over ``--devices`` CPU devices, in a
  subprocess started with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (XLA:CPU runs a
  matrix product on every core, but the small elementwise fusions of a 100-chain step, random
  numbers included, seemingly one at a time; one device per core runs two at once). Philox keys
  there need the GSPMD partitioner
  (``JAX_USE_SHARDY_PARTITIONER=false``, see :func:`jdbn.parallel.check_key`);
* the GEMM bound: the same 2 x 14,500 products ``[100 x 784] x [784 x 500]`` and
  ``[100 x 500] x [500 x 784]`` alone in one ``lax.scan``, measured in each process, interleaved
  with its AIS runs; the faster of the two is the bound every AIS run is divided by.

Compile time is reported apart (``jit(...).lower(...).compile()``). The params are random
(``W ~ N(0, 0.05^2)``, biases around -1): the cost per temperature does not depend on them.

    python -m benchmarks.ais_speed              # the paper's schedule (several minutes)
    python -m benchmarks.ais_speed --quick      # 64x32, 300 temperatures

A run writes ``benchmarks/results/ais_speed.json`` and ``.md`` (``--quick``: in
``benchmarks/results/quick/``; ``--out`` elsewhere), regenerates the results page and, for a full
run, appends a short dated entry to ``benchmarks/HISTORY.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

from benchmarks import bound as G
from benchmarks import common as C
from benchmarks import page
from benchmarks import record as R

IMPLS = ("threefry2x32", "philox4x32")
TARGET = 1.3  # AIS within 1.3x of its GEMMs


def _model(n_visible: int, n_hidden: int):
  import jax
  import jax.numpy as jnp
  from jdbn import rbm
  rng = np.random.default_rng(0)
  params = rbm.init(jax.random.key(0), n_visible, n_hidden).replace(
      W=jnp.asarray(0.05 * rng.standard_normal((n_visible, n_hidden)), jnp.float32),
      b=jnp.asarray(0.5 * rng.standard_normal(n_visible) - 1, jnp.float32),
      c=jnp.asarray(0.5 * rng.standard_normal(n_hidden) - 1, jnp.float32))
  base = jnp.asarray(rng.standard_normal(n_visible) - 1, jnp.float32)
  return params, base


def _betas(quick: bool) -> np.ndarray:
  from jdbn import likelihood
  return (np.linspace(0, 1, 301, dtype=np.float32) if quick else likelihood.default_betas())


def measure(*, quick: bool, repeats: int, impls, n_devices: int = 1, log=print) -> dict:
  """Times AIS (sharded over ``n_devices`` if more than 1) and its GEMM bound, interleaved.

  Returns ``{"rows": {label: {...}}, "gemm": Timing-like dict, ...}`` (seconds).
  """
  import jax
  import jax.numpy as jnp
  from jdbn import likelihood, parallel

  n_visible, n_hidden, n_chains = (64, 32, 100) if quick else (784, 500, 100)
  params, base = _model(n_visible, n_hidden)
  betas = _betas(quick)
  n_steps = len(betas) - 1
  fns, compile_s = {}, {}
  mesh = parallel.make_mesh(n_devices) if n_devices > 1 else None
  for impl in impls:
    key = jax.random.key(1, impl=impl)
    label = f"jdbn {impl}" + (f", chains over {n_devices} devices" if mesh else "")
    args = (key, params, base, jnp.asarray(betas))
    t = time.perf_counter()
    if mesh is None:
      compiled = likelihood.rbm._ais.lower(*args, n_chains=n_chains).compile()  # pylint: disable=W0212
    else:  # what parallel.ais_sharded runs, compiled ahead of time to time the compilation
      parallel.check_key(key, mesh)
      args = parallel.replicate(args, mesh)
      compiled = parallel._ais_fn(mesh, n_chains).lower(*args).compile()  # pylint: disable=W0212
    compile_s[label] = time.perf_counter() - t
    fn = lambda compiled=compiled, args=args: compiled(*args)  # noqa: E731
    res = jax.block_until_ready(fn())
    if not np.isfinite(float(res.log_z)):
      raise RuntimeError(f"{label}: AIS returned log Z = {float(res.log_z)}")
    if mesh is not None:  # the same numbers as the library's entry point
      ref = parallel.ais_sharded(key, params, mesh, n_chains=n_chains, betas=betas, base_b=base)
      np.testing.assert_array_equal(np.asarray(res.log_w), np.asarray(ref.log_w))
    fns[label] = fn
  gemms = G.gemm_scan(n_steps, n_chains, n_visible, n_hidden)
  gemms()
  compile_s["GEMMs alone"] = None
  fns["GEMMs alone"] = gemms
  times = C.interleaved(fns, warmup=0, repeats=repeats, log=log)
  return {"n_visible": n_visible, "n_hidden": n_hidden, "n_chains": n_chains,
          "n_steps": n_steps, "n_devices": n_devices,
          "rows": {name: {"wall": t.times, "cpu": t.cpu, "compile_s": compile_s[name]}
                   for name, t in times.items()}}


def _sharded_in_subprocess(*, quick, repeats, impls, n_devices, log) -> dict:
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                      f" --xla_force_host_platform_device_count={n_devices}").strip()
  if any(i.startswith("philox") for i in impls):
    env["JAX_USE_SHARDY_PARTITIONER"] = "false"
  argv = [sys.executable, "-m", "benchmarks.ais_speed", "--worker", "--devices", str(n_devices),
          "--impls", ",".join(impls), "--repeats", str(repeats)] + (["--quick"] if quick else [])
  log(f"subprocess: {n_devices} CPU devices (XLA_FLAGS={env['XLA_FLAGS']!r}"
      + (", JAX_USE_SHARDY_PARTITIONER=false" if "JAX_USE_SHARDY_PARTITIONER" in env else "")
      + ")")
  out = subprocess.run(argv, env=env, capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  if out.returncode != 0:
    raise RuntimeError(f"the {n_devices}-device AIS run failed:\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def report(single: dict, sharded: dict | None) -> tuple[str, dict]:
  """A markdown table of both runs and the targets ``{name: (value, met)}``.

  The bound is the fastest GEMMs measured, in either process (the products ran 10-20% slower in
  the process with several CPU devices); each AIS median is divided by it. The ratio to the
  GEMMs of the same process, per interleaved round, is shown beside it.
  """
  runs = [r for r in (single, sharded) if r is not None]
  bound = min(float(np.median(r["rows"]["GEMMs alone"]["wall"])) for r in runs)
  rows, targets = [], {}
  for run in runs:
    g = run["rows"]["GEMMs alone"]
    for name, r in run["rows"].items():
      wall = np.asarray(r["wall"])
      to_bound = float(np.median(wall)) / bound
      own = float(np.median(wall / np.asarray(g["wall"])))  # per interleaved round
      cpu = float(np.median(np.asarray(r["cpu"]) / np.asarray(g["cpu"])))
      label = name if name != "GEMMs alone" or run["n_devices"] == 1 else (
          f"GEMMs alone, in the {run['n_devices']}-device process")
      rows.append([label, f"{np.median(wall):.3g}",
                   f"{1e3 * np.median(wall) / run['n_steps']:.3f}", f"{to_bound:.2f}",
                   f"{own:.2f} / {cpu:.2f}",
                   "" if r["compile_s"] is None else f"{r['compile_s']:.1f}"])
      if name != "GEMMs alone":
        targets[f"AIS {name}: within {TARGET}x of the GEMM bound"] = (f"{to_bound:.2f}x",
                                                                      to_bound <= TARGET)
  table = C.markdown_table(["variant", "wall s (median)", "ms per temperature",
                            "/ GEMM bound (fastest GEMMs)",
                            "/ GEMMs of its process, wall / cpu (median of rounds)",
                            "compile s"], rows)
  return table, targets


def headline(single: dict, sharded: dict | None) -> dict:
  """The page's row: the fastest variant's time over the bound, on one device and sharded."""
  runs = [r for r in (single, sharded) if r is not None]
  bound = min(float(np.median(r["rows"]["GEMMs alone"]["wall"])) for r in runs)
  parts = []
  for run in runs:
    ratios = {name: float(np.median(r["wall"])) / bound for name, r in run["rows"].items()
              if name != "GEMMs alone"}
    best = min(ratios, key=ratios.get)
    where = ("on 1 device" if run["n_devices"] == 1 else
             f"with the chains over {run['n_devices']} CPU devices")
    parts.append(f"{ratios[best]:.2f}x{' its GEMM bound' if not parts else ''} {where} "
                 f"[{best.split()[1].rstrip(',')}]")
  return R.row("ais", f"AIS, {single['n_visible']}x{single['n_hidden']}, {single['n_chains']} "
               f"chains, {single['n_steps']:,} temperatures",
               "; ".join(parts) + f" (target {TARGET}x)")


def run(*, quick=False, repeats=None, write=False, impls=IMPLS, devices=None, log=print,
        out_dir=None) -> dict:
  """Times AIS and its bound; with ``write``, publishes the latest results (``out_dir``)."""
  repeats = repeats or (1 if quick else 3)
  if devices is None:  # one per core; the smoke run always exercises the sharded path
    devices = max(2, os.cpu_count() or 1) if quick else (os.cpu_count() or 1)
  t0 = time.perf_counter()
  single = measure(quick=quick, repeats=repeats, impls=impls, log=log)
  sharded = None
  if devices > 1:
    sharded = _sharded_in_subprocess(quick=quick, repeats=repeats, impls=impls,
                                     n_devices=devices, log=log)
  table, targets = report(single, sharded)
  log(f"\n{table}\n({time.perf_counter() - t0:.0f} s)")
  rows = [headline(single, sharded)]
  if write:
    data = R.payload("ais_speed", "AIS against its GEMM bound",
                     "python -m benchmarks.ais_speed" + (" --quick" if quick else ""), rows,
                     machine_info=C.machine_info(), quick=quick, targets=targets,
                     results={"repeats": repeats, "single": single, "sharded": sharded})
    body = (f"{single['n_visible']}x{single['n_hidden']} Bernoulli RBM (random params), "
            f"{single['n_chains']} chains, {single['n_steps']:,} temperatures (Salakhutdinov & "
            f"Murray 2008); medians of {repeats} interleaved rounds, the ratio taken per round."
            f"\n\n{table}")
    page.publish("ais_speed", data, body, out_dir or (R.QUICK_DIR if quick else R.RESULTS_DIR),
                 log=log)
  return {"single": single, "sharded": sharded, "targets": targets, "rows": rows}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true", help="64x32, 300 temperatures")
  p.add_argument("--impls", default=",".join(IMPLS))
  p.add_argument("--repeats", type=int, default=None)
  p.add_argument("--devices", type=int, default=None,
                 help="CPU devices of the chain-sharded run (default: the cores; 1: skip it)")
  p.add_argument("--no-write", action="store_true", help="write no file")
  p.add_argument("--out", type=pathlib.Path, default=None,
                 help="results folder (default benchmarks/results; --quick: results/quick)")
  p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  impls = tuple(args.impls.split(","))
  if args.worker:  # inside the subprocess with N devices: one JSON line on stdout
    res = measure(quick=args.quick, repeats=args.repeats or 1, impls=impls,
                  n_devices=args.devices, log=lambda s: print(s, file=sys.stderr))
    print(json.dumps(res))
    return res
  return run(quick=args.quick, repeats=args.repeats, write=not args.no_write, impls=impls,
             devices=args.devices, out_dir=args.out)


if __name__ == "__main__":
  main()
