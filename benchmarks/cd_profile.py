"""Where a jdbn CD-1 epoch spends its time: compiled program, op profile, PRNG and softplus costs.

    python -m benchmarks.cd_profile                     # MNIST-sized 784x500 (random data), digits
    python -m benchmarks.cd_profile --size digits --impl philox2x32

For each size and PRNG implementation this prints

1. lowering and compile time, and what the compiled program holds: the number of ``dot`` ops
   (5 means XLA's CSE merged the positive phase's ``data @ W``, computed both to sample ``h0``
   and inside ``jax.grad`` of the free energy, and the reconstruction's ``h0 @ W'``, computed
   both for ``E[v | h0]`` and to sample ``v1``), and the ops in the loop body;
2. a per-op profile of one epoch (``jax.profiler``), grouped into matrix products, random
   numbers and sampling, the free energy's softplus and its derivative, the optimizer, and the
   rest;
3. (``--micro``) the cost per element of uniform random numbers for each PRNG implementation
   and of ``softplus`` (value and gradient) in two forms, in one process, interleaved.

Run it pinned to one core (``taskset -c 1 python -m benchmarks.cd_profile``) on a shared
machine: the profile then shows each op's own work rather than waits for a core.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import shutil
import tempfile
import time

import numpy as np

from benchmarks import common as C


def _categorise(name: str, op: str) -> str:
  if "dot" in name or op.endswith("dot_general") or "transpose(jvp())/transpose" in op:
    return "matrix products"
  if any(s in op for s in ("threefry", "philox", "random_", "_uniform", "_bernoulli", "rng")):
    return "random numbers"
  if "convert_element_type" in op or "compare" in name:
    return "random numbers"  # the fused `uniform < p` sampling
  if "softplus" in op or "logaddexp" in op:
    return "softplus (free energy)"
  if name.startswith("multiply_add_fusion") or "optax" in op:
    return "optimizer"
  return "other"


def profile_epoch(size: str, impl: str, n_train: int = 3000, repeats: int = 3, log=print):
  import jax
  import jax.numpy as jnp
  import optax
  from jdbn import contrastive, rbm

  if size == "digits":
    data, H, B = C.load_digits(), 32, 10
  else:
    data, H, B = np.random.default_rng(0).random((n_train, 784), np.float32), 500, 100
  x = jnp.asarray(data)
  key = jax.random.key(1, impl=impl)
  trainer = contrastive.cd(optax.sgd(0.05, momentum=0.9), k=1)
  state = trainer.init(key, rbm.init(jax.random.key(0), x.shape[1], H))
  f = jax.jit(lambda k, s, d: trainer.epoch(k, s, d, B))
  t = time.perf_counter()
  lowered = f.lower(key, state, x)
  t1 = time.perf_counter()
  compiled = lowered.compile()
  t2 = time.perf_counter()
  hlo = compiled.as_text()
  steps = x.shape[0] // B
  log(f"\n== {size} {x.shape[1]}x{H}, batch {B}, {steps} steps, PRNG {impl} ==")
  log(f"lower {t1 - t:.2f} s, compile {t2 - t1:.2f} s; dot ops in the compiled program: "
      f"{len(re.findall(r' dot[(]', hlo))}")
  meta = {}
  for line in hlo.splitlines():
    m = re.match(r'\s*(?:ROOT )?%?([\w.\-]+) = .*?op_name="([^"]+)"', line)
    if m:
      meta[m.group(1)] = m.group(2)
  jax.block_until_ready(compiled(key, state, x))
  totals, counts = collections.Counter(), collections.Counter()
  walls = []
  for _ in range(repeats):
    folder = tempfile.mkdtemp(prefix="jdbn_prof_")
    try:
      jax.profiler.start_trace(folder, create_perfetto_trace=True)
      t = time.perf_counter()
      jax.block_until_ready(compiled(key, state, x))
      walls.append(time.perf_counter() - t)
      jax.profiler.stop_trace()
      path = glob.glob(f"{folder}/**/*.trace.json.gz", recursive=True)[0]
      events = json.load(gzip.open(path))["traceEvents"]
    finally:
      shutil.rmtree(folder, ignore_errors=True)
    for e in events:
      name = e.get("name", "")
      if e.get("ph") != "X" or name.startswith(("ThunkExecutor", "$", "SlinkyThreadPool", "end:",
                                                "Pjit", "Common", "while", "ParseArguments")):
        continue
      totals[name] += e.get("dur", 0) / repeats
      counts[name] += 1 / repeats
  per_step = lambda us: us / 1e3 / steps  # noqa: E731
  cats = collections.Counter()
  for name, us in totals.items():
    cats[_categorise(name, meta.get(name, ""))] += us
  total = sum(cats.values())
  log(f"profiled epoch: {np.median(walls) * 1e3:.1f} ms wall; {sum(counts.values()) / steps:.0f} "
      f"ops run per step; sum of op times {per_step(total):.3f} ms per step:")
  for cat, us in cats.most_common():
    log(f"  {cat:24s} {per_step(us):8.3f} ms/step  {us / total:6.1%}")
  log("  largest ops:")
  for name, us in totals.most_common(12):
    log(f"    {per_step(us):8.3f} ms/step  {name:36s} {meta.get(name, '')[-70:]}")
  return dict(cats=cats, steps=steps, total=total)


def micro(log=print):
  import jax
  import jax.numpy as jnp
  from jdbn import units

  reps = 100
  log("\n== per-element costs (CPU ns, medians of interleaved repeats) ==")
  fns = {}
  for impl in ("threefry2x32", "philox2x32", "philox4x32", "rbg", "unsafe_rbg"):
    key = jax.random.key(0, impl=impl)

    @jax.jit
    def draw(key):
      body = lambda c, k: (c + jax.random.uniform(k, (100, 1284)).sum(), None)  # noqa: E731
      return jax.lax.scan(body, 0.0, jax.random.split(key, reps))[0]

    fns[f"uniform, {impl}"] = (lambda draw=draw, key=key: draw(key))

  z = jnp.asarray(3 * np.random.default_rng(0).standard_normal((reps, 100, 1284)), jnp.float32)
  for name, sp in (("jax.nn.softplus", jax.nn.softplus),
                   ("jdbn.units.softplus", units.softplus)):
    vg = jax.value_and_grad(lambda x, sp=sp: sp(x).sum())
    run = jax.jit(lambda z, vg=vg: jax.lax.scan(
        lambda c, x: (c + vg(x)[0] + vg(x)[1].sum(), None), 0.0, z)[0])
    fns[f"softplus value+grad, {name}"] = (lambda run=run: run(z))
  res = C.interleaved(fns, repeats=7)
  n = reps * 100 * 1284
  for name, t in res.items():
    log(f"  {name:55s} {t.cpu_median / n * 1e9:6.2f} ns/element")
  return res


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--size", default="mnist,digits")
  p.add_argument("--impl", default="threefry2x32,philox2x32")
  p.add_argument("--micro", action="store_true", help="also the per-element PRNG/softplus costs")
  args = p.parse_args(argv)
  for size in args.size.split(","):
    for impl in args.impl.split(","):
      profile_epoch(size, impl)
  if args.micro:
    micro()


if __name__ == "__main__":
  main()
