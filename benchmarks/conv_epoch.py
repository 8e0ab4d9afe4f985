"""Seconds per CD-1 epoch of a convolutional RBM with probabilistic max-pooling: jdbn against
PyTorch and the convolution bound, in one run.

The model is Lee et al.'s (2009) first layer on MNIST-sized images, with shapes that tile: 24
filters of 9 x 9 on 28 x 28 binary images give 24 detection maps of 20 x 20, cut into 2 x 2
pooling blocks (10 x 10 pooling units per map); Bernoulli visible units, one bias per channel
and per filter, batches of 100, no sparsity penalty. The data are the first ``N_TRAIN`` MNIST
training images binarised at 0.5 (random binary images if the IDX files are absent); ``--quick``
uses the embedded 8 x 8 digits binarised, 8 filters of 5 x 5 and batches of 20.

jdbn runs ``jdbn.train.conv.cd(optax.sgd(lr, momentum=0.9), k=1).epoch(key, state, data, 100)``
(one ``jit``, one ``lax.scan`` over the batches; with and without ``metrics``); the PyTorch peer
(``benchmarks/conv_peers.py``) makes the same updates with ``torch.nn.functional.conv2d``,
``conv_transpose2d`` and conv2d's weight gradient under ``torch.no_grad()``, in the worker
process, interleaved with jdbn. The bound is the five convolutions of a CD-1 step
(``benchmarks/conv_bound.py``), each timed alone in the same rounds in XLA (NCHW, jdbn's layout,
and NHWC) and PyTorch, at the fastest library's speed, times the steps of the epoch.

    python -m benchmarks.conv_epoch              # MNIST[:N_TRAIN], 24 filters 9x9, pool 2
    python -m benchmarks.conv_epoch --quick      # digits, seconds, no torch

A run writes ``benchmarks/results/conv_epoch.json`` and ``.md`` (``--quick``: in
``benchmarks/results/quick/``; ``--out`` elsewhere), regenerates the results page and, for a full
run, appends a short dated entry to ``benchmarks/HISTORY.md``.
"""

from __future__ import annotations

import argparse
import pathlib
import time
from typing import Optional

import numpy as np

from benchmarks import common as C
from benchmarks import conv_bound as CB
from benchmarks import page
from benchmarks import record as R

LR, MOMENTUM = 0.01, 0.9
N_TRAIN, BATCH, N_FILTERS, FILTER, POOL = 2_000, 100, 24, 9, 2
QUICK = dict(n=500, batch=20, n_filters=8, filter_size=5, pool=2)
PEER = "PyTorch CD-1"
TARGETS = {"speedup": 1.5, "bound": 0.60}  # >= 1.5x PyTorch, >= 60% of the convolution bound


def make_config(quick: bool, n_train: Optional[int], log=print) -> dict:
  """The configuration: name, binary images ``[n, C*H*W]``, image shape, filters, pool, batch."""
  if quick:
    x = (C.load_digits()[:QUICK["n"]] > 0.5).astype(np.float32)
    return dict(name="digits 8x8, 8 filters 5x5, pool 2", data=x, image_shape=(1, 8, 8),
                **{k: v for k, v in QUICK.items() if k != "n"})
  n = n_train or N_TRAIN
  mnist = C.load_mnist_train()
  if mnist is None:
    log("no MNIST IDX files (set JDBN_MNIST_DIR): random binary images instead")
    x = (np.random.default_rng(0).random((n, 784)) < 0.13).astype(np.float32)
    source = "random binary"
  else:
    x, source = (mnist[:n] > 0.5).astype(np.float32), "MNIST"
  return dict(name=f"{source}[:{n}] 28x28, {N_FILTERS} filters {FILTER}x{FILTER}, pool {POOL}",
              data=x, image_shape=(1, 28, 28), batch=BATCH, n_filters=N_FILTERS,
              filter_size=FILTER, pool=POOL)


def jdbn_fns(cfg: dict) -> tuple:
  """``({label: fn}, infos, W0)``: one jdbn epoch per label, from the same initial model."""
  import jax
  import jax.numpy as jnp
  import optax
  from jdbn.models import conv
  from jdbn.train import conv as TC

  x = jnp.asarray(cfg["data"])
  model = conv.init(jax.random.key(0), cfg["image_shape"], cfg["n_filters"], cfg["filter_size"],
                    pool=cfg["pool"])
  trainer = TC.cd(optax.sgd(LR, momentum=MOMENTUM), k=1)
  key = jax.random.key(1)
  state = trainer.init(key, model)
  infos = {}

  def epoch(label, metrics):

    def fn():
      new, info = trainer.epoch(key, state, x, cfg["batch"], metrics=metrics, check=False)
      if info is not None:
        infos[label] = info
      return new

    return fn

  fns = {"jdbn CD-1": epoch("jdbn CD-1", True),
         "jdbn CD-1 (metrics=False)": epoch("jdbn CD-1 (metrics=False)", False)}
  return fns, infos, np.asarray(model.W)


def measure(cfg: dict, worker: Optional[C.PeerWorker], scratch: str, *, repeats: int,
            torch: bool, log=print) -> dict:
  """Times jdbn, the peer and the convolutions alone, interleaved; returns every figure."""
  data, B = cfg["data"], cfg["batch"]
  steps = len(data) // B
  log(f"{cfg['name']}: {len(data)} images, batch {B}, {steps} steps per epoch")
  fns, infos, W0 = jdbn_fns(cfg)
  first = {label: C.time_once(fn)[0] for label, fn in fns.items()}  # compile + one run
  if worker is not None and torch:
    worker.setup(PEER, "torch_conv_cd_epoch", data_path=C.save_array(data, scratch, "data"),
                 image_shape=list(cfg["image_shape"]), batch_size=B, pool=cfg["pool"], lr=LR,
                 momentum=MOMENTUM, w0_path=C.save_array(W0, scratch, "w0"))
    fns[PEER] = worker.timed(PEER)
  convs = CB.cd_convs(B, cfg["image_shape"], cfg["n_filters"], cfg["filter_size"])
  c_fns, c_index = CB.conv_fns(convs, worker, torch=torch)
  timings = C.interleaved({**fns, **c_fns}, repeats=repeats, log=log)
  results = CB.conv_results(convs, timings, c_index, worker, log)
  timings = {k: v for k, v in timings.items() if k not in c_index}
  quality = {label: float(info.recon_error) for label, info in infos.items()}
  if worker is not None and torch:
    quality[PEER] = worker.metrics.get(PEER, {}).get("recon_error", float("nan"))
    worker.drop(PEER)
  return dict(cfg=cfg, steps=steps, timings=timings, first=first, convs=results,
              bound=CB.bound_seconds(results, steps), quality=quality)


def report(res: dict) -> tuple:
  """The markdown of a run and ``{target: (value, met)}``."""
  t, bound, ref = res["timings"], res["bound"], "jdbn CD-1"
  scale, unit = (1e3, "ms") if t[ref].median < 1 else (1, "s")
  rows = []
  for name in sorted(t, key=lambda k: t[k].median):
    first = res["first"].get(name)
    q = res["quality"].get(name)
    rows.append([name, t[name].fmt(scale, unit), f"{t[name].cpu_median * scale:.3g} {unit}",
                 f"{t[name].median / t[ref].median:.2f}x", f"{bound / t[name].median:.0%}",
                 f"{q:.4f}" if q is not None else "(not computed)",
                 f"{first:.2f} s" if first is not None else ""])
  table = C.markdown_table(["implementation", "wall median (±IQR/2)", "CPU time",
                            f"time / {ref}", "conv bound / time", "recon. error",
                            "first call (compile + run)"], rows)
  text = "\n".join([
      table, "", f"Convolution bound: {bound * 1e3:.1f} ms per epoch ({res['steps']} steps x 5 "
      f"convolutions at the fastest measured speed of each kind); convolutions measured alone "
      f"(ms per convolution, GFLOP/s):", "", CB.conv_table(res["convs"])])
  targets = {}
  for label in (k for k in t if k.startswith("jdbn")):
    tj = t[label].median
    if PEER in t:
      sp = t[PEER].median / tj
      targets[f"{label} >= {TARGETS['speedup']}x faster than PyTorch"] = (
          f"{sp:.2f}x", sp >= TARGETS["speedup"])
    targets[f"{label} >= {TARGETS['bound']:.0%} of the convolution bound"] = (
        f"{bound / tj:.0%}", bound / tj >= TARGETS["bound"])
  return text, targets


def headline(res: dict) -> dict:
  """The page's row: the fastest jdbn variant against PyTorch and the bound."""
  t = res["timings"]
  best = min((k for k in t if k.startswith("jdbn")), key=lambda k: t[k].median)
  tj = t[best].median
  parts = ([f"{t[PEER].median / tj:.2f}x PyTorch"] if PEER in t else []) + [
      f"{res['bound'] / tj:.0%} of the convolution bound"]
  cfg = res["cfg"]
  return R.row("conv", f"CD-1 epoch, conv RBM with max-pooling, {cfg['name']}, batch "
               f"{cfg['batch']}", ", ".join(parts) + f" (targets 1.5x, 60%) [{best}]",
               variant=best)


def summary(res: dict) -> dict:
  t, cfg = res["timings"], res["cfg"]
  return {"name": cfg["name"], "batch": cfg["batch"], "image_shape": list(cfg["image_shape"]),
          "n_filters": cfg["n_filters"], "filter_size": cfg["filter_size"], "pool": cfg["pool"],
          "steps": res["steps"], "bound_s": res["bound"],
          "median_s": {k: v.median for k, v in t.items()},
          "iqr_s": {k: v.iqr for k, v in t.items()},
          "cpu_median_s": {k: v.cpu_median for k, v in t.items()},
          "first_call_s": res["first"], "recon_error": res["quality"],
          "conv_s": {r.conv.kind: r.seconds for r in res["convs"]}}


def run(*, quick=False, repeats=None, write=False, out_dir=None, n_train=None, torch=True,
        worker=None, log=print) -> dict:
  """Measures the configuration; with ``write``, publishes the latest results (``out_dir``)."""
  repeats = repeats or (3 if quick else 7)
  if torch and quick:
    log("skipping PyTorch in --quick mode")
    torch = False
  elif torch and not C.have("torch"):
    log("skipping PyTorch: torch is not installed")
    torch = False
  cfg = make_config(quick, n_train, log)
  own_worker = worker is None and torch
  if own_worker:
    worker = C.PeerWorker()
  try:
    with C.scratch_dir() as scratch:
      t0 = time.perf_counter()
      res = measure(cfg, worker, scratch, repeats=repeats, torch=torch, log=log)
    text, targets = report(res)
    log(f"\n### {cfg['name']} ({time.perf_counter() - t0:.0f} s)\n\n{text}\n")
    machine = C.machine_info(worker)
  finally:
    if own_worker:
      worker.close()
  log("Targets:\n" + (R.targets_summary(targets) or "(none evaluated)"))
  rows = [headline(res)]
  if write:
    command = "python -m benchmarks.conv_epoch" + (" --quick" if quick else "")
    data = R.payload("conv_epoch", "Convolutional RBM CD-1 epoch", command, rows,
                     machine_info=machine, quick=quick, targets=targets,
                     results={"repeats": repeats, "lr": LR, "momentum": MOMENTUM,
                              "config": summary(res)})
    body = (f"Medians of {repeats} interleaved repeats (jdbn, PyTorch and the convolutions alone "
            f"take turns; compare ratios within the table). lr={LR}, momentum={MOMENTUM}, "
            f"{res['steps']} steps.\n\n## {cfg['name']}, batch {cfg['batch']}\n\n{text}")
    page.publish("conv_epoch", data, body, out_dir or (R.QUICK_DIR if quick else R.RESULTS_DIR),
                 log=log)
  return dict(text=text, targets=targets, machine=machine, rows=rows, result=res)


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true", help="digits, 3 repeats, no torch")
  p.add_argument("--repeats", type=int, default=None)
  p.add_argument("--no-write", action="store_true", help="write no file")
  p.add_argument("--no-torch", action="store_true", help="leave the PyTorch peer out")
  p.add_argument("--out", type=pathlib.Path, default=None,
                 help="results folder (default benchmarks/results; --quick: results/quick)")
  p.add_argument("--n-train", type=int, default=None,
                 help=f"images per epoch (default {N_TRAIN}; another value is never written)")
  args = p.parse_args(argv)
  return run(quick=args.quick, repeats=args.repeats, out_dir=args.out, n_train=args.n_train,
             write=not (args.no_write or (args.n_train and args.n_train != N_TRAIN)),
             torch=not args.no_torch)


if __name__ == "__main__":
  main()
