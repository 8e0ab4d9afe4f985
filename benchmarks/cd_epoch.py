"""Seconds per CD-1 and PCD-1 epoch: jdbn against NumPy, PyTorch, scikit-learn and the GEMMs.

Sizes (visible x hidden, batch): 64x32 on the embedded 8x8 digits (1,797 images) with batches of
10; 784x500 on the 60,000 MNIST training images with batches of 100; 784x2000 with batches of 100
(``--big``; slow). jdbn runs ``contrastive.cd(optax.sgd(lr, momentum), k=1).epoch`` (one ``jit``,
one ``lax.scan``) and ``contrastive.pcd(..., n_chains=batch)``, with the default PRNG
(``threefry2x32``) and with ``jax.random.key(seed, impl="rbg")``. The peers (``peers.py``) do the
same updates in the same run, interleaved; the GEMM bound is the 5 products of a CD-1 step
(``v0 W``, ``h0 W'``, ``v1 W``, ``v0' p0``, ``v1' p1``) at the fastest measured speed of these
exact shapes, times the steps per epoch. One more jdbn row, ``metrics=False``, makes the same
CD-1 updates (``philox2x32``) without the per-update diagnostics (loss, gradient norm,
reconstruction error; the NumPy peer computes the reconstruction error, the others none).

    python -m benchmarks.cd_epoch                 # digits and MNIST 784x500
    python -m benchmarks.cd_epoch --big           # also 784x2000
    python -m benchmarks.cd_epoch --quick         # digits only, few repeats, no torch

A run writes ``benchmarks/results/cd_epoch.json`` and ``.md`` (replacing the last run's; a
``--quick`` run writes to ``benchmarks/results/quick/``, ``--out`` elsewhere), regenerates the
results page and, for a full run, appends a short dated entry to ``benchmarks/HISTORY.md``.
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

LR, MOMENTUM = 0.05, 0.9
#: PRNG implementations jdbn runs with (``jax.random.key(seed, impl=...)``); the first is the
#: default one, the one the targets are judged on.
IMPLS = ("threefry2x32", "philox2x32", "rbg")
LEAN_IMPL = "philox2x32"
LEAN_LABEL = f"jdbn CD-1 ({LEAN_IMPL}, metrics=False)"
TARGETS = {
    "digits_speedup": 3.0,  # jdbn >= 3x faster than every peer on digits 64x32
    "mnist_speedup": 1.15,  # jdbn >= 1.15x faster than the fastest peer on MNIST 784x500
    "mnist_bound": 0.85,  # jdbn >= 85% of the GEMM bound on MNIST 784x500
}
#: The page's row of each configuration, and the peers its headline names.
ROW_IDS = {"digits 64x32": "cd_digits", "MNIST 784x500": "cd_mnist",
           "MNIST 784x2000": "cd_mnist_2000"}
HEADLINE_PEERS = (("NumPy CD-1", "NumPy"), ("scikit-learn BernoulliRBM", "scikit-learn (PCD-1)"),
                  ("PyTorch CD-1", "PyTorch"))


def configs(quick: bool, big: bool, mnist: Optional[np.ndarray], sizes=("digits", "mnist")):
  out = []
  if "digits" in sizes or quick:
    out.append(dict(name="digits 64x32", data=C.load_digits(), n_hidden=32, batch=10))
  if quick:
    return out
  if mnist is not None and "mnist" in sizes:
    if len(mnist) < 60_000:
      out.append(dict(name=f"MNIST[:{len(mnist)}] 784x500", data=mnist, n_hidden=500, batch=100))
      return out
    out.append(dict(name="MNIST 784x500", data=mnist, n_hidden=500, batch=100))
    if big:
      out.append(dict(name="MNIST 784x2000", data=mnist, n_hidden=2000, batch=100))
  return out


def jdbn_fns(data: np.ndarray, n_hidden: int, batch: int, impls, algos=("CD-1", "PCD-1")):
  """``{label: fn}`` running one jdbn epoch, plus the initial weights and per-label info."""
  import jax
  import jax.numpy as jnp
  import optax
  from jdbn import contrastive, rbm

  x = jnp.asarray(data)
  params0 = rbm.init(jax.random.key(0), data.shape[1], n_hidden)
  fns, infos = {}, {}
  for algo in algos:
    for impl in impls:
      key = jax.random.key(1, impl=impl)
      opt = optax.sgd(LR, momentum=MOMENTUM)
      trainer = (contrastive.cd(opt, k=1) if algo == "CD-1" else
                 contrastive.pcd(opt, k=1, n_chains=batch))
      state = trainer.init(key, params0)
      label = f"jdbn {algo} ({impl})"

      def fn(trainer=trainer, state=state, key=key, label=label):
        new, info = trainer.epoch(key, state, x, batch, check=False)  # checked once, not timed
        infos[label] = info
        return new, info

      fns[label] = fn
      if algo == "CD-1" and impl == LEAN_IMPL:
        # The same updates without the per-update diagnostics (``epoch(..., metrics=False)``):
        # what the loss, gradient norm and reconstruction error cost.
        fns[LEAN_LABEL] = lambda trainer=trainer, state=state, key=key: trainer.epoch(
            key, state, x, batch, metrics=False, check=False)
  return fns, infos, np.asarray(params0.W)


def measure(cfg: dict, worker: Optional[C.PeerWorker], scratch: str, *, repeats: int,
            peers, impls, algos=("CD-1", "PCD-1"), log=print) -> dict:
  """Times one configuration; returns the rows and the numbers the targets need."""
  data, H, B = cfg["data"], cfg["n_hidden"], cfg["batch"]
  n, V = data.shape
  steps = n // B
  log(f"{cfg['name']}: {n} examples, batch {B}, {steps} steps per epoch")
  fns, infos, W0 = jdbn_fns(data, H, B, impls, algos)
  # Compile (and first run) time of the default jdbn variants, measured before anything else.
  first = {}
  for label, fn in fns.items():
    first[label] = C.time_once(fn)[0]
  meta = {label: ("PCD-1", 7) if "PCD" in label else ("CD-1", 5) for label in fns}
  if worker is not None:
    data_path = C.save_array(data, scratch, f"data_{n}x{V}")
    w0_path = C.save_array(W0, scratch, f"w0_{V}x{H}")
    common = dict(data_path=data_path, n_hidden=H, batch_size=B, lr=LR, momentum=MOMENTUM,
                  w0_path=w0_path)
    for peer, name in (("numpy", "NumPy"), ("torch", "PyTorch")):
      if peer not in peers:
        continue
      worker.setup(f"{name} CD-1", f"{peer}_cd_epoch", **common)
      meta[f"{name} CD-1"] = ("CD-1", 5)
      if "PCD-1" in algos:
        worker.setup(f"{name} PCD-1", f"{peer}_cd_epoch", persistent=True, n_chains=B, **common)
        meta[f"{name} PCD-1"] = ("PCD-1", 6)
    if "sklearn" in peers:
      worker.setup("scikit-learn BernoulliRBM", "sklearn_epoch", **common)
      meta["scikit-learn BernoulliRBM"] = ("PCD-1", 5)
    for name in meta:
      if not name.startswith("jdbn"):
        fns[name] = worker.timed(name)
  shapes = G.cd_gemms(B, V, H)
  g_fns, g_index = G.gemm_fns(shapes, worker, torch="torch" in peers)
  timings = C.interleaved({**fns, **g_fns}, repeats=repeats, log=log)
  gemms = G.gemm_results(shapes, timings, g_index, worker, log)
  timings = {k: v for k, v in timings.items() if k not in g_index}
  bound = G.bound_seconds(gemms, steps)
  if worker is not None:
    for name in meta:
      if not name.startswith("jdbn"):
        worker.drop(name)
  quality = {label: float(info.recon_error) for label, info in infos.items()}
  if worker is not None:
    for name, m in worker.metrics.items():
      if name in meta and m:
        quality[name] = next(iter(m.values()))
  return dict(cfg=cfg, steps=steps, timings=timings, first=first, meta=meta, gemms=gemms,
              bound=bound, quality=quality)


def report(res: dict, impls) -> tuple:
  """Markdown of one configuration, and ``{target: (value, met)}``."""
  t, meta, bound = res["timings"], res["meta"], res["bound"]
  ref = f"jdbn CD-1 ({impls[0]})"
  t_ref = t[ref].median
  rows = []
  for name in sorted(t, key=lambda k: (meta[k][0], t[k].median)):
    algo, n_prod = meta[name]
    first = res["first"].get(name)
    scale, unit = (1e3, "ms") if t_ref < 1 else (1, "s")
    rows.append([
        name, algo, n_prod,
        t[name].fmt(scale, unit),
        f"{t[name].cpu_median * scale:.3g} {unit}",
        f"{t[name].median / t_ref:.2f}x",
        f"{bound / t[name].median:.0%}",
        f"{res['quality'][name]:.4f}" if name in res["quality"] else "(not computed)",
        f"{first:.2f} s" if first is not None else "",
    ])
  table = C.markdown_table([
      "implementation", "algorithm", "products/step", "wall median (±IQR/2)", "CPU time",
      f"time / {ref}", "GEMM bound / time", "recon. error", "first call (compile + run)"
  ], rows)
  peers_cd = {k: v.median for k, v in t.items() if not k.startswith("jdbn") and
              meta[k][0] == "CD-1"}
  peers_all = {k: v.median for k, v in t.items() if not k.startswith("jdbn")}
  lines = [
      table, "",
      f"GEMM bound: {bound * 1e3:.1f} ms per epoch ({res['steps']} steps x 5 products at the "
      f"fastest measured speed of each shape); products measured alone:", "",
      G.gemm_table(res["gemms"]), ""
  ]
  targets = {}
  name = res["cfg"]["name"]
  labels = [f"jdbn CD-1 ({impl})" for impl in impls] + ([LEAN_LABEL] if LEAN_LABEL in t else [])
  for label in labels:
    tj = t[label].median
    if name.startswith("digits") and peers_all:
      worst = min(peers_all.values()) / tj
      targets[f"digits: {label} >= {TARGETS['digits_speedup']}x faster than every peer"] = (
          f"{worst:.2f}x (vs {min(peers_all, key=peers_all.get)})",
          worst >= TARGETS["digits_speedup"])
    if name == "MNIST 784x500":
      if peers_cd or peers_all:
        pool = peers_all
        fastest = min(pool, key=pool.get)
        sp = pool[fastest] / tj
        targets[f"MNIST 784x500: {label} >= {TARGETS['mnist_speedup']}x faster than the "
                f"fastest peer"] = (f"{sp:.2f}x (vs {fastest})", sp >= TARGETS["mnist_speedup"])
      frac = bound / tj
      targets[f"MNIST 784x500: {label} >= {TARGETS['mnist_bound']:.0%} of the GEMM bound"] = (
          f"{frac:.0%}", frac >= TARGETS["mnist_bound"])
  return "\n".join(lines), targets


def headline(res: dict) -> Optional[dict]:
  """The page's row for one configuration: the fastest jdbn CD-1 against each peer and the bound."""
  row_id = ROW_IDS.get(res["cfg"]["name"])
  if row_id is None:
    return None
  t = res["timings"]
  best = min((k for k in t if k.startswith("jdbn CD-1")), key=lambda k: t[k].median)
  tj = t[best].median
  parts = [f"{t[k].median / tj:.2f}x {label}" for k, label in HEADLINE_PEERS if k in t]
  parts.append(f"{res['bound'] / tj:.0%} of GEMM bound")
  variant = best[len("jdbn CD-1 ("):-1]
  return R.row(row_id, f"CD-1 epoch, {res['cfg']['name']}, batch {res['cfg']['batch']}",
               ", ".join(parts) + f" [{variant}]", variant=best)


def summary(res: dict) -> dict:
  """One configuration's numbers for the JSON: seconds per epoch, the bound, the products."""
  t = res["timings"]
  return {"name": res["cfg"]["name"], "batch": res["cfg"]["batch"],
          "n_hidden": res["cfg"]["n_hidden"], "steps": res["steps"], "bound_s": res["bound"],
          "median_s": {k: v.median for k, v in t.items()},
          "iqr_s": {k: v.iqr for k, v in t.items()},
          "cpu_median_s": {k: v.cpu_median for k, v in t.items()},
          "first_call_s": res["first"], "recon_error": res["quality"],
          "gemm_s": {g.gemm.name: g.seconds for g in res["gemms"]}}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true", help="digits only, 3 repeats, no torch")
  p.add_argument("--big", action="store_true", help="also 784x2000 on MNIST (slow)")
  p.add_argument("--repeats", type=int, default=None)
  p.add_argument("--no-write", action="store_true", help="write no file")
  p.add_argument("--out", type=pathlib.Path, default=None,
                 help="results folder (default benchmarks/results; --quick: results/quick)")
  p.add_argument("--peers", default="numpy,torch,sklearn")
  p.add_argument("--impls", default=",".join(IMPLS), help="jdbn PRNG implementations")
  p.add_argument("--algos", default="CD-1,PCD-1")
  p.add_argument("--sizes", default="digits,mnist", help="digits and/or mnist")
  p.add_argument("--n-train", type=int, default=None,
                 help="use the first N MNIST images (development runs; never written)")
  args = p.parse_args(argv)
  return run(quick=args.quick, big=args.big, repeats=args.repeats,
             write=not (args.no_write or args.n_train), out_dir=args.out,
             peers=args.peers.split(","), impls=tuple(args.impls.split(",")),
             algos=tuple(args.algos.split(",")), n_train=args.n_train,
             sizes=tuple(args.sizes.split(",")))


def available_peers(wanted, quick: bool, log=print) -> list:
  out = []
  for peer, module in (("numpy", "numpy"), ("torch", "torch"), ("sklearn", "sklearn")):
    if peer not in wanted:
      continue
    if quick and peer == "torch":
      log("skipping PyTorch in --quick mode")
      continue
    if C.have(module):
      out.append(peer)
    else:
      log(f"skipping {peer}: {module} is not installed")
  return out


def run(*, quick=False, big=False, repeats=None, write=False, peers=("numpy", "torch", "sklearn"),
        impls=IMPLS, algos=("CD-1", "PCD-1"), n_train=None, sizes=("digits", "mnist"), log=print,
        worker=None, out_dir=None) -> dict:
  """Measures every configuration; with ``write``, publishes the latest results (``out_dir``)."""
  repeats = repeats or (3 if quick else 7)
  if quick:
    impls, algos = impls[:1], ("CD-1",)
  peers = available_peers(peers, quick, log)
  mnist = None if quick or "mnist" not in sizes else C.load_mnist_train()
  if not quick and mnist is None and "mnist" in sizes:
    log("skipping MNIST sizes: no IDX files (set JDBN_MNIST_DIR)")
  if mnist is not None and n_train:
    mnist = mnist[:n_train]
  own_worker = worker is None and bool(peers)
  if own_worker:
    worker = C.PeerWorker()
  sections, all_targets, measured = [], {}, []
  try:
    with C.scratch_dir() as scratch:
      for cfg in configs(quick, big, mnist, sizes):
        t0 = time.perf_counter()
        res = measure(cfg, worker, scratch, repeats=repeats, peers=peers, impls=list(impls),
                      algos=algos, log=log)
        text, targets = report(res, list(impls))
        all_targets.update(targets)
        sections.append((cfg["name"], text))
        measured.append(res)
        log(f"\n### {cfg['name']} ({time.perf_counter() - t0:.0f} s)\n\n{text}\n")
    machine = C.machine_info(worker)
  finally:
    if own_worker:
      worker.close()
  log("Targets:\n" + (R.targets_summary(all_targets) or "(none evaluated)"))
  rows = [r for r in map(headline, measured) if r is not None]
  if write:
    data = R.payload("cd_epoch", "CD-1 / PCD-1 epoch", "python -m benchmarks.cd_epoch" +
                     (" --quick" if quick else "") + (" --big" if big else ""), rows,
                     machine_info=machine, quick=quick, targets=all_targets,
                     results={"repeats": repeats, "lr": LR, "momentum": MOMENTUM,
                              "configs": [summary(r) for r in measured]})
    body = [f"Medians of {repeats} interleaved repeats (jdbn and peers take turns; the machine "
            f"is shared, so compare ratios within a table). lr={LR}, momentum={MOMENTUM} "
            f"(scikit-learn: no momentum)."]
    for name, text in sections:
      body += ["", f"## {name}", "", text]
    page.publish("cd_epoch", data, "\n".join(body),
                 out_dir or (R.QUICK_DIR if quick else R.RESULTS_DIR), log=log)
  return dict(sections=sections, targets=all_targets, machine=machine, rows=rows)


if __name__ == "__main__":
  main()
