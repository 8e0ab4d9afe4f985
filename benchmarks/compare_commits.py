"""The same workloads on two commits of jdbn, interleaved in one run: did a change cost speed?

    python -m benchmarks.compare_commits --base HEAD~1            # base against the work tree
    python -m benchmarks.compare_commits --base v1 --head v2 --repeats 15

Each side runs in its own warm worker process (its tree first on ``sys.path``); the repeats
alternate between them (A B A B ...), so drifts of a shared machine hit both alike. Workloads,
on a 784 x 500 Bernoulli RBM with the default PRNG:

* ``cd``: one CD-1 epoch (``contrastive.cd(optax.sgd(0.05, momentum=0.9)).epoch``) over 10,000
  MNIST images (random binary data of that shape if ``JDBN_MNIST_DIR`` is unset), batches of 100;
* ``gibbs``: 10,000 chains for 20 sweeps (``gibbs.chain``, one jit);
* ``ais``: ``likelihood.ais`` with 100 chains over 500 temperatures, reported per temperature.

Prints the median seconds of each side and the ratio head / base (below 1: head is faster).
The base tree is a temporary ``git worktree``, removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent

WORKER = r'''
import os, sys, time, json
sys.path.insert(0, sys.argv[1])
import jax, jax.numpy as jnp, numpy as np, optax
from jdbn import contrastive, gibbs, likelihood, rbm, data as jdata
assert os.path.dirname(os.path.dirname(rbm.__file__)).startswith(sys.argv[1]), rbm.__file__
key = jax.random.key(0)
folder = os.environ.get("JDBN_MNIST_DIR")
if folder:
  x = jdata.binarize(jdata.load_mnist(data_dir=folder).x[:10_000])
else:
  x = (np.random.default_rng(0).random((10_000, 784)) < 0.13).astype(np.float32)
x = jnp.asarray(x, jnp.float32)
params = rbm.init(key, 784, 500, data=x)
trainer = contrastive.cd(optax.sgd(0.05, momentum=0.9), k=1)
state = trainer.init(key, params)
import inspect
lean = {"check": False} if "check" in inspect.signature(trainer.epoch).parameters else {}
starts = gibbs.init_random(key, params, 10_000)
chain = jax.jit(lambda k, s: gibbs.chain(k, params, s, 20)[0])
betas = np.linspace(0, 1, 501).astype(np.float32)
work = {
  "cd": lambda: trainer.epoch(key, state, x, 100, **lean)[0],
  "gibbs": lambda: chain(key, starts),
  "ais": lambda: likelihood.ais(key, params, n_chains=100, betas=betas).log_z,
}
per = {"cd": 1, "gibbs": 1, "ais": 500}
for name in work:
  jax.block_until_ready(work[name]())
print("ready", flush=True)
for line in sys.stdin:
  name = line.strip()
  t0 = time.perf_counter()
  jax.block_until_ready(work[name]())
  print(json.dumps((time.perf_counter() - t0) / per[name]), flush=True)
'''


def _start(tree: pathlib.Path) -> subprocess.Popen:
  env = dict(os.environ, PYTHONPATH=str(tree))
  proc = subprocess.Popen([sys.executable, "-c", WORKER, str(tree)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True, env=env, cwd=tempfile.gettempdir())
  line = proc.stdout.readline().strip()
  if line != "ready":
    raise RuntimeError(f"worker for {tree} failed to start")
  return proc


def _time(proc: subprocess.Popen, name: str) -> float:
  proc.stdin.write(name + "\n")
  proc.stdin.flush()
  return float(json.loads(proc.stdout.readline()))


def _worktree(rev: str, where: pathlib.Path) -> pathlib.Path:
  subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), rev],
                 check=True, capture_output=True)
  return where


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--base", default="HEAD~1", help="git revision of the base side")
  p.add_argument("--head", default=None, help="git revision of the head side (default: the "
                 "work tree as it is)")
  p.add_argument("--repeats", type=int, default=9)
  p.add_argument("--workloads", default="cd,gibbs,ais")
  args = p.parse_args(argv)
  names = args.workloads.split(",")
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    base_tree = _worktree(args.base, tmp / "base")
    head_tree = ROOT if args.head is None else _worktree(args.head, tmp / "head")
    procs = {}
    try:
      procs = {"base": _start(base_tree), "head": _start(head_tree)}
      times = {(side, n): [] for side in procs for n in names}
      for r in range(args.repeats):
        for n in names:
          for side in (("base", "head") if r % 2 == 0 else ("head", "base")):
            times[(side, n)].append(_time(procs[side], n))
      print(f"{'workload':8} {'base (s)':>12} {'head (s)':>12} {'head/base':>10}   "
            f"(medians of {args.repeats}, interleaved)")
      for n in names:
        b, h = np.median(times[("base", n)]), np.median(times[("head", n)])
        print(f"{n:8} {b:12.6f} {h:12.6f} {h / b:10.3f}")
    finally:
      for proc in procs.values():
        proc.stdin.close()
        proc.wait()
      for tree in (base_tree, head_tree):
        if tree != ROOT:
          subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                         check=False, capture_output=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
