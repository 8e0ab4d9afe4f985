"""The ``jdbn train crbm`` and ``jdbn train cdbn`` subcommands: a convolutional RBM with
probabilistic max-pooling, and a greedy stack of them (Lee, Grosse, Ranganath & Ng 2009).

::

    jdbn train crbm --dataset {digits,mnist,photos} [--filters 24 --filter-size 11 --pool 2]
                    --out DIR [...]
    jdbn train cdbn --dataset {digits,mnist,photos} [--filters 24,40 --filter-sizes 11,6
                    --pools 2,2] --out DIR [...]

``digits`` and ``mnist`` are binary-valued images for Bernoulli visible units; ``photos`` are
scikit-learn's two sample photographs, whitened, as patches for Gaussian visible units
(:mod:`jdbn.datasets.photos`). Each layer trains by CD-k or PCD with Lee et al.'s sparsity penalty
(:mod:`jdbn.train.conv`) through :func:`jdbn.train.loop.fit`, checkpointed after every epoch
(``checkpoint.npz`` for ``crbm``, ``layer1.npz``, ``layer2.npz`` ... for ``cdbn``), so a rerun
with the same ``--out`` resumes; ``filters.png`` (``filters2.png`` ...: upper layers drawn in pixel
space) and ``samples.png`` (Gibbs samples of the bottom layer) go beside them.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

from jdbn.cli.common import (CLIError, add_seed, load_dataset, make_key, non_negative_float,
                             positive_float, positive_int, settings_diff, sizes, writable_folder)

__all__ = ["PRESETS", "add_train_crbm", "add_train_cdbn", "cmd_train_conv", "layer_shapes"]

#: the defaults that depend on the data set; ``mnist`` is the first layer of
#: ``experiments/cdbn_mnist.py``, ``photos`` that of ``experiments/crbm_natural.py``
PRESETS = {
    "digits": {"filters": (8, 8), "filter_sizes": (3, 2), "pools": (2, 2), "lr": 0.01,
               "epochs": 10, "batch_size": 20, "sparsity_target": 0.05, "sparsity_cost": 1.0,
               "n_train": 1500},
    "mnist": {"filters": (24, 40), "filter_sizes": (11, 6), "pools": (2, 2), "lr": 1e-3,
              "epochs": 2, "batch_size": 50, "sparsity_target": 0.02, "sparsity_cost": 300.0,
              "n_train": 10_000},
    "photos": {"filters": (24, 40), "filter_sizes": (10, 5), "pools": (2, 2), "lr": 3e-4,
               "epochs": 10, "batch_size": 20, "sparsity_target": 0.01, "sparsity_cost": 1000.0,
               "n_train": 5000},
}
_KEYS = ("filters", "filter_sizes", "pools")
# Settings that define a layer's run: a rerun with the same --out must repeat them to resume.
_RUN_SETTINGS = ("dataset", "method", "k", "n_chains", "lr", "momentum", "weight_decay",
                 "sparsity_target", "sparsity_cost", "hidden_bias", "batch_size", "n_train",
                 "patch", "seed", "prng")


def _preset_help(name: str, layer: slice) -> str:
  def show(v):
    v = v[layer] if isinstance(v, tuple) else v
    return ",".join(map(str, v)) if isinstance(v, tuple) else f"{v:g}"
  return "default: " + ", ".join(f"{show(p[name])} for {k}" for k, p in PRESETS.items())


def _add_common(p, layer: slice) -> None:
  p.add_argument("--dataset", choices=("digits", "mnist", "photos"), default="digits",
                 help="photos: scikit-learn's sample photographs, whitened (needs scikit-learn)")
  p.add_argument("--data-dir", help="folder of the MNIST IDX files (default: $JDBN_MNIST_DIR)")
  p.add_argument("--n-train", type=positive_int, default=None,
                 help="training images (patches for photos) (" + _preset_help("n_train", layer)
                 + ")")
  p.add_argument("--patch", type=positive_int, default=25, help="photos: patch side in pixels")
  p.add_argument("--method", choices=("cd", "pcd"), default="cd")
  p.add_argument("-k", type=positive_int, default=1, help="Gibbs sweeps per update")
  p.add_argument("--n-chains", type=positive_int, default=100, help="pcd: persistent chains")
  p.add_argument("--lr", type=positive_float, default=None,
                 help="SGD rate; the gradient sums over the map positions (" +
                 _preset_help("lr", layer) + ")")
  p.add_argument("--momentum", type=non_negative_float, default=0.9)
  p.add_argument("--weight-decay", type=non_negative_float, default=1e-3,
                 help="on the filters only")
  p.add_argument("--sparsity-target", type=positive_float, default=None,
                 help="target mean activation of the detection units, in (0, 1) (" +
                 _preset_help("sparsity_target", layer) + ")")
  p.add_argument("--sparsity-cost", type=non_negative_float, default=None,
                 help="weight of the sparsity penalty on each filter's mean activation; it moves "
                 "the hidden biases only, whose CD gradient sums over the map's positions (" +
                 _preset_help("sparsity_cost", layer) + ")")
  p.add_argument("--hidden-bias", type=float, default=-1.0, help="initial bias of every filter")
  p.add_argument("--epochs", type=positive_int, default=None,
                 help="per layer (" + _preset_help("epochs", layer) + ")")
  p.add_argument("--batch-size", type=positive_int, default=None,
                 help=_preset_help("batch_size", layer))
  p.add_argument("--sample-steps", type=positive_int, default=200,
                 help="Gibbs sweeps for samples.png")
  add_seed(p)
  p.add_argument("--out", required=True, help="run folder")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  p.set_defaults(func=cmd_train_conv)


def add_train_crbm(sub) -> None:
  """``jdbn train crbm``: one convolutional RBM."""
  p = sub.add_parser(
      "crbm", help="train a convolutional RBM with probabilistic max-pooling",
      description="Train a convolutional RBM with probabilistic max-pooling (Lee et al. 2009) "
      "by CD-k or PCD with a sparsity penalty; writes checkpoint.npz, metrics.json, filters.png "
      "and samples.png into --out. Rerun with the same --out (and a larger --epochs) to resume.")
  p.add_argument("--filters", type=positive_int, default=None,
                 help="number of filters (" + _preset_help("filters", slice(0, 1)) + ")")
  p.add_argument("--filter-size", type=positive_int, default=None, dest="filter_sizes", metavar="R",
                 help="filter side r (" + _preset_help("filter_sizes", slice(0, 1)) + ")")
  p.add_argument("--pool", type=positive_int, default=None, dest="pools", metavar="C",
                 help="pooling block side c; image side - r + 1 must be a multiple of it (" +
                 _preset_help("pools", slice(0, 1)) + ")")
  _add_common(p, slice(0, 1))
  p.set_defaults(layers=1)


def add_train_cdbn(sub) -> None:
  """``jdbn train cdbn``: a greedy stack of convolutional RBMs."""
  p = sub.add_parser(
      "cdbn", help="train a convolutional DBN: a greedy stack of pooled convolutional RBMs",
      description="Train a convolutional DBN (Lee et al. 2009) greedily: each layer a "
      "convolutional RBM with probabilistic max-pooling on the pooling units of the layer below. "
      "Writes layer1.npz, layer2.npz ..., metrics.json, filters.png (layer 1), filters2.png ... "
      "(upper layers in pixel space) and samples.png into --out; rerun to resume.")
  p.add_argument("--filters", type=sizes, default=None,
                 help="filters per layer (" + _preset_help("filters", slice(None)) + ")")
  p.add_argument("--filter-sizes", type=sizes, default=None,
                 help="filter side per layer (" + _preset_help("filter_sizes", slice(None)) + ")")
  p.add_argument("--pools", type=sizes, default=None,
                 help="pooling block side per layer (" + _preset_help("pools", slice(None)) + ")")
  _add_common(p, slice(None))
  p.set_defaults(layers=None)


# --------------------------------------------------------------------------- checks


def _image_shape(args) -> tuple[int, int, int]:
  return {"digits": (1, 8, 8), "mnist": (1, 28, 28)}.get(args.dataset,
                                                         (1, args.patch, args.patch))


def layer_shapes(image_shape, filters, filter_sizes, pools) -> list[tuple[int, int, int]]:
  """The image shape ``(C, H, W)`` of every layer; :class:`CLIError` naming the option to change
  when a filter is larger than its input or a layer's maps do not tile into pooling blocks."""
  shapes, (ch, h, w) = [], image_shape
  for i, (k, r, c) in enumerate(zip(filters, filter_sizes, pools)):
    what = "the images" if i == 0 else f"layer {i}'s pooling maps"
    if r > min(h, w):
      raise CLIError(f"layer {i + 1}: filters of {r} x {r} are larger than {what} "
                     f"({h} x {w}); choose a filter size of at most {min(h, w)}")
    mh, mw = h - r + 1, w - r + 1
    if mh % c or mw % c:
      fits = [s for s in range(1, min(h, w) + 1) if (h - s + 1) % c == 0 and (w - s + 1) % c == 0]
      near = sorted(fits, key=lambda s: abs(s - r))[:2]
      hint = (f"filter sizes such as {' or '.join(map(str, sorted(near)))}" if near
              else "a smaller pooling size")
      raise CLIError(f"layer {i + 1}: {r} x {r} filters on {what} ({h} x {w}) give {mh} x {mw} "
                     f"detection maps, which do not tile into {c} x {c} pooling blocks; use "
                     f"{hint}, or another pooling size")
    shapes.append((ch, h, w))
    ch, h, w = k, mh // c, mw // c
  return shapes


def _check(args) -> None:
  """Fills in the data set's presets; rejects settings that do not go together, before any
  data is loaded."""
  preset = PRESETS[args.dataset]
  for name in ("lr", "epochs", "batch_size", "sparsity_target", "sparsity_cost", "n_train"):
    if getattr(args, name) is None:
      setattr(args, name, preset[name])
  n = args.layers or len(args.filters or args.filter_sizes or args.pools or preset["filters"])
  for name in _KEYS:
    value = getattr(args, name)
    value = preset[name][:n] if value is None else value
    value = (value,) if isinstance(value, int) else tuple(value)
    if len(value) != n:
      raise CLIError(f"--{name.replace('_', '-')} gives {len(value)} layers, the other options "
                     f"{n}; give one value per layer")
    setattr(args, name, value)
  if args.momentum >= 1:
    raise CLIError(f"--momentum must be in [0, 1), got {args.momentum}")
  if not args.sparsity_target < 1:
    raise CLIError(f"--sparsity-target must be in (0, 1), got {args.sparsity_target}")
  if args.batch_size > args.n_train:
    raise CLIError(f"--batch-size {args.batch_size} exceeds --n-train {args.n_train}")
  args.shapes = layer_shapes(_image_shape(args), args.filters, args.filter_sizes, args.pools)
  if args.dataset == "photos":
    import importlib.util
    if importlib.util.find_spec("sklearn") is None:
      raise CLIError("--dataset photos: the natural images are scikit-learn's sample "
                     "photographs: pip install scikit-learn (jdbn's bench extras)")


def _settings(args, i: int) -> dict:
  return {**{k: getattr(args, k) for k in _RUN_SETTINGS}, "layer": i + 1,
          "layers": [[args.filters[j], args.filter_sizes[j], args.pools[j]] for j in range(i + 1)]}


def _ckpt_name(args, i: int) -> str:
  return "checkpoint.npz" if args.command_model == "crbm" else f"layer{i + 1}.npz"


def _check_resume(args, out: pathlib.Path) -> None:
  """Refuses a run folder whose checkpoints were written with other settings, before any work."""
  from jdbn import checkpoint
  found = False
  for i in range(len(args.filters)):
    path = out / _ckpt_name(args, i)
    if not path.is_file():
      continue
    try:
      old = checkpoint.read_metadata(path).get("user", {}).get("settings", {})
    except ValueError as err:
      raise CLIError(f"--out {args.out!r} holds an unreadable checkpoint: {err}") from err
    diff = settings_diff(old, _settings(args, i))
    if diff:
      raise CLIError(f"--out {args.out!r} holds a run with other settings ({'; '.join(diff)}); "
                     f"use a new --out, or the same settings to resume (only --epochs and "
                     f"--sample-steps may change)")
    found = True
  if found:
    print(f"resuming the run in {out}")


# --------------------------------------------------------------------------- data and training


def _load(key, args) -> np.ndarray:
  """The training images ``[n, 1, H, W]``: digits or MNIST intensities in [0, 1], or whitened
  photograph patches."""
  if args.dataset == "photos":
    from jdbn.datasets import photos
    try:
      return photos.patches(key, photos.whitened(), args.n_train, args.patch)
    except ImportError as err:
      raise CLIError(f"--dataset photos: {err}") from err
  ds = load_dataset(args.dataset, "train", args.data_dir)
  x = np.asarray(ds.x[:args.n_train], np.float32)
  if len(x) < args.batch_size:
    raise CLIError(f"--batch-size {args.batch_size} exceeds the {len(x)} training images")
  return x.reshape((-1,) + _image_shape(args))


def _trainer(args):
  import optax
  from jdbn.models.base import weights_only
  from jdbn.train import conv as TC
  opt = optax.chain(optax.add_decayed_weights(args.weight_decay, mask=weights_only),
                    optax.sgd(args.lr, momentum=args.momentum or None))
  sparsity = dict(sparsity_target=args.sparsity_target, sparsity_cost=args.sparsity_cost)
  if args.method == "pcd":
    return TC.pcd(opt, k=args.k, n_chains=args.n_chains, **sparsity)
  return TC.cd(opt, k=args.k, **sparsity)


def _train_layer(key, args, i: int, x, out: pathlib.Path, user: dict):
  """Layer ``i`` on ``x [n, C*H*W]`` through :func:`jdbn.train.loop.fit`, resumed from and saved
  to its checkpoint after every epoch: ``(model, history)``."""
  import jax
  import jax.numpy as jnp
  from jdbn import checkpoint
  from jdbn import units as U
  from jdbn.models import conv as C
  from jdbn.train import conv as TC
  from jdbn.train import loop
  k_init, k_state, k_epochs = jax.random.split(key, 3)
  shape = args.shapes[i]
  visible = U.Gaussian() if i == 0 and args.dataset == "photos" else U.Bernoulli()
  model = C.init(k_init, shape, args.filters[i], args.filter_sizes[i], pool=args.pools[i],
                 visible=visible, hidden_bias=args.hidden_bias,
                 data=np.asarray(x[:1000]).reshape((-1,) + shape))
  trainer = _trainer(args)
  state, start, history = trainer.init(k_state, model), 0, []
  path = out / _ckpt_name(args, i)
  if path.is_file():
    tree, meta = checkpoint.restore(path, like={"state": state})
    state, start, history = tree["state"], int(meta["epoch"]), list(meta["history"])
  sample = x[:500]

  def epoch_fn(e, s):
    s, info = trainer.epoch(jax.random.fold_in(k_epochs, e), s, x, args.batch_size)
    return s, {k: float(v) for k, v in info._asdict().items()}

  def evaluate(_, s):
    return {"mean_activation": float(jnp.mean(TC.filter_activation(s.params, sample)))}

  def save(done, s, rows):
    meta = {"epoch": done, "epochs": args.epochs, "history": rows,
            "user": {**user, "layer": i + 1, "settings": _settings(args, i)}}
    checkpoint.save(path, {"state": s}, metadata=meta)
    if args.no_progress:
      print(f"layer {i + 1} epoch {done}: recon_error {rows[-1]['recon_error']:.4f}, mean "
            f"activation {rows[-1]['mean_activation']:.4f}", flush=True)

  bar = False if args.no_progress else f"layer {i + 1}"
  state, history = loop.fit(state, epoch_fn, epochs=args.epochs, start=start, history=history,
                            evaluate=evaluate, save=save, checkpoint=path, progress=bar,
                            postfix=("recon_error", "mean_activation"),
                            advice="Try a lower --lr")
  return state.params, history


def _samples(key, model, n: int, steps: int) -> np.ndarray:
  """Visible means after ``steps`` Gibbs sweeps of the bottom layer from its base rates:
  ``[n, H * W]`` of the first channel."""
  import jax
  from jdbn.models import base
  from jdbn.samplers import gibbs as G
  k0, k1 = jax.random.split(key)

  @jax.jit
  def run(model):
    state, _ = G.chain(k1, model, G.init_random(k0, model, n), steps)
    return base.conditional_mean(model, state, 0)

  c, h, w = model.image_shape
  return np.asarray(run(model)).reshape(n, c, h * w)[:, 0]


def _pictures(key, args, model, out: pathlib.Path) -> dict:
  from jdbn import viz
  from jdbn.models import cdbn as CD
  paths = {}
  for i in range(len(model.layers)):
    w = CD.pixel_filters(model, i)
    name = "filters.png" if i == 0 else f"filters{i + 1}.png"
    paths[name[:-4]] = viz.save_grid(out / name, w.reshape(len(w), -1), w.shape[1:],
                                     zoom=max(1, round(56 / w.shape[-1])), n_cols=8)
  bottom = model.layers[0]
  v = _samples(key, bottom, 64, args.sample_steps)
  shape = bottom.image_shape[1:]
  paths["samples"] = viz.save_grid(out / "samples.png", v, shape, n_cols=8,
                                   scale="each" if args.dataset == "photos" else None,
                                   zoom=max(1, round(56 / max(shape))))
  return paths


def cmd_train_conv(args) -> int:
  import jax
  import jax.numpy as jnp
  from jdbn import checkpoint
  from jdbn.models import cdbn as CD
  args.command_model = "crbm" if args.layers == 1 else "cdbn"
  _check(args)
  out = writable_folder(args.out)
  _check_resume(args, out)
  k_data, k_train, k_sample = jax.random.split(make_key(args), 3)
  x = _load(k_data, args)
  user = {"command": f"train {args.command_model}", "dataset": args.dataset,
          "image_shape": list(_image_shape(args))}
  t0 = time.perf_counter()
  v = jnp.asarray(x.reshape(len(x), -1))
  layers, histories = [], []
  for i, k in enumerate(jax.random.split(k_train, len(args.filters))):
    model, history = _train_layer(k, args, i, v, out, user)
    layers.append(model)
    histories.append(history)
    if i + 1 < len(args.filters):
      up = jax.jit(CD.up)
      v = jnp.concatenate([up(model, v[j:j + 1000]) for j in range(0, len(v), 1000)])
  model = CD.CDBN(tuple(layers))
  checkpoint.write_json(out / "metrics.json", {"user": user, "history": histories,
                                               "settings": _settings(args, len(layers) - 1)})
  paths = _pictures(k_sample, args, model, out)
  last = histories[-1][-1] if histories[-1] else {}
  print(f"{len(layers)} layer(s), {args.epochs} epochs each ({time.perf_counter() - t0:.1f} s "
        f"in this run); top layer: recon_error {last.get('recon_error', float('nan')):.4f}, "
        f"mean activation {last.get('mean_activation', float('nan')):.4f}")
  files = [(_ckpt_name(args, i)[:-4], out / _ckpt_name(args, i)) for i in range(len(layers))]
  for name, path in [*files, ("metrics", out / "metrics.json"), *paths.items()]:
    print(f"  {name:<11} {path}")
  return 0

