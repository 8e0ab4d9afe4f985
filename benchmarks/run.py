"""Runs the benchmark suite: ``python -m benchmarks.run [--quick] [--big]``.

* ``--quick``: tiny sizes and few repeats (well under a minute), no PyTorch and no MNIST, nothing
  written: a smoke test for CI. Peers that are not installed are skipped, with a message.
* default: the full measurements of ``benchmarks/cd_epoch.py`` (digits and MNIST 784x500; MNIST
  784x2000 with ``--big``) and ``benchmarks/gibbs_throughput.py`` (1 to 100,000 chains of a
  784x500 RBM), ``benchmarks/ais_speed.py`` (AIS with the paper's 14,500 temperatures against
  its GEMM bound, on one device and with the chains over one CPU device per core) and
  ``benchmarks/dbm_speed.py`` (a 784-500-1000 DBM's training epoch on 5,000 MNIST images against
  NumPy and its GEMM bound), each appending its section to ``benchmarks/RESULTS.md``. Several
  minutes.

The peers (NumPy, scikit-learn, PyTorch) run in one worker process with ``OPENBLAS_CORETYPE``
and ``OPENBLAS_L2_SIZE`` unset (see ``benchmarks/common.py``).
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks import ais_speed, cd_epoch, common, dbm_speed, gibbs_throughput


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true", help="CI smoke run: tiny, fast, writes nothing")
  p.add_argument("--big", action="store_true", help="also CD-1 on MNIST 784x2000 (slow)")
  p.add_argument("--only", choices=("cd", "gibbs", "ais", "dbm"), default=None,
                 help="run one benchmark")
  p.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
  p.add_argument("--repeats", type=int, default=None)
  args = p.parse_args(argv)
  write = not (args.quick or args.no_write)
  t0 = time.perf_counter()
  targets = {}
  peers = cd_epoch.available_peers(("numpy", "torch", "sklearn"), args.quick, print)
  worker = common.PeerWorker() if peers else None
  try:
    if args.only in (None, "cd"):
      print("== CD-1 / PCD-1 epoch ==")
      res = cd_epoch.run(quick=args.quick, big=args.big, repeats=args.repeats, write=write,
                         peers=peers, worker=worker)
      targets.update(res["targets"])
    if args.only in (None, "gibbs"):
      print("== Gibbs sampling throughput ==")
      res = gibbs_throughput.run(quick=args.quick, repeats=args.repeats, write=write,
                                 peers=[p for p in peers if p in ("numpy", "torch")],
                                 worker=worker)
      targets.update(res["targets"])
    if args.only in (None, "ais"):
      print("== AIS against its GEMM bound ==")
      res = ais_speed.run(quick=args.quick, repeats=args.repeats, write=write)
      targets.update(res["targets"])
    if args.only in (None, "dbm"):
      print("== DBM training epoch ==")
      res = dbm_speed.run(quick=args.quick, repeats=args.repeats, write=write, worker=worker)
      targets.update(res["targets"])
  finally:
    if worker is not None:
      worker.close()
  print(f"\nSuite finished in {time.perf_counter() - t0:.0f} s"
        + ("" if write else " (nothing written)"))
  for name, (value, met) in targets.items():
    print(f"  {'MET    ' if met else 'NOT MET'} {name}: {value}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
