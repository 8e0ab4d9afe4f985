"""DBN on MNIST: the numbers of Hinton, Osindero & Teh (2006) and Hinton & Salakhutdinov (2006).

Stages (``--stages``), each checkpointed under ``--out``, so that the same command again resumes
where it stopped (finished stages are reloaded, an interrupted one continues from its last epoch):

1. ``pretrain``: greedy CD-1 pretraining of 784-500-500-2000, the top RBM joined by 10 label
   units (HOT 2006: 30 epochs per layer, batches of 100) by :func:`jdbn.train.pretrain.pretrain`.
2. ``gen_pretrained``: generative classification of the test set by the pretrained DBN.
3. ``updown``: up-down fine-tuning (HOT 2006 appendix B: 300 epochs, CD-3/6/10 in the top RBM;
   ``--updown-k-schedule``, ``--updown-lr-decay-start``) by :func:`jdbn.train.updown.fit`, then
   generative classification again (HOT 2006: 1.25%). ``--updown-on-all`` adds ``updown_all``,
   the paper's last phase: up-down on all 60,000 images until their error is the training
   split's.
4. ``finetune``: back-propagation fine-tuning of the sigmoid network made from the DBN
   (``--finetune-from``), early-stopped on the last 10,000 training images, by
   :func:`jdbn.train.finetune.fit` (Hinton & Salakhutdinov 2006: 1.2%; Srivastava et al. 2014
   with dropout: 0.92%). ``--finetune-on-all`` adds ``finetune_all``: the same epochs on all
   60,000 images, the last epoch's network reported; ``--pretrain-on-all`` pretrains on them too.
5. ``ablation``: the same network from random initialisation (``--ablation-lr``: both arms at
   another rate too).
6. ``ll_bound``: Salakhutdinov & Murray's (2008) lower bound on the test log-likelihood, the top
   RBM's log Z from AIS (:mod:`jdbn.likelihood.dbn`).
7. ``timing``: seconds per 50,000-image epoch of each loop against one large matmul's GFLOP/s.
8. ``samples``: a row of generated digits per class, and the fine-tuned network's accuracy on
   them.

No augmentation; intensities in [0, 1] are probabilities (as Hinton's code has them); unless an
``--*-on-all`` flag says otherwise, training uses the first 50,000 training images and the last
10,000 validate. ``results.json`` in the run folder holds every stage's figures; a full run also
merges them into ``experiments/results/dbn_mnist.json`` (and ``.md``) under the folder's name.
The paper rows and their commands are in ``experiments/configs.py``.

    python -m experiments.dbn_mnist --quick                 # CI smoke run, < 1 minute
    python -m experiments.dbn_mnist --out experiments/runs/dbn_mnist   # the full run (hours on CPU)
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import common as C
from experiments import record
from jdbn import checkpoint, contrastive, data, viz
from jdbn import dbn as D
from jdbn.cli import PRNG_IMPLS
from jdbn.cli.common import positive_float, positive_int, probability
from jdbn.cli.dbn_run import generative_error
from jdbn.likelihood import default_betas
from jdbn.likelihood import dbn as LD
from jdbn.train import finetune as F
from jdbn.train import hinton_sgd
from jdbn.train import updown as UD

HERE = pathlib.Path(__file__).resolve().parent

FULL = dict(sizes=(500, 500, 2000), n_valid=10_000, n_train=None, n_test=None,
            pretrain_epochs=30, batch_size=100, pretrain_lr=0.1, weight_decay=2e-4,
            updown_epochs=20, updown_k=3, updown_lr=0.01, finetune_epochs=50, finetune_lr=0.1,
            patience=10, sample_steps=1000, samples_per_class=10, ablation_lr=None,
            ais_chains=100, ais_betas=None)
QUICK = dict(FULL, sizes=(100, 200), n_valid=1000, n_train=2000, n_test=2000,
             pretrain_epochs=1, updown_epochs=1, finetune_epochs=2, patience=None,
             sample_steps=100, samples_per_class=4, ais_chains=16, ais_betas=100)
#: settings recorded besides FULL's, in this order; a resumed run must repeat them
OPTIONS = ("dropout", "input_dropout", "reconstruction", "updown_mean_labels", "updown_balanced",
           "updown_momentum", "updown_weight_decay", "updown_k_schedule", "updown_lr_decay_start",
           "finetune_schedule", "finetune_momentum", "finetune_from", "pretrain_on_all",
           "max_norm", "seed", "prng")
#: what runs saved before a setting existed did, for resuming them
ADDED = {"prng": "threefry2x32", "input_dropout": 0.0, "finetune_schedule": "constant",
         "updown_k_schedule": None, "updown_lr_decay_start": None, "max_norm": None,
         "reconstruction": "sample", "updown_mean_labels": False, "updown_balanced": False,
         "updown_momentum": None, "updown_weight_decay": None, "finetune_momentum": 0.9,
         "finetune_from": "pretrained", "pretrain_on_all": False}
#: settings a resumed run may change
CHANGEABLE = ("ablation_lr", "ais_chains", "ais_betas", "updown_k_schedule",
              "updown_lr_decay_start")
STAGES = ("pretrain", "gen_pretrained", "updown", "finetune", "finetune_all", "ablation",
          "ll_bound", "timing", "samples")
#: the name under which a run trained on all 60,000 images records its error on the last 10,000
#: (they are training images then, not a validation set); ``updown_curves.py`` reads it
TRAIN_MONITOR = "error_on_last_10000_training_images"


def _sweeps(text: str) -> str:
  try:
    D.sweep_schedule(text)
  except ValueError as err:
    raise argparse.ArgumentTypeError(str(err)) from None
  return text


def _open_unit(text: str) -> float:
  value = probability(text)
  if value == 0:
    raise argparse.ArgumentTypeError("must be in (0, 1), got 0")
  return value


def parse_args(argv=None):
  """``(args, cfg, stages, out, png)``: ``cfg`` holds the run's settings (FULL's or QUICK's with
  the options given); settings that do not go together exit before anything is written."""
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  add = p.add_argument
  add("--quick", action="store_true", help="tiny CI smoke run (< 1 minute)")
  add("--out", help="run folder (default experiments/runs/dbn_mnist, or dbn_mnist_quick)")
  add("--data-dir", help="MNIST IDX folder (default $JDBN_MNIST_DIR)")
  add("--sizes", help="hidden layer sizes, e.g. 500,500,2000")
  for name in ("pretrain_epochs", "updown_epochs", "updown_k", "finetune_epochs", "batch_size",
               "sample_steps", "n_train", "patience"):
    add("--" + name.replace("_", "-"), type=int)
  for name in ("pretrain_lr", "updown_lr", "finetune_lr", "weight_decay", "ablation_lr"):
    add("--" + name.replace("_", "-"), type=float)
  add("--reconstruction", choices=("sample", "mean"), default="sample",
      help="pretraining's CD-1 reconstructions: sampled, or E[v | h] as in Hinton's rbm.m")
  add("--updown-k-schedule", type=_sweeps, help="top-RBM sweeps per up-down epoch, e.g. "
      "3:100,6:200,10 (default: --updown-k)")
  add("--updown-lr-decay-start", type=int,
      help="up-down epoch from which the rate falls linearly to 0 (may be added on resuming)")
  add("--updown-mean-labels", action="store_true",
      help="up-down's top chain keeps its label probabilities (HOT 2006 appendix B)")
  add("--updown-balanced", action="store_true",
      help="up-down on class-balanced mini-batches, as HOT 2006 (data.balanced_order)")
  add("--updown-momentum", type=_open_unit, help="up-down SGD momentum (default none)")
  add("--updown-weight-decay", type=positive_float, help="up-down L2 cost on every W")
  add("--valid-every", type=positive_int, default=10,
      help="up-down epochs between records of the generative validation error")
  add("--updown-on-all", action="store_true",
      help="stage updown_all: up-down on all 60,000 images until their error is the split's")
  add("--updown-all-lr", type=positive_float, help="updown_all's rate (default --updown-lr)")
  add("--updown-all-max-epochs", type=positive_int, default=100)
  add("--dropout", type=float, default=0.0, help="hidden dropout for fine-tuning")
  add("--input-dropout", type=float, default=0.0, help="input dropout for fine-tuning")
  add("--max-norm", type=positive_float, help="max-norm bound on each unit's incoming weights")
  add("--finetune-schedule", choices=("constant", "cosine"), default="constant",
      help="fine-tuning rate: constant, or cosine decay to 0 over --finetune-epochs")
  add("--finetune-momentum", type=probability, default=0.9)
  add("--finetune-from", choices=("pretrained", "updown"), default="pretrained",
      help="the DBN the fine-tuned network starts from (updown needs stage updown)")
  add("--pretrained-from", metavar="RUN",
      help="start from another run folder's pretraining (its pretrain/, dbn_pretrained.npz and "
      "results), e.g. to run the later stages with other seeds; pretraining settings must match")
  add("--pretrain-on-all", action="store_true",
      help="pretrain on all 60,000 images, for a final model (refuses the stages that select "
      "on the validation split; updown then runs on all images)")
  add("--finetune-on-all", action="store_true",
      help="stage finetune_all: --finetune-epochs on all 60,000 images, the last one reported")
  add("--stages", default=",".join(s for s in STAGES if s != "finetune_all"),
      help=f"comma-separated, from {','.join(STAGES)}")
  add("--png", help="samples sheet (default experiments/results/dbn_mnist_samples.png; quick "
      "runs write into --out)")
  add("--seed", type=int, default=0)
  add("--prng", default="threefry2x32", choices=PRNG_IMPLS,
      help="PRNG implementation of every key (philox4x32 is the fastest on CPUs)")
  add("--no-progress", action="store_true")
  args = p.parse_args(argv)
  cfg = dict(QUICK if args.quick else FULL)
  if args.sizes:
    cfg["sizes"] = tuple(int(s) for s in args.sizes.split(","))
  cfg.update({k: getattr(args, k) for k in cfg if getattr(args, k, None) is not None})
  cfg.update({k: getattr(args, k) for k in OPTIONS})
  stages = set(args.stages.split(","))
  if stages - set(STAGES):
    sys.exit(f"unknown stages {sorted(stages - set(STAGES))}; choose from {', '.join(STAGES)}")
  start = args.updown_lr_decay_start
  if start is not None and not 0 <= start < cfg["updown_epochs"]:
    p.error(f"--updown-lr-decay-start must be in [0, --updown-epochs={cfg['updown_epochs']})")
  if args.pretrain_on_all and {"finetune", "ablation"} & stages:
    p.error(f"--pretrain-on-all: stages {sorted({'finetune', 'ablation'} & stages)} select on "
            "the validation split, which pretraining on all images has seen; run "
            "pretrain,finetune_all (with --finetune-on-all), updown (on all images), "
            "gen_pretrained, ll_bound or samples")
  if args.pretrain_on_all and args.updown_on_all:
    p.error("--pretrain-on-all runs up-down on all images already; drop --updown-on-all")
  if args.finetune_from == "updown" and ("updown" not in stages or cfg["updown_epochs"] < 1):
    p.error("--finetune-from updown needs stage updown in --stages and --updown-epochs > 0")
  out = pathlib.Path(args.out or HERE / "runs" / ("dbn_mnist_quick" if args.quick else
                                                   "dbn_mnist"))
  png = pathlib.Path(args.png) if args.png else (
      out / "samples.png" if args.quick else record.RESULTS / "dbn_mnist_samples.png")
  return args, cfg, stages, out, png


# --------------------------------------------------------------------------- helpers


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
  """Best-of-``repeats`` GFLOP/s of one ``[n, n] @ [n, n]`` float32 matmul (the hardware limit)."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  return 2 * n**3 / min(C.timeit(lambda: f(a), repeats=repeats).times) / 1e9


class Results:
  """``results.json`` in the run folder: one entry per finished stage, printed as it is put."""

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
    print(f"[{stage}] " + ", ".join(f"{k}={f'{v:.4g}' if isinstance(v, float) else v}"
                                    for k, v in value.items() if not isinstance(v, (list, dict))),
          flush=True)


def _median(rows, key="seconds"):
  return float(np.median([r[key] for r in rows])) if rows else None


# --------------------------------------------------------------------------- stages


def stage_pretrain(cfg, out, results, key, train, valid, progress):
  """Greedy CD-1 pretraining with Hinton's SGD (:func:`jdbn.train.hinton_sgd`), each layer
  resumable under ``pretrain/``; the DBN goes to ``dbn_pretrained.npz``."""
  path = out / "dbn_pretrained.npz"
  if path.exists() and "pretrain" in results:
    return checkpoint.load(path)
  opt = hinton_sgd(cfg["pretrain_lr"], weight_decay=cfg["weight_decay"],
                   steps_per_epoch=train.x.shape[0] // cfg["batch_size"])
  trainer = contrastive.cd(opt, k=1, mean_visible=cfg["reconstruction"] == "mean")
  t0 = time.perf_counter()
  dbn, history = D.pretrain(key, [train.x.shape[1], *cfg["sizes"]], train.x, trainer,
                            epochs=cfg["pretrain_epochs"], batch_size=cfg["batch_size"],
                            labels=train.y, validation=valid.x, validation_labels=valid.y,
                            checkpoint_dir=str(out / "pretrain"), progress=progress,
                            eval_size=1000)
  wall = time.perf_counter() - t0
  checkpoint.save(path, dbn, metadata={"sizes": list(cfg["sizes"])})
  layers = [{"sizes": list(h.sizes), "epochs": len(h.epochs),
             "seconds_per_epoch": _median(h.epochs),
             "final": {k: h.epochs[-1][k] for k in ("recon_error", "free_energy_gap",
                                                    "pseudo_likelihood")
                       if h.epochs and k in h.epochs[-1]}} for h in history]
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
  if name not in results:
    t0 = time.perf_counter()
    results.put(name, {"test_error": generative_error(model, test.x, test.y),
                       "seconds": time.perf_counter() - t0})


def _sweeps_of(cfg):
  """Gibbs sweeps in the top RBM per up-down epoch: ``--updown-k-schedule`` or ``--updown-k``."""
  return D.sweep_schedule(cfg["updown_k_schedule"] or cfg["updown_k"])


def _updown_fit(cfg, key, model, x, y, path, lr, progress, **kw):
  """:func:`jdbn.train.updown.fit` with the run's optimizer (SGD, and ``--updown-momentum`` and
  ``--updown-weight-decay`` when given), label units and batches."""
  opt = UD.optimizer(lr, momentum=cfg.get("updown_momentum"),
                     weight_decay=cfg.get("updown_weight_decay"))
  return UD.fit(key, model, (x, y), batch_size=cfg["batch_size"], opt=opt,
                mean_labels=bool(cfg.get("updown_mean_labels")),
                order="balanced" if cfg.get("updown_balanced") else None, path=path,
                progress=progress, **kw)


def stage_updown(cfg, out, results, key, dbn, train, valid, progress, valid_every=10):
  """Up-down on ``train`` for ``--updown-epochs``, resumable from ``updown.npz``; every
  ``valid_every`` epochs the generative error on ``valid`` is recorded, as ``valid_error``, or
  with ``--pretrain-on-all`` (``valid`` is then part of ``train``) as :data:`TRAIN_MONITOR`."""
  monitor = TRAIN_MONITOR if cfg.get("pretrain_on_all") else "valid_error"

  def evaluate(done, state):
    if done % valid_every and done != cfg["updown_epochs"]:
      return {}
    return {monitor: generative_error(state.params, valid.x, valid.y)}

  t0 = time.perf_counter()
  state, history = _updown_fit(cfg, key, dbn, train.x, train.y, out / "updown.npz",
                               cfg["updown_lr"], "up-down" if progress else False,
                               epochs=cfg["updown_epochs"], lr_of=UD.rate_schedule(
                                   cfg["updown_lr"], cfg["updown_epochs"],
                                   cfg["updown_lr_decay_start"]),
                               k_of=_sweeps_of(cfg), evaluate=evaluate)
  if "updown" not in results or results["updown"]["epochs"] != len(history):
    results.put("updown", {"epochs": len(history),
                           "finished": len(history) >= cfg["updown_epochs"],
                           "n_train": int(train.x.shape[0]),
                           "seconds_per_epoch": _median(history),
                           "final": history[-1] if history else None,
                           "wall_seconds_this_call": time.perf_counter() - t0})
    results.data.pop("gen_updown", None)
  return state.params, len(history) >= cfg["updown_epochs"]


def stage_updown_all(cfg, out, results, key, model, train, everything, test, progress, lr,
                     max_epochs):
  """HOT 2006's last phase: up-down on all training images until their generative error is as
  low as the training split's was after ``updown`` (or ``max_epochs``), with the last epoch's
  sweeps and the rate ``lr``; resumable from ``updown_all.npz``."""
  path = out / "updown_all.npz"
  history = checkpoint.read_metadata(path)["history"] if path.exists() else []
  done = "updown_all" in results and results["updown_all"]["epochs"] == len(history)
  target = generative_error(model, train.x, train.y)
  error = history[-1]["train_error_all"] if history else generative_error(
      model, everything.x, everything.y)
  k, t0 = _sweeps_of(cfg)(cfg["updown_epochs"] - 1), time.perf_counter()
  state, history = _updown_fit(
      cfg, key, model, everything.x, everything.y, path, lr, "updown_all" if progress else False,
      epochs=len(history) if done or error <= target else max_epochs, lr_of=lambda e: lr,
      k_of=lambda e: k,
      evaluate=lambda _, s: {"train_error_all": generative_error(s.params, everything.x,
                                                                 everything.y)},
      callback=lambda e, s, row: row["train_error_all"] <= target)
  if done:
    return state.params
  error = history[-1]["train_error_all"] if history else error
  results.put("updown_all", {
      "stop_rule": "generative error on all training images <= the training split's after "
                   "updown (HOT 2006)",
      "target_train_error": target, "train_error_all": error, "epochs": len(history),
      "finished": bool(error <= target), "k": k, "lr": lr,
      "n_train": int(everything.x.shape[0]),
      "test_error": generative_error(state.params, test.x, test.y),
      "seconds_per_epoch": _median(history),
      "wall_seconds_this_call": time.perf_counter() - t0})
  return state.params


def stage_finetune(name, cfg, out, results, key, module, variables, train, valid, test,
                   progress, lr, final=False):
  """Fine-tunes ``module`` with :func:`jdbn.train.finetune.fit` (resumable from ``name.npz``);
  reports the test error of the variables with the lowest validation error, or with ``final``
  (training on all 60,000 images, where ``valid`` is part of ``train`` and so selects nothing)
  of the variables after the last epoch."""
  decay = (cfg["finetune_epochs"] * (train.x.shape[0] // cfg["batch_size"])
           if cfg.get("finetune_schedule", "constant") == "cosine" else None)
  opt = F.optimizer(lr, momentum=cfg.get("finetune_momentum", 0.9), decay_steps=decay,
                    max_norm_value=cfg.get("max_norm"))
  t0 = time.perf_counter()
  state, history = F.fit(key, module, variables, (train.x, train.y), (valid.x, valid.y), opt,
                         epochs=cfg["finetune_epochs"], batch_size=cfg["batch_size"],
                         patience=cfg["patience"], path=out / f"{name}.npz",
                         progress=name if progress else False)
  if final:
    chosen = {"test_error": F.error_rate(module, state.variables, test.x, test.y),
              "n_train": int(train.x.shape[0]), "reported": "variables after the last epoch",
              TRAIN_MONITOR: history[-1]["valid_error"]}
  else:
    chosen = {"test_error": F.error_rate(module, state.best_variables, test.x, test.y),
              "valid_error": float(state.best_error), "best_epoch": int(state.best_epoch)}
  n_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables))
  flops = 3 * 2 * train.x.shape[0] * n_params  # forward + two backward matmuls per weight
  secs = _median(history)
  results.put(name, {
      "lr": lr, "schedule": cfg.get("finetune_schedule", "constant"),
      "max_norm": cfg.get("max_norm"), "momentum": cfg.get("finetune_momentum", 0.9),
      "init": cfg.get("finetune_from", "pretrained") if name.startswith("finetune") else "random",
      **chosen, "epochs_run": int(state.epoch), "seconds_per_epoch": secs,
      "effective_gflops": flops / secs / 1e9 if secs else None,
      "wall_seconds_this_call": time.perf_counter() - t0})
  return state


def stage_samples(cfg, key, model, png, results, classifier=None):
  """Class-conditional samples (:func:`jdbn.dbn.generate`), a row per class, and the fine-tuned
  network's accuracy on them."""
  n = cfg["samples_per_class"]
  labels = jnp.repeat(jnp.arange(10), n)
  t0 = time.perf_counter()
  gen = jax.jit(D.generate, static_argnames=("n_steps", "n_samples"))
  images = jax.block_until_ready(gen(key, model, labels, n_steps=cfg["sample_steps"]))
  seconds = time.perf_counter() - t0
  viz.save_rows(png, np.asarray(images).reshape(10, n, -1), (28, 28), zoom=2)
  entry = {"png": str(png), "n_steps": cfg["sample_steps"], "seconds": seconds}
  if classifier is not None:
    pred = jnp.argmax(F.predict_logits(*classifier, images), -1)
    entry["finetuned_net_accuracy_on_samples"] = float(jnp.mean(pred == labels))
  results.put("samples", entry)


def stage_ll_bound(name, cfg, key, model, train, test, results):
  """Salakhutdinov & Murray's (2008) lower bound on log p(v), the top RBM's log Z by AIS
  (:mod:`jdbn.likelihood.dbn`), on a stochastic binarisation of the test images."""
  if name in results:
    return
  k_bin, k_ais, k_bound = jax.random.split(key, 3)
  betas = default_betas() if cfg["ais_betas"] is None else np.linspace(
      0, 1, cfg["ais_betas"], dtype=np.float32)
  t0 = time.perf_counter()
  res = jax.block_until_ready(LD.top_ais(k_ais, model, train.x[:10_000], train.y[:10_000],
                                         n_chains=cfg["ais_chains"], betas=betas))
  ais_seconds = time.perf_counter() - t0
  xb = data.binarize_stochastic(k_bin, test.x)  # log p(v) needs binary vectors
  mean = float(jnp.mean(LD.log_likelihood_bounds(k_bound, model, xb, res.log_z)))
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
  x, y, bs, scale = train.x[:n], train.y[:n], cfg["batch_size"], 50_000 / n

  def timed(run):
    return C.timeit(run, warmup=1, repeats=repeats).median * scale

  rows = {}
  trainer = contrastive.cd(optax.sgd(0.01, momentum=0.9), k=1)
  layer_x = x
  for i, p in enumerate(dbn):
    data_i = layer_x if i < len(dbn) - 1 else jnp.concatenate(
        [layer_x, jax.nn.one_hot(y, D.n_labels(dbn))], -1)
    st = trainer.init(key, p)
    sec = timed(lambda st=st, d=data_i: trainer.epoch(key, st, d, bs))
    rows[f"cd1_layer{i}_{p.n_visible}x{p.n_hidden}"] = {
        "seconds_per_epoch": sec, "gflops": 5 * 2 * 50_000 * p.n_visible * p.n_hidden / sec / 1e9}
    if i < len(dbn) - 1:
      layer_x = D.propagate(None, p, layer_x)
  ud = D.updown(optax.sgd(0.001), k=cfg["updown_k"])
  st = ud.init(None, dbn)
  rows["updown_epoch"] = {"seconds_per_epoch": timed(lambda: ud.epoch(key, st, (x, y), bs))}
  module, variables = F.from_dbn(dbn)
  opt = optax.sgd(0.01, momentum=0.9)
  epoch, fst = F.make_epoch(module, opt, bs), F.init_state(variables, opt)
  sec = timed(lambda: epoch(key, fst, x, y))
  n_w = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables))
  rows["finetune_epoch"] = {"seconds_per_epoch": sec, "gflops": 3 * 2 * 50_000 * n_w / sec / 1e9}
  results.put("timing", {"matmul_peak_gflops": peak, "timed_examples": n, "repeats": repeats,
                         **rows})


# --------------------------------------------------------------------------- main


#: the settings that define the pretraining, which --pretrained-from must share
PRETRAIN_SETTINGS = ("sizes", "n_valid", "n_train", "pretrain_epochs", "batch_size", "pretrain_lr",
                     "weight_decay", "reconstruction", "pretrain_on_all", "prng")


def copy_pretraining(source: pathlib.Path, out: pathlib.Path, cfg: dict) -> None:
  """Copies ``source``'s finished pretraining into ``out`` (unless ``out`` has its own): the
  per-layer checkpoints, ``dbn_pretrained.npz`` and its ``pretrain`` and ``gen_pretrained``
  results; exits if ``source`` was pretrained with other settings."""
  if (out / "dbn_pretrained.npz").exists():
    return
  theirs = {**ADDED, **json.loads((source / "settings.json").read_text())}
  diff = {k: (theirs.get(k), v) for k, v in json.loads(json.dumps(cfg)).items()
          if k in PRETRAIN_SETTINGS and theirs.get(k) != v}
  if diff:
    sys.exit(f"--pretrained-from {source}: pretrained with other settings {diff}")
  shutil.copytree(source / "pretrain", out / "pretrain", dirs_exist_ok=True)
  shutil.copy2(source / "dbn_pretrained.npz", out / "dbn_pretrained.npz")
  done = json.loads((source / "results.json").read_text())
  results = Results(out / "results.json")
  for stage in ("pretrain", "gen_pretrained"):
    if stage in done:
      results.put(stage, done[stage])


def check_settings(out: pathlib.Path, cfg: dict) -> None:
  """Refuses a run folder holding a run with other settings (epochs, and :data:`CHANGEABLE`,
  may change); then records ``cfg`` there."""
  path = out / "settings.json"
  if path.exists():
    old = json.loads(path.read_text())
    diff = {k: (old.get(k, ADDED.get(k)), v) for k, v in json.loads(json.dumps(cfg)).items()
            if old.get(k, ADDED.get(k)) != v and not k.endswith("epochs")
            and k not in CHANGEABLE}
    if diff:
      sys.exit(f"{out} holds a run with other settings {diff}; use another --out")
  checkpoint.write_json(path, cfg)


def load_data(cfg, data_dir):
  """``(train, valid, test, everything)`` as JAX arrays: the first training images, the last
  ``n_valid`` of them, the test images, and train and valid together."""
  full = data.load_mnist("train", data_dir)
  test = data.load_mnist("test", data_dir)
  train, valid = data.split_validation(full, cfg["n_valid"])
  n, m = cfg["n_train"], cfg["n_test"]
  to_jax = lambda ds, k=None: data.Dataset(jnp.asarray(ds.x[:k]), jnp.asarray(ds.y[:k]),  # noqa
                                           ds.image_shape)
  train, valid, test = to_jax(train, n), to_jax(valid), to_jax(test, m)
  everything = data.Dataset(jnp.concatenate([train.x, valid.x]),
                            jnp.concatenate([train.y, valid.y]), train.image_shape)
  return train, valid, test, everything


def main(argv=None):
  args, cfg, stages, out, png = parse_args(argv)
  out.mkdir(parents=True, exist_ok=True)
  check_settings(out, cfg)
  if args.pretrained_from:
    copy_pretraining(pathlib.Path(args.pretrained_from), out, cfg)
  progress = not args.no_progress
  results = Results(out / "results.json")
  t_start = time.perf_counter()
  info = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores visible, "
                     f"{jax.devices()[0].platform}", "jax": jax.__version__,
          "matmul_peak_gflops": matmul_peak_gflops(), "config": cfg}
  print(json.dumps(info))
  train, valid, test, everything = load_data(cfg, args.data_dir)
  k_pre, k_ud, k_ft, _, k_abinit, k_out, k_samples = jax.random.split(
      jax.random.key(cfg["seed"], impl=cfg["prng"]), 7)

  dbn = stage_pretrain(cfg, out, results, k_pre, everything if cfg["pretrain_on_all"] else train,
                       valid, progress)
  if "gen_pretrained" in stages:
    stage_gen_error("gen_pretrained", dbn, test, results)
  generator = untied = dbn
  if "updown" in stages and cfg["updown_epochs"] > 0:
    untied, done = stage_updown(cfg, out, results, k_ud, dbn,
                                everything if cfg["pretrain_on_all"] else train, valid, progress,
                                args.valid_every)
    generator = untied
    stage_gen_error("gen_updown", untied, test, results)
    if args.updown_on_all and done:
      lr = cfg["updown_lr"] if args.updown_all_lr is None else args.updown_all_lr
      generator = stage_updown_all(cfg, out, results, jax.random.fold_in(k_ud, 10**6), untied,
                                   train, everything, test, progress, lr,
                                   args.updown_all_max_epochs)
  init = untied if cfg["finetune_from"] == "updown" else dbn  # parse_args checked the stage
  dropout = dict(dropout_rate=cfg["dropout"], input_dropout_rate=cfg["input_dropout"])
  classifier = None
  lrs = [cfg["finetune_lr"]]
  if cfg["ablation_lr"] and cfg["ablation_lr"] != cfg["finetune_lr"]:
    lrs.append(cfg["ablation_lr"])
  for lr in lrs:
    suffix = "" if lr == cfg["finetune_lr"] else f"_lr{lr:g}"
    if "finetune" in stages:
      module, variables = F.from_dbn(init, key=k_out, **dropout)
      st = stage_finetune("finetune" + suffix, cfg, out, results, k_ft, module, variables, train,
                          valid, test, progress, lr)
      if not suffix:
        classifier = (module, st.best_variables)
    if "ablation" in stages:
      module, variables = F.init_random(k_abinit, D.layer_sizes(dbn), **dropout)
      stage_finetune("ablation" + suffix, cfg, out, results, k_ft, module, variables, train,
                     valid, test, progress, lr)
  if ("finetune" in stages or "finetune_all" in stages) and args.finetune_on_all:
    module, variables = F.from_dbn(init, key=k_out, **dropout)
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
  if not args.quick:
    record.merge("dbn_mnist", {out.name: results.data}, markdown)
  return results.data


#: the stages whose test error the results table lists, in order
ERROR_STAGES = ("gen_pretrained", "gen_updown", "updown_all", "finetune", "finetune_all",
                "ablation")


def markdown(runs: dict) -> str:
  """The table of ``experiments/results/dbn_mnist.json``: each run folder's test errors."""
  lines = ["DBN on MNIST: test error (%) of each run's stages, and the log-likelihood bound "
           "(nats) of the pretrained DBN (`python -m experiments.dbn_mnist`).", "",
           "| run | " + " | ".join(ERROR_STAGES) + " | bound |",
           "|---|" + "---|" * (len(ERROR_STAGES) + 1)]
  for name, res in runs.items():
    cells = [f"{100 * res[s]['test_error']:.2f}" if s in res else "-" for s in ERROR_STAGES]
    bound = res.get("ll_bound_pretrained", {}).get("bound_nats")
    lines.append(f"| {name} | " + " | ".join(cells) +
                 f" | {'-' if bound is None else f'{bound:.2f}'} |")
  return "\n".join(lines)


if __name__ == "__main__":
  main()
