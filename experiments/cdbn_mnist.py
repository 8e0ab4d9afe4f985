"""A two-layer convolutional DBN on MNIST and a linear classifier on its features (Lee, Grosse,
Ranganath & Ng 2009, section 4.2 and table 3: 0.82% test error with 60,000 labels, 2.62% with
1,000).

1. **Greedy training** of two convolutional RBMs with probabilistic max-pooling
   (:mod:`jdbn.models.conv`), each by CD-1 with Lee et al.'s sparsity penalty
   (:func:`jdbn.train.conv.cd`) through the library's loop (:func:`jdbn.train.loop.fit`): layer 1
   on the first ``n_unsup`` training images (intensities as probabilities), layer 2 on layer 1's
   pooling units ``P(p = 1 | v)`` (:func:`jdbn.models.cdbn.up`). Each trained layer is saved in
   the run folder and reloaded when the same command runs again.
2. **Features**: the pooling units' probabilities of both layers, joined
   (:func:`jdbn.models.cdbn.features`), for all 60,000 training and 10,000 test images.
3. **Linear classifier** (:func:`jdbn.train.cdbn.fit_linear`, Optax Adam with an L2 cost on the
   weights) with 60,000 labels and with 1,000 labels (``label_subsets`` random class-balanced
   subsets, one seed each): softmax regression or the one-vs-rest L2-loss SVM (the paper used a
   linear SVM). The loss (``losses``) and the L2 cost (``l2_grid``) are chosen together with the
   run's own labels only: on the last 10,000 of the 60,000 (then refitted on all of them), and on
   a 200-image split of each 1,000. The same classifier on raw pixels is the baseline.
4. **Pictures**: layer 1's filters, and layer 2's drawn in pixel space
   (:func:`jdbn.models.cdbn.pixel_filters`: sums of layer 1's filters weighted by layer 2's).

A full run writes ``experiments/results/cdbn_mnist.json`` and ``.md`` and the two filter PNGs;
``--quick`` trains a tiny CDBN on a few hundred images in seconds and writes nothing there::

    python -m experiments.cdbn_mnist --quick
    python -m experiments.cdbn_mnist --out experiments/runs/cdbn_mnist
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import record
from jdbn import checkpoint, data, viz
from jdbn.models import base
from jdbn.models import cdbn as CD
from jdbn.models import conv as C
from jdbn.train import cdbn as TD
from jdbn.train import conv as TC
from jdbn.train import loop

HERE = pathlib.Path(__file__).resolve().parent

#: One dict per layer: filters, filter size, pooling, initial hidden bias, CD-1 with SGD. The rate
#: and the sparsity cost were chosen among (3e-3, 1), (1e-3, 1), (1e-3, 300), (3e-4, 300) by one
#: epoch of layer 1 on 2,000 images and a linear classifier on its features of 5,000, its error
#: measured on training images 50,000-52,000 (15%, 12%, 70% and 21% for the others; no test image
#: seen). The gradient of a filter sums over its map's positions, the penalty acts on their mean.
LAYERS = (dict(n_filters=24, filter_size=11, pool=2, hidden_bias=-1.0, lr=1e-3, momentum=0.9,
               weight_decay=1e-3, sparsity_target=0.02, sparsity_cost=300.0, epochs=3),
          dict(n_filters=40, filter_size=6, pool=2, hidden_bias=-1.0, lr=1e-3, momentum=0.9,
               weight_decay=1e-3, sparsity_target=0.02, sparsity_cost=300.0, epochs=2))
FULL = dict(layers=LAYERS, n_unsup=30_000, batch_size=50, n_train=60_000, n_test=10_000,
            n_valid=10_000, labels_small=1000, label_subsets=5,
            losses=("softmax", "squared_hinge"), l2_grid=(0.0, 1e-5, 1e-4, 1e-3, 1e-2),
            clf_lr=1e-3, clf_epochs=50, clf_batch=100,
            clf_epochs_small=300, clf_batch_small=50, chunk=2000, seed=0)
#: ``--quick``: tiny layers on a few hundred images, one epoch each (a smoke run, not a result)
QUICK = dict(FULL, layers=(dict(LAYERS[0], n_filters=4, epochs=1),
                           dict(LAYERS[1], n_filters=3, epochs=1)),
             n_unsup=200, n_train=600, n_test=200, n_valid=200, labels_small=100,
             label_subsets=2, l2_grid=(1e-3,), clf_epochs=3, clf_epochs_small=10,
             chunk=200)


# --------------------------------------------------------------------------- training


def _optimizer(layer: dict) -> optax.GradientTransformation:
  """SGD with momentum, weight decay on the filters only."""
  return optax.chain(optax.add_decayed_weights(layer["weight_decay"], mask=base.weights_only),
                     optax.sgd(layer["lr"], momentum=layer["momentum"]))


def train_layer(key, model: C.ConvRBM, x: jax.Array, layer: dict, batch_size: int,
                progress) -> tuple[C.ConvRBM, list]:
  """CD-1 with sparsity for ``layer["epochs"]`` epochs by :func:`jdbn.train.loop.fit` (epoch
  ``e`` keyed ``fold_in(key, e)``): ``(trained model, epoch rows)``."""
  trainer = TC.cd(_optimizer(layer), k=1, sparsity_target=layer["sparsity_target"],
                  sparsity_cost=layer["sparsity_cost"])
  k_init, k_epochs = jax.random.split(key)
  sample = x[:min(1000, x.shape[0])]

  def epoch_fn(e, state):
    state, info = trainer.epoch(jax.random.fold_in(k_epochs, e), state, x, batch_size)
    return state, {k: float(v) for k, v in info._asdict().items()}

  def activity(_, state):
    return {"mean_activation": float(jnp.mean(TC.filter_activation(state.params, sample)))}

  state, rows = loop.fit(trainer.init(k_init, model), epoch_fn, epochs=layer["epochs"],
                         evaluate=activity, progress=progress,
                         postfix=("recon_error", "mean_activation"))
  return state.params, rows


def greedy(key, cfg: dict, x: jax.Array, out: pathlib.Path, progress) -> tuple[CD.CDBN, list]:
  """Both layers, each loaded from ``out/layer<i>.npz`` if there, else trained and saved there."""
  layers, history, shape = [], [], (1, 28, 28)
  for i, (layer, k) in enumerate(zip(cfg["layers"], jax.random.split(key, len(cfg["layers"])))):
    path = out / f"layer{i}.npz"
    settings = json.loads(json.dumps({**layer, "n_unsup": cfg["n_unsup"], "below": i,
                                      "batch_size": cfg["batch_size"], "seed": cfg["seed"]}))
    if path.is_file() and checkpoint.read_metadata(path).get("settings") == settings:
      model, meta = checkpoint.restore(path)
      rows = meta["history"]
      print(f"layer {i} from {path}")
    else:
      k_init, k_train = jax.random.split(k)
      model = C.init(k_init, shape, layer["n_filters"], layer["filter_size"], pool=layer["pool"],
                     hidden_bias=layer["hidden_bias"],
                     data=np.asarray(x[:1000]).reshape((-1,) + shape))
      t0 = time.perf_counter()
      model, rows = train_layer(k_train, model, x, layer, cfg["batch_size"],
                                progress and f"layer {i}")
      rows[-1]["wall_seconds"] = time.perf_counter() - t0
      checkpoint.save(path, model, metadata={"settings": settings, "history": rows})
    layers.append(model)
    history.append(rows)
    x = _chunked(jax.jit(CD.up), model, x, cfg["chunk"])
    shape = CD.pooled_shape(model)
  return CD.CDBN(tuple(layers)), history


def _chunked(fn, model, x, chunk: int) -> jax.Array:
  return jnp.concatenate([fn(model, x[i:i + chunk]) for i in range(0, x.shape[0], chunk)])


# --------------------------------------------------------------------------- classification


def _fit(key, x, y, loss: str, l2: float, cfg: dict, small: bool) -> TD.Linear:
  opt = optax.chain(optax.add_decayed_weights(l2, mask=TD.Linear(True, False)),
                    optax.adam(cfg["clf_lr"]))
  return TD.fit_linear(key, x, y, 10, opt,
                       epochs=cfg["clf_epochs_small" if small else "clf_epochs"],
                       batch_size=min(x.shape[0], cfg["clf_batch_small" if small
                                                      else "clf_batch"]), loss=loss)


def classify(key, x, y, x_test, y_test, n_valid: int, cfg: dict, small: bool) -> dict:
  """The (loss, L2 cost) of ``losses`` x ``l2_grid`` with the lowest error on the last
  ``n_valid`` of ``x`` (the first in the grid on a tie), then the classifier refitted on all of
  ``x`` with it: its test error and the validation errors."""
  k_sel, k_fit = jax.random.split(key)
  fit_x, fit_y, val_x, val_y = x[:-n_valid], y[:-n_valid], x[-n_valid:], y[-n_valid:]
  valid = {(loss, l2): TD.error_rate(_fit(k_sel, fit_x, fit_y, loss, l2, cfg, small), val_x, val_y)
           for loss in cfg["losses"] for l2 in cfg["l2_grid"]}
  best = min(valid, key=valid.get)
  final = _fit(k_fit, x, y, *best, cfg, small)
  return {"test_error": TD.error_rate(final, x_test, y_test), "loss": best[0], "l2": best[1],
          "valid_error": {f"{loss} l2={l2:g}": v for (loss, l2), v in valid.items()},
          "train_error": TD.error_rate(final, x, y)}


def balanced_subset(key, y: np.ndarray, n: int) -> np.ndarray:
  """``n`` indices of ``y``, ``n / 10`` of each class, in a random order."""
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
  idx = np.concatenate([rng.choice(np.flatnonzero(y == c), n // 10, replace=False)
                        for c in range(10)])
  return rng.permutation(idx)


def evaluate(key, feats, y, feats_test, y_test, cfg: dict) -> dict:
  """Test errors with all labels and with ``label_subsets`` balanced subsets of
  ``labels_small``; the 1,000-label runs select L2 on a fifth of their own labels."""
  k_all, k_small = jax.random.split(key)
  out = {"all": classify(k_all, feats, y, feats_test, y_test, cfg["n_valid"], cfg, False)}
  small = []
  for s in range(cfg["label_subsets"]):
    k = jax.random.fold_in(k_small, s)
    idx = balanced_subset(k, np.asarray(y), cfg["labels_small"])
    res = classify(k, feats[idx], y[idx], feats_test, y_test, cfg["labels_small"] // 5, cfg, True)
    small.append({"subset_seed": s, **res})
  errors = [r["test_error"] for r in small]
  out["small"] = {"runs": small, "mean": float(np.mean(errors)),
                  "std": float(np.std(errors, ddof=1)) if len(errors) > 1 else 0.0}
  return out


# --------------------------------------------------------------------------- pictures


def pictures(model: CD.CDBN, folder: pathlib.Path, prefix: str = "cdbn_mnist") -> dict:
  w1 = CD.pixel_filters(model, 0)
  r1 = w1.shape[-1]
  l1 = viz.save_grid(folder / f"{prefix}_filters1.png", w1.reshape(len(w1), -1), (r1, r1),
                     zoom=4, n_cols=8)
  w2 = CD.pixel_filters(model, 1)
  l2 = viz.save_grid(folder / f"{prefix}_filters2.png", w2.reshape(len(w2), -1), w2.shape[1:],
                     zoom=3, n_cols=10)
  return {"filters1": l1.name, "filters2": l2.name}


# --------------------------------------------------------------------------- main


def short_machine(info: dict) -> str:
  """``AMD EPYC, 2 cores, jax 0.10.2 (cpu)`` from :func:`benchmarks.common.machine_info`."""
  return (f"{info.get('cpu', '?')}, {info.get('usable_cpus', '?')} cores, jax "
          f"{info.get('jax', '?')} ({info.get('jax_backend', '?').split()[0]})")


def markdown(res: dict) -> str:
  cfg, ev, px = res["config"], res["cdbn"], res["pixels"]
  l1, l2 = cfg["layers"]
  small = ev["small"]
  return "\n".join([
      "## Convolutional DBN on MNIST: linear classifier on the pooled features", "",
      f"Machine: {res['machine_short']}; {res['total_seconds']:.0f} s in all. Seeds and settings: "
      "`experiments/results/cdbn_mnist.json`.", "",
      f"Layers: {l1['n_filters']} filters of {l1['filter_size']}x{l1['filter_size']}, pooling "
      f"{l1['pool']}; {l2['n_filters']} of {l2['filter_size']}x{l2['filter_size']}, pooling "
      f"{l2['pool']}; CD-1 with sparsity target {l1['sparsity_target']}, "
      f"{l1['epochs']} + {l2['epochs']} epochs on the first {cfg['n_unsup']:,} training images; "
      f"{res['n_features']} features. Classifier chosen on the last {cfg['n_valid']:,} training "
      f"images among {', '.join(cfg.get('losses', ['softmax']))} x L2 "
      f"{', '.join(f'{c:g}' for c in cfg['l2_grid'])}: {ev['all'].get('loss', 'softmax')}, L2 "
      f"{ev['all']['l2']:g}.", "",
      "| labels | CDBN features | raw pixels | paper (Lee et al. 2009) |", "|---|---|---|---|",
      f"| 60,000 | {100 * ev['all']['test_error']:.2f}% | {100 * px['all']['test_error']:.2f}% "
      "| 0.82% |",
      f"| 1,000 (mean of {len(small['runs'])} balanced subsets) | {100 * small['mean']:.2f}% "
      f"(sd {100 * small['std']:.2f}) | {100 * px['small']['mean']:.2f}% | 2.62% |", "",
      f"Filters: `experiments/results/{res['figures']['filters1']}` (layer 1), "
      f"`experiments/results/{res['figures']['filters2']}` (layer 2 in pixel space)."])


def parser() -> argparse.ArgumentParser:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--quick", action="store_true", help="tiny CDBN, seconds; writes nothing")
  ap.add_argument("--data-dir", help="MNIST IDX folder (default $JDBN_MNIST_DIR)")
  ap.add_argument("--out", help="run folder for the layers (default experiments/runs/cdbn_mnist)")
  ap.add_argument("--n-unsup", type=int, help="training images for the unsupervised layers")
  ap.add_argument("--epochs", help="epochs per layer, e.g. 2,2")
  ap.add_argument("--lr", help="SGD rate per layer, e.g. 1e-3,1e-3")
  ap.add_argument("--sparsity-cost", type=float, help="the sparsity penalty's cost, every layer")
  ap.add_argument("--losses", help="classifier losses to choose from on the validation split, "
                  f"comma-separated among {','.join(TD.LOSSES)} (default both)")
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--no-progress", action="store_true")
  return ap


def config(args) -> dict:
  cfg = dict(QUICK if args.quick else FULL, seed=args.seed)
  if args.n_unsup:
    cfg["n_unsup"] = args.n_unsup
  if args.epochs:
    epochs = [int(e) for e in args.epochs.split(",")]
    cfg["layers"] = tuple(dict(layer, epochs=e) for layer, e in zip(cfg["layers"], epochs))
  if args.lr:
    rates = [float(r) for r in args.lr.split(",")]
    cfg["layers"] = tuple(dict(layer, lr=r) for layer, r in zip(cfg["layers"], rates))
  if args.losses:
    losses = tuple(args.losses.split(","))
    unknown = sorted(set(losses) - set(TD.LOSSES))
    if unknown:
      raise SystemExit(f"--losses: unknown {unknown}; choose among {sorted(TD.LOSSES)}")
    cfg["losses"] = losses
  if args.sparsity_cost is not None:
    cfg["layers"] = tuple(dict(layer, sparsity_cost=args.sparsity_cost) for layer in cfg["layers"])
  return cfg


def main(argv=None) -> dict:
  args = parser().parse_args(argv)
  cfg = config(args)
  t0 = time.perf_counter()
  train = data.load("mnist", "train", args.data_dir)
  test = data.load("mnist", "test", args.data_dir)
  x, y = jnp.asarray(train.x[:cfg["n_train"]]), jnp.asarray(train.y[:cfg["n_train"]])
  x_test, y_test = jnp.asarray(test.x[:cfg["n_test"]]), jnp.asarray(test.y[:cfg["n_test"]])
  k_layers, k_clf = jax.random.split(jax.random.key(cfg["seed"]))
  with tempfile.TemporaryDirectory() as scratch:
    out = pathlib.Path(scratch if args.quick else args.out or HERE / "runs" / "cdbn_mnist")
    out.mkdir(parents=True, exist_ok=True)
    model, history = greedy(k_layers, cfg, x[:cfg["n_unsup"]], out, not args.no_progress)
    t_feat = time.perf_counter()
    feats = _chunked(jax.jit(CD.features), model, x, cfg["chunk"])
    feats_test = _chunked(jax.jit(CD.features), model, x_test, cfg["chunk"])
    feature_seconds = time.perf_counter() - t_feat
    res = {"config": cfg, "layer_history": history, "n_features": int(feats.shape[1]),
           "feature_seconds": feature_seconds}
    res["cdbn"] = evaluate(k_clf, feats, y, feats_test, y_test, cfg)
    res["pixels"] = evaluate(k_clf, x, y, x_test, y_test, cfg)
    res["figures"] = pictures(model, out if args.quick else record.RESULTS)
  from benchmarks import common  # noqa: PLC0415 (only for the machine line)
  res["machine"] = common.machine_info()
  res["machine_short"] = short_machine(res["machine"])
  res["total_seconds"] = time.perf_counter() - t0
  if not args.quick:
    record.write("cdbn_mnist", res, markdown(res))
  print(markdown(res))
  return res


if __name__ == "__main__":
  main()
