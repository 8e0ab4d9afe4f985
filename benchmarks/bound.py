"""The GEMM bound: the matrix products an algorithm needs, timed alone, at the fastest library.

:func:`gemm_fns` times the exact matrix products an algorithm needs, alone, in JAX (inside a
``lax.scan`` in one ``jit``, like the library's loops), in NumPy and (when installed) in PyTorch,
in the same interleaved rounds as the implementations (:func:`benchmarks.common.interleaved`);
the bound is the fastest of them for each shape, summed over the products an algorithm performs.
Nothing that does those products can be faster than that on this machine, whatever it does about
the rest (sampling, sigmoids, updates).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import numpy as np

from benchmarks import common, record

@dataclasses.dataclass(frozen=True)
class Gemm:
  """``count`` matrix products of one shape per step.

  ``kind`` says how the operands are laid out, as the algorithms use them with ``W [V, H]``:
  ``"nn"`` is ``x [m, k] @ W [k, n]`` (``v @ W``), ``"nt"`` is ``x [m, k] @ W.T`` with
  ``W [n, k]`` (``h @ W.T``), ``"tn"`` is ``x.T @ y`` with ``x [k, m]``, ``y [k, n]``
  (the weight gradient ``v.T @ p``).
  """
  name: str
  m: int
  k: int
  n: int
  kind: str
  count: int = 1

  @property
  def flops(self) -> int:
    return 2 * self.m * self.k * self.n


def cd_gemms(batch: int, n_visible: int, n_hidden: int) -> list:
  """The 5 products of a CD-1 step: ``v0 W``, ``h0 W.T``, ``v1 W``, ``v0.T p0``, ``v1.T p1``."""
  return [Gemm("v@W", batch, n_visible, n_hidden, "nn", 2),
          Gemm("h@W.T", batch, n_hidden, n_visible, "nt", 1),
          Gemm("v.T@p", n_visible, batch, n_hidden, "tn", 2)]


def sweep_gemms(n_chains: int, n_visible: int, n_hidden: int) -> list:
  """The 2 products of one block-Gibbs sweep: ``v @ W`` and ``h @ W.T``."""
  return [Gemm("v@W", n_chains, n_visible, n_hidden, "nn", 1),
          Gemm("h@W.T", n_chains, n_hidden, n_visible, "nt", 1)]


def _gemm_operands(g: Gemm, rng) -> tuple:
  if g.kind == "nn":
    return rng.random((g.m, g.k), np.float32), rng.random((g.k, g.n), np.float32)
  if g.kind == "nt":
    return rng.random((g.m, g.k), np.float32), rng.random((g.n, g.k), np.float32)
  if g.kind == "tn":
    return rng.random((g.k, g.m), np.float32), rng.random((g.k, g.n), np.float32)
  raise ValueError(g.kind)


def jax_gemm_fn(g: Gemm, reps: int) -> Callable[[], Any]:
  """A function doing ``reps`` products of shape ``g`` in one ``lax.scan`` in one ``jit``.

  The left operand differs in every step (so nothing is hoisted out of the loop); the outputs
  are summed into the carry, an elementwise add that is negligible next to the product.
  """
  import jax
  import jax.numpy as jnp
  rng = np.random.default_rng(0)
  a, b = _gemm_operands(g, rng)
  xs = jnp.asarray(np.stack([a] * reps))
  b = jnp.asarray(b)
  prod = {"nn": lambda x, w: x @ w, "nt": lambda x, w: x @ w.T, "tn": lambda x, w: x.T @ w}[g.kind]

  @jax.jit
  def run(xs, b):

    def body(c, x):
      return c + prod(x, b), None

    out_shape = (g.m, g.n)
    return jax.lax.scan(body, jnp.zeros(out_shape, jnp.float32), xs)[0]

  return lambda: run(xs, b)


def gemm_reps(g: Gemm, target_flops: float = 2e9, max_bytes: float = 1.5e8) -> int:
  """How many products one timed call should do: about ``target_flops``, within memory."""
  bytes_a = 4 * g.m * g.k
  return int(max(1, min(64, target_flops // g.flops, max_bytes // bytes_a)))


@dataclasses.dataclass
class GemmResult:
  gemm: Gemm
  seconds: dict  # library -> median seconds per product

  @property
  def best(self) -> tuple:
    lib = min(self.seconds, key=self.seconds.get)
    return lib, self.seconds[lib]


def gemm_fns(gemms: Sequence[Gemm], worker: Optional[common.PeerWorker], *,
             torch: bool = True) -> tuple:
  """Functions timing each product shape in JAX, NumPy (worker) and PyTorch (worker, if wanted).

  Returns ``({name: fn}, {name: (shape index, library, products per call)})``; put the functions
  in the same :func:`interleaved` call as the implementations, so that the bound is measured
  under the same load, and pass the timings to :func:`gemm_results`.
  """
  fns, index = {}, {}
  for i, g in enumerate(gemms):
    reps = gemm_reps(g)
    name = f"GEMM {g.name} [{g.m}x{g.k}]x[{g.k}x{g.n}]"
    fns[f"{name} jax"] = jax_gemm_fn(g, reps)
    index[f"{name} jax"] = (i, "jax", reps)
    if worker is not None:
      for lib in ["numpy"] + (["torch"] if torch else []):
        worker.setup(f"{name} {lib}", "gemm", lib=lib, m=g.m, k=g.k, n=g.n, kind=g.kind,
                     reps=reps)
        fns[f"{name} {lib}"] = worker.timed(f"{name} {lib}")
        index[f"{name} {lib}"] = (i, lib, reps)
  return fns, index


def gemm_results(gemms: Sequence[Gemm], timings: dict, index: dict, worker=None, log=None) -> list:
  """:class:`GemmResult` per shape from the timings of :func:`gemm_fns`'s functions."""
  seconds = [dict() for _ in gemms]
  for name, (i, lib, reps) in index.items():
    seconds[i][lib] = timings[name].median / reps
    if worker is not None and lib != "jax":
      worker.drop(name)
  results = [GemmResult(g, s) for g, s in zip(gemms, seconds)]
  if log:
    for r in results:
      g = r.gemm
      log(f"  GEMM {g.name} [{g.m}x{g.k}]x[{g.k}x{g.n}]: " + ", ".join(
          f"{lib} {sec * 1e3:.3f} ms ({g.flops / sec / 1e9:.0f} GFLOP/s)"
          for lib, sec in r.seconds.items()))
  return results


def measure_gemms(gemms: Sequence[Gemm], worker: Optional[common.PeerWorker], *, repeats: int = 5,
                  torch: bool = True, log=None) -> list:
  """Times each product shape alone (interleaved between libraries); see :func:`gemm_fns`."""
  fns, index = gemm_fns(gemms, worker, torch=torch)
  timings = common.interleaved(fns, repeats=repeats)
  return gemm_results(gemms, timings, index, worker, log)


def bound_seconds(results: Sequence[GemmResult], steps: int, lib: Optional[str] = None) -> float:
  """Seconds for ``steps`` steps of the products: each shape at the fastest library (or ``lib``)."""
  total = 0.0
  for r in results:
    s = r.best[1] if lib is None else r.seconds[lib]
    total += r.gemm.count * s
  return steps * total


def gemm_table(results: Sequence[GemmResult]) -> str:
  libs = sorted({lib for r in results for lib in r.seconds})
  rows = []
  for r in results:
    g = r.gemm
    rows.append([f"`{g.name}`", f"[{g.m}x{g.k}] x [{g.k}x{g.n}]", str(g.count)] + [
        f"{r.seconds[lib] * 1e3:.3f} ms ({g.flops / r.seconds[lib] / 1e9:.0f})"
        if lib in r.seconds else "-" for lib in libs
    ] + [r.best[0]])
  return record.markdown_table(["product", "shape", "per step"] +
                        [f"{lib} (GFLOP/s)" for lib in libs] + ["fastest"], rows)


def gemm_scan(n_steps: int, n_chains: int, n_visible: int, n_hidden: int) -> Callable[[], Any]:
  """The ``2 n_steps`` GEMMs of an AIS run, alone: ``u = x W`` then ``x = u W'`` per step.

  ``W`` has orthonormal columns, so ``x`` stays O(1) (no denormals, no overflow) with nothing but
  the two products in the loop. Returns a function running them once, waiting for the result.
  """
  import jax
  import jax.numpy as jnp
  rng = np.random.default_rng(0)
  W = jnp.asarray(np.linalg.qr(rng.standard_normal((n_visible, n_hidden)))[0], jnp.float32)
  x = jnp.asarray(rng.standard_normal((n_chains, n_visible)), jnp.float32)

  @jax.jit
  def run(x, W):

    def body(x, _):
      return (x @ W) @ W.T, None

    return jax.lax.scan(body, x, None, length=n_steps)[0]

  return lambda: run(x, W).block_until_ready()
