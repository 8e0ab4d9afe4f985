"""A Gaussian-visible convolutional RBM with probabilistic max-pooling on natural images: the
Gabor-like first-layer filters of Lee, Grosse, Ranganath & Ng (2009), figure 2 (left).

The images are scikit-learn's two bundled photographs (``sklearn.datasets.load_sample_images``,
offline; scikit-learn is in the ``bench`` extras): greyscale, halved, whitened by Olshausen &
Field's (1997) filter ``|f| exp(-(|f| / f0)^4)`` in the Fourier domain (the 1/f spectrum of
natural images flattened, the highest frequencies rolled off), scaled to unit variance, and cut
into random ``patch x patch`` patches. The conv RBM (:mod:`jdbn.models.conv`, Gaussian visible
units with sigma 1) is trained by CD-1 with Lee et al.'s sparsity penalty
(:func:`jdbn.train.conv.cd`) through the library's loop (:func:`jdbn.train.loop.fit`); its
filters go to a PNG grid. A full run writes ``experiments/results/crbm_natural.json``, ``.md`` and
``crbm_natural_filters.png``; ``--quick`` trains a tiny model in seconds and writes nothing::

    python -m experiments.crbm_natural [--quick]
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import record
from experiments.cdbn_mnist import short_machine
from jdbn import units as U
from jdbn import viz
from jdbn.datasets import photos
from jdbn.models import base
from jdbn.models import conv as C
from jdbn.train import conv as TC
from jdbn.train import loop

#: The penalty acts on each filter's mean activation while the CD gradient of a hidden bias sums
#: over the 256 positions of its map, hence a cost of that order for the target to be reached.
FULL = dict(seed=0, downsample=2, f0_fraction=0.8, patch=25, n_patches=20_000, n_filters=24,
            filter_size=10, pool=2, hidden_bias=-2.0, weight_scale=0.01, lr=3e-4, momentum=0.9,
            weight_decay=1e-3, sparsity_target=0.01, sparsity_cost=1000.0, epochs=10,
            batch_size=20)
#: ``--quick``: a few filters on a few hundred patches, one epoch (a smoke run, not a result)
QUICK = dict(FULL, n_patches=200, n_filters=4, epochs=1, patch=13, filter_size=6)


def prepared(key, c: dict) -> np.ndarray:
  """The whitened photographs' patches of config ``c``: ``[n_patches, 1, patch, patch]``."""
  return photos.patches(key, photos.whitened(c["downsample"], c["f0_fraction"]), c["n_patches"],
                        c["patch"])


def train(key, c: dict, x: np.ndarray, progress) -> tuple[C.ConvRBM, list]:
  """The Gaussian conv RBM of config ``c`` on patches ``x [n, 1, p, p]``: ``(model, rows)``."""
  k_init, k_state, k_epochs = jax.random.split(key, 3)
  model = C.init(k_init, (1, c["patch"], c["patch"]), c["n_filters"], c["filter_size"],
                 pool=c["pool"], visible=U.Gaussian(), weight_scale=c["weight_scale"],
                 hidden_bias=c["hidden_bias"], data=x)
  opt = optax.chain(optax.add_decayed_weights(c["weight_decay"], mask=base.weights_only),
                    optax.sgd(c["lr"], momentum=c["momentum"]))
  trainer = TC.cd(opt, k=1, sparsity_target=c["sparsity_target"],
                  sparsity_cost=c["sparsity_cost"])
  v = C.check_images(model, x)

  def epoch_fn(e, state):
    state, info = trainer.epoch(jax.random.fold_in(k_epochs, e), state, v, c["batch_size"])
    return state, {k: float(val) for k, val in info._asdict().items()}

  def activity(_, state):
    return {"mean_activation": float(jnp.mean(TC.filter_activation(state.params, v[:500])))}

  state, rows = loop.fit(trainer.init(k_state, model), epoch_fn, epochs=c["epochs"],
                         evaluate=activity, progress=progress,
                         postfix=("recon_error", "mean_activation"))
  return state.params, rows


def orientation_selectivity(W: np.ndarray) -> np.ndarray:
  """How oriented each filter is: the largest share of its Fourier power (DC removed) in one of
  eight orientation bins of 22.5 degrees, ``[K, 1, r, r] -> [K]`` (1/8 for an isotropic filter,
  near 1 for an edge or a Gabor)."""
  w = np.asarray(W, np.float64)[:, 0]
  r = w.shape[-1]
  power = np.abs(np.fft.fft2(w - w.mean((1, 2), keepdims=True), s=(4 * r, 4 * r)))**2
  fy, fx = np.meshgrid(np.fft.fftfreq(4 * r), np.fft.fftfreq(4 * r), indexing="ij")
  width = np.pi / 8  # bins centred on 0, 22.5, ... degrees
  bins = (np.floor(((np.arctan2(fy, fx) + width / 2) % np.pi) / width) % 8).astype(int)
  share = np.stack([power[:, bins == b].sum(-1) for b in range(8)], -1)
  return share.max(-1) / share.sum(-1)


def markdown(res: dict) -> str:
  c = res["config"]
  sel = res["orientation_selectivity"]
  return "\n".join([
      "## Gaussian conv RBM on natural images: first-layer filters", "",
      f"Machine: {res['machine_short']}; {res['total_seconds']:.0f} s in all. Settings and seed: "
      "`experiments/results/crbm_natural.json`.", "",
      f"scikit-learn's two sample photographs, greyscale, halved, 1/f-whitened; "
      f"{c['n_patches']:,} patches of {c['patch']}x{c['patch']}; {c['n_filters']} filters of "
      f"{c['filter_size']}x{c['filter_size']}, pooling {c['pool']}, CD-1, sparsity target "
      f"{c['sparsity_target']}, {c['epochs']} epochs.", "",
      f"Orientation selectivity (largest share of a filter's power in one of 8 orientation bins; "
      f"1/8 isotropic): median {np.median(sel):.2f}, {np.mean(np.asarray(sel) > 0.4):.0%} of "
      f"filters above 0.4.", "",
      f"Filters: `experiments/results/{res['figure']}`."])


def parser() -> argparse.ArgumentParser:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--quick", action="store_true", help="tiny model, seconds; writes nothing")
  ap.add_argument("--epochs", type=int, help="epochs (default 10)")
  ap.add_argument("--n-patches", type=int, help="training patches (default 20,000)")
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--no-progress", action="store_true")
  return ap


def main(argv=None) -> dict:
  args = parser().parse_args(argv)
  c = dict(QUICK if args.quick else FULL, seed=args.seed)
  if args.epochs:
    c["epochs"] = args.epochs
  if args.n_patches:
    c["n_patches"] = args.n_patches
  t0 = time.perf_counter()
  k_data, k_train = jax.random.split(jax.random.key(c["seed"]))
  x = prepared(k_data, c)
  model, rows = train(k_train, c, x, not args.no_progress)
  with tempfile.TemporaryDirectory() as scratch:
    folder = pathlib.Path(scratch) if args.quick else record.RESULTS
    r = c["filter_size"]
    path = viz.save_grid(folder / "crbm_natural_filters.png",
                         np.asarray(model.W).reshape(c["n_filters"], r * r), (r, r), zoom=4,
                         n_cols=8)
    res = {"config": c, "history": rows, "figure": path.name,
           "orientation_selectivity": orientation_selectivity(model.W).round(4).tolist()}
  from benchmarks import common  # noqa: PLC0415 (only for the machine line)
  res["machine"] = common.machine_info()
  res["machine_short"] = short_machine(res["machine"])
  res["total_seconds"] = time.perf_counter() - t0
  if not args.quick:
    record.write("crbm_natural", res, markdown(res))
  print(markdown(res))
  return res


if __name__ == "__main__":
  main()
