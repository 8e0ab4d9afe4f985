"""Runs the speed benchmarks and regenerates the page: ``python -m benchmarks.run [--quick]``.

* default: the full measurements of ``benchmarks/cd_epoch.py`` (digits and MNIST 784x500; MNIST
  784x2000 with ``--big``), ``benchmarks/gibbs_throughput.py`` (1 to 100,000 chains of a 784x500
  RBM), ``benchmarks/ais_speed.py`` (AIS with the paper's 14,500 temperatures against its GEMM
  bound, on one device and with the chains over one CPU device per core),
  ``benchmarks/dbm_speed.py`` (a 784-500-1000 DBM's training epoch on 5,000 MNIST images against
  NumPy and its GEMM bound), ``benchmarks/tempering_speed.py`` (a parallel-tempering step
  against M Gibbs sweeps), ``benchmarks/thrml_peer.py`` (a 784x500 RBM's chains and a 256 x 256
  Ising torus against thrml, Extropic's JAX sampler, where it is installed) and
  ``benchmarks/conv_epoch.py`` (a convolutional RBM's CD-1 epoch with probabilistic max-pooling
  against PyTorch and its convolution bound). Each writes its latest results, ``<name>.json`` and
  ``<name>.md``, to ``--out`` (default ``benchmarks/results/``, replacing the last run's) and
  appends a short dated entry to ``benchmarks/HISTORY.md``; the table at the top of
  ``benchmarks/README.md`` is then
  regenerated from them (:mod:`benchmarks.page`). Several minutes.
* ``--quick``: tiny sizes and few repeats, no PyTorch and no MNIST (well under 3 minutes on 2
  cores): the same files and a page of their own in ``--out`` (default
  ``benchmarks/results/quick/``, git-ignored), never over the real figures. A smoke test for CI.
* ``--no-write``: nothing written.

The peers (NumPy, scikit-learn, PyTorch) run in one worker process with ``OPENBLAS_CORETYPE``
and ``OPENBLAS_L2_SIZE`` unset (see ``benchmarks/common.py``); thrml runs in the main process.
Peers that are not installed are skipped, with a message.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

from benchmarks import (ais_speed, cd_epoch, common, conv_epoch, dbm_speed, gibbs_throughput, page,
                        record, tempering_speed, thrml_peer)

ONLY = ("cd", "gibbs", "ais", "dbm", "pt", "thrml", "conv")


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true",
                 help="CI smoke run: tiny and fast; writes to --out (default results/quick)")
  p.add_argument("--big", action="store_true", help="also CD-1 on MNIST 784x2000 (slow)")
  p.add_argument("--only", choices=ONLY, default=None, help="run one benchmark")
  p.add_argument("--no-write", action="store_true", help="write no file")
  p.add_argument("--out", type=pathlib.Path, default=None,
                 help="results folder (default benchmarks/results; with --quick results/quick)")
  p.add_argument("--repeats", type=int, default=None)
  args = p.parse_args(argv)
  write = not args.no_write
  out = (args.out or (record.QUICK_DIR if args.quick else record.RESULTS_DIR)).resolve()
  if write and args.quick and out == record.RESULTS_DIR:
    p.error(f"--quick does not write over the real figures in {out}")
  t0 = time.perf_counter()
  targets = {}
  peers = cd_epoch.available_peers(("numpy", "torch", "sklearn"), args.quick, print)
  worker = common.PeerWorker() if peers else None
  common_args = dict(quick=args.quick, repeats=args.repeats, write=write, out_dir=out)
  try:
    if args.only in (None, "cd"):
      print("== CD-1 / PCD-1 epoch ==")
      res = cd_epoch.run(big=args.big, peers=peers, worker=worker, **common_args)
      targets.update(res["targets"])
    if args.only in (None, "gibbs"):
      print("== Gibbs sampling throughput ==")
      res = gibbs_throughput.run(peers=[p for p in peers if p in ("numpy", "torch")],
                                 worker=worker, **common_args)
      targets.update(res["targets"])
    if args.only in (None, "ais"):
      print("== AIS against its GEMM bound ==")
      targets.update(ais_speed.run(**common_args)["targets"])
    if args.only in (None, "dbm"):
      print("== DBM training epoch ==")
      targets.update(dbm_speed.run(worker=worker, **common_args)["targets"])
    if args.only in (None, "pt"):
      print("== Parallel tempering step ==")
      targets.update(tempering_speed.run(**common_args)["targets"])
    if args.only in (None, "thrml"):
      print("== Gibbs sampling against thrml ==")
      targets.update(thrml_peer.run(**common_args)["targets"])
    if args.only in (None, "conv"):
      print("== Convolutional RBM CD-1 epoch ==")
      targets.update(conv_epoch.run(torch="torch" in peers, worker=worker,
                                    **common_args)["targets"])
  finally:
    if worker is not None:
      worker.close()
  if write:
    path = page.write(out)
    print(f"\nThe page: {path}\n\n{page.render(out, path.parent)}")
  print(f"\nSuite finished in {time.perf_counter() - t0:.0f} s"
        + ("" if write else " (nothing written)"))
  for name, (value, met) in targets.items():
    print(f"  {'MET    ' if met else 'NOT MET'} {name}: {value}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
