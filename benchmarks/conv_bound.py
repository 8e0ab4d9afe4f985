"""The convolution bound of a convolutional RBM's CD-1 step: its convolutions timed alone.

A CD-1 step of a convolutional RBM (``K`` filters ``[K, C, r, r]``, batch ``B`` of ``C x H x W``
images, ``H' x W'`` detection maps) does five convolutions of three kinds (:func:`cd_convs`):

* ``conv``: the hidden field ``W * v``, ``[B, C, H, W] -> [B, K, H', W']``, for ``v0`` and ``v1``;
* ``conv_transpose``: the visible field ``sum_k W^k (x) h^k``, ``[B, K, H', W'] -> [B, C, H, W]``,
  for ``h0``;
* ``weight_grad``: the filters' statistics ``corr(v, p)``, ``[B, C, H, W], [B, K, H', W'] ->
  [K, C, r, r]``, for the data and the reconstruction;

each ``2 B K C H' W' r^2`` flops. :func:`conv_fns` times each kind alone, in JAX (a ``lax.scan``
of ``reps`` calls in one ``jit``, in NCHW, jdbn's layout, and in NHWC) and in PyTorch (worker),
in the same interleaved rounds as the implementations; the bound is the fastest library's time of
each kind, times its count, times the steps of an epoch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import numpy as np

from benchmarks import common, record

JAX_LAYOUTS = {"jax": ("NCHW", "OIHW", "NCHW"), "jax NHWC": ("NHWC", "HWIO", "NHWC")}
#: The JAX forms timed: XLA's convolution in two layouts, and jdbn's own matrix products over
#: patches (``jdbn.models.conv.hidden_field`` / ``visible_field`` below ``GEMM_MAX_BYTES``).
JAX_FORMS = tuple(JAX_LAYOUTS) + ("jax GEMM",)


@dataclasses.dataclass(frozen=True)
class Conv:
  """``count`` convolutions of one kind (``conv``, ``conv_transpose``, ``weight_grad``) per step.

  ``image_shape`` is ``(C, H, W)``; the filters are ``n_filters x C x r x r``.
  """
  kind: str
  batch: int
  image_shape: tuple
  n_filters: int
  filter_size: int
  count: int = 1

  @property
  def map_shape(self) -> tuple:
    _, h, w = self.image_shape
    return (h - self.filter_size + 1, w - self.filter_size + 1)

  @property
  def flops(self) -> int:
    mh, mw = self.map_shape
    return (2 * self.batch * self.n_filters * self.image_shape[0] * mh * mw *
            self.filter_size**2)

  @property
  def label(self) -> str:
    c, h, w = self.image_shape
    k, (mh, mw), r = self.n_filters, self.map_shape, self.filter_size
    return {"conv": f"[{self.batch},{c},{h},{w}] * [{k},{c},{r},{r}]",
            "conv_transpose": f"[{self.batch},{k},{mh},{mw}] (x) [{k},{c},{r},{r}]",
            "weight_grad": f"[{self.batch},{c},{h},{w}] x [{self.batch},{k},{mh},{mw}]"}[self.kind]


def cd_convs(batch: int, image_shape, n_filters: int, filter_size: int) -> list:
  """The five convolutions of a CD-1 step (module docstring)."""
  args = (batch, tuple(image_shape), n_filters, filter_size)
  return [Conv("conv", *args, count=2), Conv("conv_transpose", *args, count=1),
          Conv("weight_grad", *args, count=2)]


def conv_reps(c: Conv, target_flops: float = 1.5e9) -> int:
  """Convolutions per timed call: about ``target_flops``."""
  return int(max(1, min(64, target_flops // c.flops)))


def _nchw_operands(c: Conv, reps: int):
  rng = np.random.default_rng(0)
  C, H, W = c.image_shape
  mh, mw = c.map_shape
  v = (rng.random((reps, c.batch, C, H, W)) < 0.5).astype(np.float32)
  p = rng.random((reps, c.batch, c.n_filters, mh, mw), np.float32)
  w = (0.01 * rng.standard_normal((c.n_filters, C, c.filter_size, c.filter_size))).astype(
      np.float32)
  return v, p, w


def _gemm_bodies(c: Conv, w):
  """jdbn's own forms (``jdbn.models.conv``'s fields on a model with filters ``w``)."""
  import jax
  from jdbn.models import conv as JC
  model = JC.ConvRBM(w, None, None, image_shape=tuple(c.image_shape))
  flat = lambda x: x.reshape(x.shape[0], -1)
  hidden = lambda m, v: JC.hidden_field(m, flat(v))
  return {
      "conv": lambda x: hidden(model, x[0]),
      "conv_transpose": lambda x: JC.visible_field(model, flat(x[0])),
      "weight_grad": lambda x: jax.vjp(lambda k: hidden(model.replace(W=k), x[0]), w)[1](
          flat(x[1]))[0],
  }


def jax_conv_fn(c: Conv, reps: int, form: str = "jax") -> Callable[[], Any]:
  """``reps`` convolutions of kind ``c.kind`` in one ``lax.scan`` in one ``jit``; ``form`` is
  ``"jax"`` (NCHW / OIHW), ``"jax NHWC"`` (NHWC / HWIO) or ``"jax GEMM"`` (jdbn's products over
  patches, NCHW); the outputs are summed into the carry."""
  import jax
  import jax.numpy as jnp
  dims = JAX_LAYOUTS.get(form, JAX_LAYOUTS["jax"])
  v, p, w = _nchw_operands(c, reps)
  if form == "jax NHWC":
    v, p, w = v.transpose(0, 1, 3, 4, 2), p.transpose(0, 1, 3, 4, 2), w.transpose(2, 3, 1, 0)
  v, p, w = jnp.asarray(v), jnp.asarray(p), jnp.asarray(w)
  r = c.filter_size
  conv = lambda x, k, pad="VALID": jax.lax.conv_general_dilated(x, k, (1, 1), pad,
                                                                dimension_numbers=dims)
  i_axis, o_axis = dims[1].index("I"), dims[1].index("O")

  def transpose_kernel(k):
    k = jnp.flip(k, (dims[1].index("H"), dims[1].index("W")))
    return jnp.swapaxes(k, i_axis, o_axis)

  bodies = {
      "conv": lambda x: conv(x[0], w),
      "conv_transpose": lambda x: conv(x[0], transpose_kernel(w), [(r - 1, r - 1)] * 2),
      "weight_grad": lambda x: jax.vjp(lambda k: conv(x[0], k), w)[1](x[1])[0],
  }
  if form == "jax GEMM":
    bodies = _gemm_bodies(c, w)
  xs = {"conv": (v,), "conv_transpose": (p,), "weight_grad": (v, p)}[c.kind]
  body = bodies[c.kind]
  init = jnp.zeros(jax.eval_shape(body, tuple(a[0] for a in xs)).shape, jnp.float32)

  @jax.jit
  def run(xs):
    return jax.lax.scan(lambda acc, x: (acc + body(x), None), init, xs)[0]

  return lambda: run(xs)


@dataclasses.dataclass
class ConvResult:
  conv: Conv
  seconds: dict  # library -> median seconds per convolution

  @property
  def best(self) -> tuple:
    lib = min(self.seconds, key=self.seconds.get)
    return lib, self.seconds[lib]


def conv_fns(convs: Sequence[Conv], worker: Optional[common.PeerWorker], *,
             torch: bool = True) -> tuple:
  """Functions timing each kind in JAX (:data:`JAX_FORMS`) and PyTorch (worker, if wanted).

  Returns ``({name: fn}, {name: (index, library, convolutions per call)})``; time them in the
  same :func:`benchmarks.common.interleaved` call as the implementations and pass the timings to
  :func:`conv_results`.
  """
  fns, index = {}, {}
  for i, c in enumerate(convs):
    reps = conv_reps(c)
    for lib in JAX_FORMS:
      fns[f"{c.kind} {lib}"] = jax_conv_fn(c, reps, lib)
      index[f"{c.kind} {lib}"] = (i, lib, reps)
    for lib, gemm in (("torch", False), ("torch GEMM", True)):
      if worker is None or not torch:
        break
      name = f"{c.kind} {lib}"
      worker.setup(name, "torch_conv_op", op=c.kind, batch=c.batch,
                   image_shape=list(c.image_shape), n_filters=c.n_filters,
                   filter_size=c.filter_size, reps=reps, gemm=gemm)
      fns[name] = worker.timed(name)
      index[name] = (i, lib, reps)
  return fns, index


def conv_results(convs: Sequence[Conv], timings: dict, index: dict, worker=None,
                 log=None) -> list:
  """:class:`ConvResult` per kind from the timings of :func:`conv_fns`'s functions."""
  seconds = [dict() for _ in convs]
  for name, (i, lib, reps) in index.items():
    seconds[i][lib] = timings[name].median / reps
    if worker is not None and lib.startswith("torch"):
      worker.drop(name)
  results = [ConvResult(c, s) for c, s in zip(convs, seconds)]
  if log:
    for r in results:
      log(f"  {r.conv.kind} {r.conv.label}: " + ", ".join(
          f"{lib} {sec * 1e3:.3f} ms ({r.conv.flops / sec / 1e9:.0f} GFLOP/s)"
          for lib, sec in r.seconds.items()))
  return results


def bound_seconds(results: Sequence[ConvResult], steps: int, lib: Optional[str] = None) -> float:
  """Seconds for ``steps`` steps of the convolutions, each at the fastest library (or ``lib``)."""
  return steps * sum(r.conv.count * (r.best[1] if lib is None else r.seconds[lib])
                     for r in results)


def conv_table(results: Sequence[ConvResult]) -> str:
  libs = sorted({lib for r in results for lib in r.seconds})
  rows = []
  for r in results:
    c = r.conv
    rows.append([f"`{c.kind}`", c.label, str(c.count)] + [
        f"{r.seconds[lib] * 1e3:.3f} ms ({c.flops / r.seconds[lib] / 1e9:.0f})"
        if lib in r.seconds else "-" for lib in libs] + [r.best[0]])
  return record.markdown_table(["convolution", "shapes", "per step"] +
                               [f"{lib} (GFLOP/s)" for lib in libs] + ["fastest"], rows)
