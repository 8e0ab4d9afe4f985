"""DBN on MNIST: the numbers of Hinton, Osindero & Teh (2006) and Hinton & Salakhutdinov (2006).

Stages, each checkpointed under ``--out`` so that running the same command again resumes where it
stopped (finished stages are reloaded, an interrupted one continues from its last epoch):

1. ``pretrain``: greedy CD-1 pretraining of 784-500-500-2000, the top RBM joined by 10 label
   units (HOT 2006: 30 epochs per layer, mini-batches of 100).
2. ``gen_pretrained``: generative classification of the test set by the pretrained DBN (the label
   with the lowest free energy of the top RBM given the mean-field penultimate layer).
3. ``updown``: up-down fine-tuning (contrastive wake-sleep, HOT 2006 appendix B; the paper runs
   300 epochs with CD-3/6/10 in the top RBM; ``--updown-k-schedule`` sets k per epoch and
   ``--updown-lr-decay-start`` a linear decay of the rate to 0) and generative classification
   again (HOT 2006: 1.25% test error). With ``--updown-on-all``, stage ``updown_all`` then does
   what the paper did last: up-down on all 60,000 training images until the generative error on
   them is as low as it was on the training split alone at the end of ``updown`` (HOT 2006: "a
   further 59 epochs"), with the last epoch's k, at ``--updown-all-lr`` (default ``--updown-lr``),
   for at most ``--updown-all-max-epochs``; its test error is reported.
4. ``finetune``: back-propagation fine-tuning of the sigmoid network initialised from the
   pretrained DBN (``--finetune-from updown``: from the recognition weights and top RBM after
   up-down), SGD with momentum ``--finetune-momentum`` (0.9), early-stopped on the last 10,000
   training images (Hinton & Salakhutdinov 2006: 1.2%; Srivastava et al. 2014 with dropout:
   0.92%). With ``--finetune-on-all``, stage ``finetune_all`` then fine-tunes on all 60,000
   training images for the same epochs and reports the last epoch's test error; list
   ``finetune_all`` without ``finetune`` in ``--stages`` to run it alone once its epochs have been
   chosen on the validation split. ``--pretrain-on-all`` pretrains on all 60,000 images too, for
   a final model: it refuses the stages that select on the validation split, and its ``updown``
   runs the fixed ``--updown-epochs`` schedule on all 60,000 images (HOT 2006's final model was
   trained on all of them), recording the error on the last 10,000 of them instead of a
   validation error.
5. ``ablation``: the same network from random initialisation, trained identically.
   ``--ablation-lr LR`` also runs both arms (pretrained and random) with learning rate ``LR``,
   as stages ``finetune_lrLR`` and ``ablation_lrLR``, for a like-for-like comparison where the
   default rate does not suit the random network.
6. ``ll_bound``: Salakhutdinov & Murray's (2008) variational lower bound on the test
   log-likelihood (stochastically binarised test images), the top RBM's log Z from AIS
   (100 chains, their 14,501 temperatures), for the pretrained and the up-down DBN.
7. ``samples``: class-conditional samples (a PNG with a row per class) from the top RBM's Gibbs
   chains and a down pass, and the fine-tuned network's accuracy on them.

No augmentation; intensities in [0, 1] are used as probabilities (as Hinton's code does). Unless
an ``--*-on-all`` flag says otherwise, training uses the first 50,000 training images and the
last 10,000 are the validation set.

    python -m experiments.dbn_mnist --quick                 # CI smoke run, < 1 minute
    python -m experiments.dbn_mnist --out experiments/runs/dbn_mnist   # the full run (hours on CPU)

Speed (stage ``timing``): seconds per 50,000-example epoch of CD-1 for each layer, of up-down and
of back-propagation fine-tuning, compilation excluded, and effective GFLOP/s against the peak of
one large float32 matmul measured in the same process just before (the hardware limit here).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdbn import checkpoint, contrastive, data
from jdbn import dbn as D
from jdbn import finetune as F
from jdbn import updown as UD
from jdbn import viz
from jdbn.cli import PRNG_IMPLS

HERE = pathlib.Path(__file__).resolve().parent

FULL = dict(sizes=(500, 500, 2000), n_valid=10_000, n_train=None, n_test=None,
            pretrain_epochs=30, batch_size=100, pretrain_lr=0.1, weight_decay=2e-4,
            updown_epochs=20, updown_k=3, updown_lr=0.01, finetune_epochs=50, finetune_lr=0.1,
            patience=10, sample_steps=1000, samples_per_class=10, ablation_lr=None,
            ais_chains=100, ais_betas=None)
QUICK = dict(FULL, sizes=(100, 200), n_valid=1000, n_train=2000, n_test=2000,
             pretrain_epochs=1, updown_epochs=1, finetune_epochs=2, patience=None,
             sample_steps=100, samples_per_class=4, ais_chains=16, ais_betas=100)


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true", help="tiny CI smoke run (< 1 minute)")
  p.add_argument("--out", default=None, help="run folder for checkpoints and results "
                 "(default experiments/runs/dbn_mnist, or .../dbn_mnist_quick)")
  p.add_argument("--data-dir", default=None, help="MNIST IDX folder (default $JDBN_MNIST_DIR)")
  p.add_argument("--sizes", default=None, help="hidden layer sizes, e.g. 500,500,2000")
  for name in ("pretrain_epochs", "updown_epochs", "updown_k", "finetune_epochs", "batch_size",
               "sample_steps", "n_train", "patience"):
    p.add_argument("--" + name.replace("_", "-"), type=int, default=None)
  for name in ("pretrain_lr", "updown_lr", "finetune_lr", "weight_decay", "ablation_lr"):
    p.add_argument("--" + name.replace("_", "-"), type=float, default=None)
  p.add_argument("--updown-lr-decay-start", type=int, default=None,
                 help="up-down epoch after which the rate falls linearly to 0 at --updown-epochs "
                 "(default: constant; may be added when resuming)")
  p.add_argument("--updown-on-all", action="store_true",
                 help="stage updown_all: continue up-down on all 60,000 training images until "
                 "their generative error reaches the training split's (HOT 2006)")
  p.add_argument("--updown-all-lr", type=float, default=None,
                 help="learning rate of updown_all (default --updown-lr)")
  p.add_argument("--updown-all-max-epochs", type=int, default=100)
  p.add_argument("--updown-k-schedule", default=None,
                 help="Gibbs sweeps per up-down epoch, e.g. 3:100,6:200,10 (default: --updown-k)")
  p.add_argument("--reconstruction", choices=("sample", "mean"), default="sample",
                 help="pretraining CD-1 reconstructions: sampled, or the probabilities E[v | h] "
                 "as in Hinton's rbm.m (contrastive.cd(mean_visible=True))")
  p.add_argument("--updown-mean-labels", action="store_true",
                 help="up-down: the top chain's label units take their softmax probabilities, as "
                 "in HOT 2006 appendix B (dbn.updown(mean_labels=True))")
  p.add_argument("--updown-balanced", action="store_true",
                 help="up-down on class-balanced mini-batches, batch-size/10 images of every "
                 "digit in each, as HOT 2006 did (data.balanced_order)")
  p.add_argument("--updown-momentum", type=float, default=None,
                 help="up-down SGD momentum (default none; HOT 2006 used momentum and weight "
                 "decay, values not given)")
  p.add_argument("--updown-weight-decay", type=float, default=None,
                 help="up-down L2 weight cost on every W (default none)")
  p.add_argument("--valid-every", type=int, default=10,
                 help="record the generative validation error every this many up-down epochs")
  p.add_argument("--dropout", type=float, default=0.0, help="hidden dropout for fine-tuning")
  p.add_argument("--input-dropout", type=float, default=0.0, help="input dropout for fine-tuning")
  p.add_argument("--max-norm", type=float, default=None,
                 help="max-norm constraint on each unit's incoming weights during fine-tuning "
                 "(Srivastava et al. 2014; jdbn.finetune.max_norm)")
  p.add_argument("--finetune-schedule", choices=("constant", "cosine"), default="constant",
                 help="fine-tuning learning rate: constant, or cosine decay to 0 over "
                 "--finetune-epochs")
  p.add_argument("--finetune-momentum", type=float, default=0.9,
                 help="fine-tuning SGD momentum (default 0.9)")
  p.add_argument("--finetune-from", choices=("pretrained", "updown"), default="pretrained",
                 help="initialise the fine-tuned network from the pretrained DBN, or from the "
                 "recognition weights and top RBM after up-down (needs stage updown)")
  p.add_argument("--pretrain-on-all", action="store_true",
                 help="pretrain on all 60,000 training images (the top RBM sees the validation "
                 "labels too, so the stages that select on the validation split are refused): "
                 "for a final model with --finetune-on-all --stages pretrain,finetune_all, or "
                 "--stages pretrain,updown (up-down on all 60,000 images for its fixed schedule)")
  p.add_argument("--finetune-on-all", action="store_true",
                 help="stage finetune_all: fine-tune on all 60,000 training images for "
                 "--finetune-epochs (choose them on the validation split first) and report the "
                 "last epoch's test error")
  p.add_argument("--stages",
                 default="pretrain,gen_pretrained,updown,finetune,ablation,ll_bound,timing,"
                 "samples",
                 help="comma-separated stages to run")
  p.add_argument("--png", default=None, help="samples sheet (default experiments/dbn_mnist_samples"
                 ".png; quick runs write into --out)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--prng", default="threefry2x32",
                 choices=PRNG_IMPLS,
                 help="PRNG implementation of every key (philox4x32 is the fastest on CPUs)")
  p.add_argument("--no-progress", action="store_true")
  args = p.parse_args(argv)
  cfg = dict(QUICK if args.quick else FULL)
  if args.sizes:
    cfg["sizes"] = tuple(int(s) for s in args.sizes.split(","))
  for k in list(cfg):
    v = getattr(args, k, None)
    if v is not None:
      cfg[k] = v
  cfg["dropout"] = args.dropout
  cfg["input_dropout"] = args.input_dropout
  cfg["reconstruction"] = args.reconstruction
  cfg["updown_mean_labels"] = args.updown_mean_labels
  cfg["updown_balanced"] = args.updown_balanced
  if args.updown_momentum is not None and not 0 < args.updown_momentum < 1:
    p.error(f"--updown-momentum must be in (0, 1), got {args.updown_momentum}")
  if args.updown_weight_decay is not None and not args.updown_weight_decay > 0:
    p.error(f"--updown-weight-decay must be positive, got {args.updown_weight_decay}")
  cfg["updown_momentum"] = args.updown_momentum
  cfg["updown_weight_decay"] = args.updown_weight_decay
  if args.valid_every < 1:
    p.error(f"--valid-every must be positive, got {args.valid_every}")
  cfg["updown_k_schedule"] = args.updown_k_schedule
  if args.updown_k_schedule is not None:
    try:
      D.sweep_schedule(args.updown_k_schedule)
    except ValueError as err:
      p.error(f"--updown-k-schedule: {err}")
  cfg["updown_lr_decay_start"] = args.updown_lr_decay_start
  if args.updown_lr_decay_start is not None and not (
      0 <= args.updown_lr_decay_start < cfg["updown_epochs"]):
    p.error(f"--updown-lr-decay-start must be in [0, --updown-epochs={cfg['updown_epochs']})")
  cfg["finetune_schedule"] = args.finetune_schedule
  if not 0 <= args.finetune_momentum < 1:
    p.error(f"--finetune-momentum must be in [0, 1), got {args.finetune_momentum}")
  cfg["finetune_momentum"] = args.finetune_momentum
  cfg["finetune_from"] = args.finetune_from
  cfg["pretrain_on_all"] = args.pretrain_on_all
  selecting = {"finetune", "ablation"} & set(args.stages.split(","))
  if args.pretrain_on_all and selecting:
    p.error(f"--pretrain-on-all: stages {sorted(selecting)} select on the validation split, "
            "which pretraining on all images has seen; run pretrain,finetune_all (with "
            "--finetune-on-all), updown (on all images), gen_pretrained, ll_bound or samples")
  if args.pretrain_on_all and args.updown_on_all:
    p.error("--pretrain-on-all runs up-down on all images already; drop --updown-on-all")
  if args.finetune_from == "updown" and ("updown" not in args.stages.split(",")
                                          or cfg["updown_epochs"] < 1):
    p.error("--finetune-from updown needs stage updown in --stages and --updown-epochs > 0")
  if args.max_norm is not None and not args.max_norm > 0:
    p.error(f"--max-norm must be positive, got {args.max_norm}")
  cfg["max_norm"] = args.max_norm
  if args.updown_all_max_epochs < 1:
    p.error(f"--updown-all-max-epochs must be positive, got {args.updown_all_max_epochs}")
  if args.updown_all_lr is not None and not args.updown_all_lr > 0:
    p.error(f"--updown-all-lr must be positive, got {args.updown_all_lr}")
  cfg["seed"] = args.seed
  cfg["prng"] = args.prng
  out = pathlib.Path(args.out or HERE / "runs" / ("dbn_mnist_quick" if args.quick else
                                                   "dbn_mnist"))
  png = pathlib.Path(args.png) if args.png else (
      out / "samples.png" if args.quick else HERE / "dbn_mnist_samples.png")
  return args, cfg, out, png


# --------------------------------------------------------------------------- helpers


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
  """Best-of-``repeats`` GFLOP/s of one ``[n, n] @ [n, n]`` float32 matmul (the hardware limit)."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = np.inf
  for _ in range(repeats):
    t = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2 * n**3 / best / 1e9


def rbm_optimizer(lr: float, weight_decay: float, steps_per_epoch: int):
  """Hinton's recipe: SGD, momentum 0.5 for 5 epochs then 0.9, L2 weight cost on ``W`` only."""
  momentum = lambda step: jnp.where(step < 5 * steps_per_epoch, 0.5, 0.9)  # noqa: E731

  def weights_only(params):
    return jax.tree.map(lambda _: False, params).replace(W=True)

  return optax.chain(optax.add_decayed_weights(weight_decay, mask=weights_only),
                     optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=momentum))


class Results:
  """``results.json`` in the run folder: one entry per finished stage."""

  def __init__(self, path: pathlib.Path):
    self.path = path
    self.data = json.loads(path.read_text()) if path.exists() else {}

  def __contains__(self, stage):
    return stage in self.data

  def __getitem__(self, stage):
    return self.data[stage]

  def put(self, stage: str, value: dict):
    self.data[stage] = value
    checkpoint.write_json(self.path, self.data)
    print(f"[{stage}] " + ", ".join(f"{k}={_short(v)}" for k, v in value.items()
                                    if not isinstance(v, (list, dict))), flush=True)


def _short(v):
  return f"{v:.4g}" if isinstance(v, float) else v


_classify = jax.jit(lambda m, a: D.classify(m, a, batch_size=500))


def test_error_generative(model, x, y) -> float:
  return float(jnp.mean(_classify(model, x) != y))


def _like_dbn(cfg, n_in: int, n_classes: int = 10):
  """A template DBN (shapes and unit families) for loading the pretrained one."""
  sizes = [n_in, *cfg["sizes"]]
  key = jax.random.key(0)
  from jdbn import rbm as R
  from jdbn import units as U
  layers = [R.init(key, sizes[i], sizes[i + 1]) for i in range(len(sizes) - 2)]
  top_vis = U.Joint(((U.Bernoulli(), sizes[-2]), (U.Softmax(n_classes), n_classes)))
  layers.append(R.init(key, sizes[-2] + n_classes, sizes[-1], top_vis))
  return tuple(layers)


# --------------------------------------------------------------------------- stages

#: the name under which a run trained on all 60,000 images records its error on the last 10,000
#: (they are training images then, not a validation set); ``updown_curves.py`` reads it
TRAIN_MONITOR = "error_on_last_10000_training_images"

STAGES = ("pretrain", "gen_pretrained", "updown", "finetune", "finetune_all", "ablation",
          "ll_bound", "timing", "samples")


def stage_pretrain(cfg, out, results, key, train, valid, progress):
  path = out / "dbn_pretrained.npz"
  if path.exists() and "pretrain" in results:
    return checkpoint.load(path, like=_like_dbn(cfg, train.x.shape[1]))
  spe = train.x.shape[0] // cfg["batch_size"]
  trainer = contrastive.cd(rbm_optimizer(cfg["pretrain_lr"], cfg["weight_decay"], spe), k=1,
                           mean_visible=cfg.get("reconstruction") == "mean")
  t0 = time.perf_counter()
  dbn, history = D.pretrain(key, [train.x.shape[1], *cfg["sizes"]], train.x, trainer,
                            epochs=cfg["pretrain_epochs"], batch_size=cfg["batch_size"],
                            labels=train.y, validation=valid.x, validation_labels=valid.y,
                            checkpoint_dir=str(out / "pretrain"), progress=progress,
                            eval_size=1000)
  wall = time.perf_counter() - t0
  checkpoint.save(path, dbn, metadata={"sizes": list(cfg["sizes"])})
  layers = []
  for h in history:
    secs = [r["seconds"] for r in h.epochs]
    layers.append({"sizes": list(h.sizes), "epochs": len(h.epochs),
                   "seconds_per_epoch": float(np.median(secs)) if secs else None,
                   "final": {k: h.epochs[-1][k] for k in ("recon_error", "free_energy_gap",
                                                          "pseudo_likelihood")
                             if h.epochs and k in h.epochs[-1]}})
  # Effective throughput: a CD-1 update needs at least 5 [B, n_v] x [n_v, n_h] matmuls
  # (up, down, up again, two outer products).
  flops = sum(5 * 2 * train.x.shape[0] * a * b for a, b in (lyr["sizes"] for lyr in layers))
  secs = sum(lyr["seconds_per_epoch"] or 0 for lyr in layers)
  results.put("pretrain", {"wall_seconds_this_call": wall, "layers": layers,
                           "n_train": int(train.x.shape[0]),
                           "epoch_seconds_all_layers": secs,
                           "effective_gflops": flops / secs / 1e9 if secs else None})
  return dbn


def stage_gen_error(name, model, test, results):
  if name in results:
    return
  t0 = time.perf_counter()
  err = test_error_generative(model, test.x, test.y)
  results.put(name, {"test_error": err, "seconds": time.perf_counter() - t0})


def updown_k(cfg, epoch: int) -> int:
  """Gibbs sweeps in the top RBM in up-down epoch ``epoch`` (0-based): ``--updown-k``, or the
  ``--updown-k-schedule`` such as ``3:100,6:200,10`` (:func:`jdbn.dbn.sweep_schedule`)."""
  return D.sweep_schedule(cfg.get("updown_k_schedule") or cfg["updown_k"])(epoch)


def updown_lr(cfg, epoch: int) -> float:
  """The up-down learning rate of 0-based ``epoch``: ``--updown-lr``, and from epoch
  ``--updown-lr-decay-start`` on a linear fall towards 0 at the end of ``--updown-epochs``."""
  start = cfg.get("updown_lr_decay_start")
  if start is None:
    return cfg["updown_lr"]
  return float(optax.linear_schedule(cfg["updown_lr"], 0.0, cfg["updown_epochs"] - start,
                                     start)(epoch))


def updown_optimizer(cfg, lr: float) -> optax.GradientTransformation:
  """SGD with its rate a hyperparameter (set before each epoch); ``--updown-momentum`` and
  ``--updown-weight-decay`` (an L2 cost on every ``W``) when given (:func:`jdbn.updown.optimizer`).
  Without them the state is that of plain SGD, so runs saved before the options resume."""
  return UD.optimizer(lr, momentum=cfg.get("updown_momentum"),
                      weight_decay=cfg.get("updown_weight_decay"))


def updown_order(cfg):
  """The up-down epochs' batches: a random permutation, or class-balanced ones."""
  return "balanced" if cfg.get("updown_balanced") else None


def stage_updown(cfg, out, results, key, dbn, train, valid, progress, valid_every=10):
  """Up-down on ``train`` for ``--updown-epochs``, resumable from ``updown.npz``; every
  ``valid_every`` epochs the generative error on ``valid`` is recorded, as ``valid_error``, or
  with ``--pretrain-on-all`` (``valid`` is then part of ``train``) as
  ``error_on_last_10000_training_images``."""
  monitor = TRAIN_MONITOR if cfg.get("pretrain_on_all") else "valid_error"

  def evaluate(done, state):
    if done % valid_every and done != cfg["updown_epochs"]:
      return {}
    return {monitor: test_error_generative(state.params, valid.x, valid.y)}

  state, history = UD.fit(key, dbn, (train.x, train.y), epochs=cfg["updown_epochs"],
                          batch_size=cfg["batch_size"], opt=updown_optimizer(cfg, cfg["updown_lr"]),
                          lr_of=lambda e: updown_lr(cfg, e), k_of=lambda e: updown_k(cfg, e),
                          mean_labels=bool(cfg.get("updown_mean_labels")),
                          order=updown_order(cfg), path=out / "updown.npz", evaluate=evaluate,
                          progress="up-down" if progress else False)
  return state.params, history


def stage_updown_all(cfg, out, results, key, model, train, everything, test, progress, lr,
                     max_epochs):
  """HOT 2006's last phase: up-down on all training images until their generative error is as
  low as the training split's was after ``updown``; resumable from ``updown_all.npz``."""
  path = out / "updown_all.npz"
  k = updown_k(cfg, cfg["updown_epochs"] - 1)
  trainer = D.updown(updown_optimizer(cfg, lr), k=k,
                     mean_labels=bool(cfg.get("updown_mean_labels")))
  state = trainer.init(None, model)
  history, start = [], 0
  if path.exists():
    tree, meta = checkpoint.restore(path, like={"state": state})
    state, start, history = tree["state"], meta["epoch"], meta["history"]
  if "updown_all" in results and results["updown_all"]["epochs"] == start:
    return state.params
  target = test_error_generative(model, train.x, train.y)
  t0 = time.perf_counter()
  error = history[-1]["train_error_all"] if history else test_error_generative(
      model, everything.x, everything.y)
  e = start
  while error > target and e < max_epochs:
    t = time.perf_counter()
    state, info = trainer.epoch(jax.random.fold_in(key, e), state, (everything.x, everything.y),
                                cfg["batch_size"], order=updown_order(cfg))
    jax.block_until_ready(state)
    seconds = time.perf_counter() - t
    error = test_error_generative(state.params, everything.x, everything.y)
    e += 1
    row = {"epoch": e, "k": k, "lr": lr, "train_error_all": error, "seconds": seconds,
           **{n: float(v) for n, v in info._asdict().items()}}
    if not np.isfinite(row["loss"]):
      raise FloatingPointError(f"up-down on all images diverged in epoch {e}: {row}")
    history.append(row)
    checkpoint.save(path, {"state": state}, metadata={"epoch": e, "history": history})
    if progress:
      print(f"[updown_all] epoch {e}: error on all {everything.x.shape[0]} training images "
            f"{error:.4f} (target {target:.4f})", flush=True)
  secs = [r["seconds"] for r in history]
  results.put("updown_all", {
      "stop_rule": "generative error on all training images <= the training split's after "
                   "updown (HOT 2006)",
      "target_train_error": target, "train_error_all": error, "epochs": e,
      "finished": bool(error <= target), "k": k, "lr": lr,
      "n_train": int(everything.x.shape[0]),
      "test_error": test_error_generative(state.params, test.x, test.y),
      "seconds_per_epoch": float(np.median(secs)) if secs else None,
      "wall_seconds_this_call": time.perf_counter() - t0})
  return state.params


def stage_finetune(name, cfg, out, results, key, module, variables, train, valid, test,
                   progress, lr, final=False):
  """Fine-tunes ``module``; reports the test error of the variables with the lowest validation
  error, or with ``final`` (training on all 60,000 images, where ``valid`` is part of ``train``
  and so selects nothing) of the variables after the last epoch."""
  path = out / f"{name}.npz"
  if cfg.get("finetune_schedule", "constant") == "cosine":
    lr = optax.cosine_decay_schedule(lr, cfg["finetune_epochs"] * (
        train.x.shape[0] // cfg["batch_size"]))
  optimizer = optax.sgd(lr, momentum=cfg.get("finetune_momentum", 0.9))
  if cfg.get("max_norm"):
    optimizer = optax.chain(optimizer, F.max_norm(cfg["max_norm"]))
  state = F.init_state(variables, optimizer)
  if path.exists():
    state = checkpoint.load(path, like={"state": state})["state"]
    if name in results and int(state.epoch) >= cfg["finetune_epochs"]:
      return state

  def save(epoch, st, row):
    prev = checkpoint.read_metadata(path)["history"] if path.exists() else []
    checkpoint.save(path, {"state": st}, metadata={"epoch": epoch, "history": prev + [row]})

  t0 = time.perf_counter()
  state, _ = F.train(key, module, variables, (train.x, train.y), (valid.x, valid.y), optimizer,
                     epochs=cfg["finetune_epochs"], batch_size=cfg["batch_size"],
                     patience=cfg["patience"], state=state,
                     progress=name if progress else False, callback=save)
  history = checkpoint.read_metadata(path)["history"] if path.exists() else []
  secs = [r["seconds"] for r in history]
  n_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables))
  flops = 3 * 2 * train.x.shape[0] * n_params  # forward + two backward matmuls per weight
  if final:
    chosen = {"test_error": F.error_rate(module, state.variables, test.x, test.y),
              "n_train": int(train.x.shape[0]), "reported": "variables after the last epoch",
              TRAIN_MONITOR: history[-1]["valid_error"]}
  else:
    chosen = {"test_error": F.error_rate(module, state.best_variables, test.x, test.y),
              "valid_error": float(state.best_error), "best_epoch": int(state.best_epoch)}
  results.put(name, {
      "lr": lr if isinstance(lr, float) else float(lr(0)),
      "schedule": cfg.get("finetune_schedule", "constant"), "max_norm": cfg.get("max_norm"),
      "momentum": cfg.get("finetune_momentum", 0.9),
      "init": cfg.get("finetune_from", "pretrained") if name.startswith("finetune") else "random",
      **chosen,
      "epochs_run": int(state.epoch), "seconds_per_epoch": float(np.median(secs)) if secs else None,
      "effective_gflops": flops / np.median(secs) / 1e9 if secs else None,
      "wall_seconds_this_call": time.perf_counter() - t0})
  return state


def stage_samples(cfg, key, model, png, results, classifier=None):
  n = cfg["samples_per_class"]
  labels = jnp.repeat(jnp.arange(10), n)
  t0 = time.perf_counter()
  gen = jax.jit(D.generate, static_argnames=("n_steps", "n_samples"))
  images = gen(key, model, labels, n_steps=cfg["sample_steps"])
  images.block_until_ready()
  seconds = time.perf_counter() - t0
  viz.save_rows(png, np.asarray(images).reshape(10, n, -1), (28, 28), zoom=2)
  entry = {"png": str(png), "n_steps": cfg["sample_steps"], "seconds": seconds}
  if classifier is not None:
    module, variables = classifier
    pred = jnp.argmax(F.predict_logits(module, variables, images), -1)
    entry["finetuned_net_accuracy_on_samples"] = float(jnp.mean(pred == labels))
  results.put("samples", entry)


def stage_ll_bound(name, cfg, key, model, train, test, results):
  """Salakhutdinov & Murray's (2008) lower bound on log p(v): AIS for the top RBM's log Z."""
  from jdbn import likelihood
  if name in results:
    return
  k_bin, k_ais, k_bound = jax.random.split(key, 3)
  n_lab = D.n_labels(model)
  sub = slice(0, 10_000)
  top_data = D.penultimate(model, train.x[sub])
  if n_lab:
    top_data = jnp.concatenate([top_data, jax.nn.one_hot(train.y[sub], n_lab)], -1)
  _, _, top = D._parts(model)  # pylint: disable=protected-access
  betas = likelihood.default_betas() if cfg["ais_betas"] is None else np.linspace(
      0, 1, cfg["ais_betas"], dtype=np.float32)
  t0 = time.perf_counter()
  res = likelihood.ais(k_ais, top, n_chains=cfg["ais_chains"], betas=betas, data=top_data)
  jax.block_until_ready(res)
  ais_seconds = time.perf_counter() - t0
  xb = data.binarize_stochastic(k_bin, test.x)  # log p(v) needs binary vectors
  bound = jax.jit(lambda k, m, v, z: D.log_likelihood_bound(k, m, v, z, n_samples=10))
  vals = jnp.concatenate([bound(jax.random.fold_in(k_bound, i), model, xb[i:i + 1000], res.log_z)
                          for i in range(0, xb.shape[0], 1000)])
  mean = float(jnp.mean(vals))
  results.put(name, {
      "log_z": float(res.log_z), "log_z_lower": float(res.log_z_lower),
      "log_z_upper": float(res.log_z_upper), "ais_chains": cfg["ais_chains"],
      "ais_betas": int(len(betas)), "ais_seconds": ais_seconds,
      "bound_nats": mean, "bound_interval": [mean + float(res.log_z - res.log_z_upper),
                                             mean + float(res.log_z - res.log_z_lower)],
      "n_test": int(xb.shape[0]), "seconds": time.perf_counter() - t0})


def stage_timing(cfg, key, dbn, train, results, n: int = 10_000, repeats: int = 3):
  """Seconds per 50,000-example epoch of each training loop, timed on ``n`` examples after a
  warm-up call (compilation excluded), against the matmul peak measured just before.

  Effective GFLOP/s count the matrix products each update needs at least: 5 per RBM layer for
  CD-1 (up, down, up again, two outer products), 3 per Dense layer for back-propagation.
  """
  peak = matmul_peak_gflops()
  x, y = train.x[:n], train.y[:n]
  bs = cfg["batch_size"]
  scale = 50_000 / n

  def timed(run):
    run(0)  # compile
    times = []
    for r in range(repeats):
      t = time.perf_counter()
      jax.block_until_ready(run(r + 1))
      times.append(time.perf_counter() - t)
    return float(np.median(times)) * scale

  rows = {}
  trainer = contrastive.cd(optax.sgd(0.01, momentum=0.9), k=1)
  layer_x = x
  for i, p in enumerate(dbn):
    data_i = layer_x if i < len(dbn) - 1 else jnp.concatenate(
        [layer_x, jax.nn.one_hot(y, D.n_labels(dbn))], -1)
    st = trainer.init(key, p)
    sec = timed(lambda r, st=st, d=data_i: trainer.epoch(jax.random.fold_in(key, r), st, d, bs))
    flops = 5 * 2 * 50_000 * p.n_visible * p.n_hidden
    rows[f"cd1_layer{i}_{p.n_visible}x{p.n_hidden}"] = {
        "seconds_per_epoch": sec, "gflops": flops / sec / 1e9}
    if i < len(dbn) - 1:
      layer_x = D.propagate(None, p, layer_x)
  ud = D.updown(optax.sgd(0.001), k=cfg["updown_k"])
  st = ud.init(None, dbn)
  rows["updown_epoch"] = {"seconds_per_epoch": timed(
      lambda r: ud.epoch(jax.random.fold_in(key, r), st, (x, y), bs))}
  module, variables = F.from_dbn(dbn)
  opt = optax.sgd(0.01, momentum=0.9)
  epoch = F.make_epoch(module, opt, bs)
  fst = F.init_state(variables, opt)
  sec = timed(lambda r: epoch(jax.random.fold_in(key, r), fst, x, y))
  n_w = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables))
  rows["finetune_epoch"] = {"seconds_per_epoch": sec, "gflops": 3 * 2 * 50_000 * n_w / sec / 1e9}
  results.put("timing", {"matmul_peak_gflops": peak, "timed_examples": n, "repeats": repeats,
                         **rows})


# --------------------------------------------------------------------------- main


def main(argv=None):
  args, cfg, out, png = parse_args(argv)
  stages = set(args.stages.split(","))
  if stages - set(STAGES):
    sys.exit(f"unknown stages {sorted(stages - set(STAGES))}; choose from {', '.join(STAGES)}")
  out.mkdir(parents=True, exist_ok=True)
  settings_path = out / "settings.json"
  if settings_path.exists():
    old = json.loads(settings_path.read_text())
    added = {"prng": "threefry2x32", "input_dropout": 0.0, "finetune_schedule": "constant",
             "updown_k_schedule": None, "updown_lr_decay_start": None, "max_norm": None,
             "reconstruction": "sample", "updown_mean_labels": False, "updown_balanced": False,
             "updown_momentum": None, "updown_weight_decay": None, "finetune_momentum": 0.9,
             "finetune_from": "pretrained", "pretrain_on_all": False}
    diff = {k: (old.get(k, added.get(k)), v) for k, v in json.loads(json.dumps(cfg)).items()
            if old.get(k, added.get(k)) != v
            and not k.endswith("epochs")
            and k not in ("ablation_lr", "ais_chains", "ais_betas", "updown_k_schedule",
                          "updown_lr_decay_start")}
    if diff:
      sys.exit(f"{out} holds a run with other settings {diff}; use another --out")
  checkpoint.write_json(settings_path, cfg)
  progress = not args.no_progress
  results = Results(out / "results.json")
  t_start = time.perf_counter()
  info = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores visible, "
                     f"{jax.devices()[0].platform}", "jax": jax.__version__,
          "matmul_peak_gflops": matmul_peak_gflops(), "config": cfg}
  print(json.dumps(info))

  full = data.load_mnist("train", args.data_dir)
  test = data.load_mnist("test", args.data_dir)
  train, valid = data.split_validation(full, cfg["n_valid"])
  if cfg["n_train"]:
    train = data.Dataset(train.x[:cfg["n_train"]], train.y[:cfg["n_train"]], train.image_shape)
  if cfg["n_test"]:
    test = data.Dataset(test.x[:cfg["n_test"]], test.y[:cfg["n_test"]], test.image_shape)
  to_jax = lambda ds: data.Dataset(jnp.asarray(ds.x), jnp.asarray(ds.y), ds.image_shape)  # noqa
  train, valid, test = to_jax(train), to_jax(valid), to_jax(test)
  k_pre, k_ud, k_ft, k_ab, k_abinit, k_out, k_samples = jax.random.split(
      jax.random.key(cfg["seed"], impl=cfg["prng"]), 7)

  everything = data.Dataset(jnp.concatenate([train.x, valid.x]),
                            jnp.concatenate([train.y, valid.y]), train.image_shape)
  dbn = stage_pretrain(cfg, out, results, k_pre, everything if cfg["pretrain_on_all"] else train,
                       valid, progress)
  if "gen_pretrained" in stages:
    stage_gen_error("gen_pretrained", dbn, test, results)
  generator = dbn
  if "updown" in stages and cfg["updown_epochs"] > 0:
    t0 = time.perf_counter()
    ud_train = everything if cfg["pretrain_on_all"] else train
    untied, history = stage_updown(cfg, out, results, k_ud, dbn, ud_train, valid, progress,
                                   args.valid_every)
    generator = untied
    secs = [r["seconds"] for r in history]
    done = len(history) >= cfg["updown_epochs"]
    if "updown" not in results or results["updown"]["epochs"] != len(history):
      results.put("updown", {"epochs": len(history), "finished": done,
                             "n_train": int(ud_train.x.shape[0]),
                             "seconds_per_epoch": float(np.median(secs)) if secs else None,
                             "final": history[-1] if history else None,
                             "wall_seconds_this_call": time.perf_counter() - t0})
      results.data.pop("gen_updown", None)
    stage_gen_error("gen_updown", untied, test, results)
    if args.updown_on_all and done:
      lr = cfg["updown_lr"] if args.updown_all_lr is None else args.updown_all_lr
      generator = stage_updown_all(cfg, out, results, jax.random.fold_in(k_ud, 10**6), untied,
                                   train, everything, test, progress, lr,
                                   args.updown_all_max_epochs)
  init = untied if cfg["finetune_from"] == "updown" else dbn  # parse_args checked the stage
  classifier = None
  lrs = [cfg["finetune_lr"]]
  if cfg["ablation_lr"] and cfg["ablation_lr"] != cfg["finetune_lr"]:
    lrs.append(cfg["ablation_lr"])
  for lr in lrs:
    suffix = "" if lr == cfg["finetune_lr"] else f"_lr{lr:g}"
    if "finetune" in stages:
      module, variables = F.from_dbn(init, key=k_out, dropout_rate=cfg["dropout"],
                                     input_dropout_rate=cfg["input_dropout"])
      st = stage_finetune("finetune" + suffix, cfg, out, results, k_ft, module, variables, train,
                          valid, test, progress, lr)
      if not suffix:
        classifier = (module, st.best_variables)
    if "ablation" in stages:
      module, variables = F.init_random(k_abinit, D.layer_sizes(dbn),
                                        dropout_rate=cfg["dropout"],
                                        input_dropout_rate=cfg["input_dropout"])
      stage_finetune("ablation" + suffix, cfg, out, results, k_ft, module, variables, train,
                     valid, test, progress, lr)
  if ("finetune" in stages or "finetune_all" in stages) and args.finetune_on_all:
    module, variables = F.from_dbn(init, key=k_out, dropout_rate=cfg["dropout"],
                                   input_dropout_rate=cfg["input_dropout"])
    stage_finetune("finetune_all", cfg, out, results, k_ft, module, variables, everything, valid,
                   test, progress, cfg["finetune_lr"], final=True)
  if "ll_bound" in stages:
    stage_ll_bound("ll_bound_pretrained", cfg, jax.random.fold_in(k_samples, 1), dbn, train,
                   test, results)
    if generator is not dbn and not args.quick:
      stage_ll_bound("ll_bound_updown", cfg, jax.random.fold_in(k_samples, 1), generator, train,
                     test, results)
  if "timing" in stages:
    stage_timing(cfg, jax.random.fold_in(k_samples, 2), dbn, train, results,
                 n=min(10_000, train.x.shape[0]), repeats=1 if args.quick else 3)
  if "samples" in stages:
    stage_samples(cfg, k_samples, generator, png, results, classifier)
  results.put("run", {**info, "wall_seconds_this_call": time.perf_counter() - t_start})
  return results.data


if __name__ == "__main__":
  main()
