"""Chain-sweeps per second of block-Gibbs sampling in a 784x500 RBM: jdbn, NumPy, PyTorch, GEMMs.

A chain-sweep is one ``h ~ p(h | v)``, ``v ~ p(v | h)`` of one chain. For 1, 100, 10,000 and
100,000 chains this measures:

* ``jdbn.gibbs.chain`` over a batch of states ``[n_chains, 784]`` (one ``lax.scan``; each sweep
  is two matrix products and elementwise sampling), with each PRNG implementation in
  ``--impls`` (``jax.random.key(seed, impl=...)``; the library uses whatever key it is given);
* ``jax.vmap`` of single-chain ``gibbs.chain`` over per-chain keys and states, the way the design
  notes run many chains, to show it is the same computation (its compiled program does the
  same two products per sweep, with a batch dimension);
* bfloat16 params and states (``--bf16``), at 10,000 chains;
* the same batched chain compiled with ``unroll`` sweeps per loop iteration (``--unroll``, with
  the PRNG named by ``--unroll-impl``), which matters where the loop's per-iteration cost
  dominates (one chain);
* on CPUs, the same batched chain (PRNG ``--unroll-impl``) compiled with XLA's YNNPACK library
  fusions off (``jax.jit(..., compiler_options=NO_YNN)``; ``--no-ynn-off`` skips it), so that
  the products go to XLA's own dot kernels: faster for thousands of chains on the 2-core EPYC,
  slower for a hundred (``benchmarks/HISTORY.md``);
* NumPy and PyTorch batched sweeps doing the same (``peers.py``);
* the bound of the two products ``v W`` and ``h W'`` alone, at the fastest measured speed.

Compile time is reported apart from run time (``jit(...).lower(...).compile()``).

    python -m benchmarks.gibbs_throughput            # 1 to 100,000 chains of 784x500
    python -m benchmarks.gibbs_throughput --quick    # 64x32, 1 and 100 chains, NumPy only

A run writes ``benchmarks/results/gibbs_throughput.json`` and ``.md`` (``--quick``: in
``benchmarks/results/quick/``; ``--out`` elsewhere), regenerates the results page and, for a full
run, appends a short dated entry to ``benchmarks/HISTORY.md``. thrml (Extropic's JAX sampler) is
measured on the same 784x500 chains by ``benchmarks/thrml_peer.py`` (its own venv and page row).
"""

from __future__ import annotations

import argparse
import pathlib
import re
import time

import numpy as np

from benchmarks import bound as G
from benchmarks import common as C
from benchmarks import page
from benchmarks import record as R

CHAINS = (1, 100, 10_000, 100_000)
IMPLS = ("threefry2x32", "philox2x32", "rbg")
TARGETS = {"vs_torch": 1.5, "vs_numpy": 1.0, "bound": 0.85}  # at 10,000 chains
# XLA:CPU compiler options (a DebugOptions field; an empty list turns every YNNPACK fusion off).
NO_YNN = {"xla_cpu_experimental_ynn_fusion_type": ""}
#: Where the page row sends the reader for thrml (measured apart: it needs its own venv).
THRML_NOTE = "thrml: see the thrml_peer row"


def n_steps_for(n_chains: int, quick: bool) -> int:
  """Sweeps per timed call: about 50,000 chain-sweeps (2,000 in --quick), 2 to 1,000 sweeps."""
  work = 2_000 if quick else 50_000
  return int(max(2, min(1000, work // n_chains)))


def count_dots(hlo: str) -> int:
  return len(re.findall(r"\bdot\(", hlo))


def jdbn_fns(params, v0, n_steps: int, impls, vmap: bool, bf16: bool, unroll: int = 1,
             unroll_impl: str = "philox2x32", log=print, ynn_off: bool = True):
  """``{label: fn}`` for jdbn variants, and ``{label: (compile seconds, dots in HLO)}``."""
  import jax
  import jax.numpy as jnp
  from jdbn import gibbs

  fns, compiled_info = {}, {}
  variants = [(impl, "batched", jnp.float32, 1, None) for impl in impls]
  if vmap:
    variants.append((impls[0], "vmap", jnp.float32, 1, None))
  if bf16:
    variants.append((impls[0], "batched", jnp.bfloat16, 1, None))
  if unroll > 1:
    variants.append((unroll_impl, "batched", jnp.float32, unroll, None))
  if ynn_off and jax.default_backend() == "cpu":
    variants.append((unroll_impl, "batched", jnp.float32, 1, NO_YNN))
  for impl, style, dtype, u, options in variants:
    p = jax.tree.map(lambda a: a.astype(dtype), params)
    v = v0.astype(dtype)
    key = jax.random.key(0, impl=impl)
    if style == "batched":

      def f(key, p, v):
        state = gibbs.init(p, v)
        return gibbs.chain(key, p, state, n_steps, unroll=u)[0].v
    else:

      def f(key, p, v):
        keys = jax.random.split(key, v.shape[0])
        one = lambda k, s: gibbs.chain(k, p, s, n_steps)[0].v  # noqa: E731
        return jax.vmap(one)(keys, jax.vmap(lambda x: gibbs.init(p, x))(v))

    t = time.perf_counter()
    compiled = jax.jit(f, compiler_options=options).lower(key, p, v).compile()
    compile_s = time.perf_counter() - t
    label = (f"jdbn {style} {impl}" + (" bf16" if dtype == jnp.bfloat16 else "") +
             (f" unroll {u}" if u > 1 else "") + (" YNNPACK off" if options else ""))
    compiled_info[label] = (compile_s, count_dots(compiled.as_text()))
    fns[label] = lambda compiled=compiled, key=key, p=p, v=v: compiled(key, p, v)
  return fns, compiled_info


def measure(n_visible, n_hidden, n_chains, worker, scratch, *, quick, repeats, peers, impls,
            vmap, bf16, unroll=1, unroll_impl="philox2x32", ynn_off=True, log=print):
  import jax
  import jax.numpy as jnp
  from jdbn import rbm

  n_steps = n_steps_for(n_chains, quick)
  log(f"{n_chains} chains x {n_steps} sweeps, {n_visible}x{n_hidden}")
  params = rbm.init(jax.random.key(0), n_visible, n_hidden)
  params = params.replace(b=0.1 * jax.random.normal(jax.random.key(1), (n_visible,)))
  v0 = (jax.random.uniform(jax.random.key(2), (n_chains, n_visible)) < 0.5).astype(jnp.float32)
  fns, cinfo = jdbn_fns(params, v0, n_steps, impls, vmap, bf16, unroll, unroll_impl, log,
                        ynn_off)
  names = []
  if worker is not None:
    w0 = C.save_array(params.W, scratch, f"w_{n_visible}x{n_hidden}")
    for peer in peers:
      if peer not in ("numpy", "torch"):
        continue
      name = {"numpy": "NumPy", "torch": "PyTorch"}[peer]
      worker.setup(name, f"{peer}_sweeps", n_chains=n_chains, n_visible=n_visible,
                   n_hidden=n_hidden, n_steps=n_steps, w0_path=w0)
      fns[name] = worker.timed(name)
      names.append(name)
  shapes = G.sweep_gemms(n_chains, n_visible, n_hidden)
  g_fns, g_index = G.gemm_fns(shapes, worker, torch="torch" in peers)
  timings = C.interleaved({**fns, **g_fns}, repeats=repeats, log=log)
  for name in names:
    worker.drop(name)
  gemms = G.gemm_results(shapes, timings, g_index, worker, log)
  timings = {k: v for k, v in timings.items() if k not in g_index}
  bound = G.bound_seconds(gemms, n_steps)
  return dict(n_chains=n_chains, n_steps=n_steps, timings=timings, compiled=cinfo, gemms=gemms,
              bound=bound)


def report(res) -> str:
  t, n, s = res["timings"], res["n_chains"], res["n_steps"]
  bound = res["bound"]
  rate = lambda sec: n * s / sec  # noqa: E731
  ref = next(k for k in t if k.startswith("jdbn batched"))
  rows = []
  for name in sorted(t, key=lambda k: t[k].median):
    comp = res["compiled"].get(name)
    rows.append([
        name, f"{rate(t[name].median):,.0f}", t[name].fmt(1e3, "ms"),
        f"{rate(t[name].cpu_median):,.0f}" if np.isfinite(t[name].cpu_median) else "",
        f"{t[ref].median / t[name].median:.2f}x", f"{bound / t[name].median:.0%}",
        f"{comp[0]:.2f} s" if comp else "", str(comp[1]) if comp else ""
    ])
  table = C.markdown_table([
      "implementation", "chain-sweeps/s", f"median per call ({s} sweeps)",
      "chain-sweeps per CPU-s", f"speed / {ref}", "GEMM bound / time", "compile",
      "dots in HLO"
  ], rows)
  return (f"{table}\n\nGEMM bound: {rate(bound):,.0f} chain-sweeps/s ({bound * 1e3:.1f} ms "
          f"for {s} sweeps of 2 products); products alone:\n\n{G.gemm_table(res['gemms'])}")


def targets_for(res, impls) -> dict:
  t, out = res["timings"], {}
  if res["n_chains"] != 10_000:
    return out
  labels = [f"jdbn batched {impl}" for impl in impls]
  labels += [k for k in t if k.endswith("YNNPACK off")]
  for label in labels:
    tj = t[label].median
    if "PyTorch" in t:
      r = t["PyTorch"].median / tj
      out[f"10,000 chains: {label} >= {TARGETS['vs_torch']}x PyTorch"] = (
          f"{r:.2f}x", r >= TARGETS["vs_torch"])
    if "NumPy" in t:
      r = t["NumPy"].median / tj
      out[f"10,000 chains: {label} faster than NumPy"] = (f"{r:.2f}x", r > TARGETS["vs_numpy"])
    frac = res["bound"] / tj
    out[f"10,000 chains: {label} >= {TARGETS['bound']:.0%} of GEMM bound"] = (
        f"{frac:.0%}", frac >= TARGETS["bound"])
  return out


def headline(res, n_visible: int, n_hidden: int) -> dict:
  """The page's row: the fastest jdbn variant against NumPy, PyTorch and the bound."""
  t = res["timings"]
  best = min((k for k in t if k.startswith("jdbn")), key=lambda k: t[k].median)
  tj = t[best].median
  parts = [f"{t[k].median / tj:.2f}x {k}" for k in ("NumPy", "PyTorch") if k in t]
  parts.append(f"{res['bound'] / tj:.0%} of GEMM bound")
  return R.row("gibbs_many",
               f"Gibbs sampling, {res['n_chains']:,} chains of a {n_visible}x{n_hidden} RBM",
               ", ".join(parts) + f" [{best[len('jdbn '):]}]; {THRML_NOTE}",
               variant=best)


def summary(res) -> dict:
  """One chain count's numbers for the JSON."""
  t, n, s = res["timings"], res["n_chains"], res["n_steps"]
  return {"n_chains": n, "n_steps": s, "bound_s": res["bound"],
          "median_s": {k: v.median for k, v in t.items()},
          "chain_sweeps_per_s": {k: n * s / v.median for k, v in t.items()},
          "compile_s": {k: c[0] for k, c in res["compiled"].items()},
          "gemm_s": {g.gemm.name: g.seconds for g in res["gemms"]}}


def run(*, quick=False, chains=None, repeats=None, write=False, peers=("numpy", "torch"),
        impls=IMPLS, vmap=True, bf16=True, unroll=8, unroll_impl="philox2x32", ynn_off=True,
        log=print, worker=None, out_dir=None) -> dict:
  """Measures every chain count; with ``write``, publishes the latest results (``out_dir``)."""
  from benchmarks.cd_epoch import available_peers
  repeats = repeats or (3 if quick else 5)
  peers = available_peers(peers, quick, log)
  if quick:
    n_visible, n_hidden, chains = 64, 32, chains or (1, 100)
    impls, unroll_impl = impls[:1], impls[0]
  else:
    n_visible, n_hidden, chains = 784, 500, chains or CHAINS
  own_worker = worker is None and bool(peers)
  if own_worker:
    worker = C.PeerWorker()
  sections, targets, measured = [], {}, []
  try:
    with C.scratch_dir() as scratch:
      for n in chains:
        t0 = time.perf_counter()
        res = measure(n_visible, n_hidden, n, worker, scratch, quick=quick, repeats=repeats,
                      peers=peers, impls=list(impls), vmap=vmap, bf16=bf16 and n == 10_000,
                      unroll=unroll, unroll_impl=unroll_impl, ynn_off=ynn_off, log=log)
        text = report(res)
        targets.update(targets_for(res, impls))
        sections.append((f"{n:,} chains", text))
        measured.append(res)
        log(f"\n### {n:,} chains ({time.perf_counter() - t0:.0f} s)\n\n{text}\n")
    machine = C.machine_info(worker)
  finally:
    if own_worker:
      worker.close()
  log("Targets:\n" + (R.targets_summary(targets) or "(none evaluated)"))
  lead = next((r for r in measured if r["n_chains"] == 10_000), measured[-1] if measured else None)
  rows = [headline(lead, n_visible, n_hidden)] if lead else []
  if write:
    data = R.payload("gibbs_throughput", "Gibbs sampling throughput",
                     "python -m benchmarks.gibbs_throughput" + (" --quick" if quick else ""), rows,
                     machine_info=machine, quick=quick, targets=targets,
                     results={"repeats": repeats, "shape": [n_visible, n_hidden],
                              "chains": [summary(r) for r in measured]})
    body = [f"{n_visible}x{n_hidden} Bernoulli RBM; medians of {repeats} interleaved repeats "
            f"(compare ratios within a table: the machine is shared)."]
    for name, text in sections:
      body += ["", f"## {name}", "", text]
    page.publish("gibbs_throughput", data, "\n".join(body),
                 out_dir or (R.QUICK_DIR if quick else R.RESULTS_DIR), log=log)
  return dict(sections=sections, targets=targets, machine=machine, rows=rows)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true")
  p.add_argument("--chains", default=None, help="comma-separated chain counts")
  p.add_argument("--impls", default=",".join(IMPLS))
  p.add_argument("--repeats", type=int, default=None)
  p.add_argument("--peers", default="numpy,torch")
  p.add_argument("--no-bf16", action="store_true")
  p.add_argument("--no-vmap", action="store_true")
  p.add_argument("--unroll", type=int, default=8,
                 help="also time the batched chain with this scan unroll (1: skip)")
  p.add_argument("--unroll-impl", default="philox2x32",
                 help="PRNG of the unrolled and the YNNPACK-off variants")
  p.add_argument("--no-ynn-off", action="store_true",
                 help="skip the variant compiled with XLA:CPU's YNNPACK fusions off")
  p.add_argument("--no-write", action="store_true", help="write no file")
  p.add_argument("--out", type=pathlib.Path, default=None,
                 help="results folder (default benchmarks/results; --quick: results/quick)")
  args = p.parse_args(argv)
  chains = tuple(int(c) for c in args.chains.split(",")) if args.chains else None
  return run(quick=args.quick, chains=chains, repeats=args.repeats, out_dir=args.out,
             write=not args.no_write, peers=args.peers.split(","),
             impls=tuple(args.impls.split(",")), vmap=not args.no_vmap, bf16=not args.no_bf16,
             unroll=args.unroll, unroll_impl=args.unroll_impl, ynn_off=not args.no_ynn_off)


if __name__ == "__main__":
  main()
