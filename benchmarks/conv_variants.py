"""What made the conv RBM's CD-1 update fast: the variants tried, timed interleaved in one run.

Each variant is jdbn's trainer (``contrastive.trainer(optax.sgd(lr, momentum), phases)``, one
epoch in one ``jit``, ``metrics=False``) with the model's fields, the CD score and the pooling
sampler swapped in:

* ``xla``: the fields by ``lax.conv_general_dilated`` (NCHW; the visible field a "full"
  convolution with the flipped filters), the score the generic ``base.free_energy`` (whose
  coupling at ``h = 0`` XLA keeps: two weight-gradient convolutions of zeros per update), the
  pooling blocks sampled by ``jax.random.categorical`` (the code before issue 27's speed work);
* ``xla, conv score``: the same with ``conv.free_energy`` as the score (``train.conv``'s now);
* ``xla NHWC, conv score``: the convolutions in NHWC / HWIO (XLA's CPU convolutions are NHWC);
* ``GEMM, conv score``: the fields as matrix products over patches (im2col, col2im), jdbn's now;
* ``GEMM, conv score, inverse CDF``: and the pooling sampler with one uniform per block, jdbn's
  now.

    python -m benchmarks.conv_variants [--n 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib

import numpy as np

from benchmarks import common as C


def _xla_fields(layout: str):
  import jax
  import jax.numpy as jnp
  from jdbn.models import conv

  nhwc = layout == "NHWC"
  dims = ("NHWC", "HWIO", "NHWC") if nhwc else ("NCHW", "OIHW", "NCHW")
  to_in = (lambda x: x.transpose(0, 2, 3, 1)) if nhwc else (lambda x: x)
  from_out = (lambda x: x.transpose(0, 3, 1, 2)) if nhwc else (lambda x: x)
  kern = (lambda w: w.transpose(2, 3, 1, 0)) if nhwc else (lambda w: w)

  def hidden(model, v):
    v = conv._flat(model, v, model.n_visible, "v")
    x, lead = conv._as_batch(model.visible.scaled(v, model.log_sigma(0)), model.image_shape)
    out = jax.lax.conv_general_dilated(to_in(x), kern(model.W), (1, 1), "VALID",
                                       dimension_numbers=dims)
    return from_out(out).reshape(lead + (model.n_hidden,))

  def visible(model, h):
    h = conv._flat(model, h, model.n_hidden, "h")
    x, lead = conv._as_batch(h, (model.n_filters,) + model.map_shape)
    r = model.filter_size
    w = jnp.flip(model.W, (-2, -1)).swapaxes(0, 1)
    out = jax.lax.conv_general_dilated(to_in(x), kern(w), (1, 1), [(r - 1, r - 1)] * 2,
                                       dimension_numbers=dims)
    return from_out(out).reshape(lead + (model.n_visible,))

  return hidden, visible


def _categorical(self, key, phi, bias, log_sigma=None):
  """The pooling sampler before: ``jax.random.categorical`` over each block's logits."""
  import jax
  logits = self._logits(phi, bias)
  idx = jax.random.categorical(key, logits, axis=-1)
  return self._ungroup(jax.nn.one_hot(idx, self.outcomes, dtype=logits.dtype)[..., 1:])


VARIANTS = {
    "xla": ("NCHW", "generic", "categorical"),
    "xla, conv score": ("NCHW", "conv", "categorical"),
    "xla NHWC, conv score": ("NHWC", "conv", "categorical"),
    "GEMM, conv score": ("GEMM", "conv", "categorical"),
    "GEMM, conv score, inverse CDF": ("GEMM", "conv", "inverse CDF"),
}


@contextlib.contextmanager
def variant(fields: str, sampler: str):
  """Patches ``jdbn.models.conv``'s fields and the pooling sampler while tracing."""
  from jdbn.models import conv
  from jdbn.units import pooling
  saved = conv.hidden_field, conv.visible_field, pooling.PoolingSoftmax.sample
  if fields != "GEMM":
    conv.hidden_field, conv.visible_field = _xla_fields(fields)
  if sampler == "categorical":
    pooling.PoolingSoftmax.sample = _categorical
  try:
    yield
  finally:
    conv.hidden_field, conv.visible_field, pooling.PoolingSoftmax.sample = saved


def epoch_fns(data: np.ndarray, batch: int = 100) -> dict:
  """``{variant: fn}``, each one compiled epoch (``metrics=False``) of its variant."""
  import jax
  import jax.numpy as jnp
  import optax
  from jdbn.models import conv
  from jdbn.train import contrastive
  from jdbn.train import conv as TC
  from jdbn.train import phases as PH

  x = jnp.asarray(data)
  model = conv.init(jax.random.key(0), (1, 28, 28), 24, 9, pool=2)
  fns = {}
  for name, (fields, score, sampler) in VARIANTS.items():
    ph = TC.phases(1)
    if score == "generic":
      ph = ph._replace(score=PH.summed_score((1,)))
    trainer = contrastive.trainer(optax.sgd(0.01, momentum=0.9), ph)
    state = trainer.init(jax.random.key(1), model)
    run = jax.jit(lambda k, s, d, t=trainer: t.epoch(k, s, d, batch, metrics=False,
                                                      check=False)[0])
    with variant(fields, sampler):
      compiled = run.lower(jax.random.key(2), state, x).compile()
    fns[name] = lambda c=compiled, s=state: c(jax.random.key(2), s, x)
  return fns


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--n", type=int, default=1000, help="random binary 28x28 images per epoch")
  p.add_argument("--repeats", type=int, default=5)
  args = p.parse_args(argv)
  data = (np.random.default_rng(0).random((args.n, 784)) < 0.13).astype(np.float32)
  steps = args.n // 100
  timings = C.interleaved(epoch_fns(data), repeats=args.repeats)
  ref = timings["xla"].median
  rows = [[name, f"{t.median / steps * 1e3:.1f} ms", f"{t.cpu_median / steps * 1e3:.1f} ms",
           f"{ref / t.median:.2f}x"] for name, t in timings.items()]
  print(C.markdown_table(["variant", "wall per update", "CPU per update", "speed-up vs xla"],
                         rows))
  print(f"\n{steps} updates of batch 100 per epoch, medians of {args.repeats} interleaved "
        f"repeats; load average {C.load_average()}")
  return timings


if __name__ == "__main__":
  main()
