"""Seconds per DBM training epoch: jdbn's ``train.dbm.pcd`` against NumPy and the GEMM bound.

A Bernoulli DBM 784-500-1000 on the first 5,000 MNIST training images binarised at 0.5 (``x >
0.5``; random binary images if the IDX files are absent), batches of 100: 50 updates per epoch.
Each update is Salakhutdinov & Hinton's (2009): the mean-field positive phase (the bottom-up pass
with doubled weights, then exactly 10 fixed-point sweeps: ``tol=0``, ``max_iter=10``), 100
persistent chains advanced by 5 even/odd Gibbs sweeps, the gradient of ``mean E(v, q) - mean
E(chains)`` and ``optax.sgd(lr, momentum=0.9)``. jdbn runs ``trainer.epoch(key, state, data,
100, metrics=False)`` (one ``jit``, one ``lax.scan`` over the batches); the NumPy peer
(``peers.numpy_dbm_epoch``) does the same updates in float32 with in-place ops, in the worker
process, interleaved with jdbn; both start every repeat from the same params.

The GEMM bound is the products of one update at the fastest measured speed of each shape (JAX,
NumPy, PyTorch if installed, timed alone in the same interleaved rounds), times the updates per
epoch: ``v W0`` and ``q1 W1`` once (the bottom-up pass; ``v`` is clamped, so ``v W0`` also serves
every mean-field sweep: XLA hoists it out of jdbn's loop, and the NumPy peer computes it once
too), 2 per mean-field sweep (``q2 W1'``, ``q1 W1``), 4 per Gibbs sweep at 100 chains (``vn
W0``, ``h2n W1'``, ``h1n W0'``, ``h1n W1``) and the 4 weight-gradient products (``v' q1``, ``vn'
h1n``, ``q1' q2``, ``h1n' h2n``): 46 products, 4.3 GFLOP per update. With ``tol=0`` mean-field
stops early only if a sweep changes nothing at all in float32; the table reports the sweeps
each implementation actually ran.

    python -m benchmarks.dbm_speed              # MNIST[:5000] 784-500-1000
    python -m benchmarks.dbm_speed --quick      # random 64-32-16 data, 3 repeats

A run writes ``benchmarks/results/dbm_speed.json`` and ``.md`` (``--quick``: in
``benchmarks/results/quick/``; ``--out`` elsewhere), regenerates the results page and, for a full
run, appends a short dated entry to ``benchmarks/HISTORY.md``.
"""

from __future__ import annotations

import argparse
import pathlib
import time
from typing import Optional

import numpy as np

from benchmarks import bound as G
from benchmarks import common as C
from benchmarks import page
from benchmarks import record as R

SIZES, BATCH, N_TRAIN = (784, 500, 1000), 100, 5_000
QUICK_SIZES, QUICK_BATCH, QUICK_N = (64, 32, 16), 50, 500
K, MF_SWEEPS, TOL = 5, 10, 0.0
LR, MOMENTUM = 0.005, 0.9
#: PRNG implementations jdbn runs with; the first (the default one) is judged on the targets.
IMPLS = ("threefry2x32",)
PEER = "NumPy"
TARGETS = {
    "dbm_speedup": 1.5,  # jdbn >= 1.5x faster than the NumPy peer
    "dbm_bound": 0.75,  # jdbn >= 75% of the GEMM bound
}


def dbm_gemms(batch: int, n_chains: int, sizes, mf_sweeps: int, k: int) -> list:
  """The products of one update (see the module docstring), one :class:`G.Gemm` per shape."""
  B, N, S = batch, n_chains, mf_sweeps
  V, H1, H2 = sizes
  products = [
      ("v@W0", B, V, H1, "nn", 1), ("q1@W1", B, H1, H2, "nn", 1 + S),
      ("q2@W1.T", B, H2, H1, "nt", S),
      ("vn@W0", N, V, H1, "nn", k), ("h2n@W1.T", N, H2, H1, "nt", k),
      ("h1n@W0.T", N, H1, V, "nt", k), ("h1n@W1", N, H1, H2, "nn", k),
      ("v.T@q1", V, B, H1, "tn", 1), ("vn.T@h1n", V, N, H1, "tn", 1),
      ("q1.T@q2", H1, B, H2, "tn", 1), ("h1n.T@h2n", H1, N, H2, "tn", 1),
  ]
  merged = {}  # one entry per shape (with B == N the data and chain products coincide)
  for name, m, kk, n, kind, count in products:
    names, total = merged.get((m, kk, n, kind), ([], 0))
    merged[(m, kk, n, kind)] = (names + [name], total + count)
  return [G.Gemm(",".join(names), m, kk, n, kind, count)
          for (m, kk, n, kind), (names, count) in merged.items()]


def make_data(quick: bool, n_train: Optional[int], log=print) -> tuple:
  """``(name, data [n, V] float32 in {0, 1}, sizes, batch)``."""
  if quick:
    rng = np.random.default_rng(0)
    data = (rng.random((n_train or QUICK_N, QUICK_SIZES[0])) < 0.3).astype(np.float32)
    return (f"random {len(data)}x{QUICK_SIZES[0]}, {'-'.join(map(str, QUICK_SIZES))}", data,
            QUICK_SIZES, QUICK_BATCH)
  n = n_train or N_TRAIN
  mnist = C.load_mnist_train()
  sizes = "-".join(map(str, SIZES))
  if mnist is None:
    log("MNIST IDX files not found (set JDBN_MNIST_DIR): random binary images instead")
    data = (np.random.default_rng(0).random((n, SIZES[0])) < 0.13).astype(np.float32)
    return f"random binary {n}x{SIZES[0]}, {sizes}", data, SIZES, BATCH
  data = (mnist[:n] > 0.5).astype(np.float32)
  return f"MNIST[:{len(data)}] binarised, {sizes}", data, SIZES, BATCH


def jdbn_fns(data: np.ndarray, sizes, batch: int, n_chains: int, k: int, mf_sweeps: int, impls):
  """``{label: fn}`` running one jdbn epoch, the initial params, and ``{label: final params}``."""
  import jax
  import jax.numpy as jnp
  import optax
  from jdbn.models import dbm as D
  from jdbn.train import contrastive
  from jdbn.train import dbm as TD

  x = jnp.asarray(data)
  model = D.init(jax.random.key(0), sizes)
  contrastive.check_data(model, x)  # once, not timed
  fns, finals = {}, {}
  for impl in impls:
    key = jax.random.key(1, impl=impl)
    trainer = TD.pcd(optax.sgd(LR, momentum=MOMENTUM), n_chains=n_chains, k=k, tol=TOL,
                     max_iter=mf_sweeps)
    state = trainer.init(key, model)
    label = f"jdbn ({impl})"

    def fn(trainer=trainer, state=state, key=key, label=label):
      new, _ = trainer.epoch(key, state, x, batch, metrics=False, check=False)
      finals[label] = new.params
      return new

    fns[label] = fn
  return fns, model, finals


def jdbn_sweeps(params, data: np.ndarray, mf_sweeps: int, batch: int) -> float:
  """Mean-field sweeps per batch on (up to) the first 1,000 examples, for ``params``."""
  from jdbn.train import dbm as TD
  return TD.mean_field_report(params, data[:1000], tol=TOL, max_iter=mf_sweeps,
                              batch_size=batch)["mf_sweeps"]


def measure(name, data, sizes, batch, worker: Optional[C.PeerWorker], scratch: str, *,
            repeats: int, impls, n_chains: int, k: int, mf_sweeps: int, torch: bool,
            log=print) -> dict:
  """Times jdbn, the NumPy peer and the update's GEMMs, interleaved."""
  n = data.shape[0]
  steps = n // batch
  log(f"{name}: {n} examples, batch {batch}, {steps} updates per epoch, {n_chains} chains, "
      f"k={k}, {mf_sweeps} mean-field sweeps")
  fns, model, finals = jdbn_fns(data, sizes, batch, n_chains, k, mf_sweeps, impls)
  first = {label: C.time_once(fn)[0] for label, fn in fns.items()}
  if worker is not None:
    data_path = C.save_array(data, scratch, f"dbm_data_{n}x{sizes[0]}")
    params_path = f"{scratch}/dbm_params.npz"
    np.savez(params_path, W0=np.asarray(model.weights[0]), W1=np.asarray(model.weights[1]),
             **{f"a{l}": np.asarray(a) for l, a in enumerate(model.biases)})
    worker.setup(PEER, "numpy_dbm_epoch", data_path=data_path, sizes=list(sizes),
                 batch_size=batch, lr=LR, momentum=MOMENTUM, mf_sweeps=mf_sweeps,
                 n_chains=n_chains, k=k, tol=TOL, params_path=params_path)
    fns[PEER] = worker.timed(PEER)
  shapes = dbm_gemms(batch, n_chains, sizes, mf_sweeps, k)
  g_fns, g_index = G.gemm_fns(shapes, worker, torch=torch)
  timings = C.interleaved({**fns, **g_fns}, repeats=repeats, log=log)
  gemms = G.gemm_results(shapes, timings, g_index, worker, log)
  timings = {name: t for name, t in timings.items() if name not in g_index}
  sweeps = {label: jdbn_sweeps(params, data, mf_sweeps, batch) for label, params in finals.items()}
  if worker is not None:
    worker.drop(PEER)
    sweeps[PEER] = (worker.metrics.get(PEER) or {}).get("mf_sweeps", float("nan"))
  return dict(name=name, sizes=tuple(sizes), steps=steps, timings=timings, first=first,
              gemms=gemms, bound=G.bound_seconds(gemms, steps), sweeps=sweeps, mf_sweeps=mf_sweeps,
              flops=sum(g.flops * g.count for g in shapes), products=sum(g.count for g in shapes))


def report(res: dict, impls, quick: bool) -> tuple:
  """Markdown of the measurement, and ``{target: (value, met)}`` (none for ``--quick``)."""
  t, bound = res["timings"], res["bound"]
  ref = f"jdbn ({impls[0]})"
  t_ref = t[ref].median
  scale, unit = (1e3, "ms") if t_ref < 1 else (1, "s")
  rows = []
  for name in sorted(t, key=lambda n: t[n].median):
    first = res["first"].get(name)
    rows.append([
        name, t[name].fmt(scale, unit), f"{t[name].cpu_median * scale:.3g} {unit}",
        f"{t[name].median / t_ref:.2f}x", f"{bound / t[name].median:.0%}",
        f"{res['sweeps'].get(name, float('nan')):.2f}",
        f"{first:.2f} s" if first is not None else ""
    ])
  table = C.markdown_table([
      "implementation", "wall median (±IQR/2)", "CPU time", f"time / {ref}",
      "GEMM bound / time", "mean-field sweeps / update", "first call (compile + run)"
  ], rows)
  lines = [
      table, "",
      f"GEMM bound: {bound * scale:.3g} {unit} per epoch ({res['steps']} updates x "
      f"{res['products']} products, {res['flops'] / 1e9:.3g} GFLOP per update, at the fastest "
      f"measured speed of each shape); products measured alone:", "",
      G.gemm_table(res["gemms"]), "",
      "Mean-field sweeps: the NumPy peer's mean over its epoch; jdbn's on the first 1,000 "
      "examples with the params after its epoch (`train.dbm.mean_field_report`)."
  ]
  S = res["mf_sweeps"]
  short = [name for name, s in res["sweeps"].items() if s < S]
  if short:
    lines += ["", f"Note: mean-field stopped before {S} sweeps for {', '.join(short)} (with "
              f"`tol=0` a sweep changed no `q` at all in float32); the bound counts {S} sweeps per "
              f"update, so it counts more products than were done."]
  targets = {}
  if not quick and PEER in t:
    for impl in impls:
      label = f"jdbn ({impl})"
      tj = t[label].median
      sp = t[PEER].median / tj
      targets[f"DBM {res['name']}: {label} >= {TARGETS['dbm_speedup']}x faster than NumPy"] = (
          f"{sp:.2f}x", sp >= TARGETS["dbm_speedup"])
      frac = bound / tj
      targets[f"DBM {res['name']}: {label} >= {TARGETS['dbm_bound']:.0%} of the GEMM bound"] = (
          f"{frac:.0%}", frac >= TARGETS["dbm_bound"])
  return "\n".join(lines), targets


def headline(res: dict) -> dict:
  """The page's row: the fastest jdbn variant against the NumPy peer and the GEMM bound."""
  t = res["timings"]
  best = min((n for n in t if n.startswith("jdbn")), key=lambda n: t[n].median)
  tj = t[best].median
  parts = ([f"{t[PEER].median / tj:.2f}x {PEER}"] if PEER in t else []) + [
      f"{res['bound'] / tj:.0%} of GEMM bound"]
  return R.row("dbm", f"DBM training epoch, {res['name']}",
               ", ".join(parts) + f" [{best[len('jdbn ('):-1]}]", variant=best)


def _publish(res, text, rows, targets, machine, settings, quick, out_dir, log) -> None:
  """Writes the latest results files (:func:`page.publish`) of one measurement."""
  t, s = res["timings"], settings
  data = R.payload("dbm_speed", "DBM training epoch",
                   "python -m benchmarks.dbm_speed" + (" --quick" if quick else ""), rows,
                   machine_info=machine, quick=quick, targets=targets, results={
                       **s, "name": res["name"], "sizes": list(res["sizes"]),
                       "updates": res["steps"], "bound_s": res["bound"],
                       "median_s": {n: v.median for n, v in t.items()},
                       "mf_sweeps_run": res["sweeps"], "first_call_s": res["first"]})
  body = (f"`python -m benchmarks.dbm_speed`: one epoch of `jdbn.train.dbm.pcd` (mean-field "
          f"positive phase, tol={TOL}, max_iter={s['mf_sweeps']}; {s['n_chains']} persistent "
          f"chains, k={s['k']}; optax.sgd({LR}, momentum={MOMENTUM}); batches of {s['batch']}) "
          f"against the same updates in NumPy. Medians of {s['repeats']} interleaved repeats "
          f"(jdbn, NumPy and the GEMMs take turns; the machine is shared, so compare ratios "
          f"within the table).\n\n## {res['name']}\n\n{text}")
  page.publish("dbm_speed", data, body, out_dir or (R.QUICK_DIR if quick else R.RESULTS_DIR),
               log=log)


def run(*, quick=False, repeats=None, write=False, worker=None, log=print, impls=IMPLS,
        n_train=None, n_chains=None, k=K, mf_sweeps=MF_SWEEPS, out_dir=None) -> dict:
  """Measures one epoch of DBM training, jdbn against NumPy and the GEMM bound.

  Args:
    quick: random 64-32-16 data (500 examples, batches of 50), 3 repeats, no PyTorch, no
      targets: a smoke run.
    repeats: interleaved repeats (default 3 with ``quick``, else 7).
    write: publish the latest results (``out_dir``) and regenerate the page.
    worker: a :class:`C.PeerWorker` to use (else one is started and closed here).
    log: where progress and the tables go.
    impls: jdbn PRNG implementations; the first is judged on the targets.
    n_train: examples (default 5,000; 500 with ``quick``).
    n_chains: persistent chains (default: the batch size).
    k: Gibbs sweeps per update.
    mf_sweeps: mean-field sweeps per update (``tol=0``).
    out_dir: the results folder (default ``benchmarks/results``, with ``quick`` its ``quick/``).

  Returns:
    ``{"sections": [(name, markdown)], "targets": {name: (value, met)}, "machine": {...},
    "rows": [the page's row]}``.
  """
  repeats = repeats or (3 if quick else 7)
  impls = tuple(impls)[:1] if quick else tuple(impls)
  name, data, sizes, batch = make_data(quick, n_train, log)
  n_chains = n_chains or batch
  torch = not quick and C.have("torch")
  own_worker = worker is None
  if own_worker:
    worker = C.PeerWorker()
  try:
    with C.scratch_dir() as scratch:
      t0 = time.perf_counter()
      res = measure(name, data, sizes, batch, worker, scratch, repeats=repeats, impls=impls,
                    n_chains=n_chains, k=k, mf_sweeps=mf_sweeps, torch=torch, log=log)
      text, targets = report(res, impls, quick)
      log(f"\n### {name} ({time.perf_counter() - t0:.0f} s)\n\n{text}\n")
    machine = C.machine_info(worker)
  finally:
    if own_worker:
      worker.close()
  log("Targets:\n" + (R.targets_summary(targets) or "(none evaluated)"))
  rows = [headline(res)]
  if write:
    settings = dict(repeats=repeats, batch=batch, n_chains=n_chains, k=k, mf_sweeps=mf_sweeps)
    _publish(res, text, rows, targets, machine, settings, quick, out_dir, log)
  return dict(sections=[(name, text)], targets=targets, machine=machine, rows=rows)


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true", help="tiny random data, 3 repeats")
  p.add_argument("--repeats", type=int, default=None)
  p.add_argument("--no-write", action="store_true", help="write no file")
  p.add_argument("--out", type=pathlib.Path, default=None,
                 help="results folder (default benchmarks/results; --quick: results/quick)")
  p.add_argument("--impls", default=",".join(IMPLS), help="jdbn PRNG implementations")
  p.add_argument("--n-train", type=int, default=None,
                 help=f"examples (default {N_TRAIN:,}; other sizes are never written)")
  args = p.parse_args(argv)
  return run(quick=args.quick, repeats=args.repeats,
             write=not (args.no_write or args.n_train not in (None, N_TRAIN)),
             impls=tuple(args.impls.split(",")), n_train=args.n_train, out_dir=args.out)


if __name__ == "__main__":
  main()
