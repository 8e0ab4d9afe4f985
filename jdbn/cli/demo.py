"""The ``jdbn demo`` subcommand: an RBM trained on the embedded 8x8 digits, offline, in a minute,
with its pictures, metrics, checkpoint and test log-likelihoods.

::

    jdbn demo [--out DIR] [--epochs E]
"""

from __future__ import annotations

import time

import numpy as np

from jdbn.cli.common import (add_seed, apply_preprocess, make_key, make_trainer, positive_int,
                             writable_folder)
from jdbn.cli.evaluate import evaluate_model, print_evaluation
from jdbn.cli.rbm import print_row, save_pictures

#: The demo's settings, chosen for clear filters and samples in about a minute on 2 CPU cores.
DEMO = {"n_hidden": 100, "method": "pcd", "k": 1, "n_chains": 100, "lr": 0.05,
        "momentum": 0.9, "weight_decay": 1e-3, "sparsity_target": None, "sparsity_cost": 0.0,
        "batch_size": 10, "epochs": 50, "binarize": "none", "n_valid": 200, "sample_steps": 2000,
        "ais_betas": 2000, "ais_chains": 100}


def add_demo(sub) -> None:
  p = sub.add_parser("demo", help="train an RBM on the embedded 8x8 digits (offline, ~1 min)",
                     description="Train a 64-100 RBM with PCD on the embedded 8x8 digits "
                     "(offline), then write filters.png, samples.png, metrics.json and "
                     "checkpoint.npz and print AIS and pseudo log-likelihoods of the test digits.")
  p.add_argument("--out", default="jdbn-demo", help="folder for the outputs")
  p.add_argument("--epochs", type=positive_int, default=DEMO["epochs"])
  add_seed(p)
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
  import jax
  from jdbn import checkpoint, data, train
  from jdbn.models import rbm

  out = writable_folder(args.out)
  s = DEMO
  t_start = time.perf_counter()
  ds = data.load_digits("train")
  test = data.load_digits("test")
  train_ds, valid_ds = data.split_validation(ds, s["n_valid"])
  spec = {"binarize": s["binarize"]}
  key = make_key(args)
  k_train, k_valid, k_test, key_init, key_fit, key_sample, key_eval = jax.random.split(key, 7)
  x = apply_preprocess(k_train, np.asarray(train_ds.x), spec)
  v = apply_preprocess(k_valid, np.asarray(valid_ds.x), spec)
  params = rbm.init(key_init, 64, s["n_hidden"], data=x)
  # PCD with a learning rate that decays linearly to 5%: the persistent chains mix fast while
  # the rate is high and the final model is sharp (Tieleman 2008 decays it too). Weight decay
  # 1e-3 keeps the filters local (Hinton's guide, section 10). Settings compared by eye on
  # filters.png and samples.png: momentum 0.9 gave more stroke-like filters than 0.5, and a
  # sparsity target (0.02-0.1) gave whole-digit templates with inhibitory weights.
  trainer = make_trainer(s["method"], s["lr"], s["momentum"], s["weight_decay"], s["k"],
                         s["n_chains"], args.epochs * (len(x) // s["batch_size"]),
                         s["sparsity_target"], s["sparsity_cost"])
  print(f"training a 64-{s['n_hidden']} RBM on {len(x)} 8x8 digits with PCD-{s['k']} "
        f"for {args.epochs} epochs")
  t0 = time.perf_counter()
  state, history = train.fit(key_fit, trainer, params, x, epochs=args.epochs,
                             batch_size=s["batch_size"], validation=v,
                             progress=False if args.no_progress else "demo")
  train_seconds = time.perf_counter() - t0
  print_row(history[-1])
  paths = save_pictures(out, key_sample, state.params, ds.image_shape, spec, 100,
                        s["sample_steps"])
  # Test log-likelihood: binary vectors needed, so a fixed stochastic binarisation of the data.
  # (AIS's base-rate model takes the training intensities' means.)
  test_x = apply_preprocess(k_test, np.asarray(test.x), {"binarize": "stochastic"})
  print(f"evaluating on {len(test_x)} stochastically binarised test digits")
  evaluation = evaluate_model(key_eval, state.params, test_x, x,
                              n_chains=s["ais_chains"], n_betas=s["ais_betas"])
  print_evaluation(evaluation)
  user = {"command": "demo", "dataset": "digits", "image_shape": list(ds.image_shape),
          "preprocess": spec, "settings": {**s, "epochs": args.epochs, "seed": args.seed,
                                            "prng": args.prng}}
  ckpt = checkpoint.save(out / train.CHECKPOINT_NAME, {"state": state, "key": key_fit},
                         metadata={"epoch": len(history), "epochs": args.epochs,
                                   "batch_size": s["batch_size"], "history": history,
                                   "user": user})
  metrics = checkpoint.write_json(out / train.METRICS_NAME, {
      "epochs_completed": len(history), "history": history, "test": evaluation,
      "train_seconds": train_seconds, "user": user})
  print(f"done in {time.perf_counter() - t_start:.1f} s (training {train_seconds:.1f} s)")
  for name, path in [*paths.items(), ("metrics", metrics), ("checkpoint", ckpt)]:
    print(f"  {name:<10} {path}")
  print(f"next: jdbn sample {out} --out more.png; jdbn evaluate {out}")
  return 0
