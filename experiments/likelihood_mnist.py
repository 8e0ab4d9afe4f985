"""AIS test log-probabilities of 500-hidden-unit RBMs on MNIST (Salakhutdinov & Murray 2008).

Question: does jdbn reproduce the RBM rows of Salakhutdinov & Murray (2008), "On the quantitative
analysis of deep belief networks" (ICML), and how close is its AIS to the cost of its own matrix
products?

For each row (CD-1, CD-3, CD-25, PCD-1) the script trains a 784 x 500 Bernoulli RBM on the 60,000
MNIST training images, binarised once stochastically with a fixed key, then estimates log Z with
AIS (100 chains, the paper's 14,500-step schedule, base rates from the training data) and reports
the mean test log-probability over the 10,000 test images with the ln(Z_hat -/+ 3 se) bounds.
Speed: training seconds, AIS seconds (compile apart), and the seconds of exactly the GEMMs AIS
performs (2 per temperature of [n_chains x 784] x [784 x 500], in a jitted ``lax.scan``) measured
in the same run, so that AIS / GEMM says how much the sampling and bookkeeping cost on top.
Training runs the library's loop (:func:`jdbn.train.loop.fit`) with Hinton's SGD
(:func:`jdbn.train.hinton_sgd`) and is checkpointed after every epoch: the same command again, with
a larger ``--epochs`` say, resumes. The final params are saved and ``--load`` evaluates them again
without training. Each row's figures go to ``--out-dir`` and, in full runs, to
``experiments/results/likelihood_mnist.json`` (and ``.md``), the latest per row; the paper rows'
commands are in ``experiments/configs.py``.

Paper figure quoted beside ours: CD25(500), -86.34 nats (the only row checked against a source
here). The paper trained far longer than the default here; see experiments/README.md.

  python -m experiments.likelihood_mnist --rows cd1 --epochs 20
  python -m experiments.likelihood_mnist --quick            # < 1 minute smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common as C
from benchmarks.bound import gemm_scan
from experiments import record
from jdbn import checkpoint, contrastive
from jdbn import data as D
from jdbn import likelihood as L
from jdbn import rbm as R
from jdbn.cli import PRNG_IMPLS
from jdbn.train import hinton_sgd, loop

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_MNIST = HERE.parent.parent / "shared" / "data" / "mnist"
DEFAULT_OUT = HERE / "runs" / "likelihood_mnist"
ROWS = {"cd1": ("cd", 1), "cd3": ("cd", 3), "cd25": ("cd", 25), "pcd": ("pcd", 1)}
#: Paper figures (nats, mean test log-probability, 500 hidden units) that we have checked.
PAPER = {"cd25": -86.34}


def load_data(args) -> tuple[np.ndarray, np.ndarray, str]:
  """Binarised train and test images (fixed key), and the dataset's name."""
  key = jax.random.key(args.seed)
  folder = pathlib.Path(args.data_dir)
  if args.dataset == "mnist" and not folder.is_dir():
    if not args.quick:
      sys.exit(f"MNIST not found in {folder}; set JDBN_MNIST_DIR or --data-dir")
    args.dataset = "digits"
  if args.dataset == "mnist":
    train, test = D.load_mnist("train", folder), D.load_mnist("test", folder)
  else:
    train, test = D.load_digits("train"), D.load_digits("test")
  k1, k2 = jax.random.split(key)
  train_x = np.asarray(D.binarize_stochastic(k1, train.x[:args.n_train]))
  test_x = np.asarray(D.binarize_stochastic(k2, test.x[:args.n_test]))
  return train_x, test_x, args.dataset


def train(row: str, train_x: np.ndarray, args) -> tuple[R.RBM, dict]:
  """Trains one row with :func:`jdbn.train.loop.fit`, checkpointing after every epoch under
  ``--out-dir``: the same command run again (with a larger ``--epochs``, say) resumes where the
  last one stopped. Epoch ``e`` runs at :func:`jdbn.train.loop.rate_schedule`'s rate (``--lr``,
  decaying from ``--lr-decay-start``), set in the optimizer state before it, so a run trained at
  a constant rate resumes with a decay."""
  kind, k = ROWS[row]
  key = jax.random.fold_in(jax.random.key(args.seed, impl=args.prng), list(ROWS).index(row))
  opt = hinton_sgd(args.lr, weight_decay=args.weight_decay,
                   steps_per_epoch=train_x.shape[0] // args.batch_size)
  trainer = (contrastive.pcd(opt, k=k, n_chains=args.batch_size) if kind == "pcd" else
             contrastive.cd(opt, k=k))
  state = trainer.init(key, R.init(key, train_x.shape[1], args.n_hidden, data=train_x))
  settings = {"row": row, "lr": args.lr, "weight_decay": args.weight_decay, "seed": args.seed,
              "batch_size": args.batch_size, "prng": args.prng, "n_train": int(train_x.shape[0])}
  ckpt = pathlib.Path(args.out_dir) / f"{args.dataset}_{row}_h{args.n_hidden}_state.npz"
  done = {"epoch": 0, "recon": [], "lr_per_epoch": [], "train_wall": 0.0, "train_cpu": 0.0}
  if ckpt.exists():
    state, meta = checkpoint.restore(ckpt, like=state)
    if meta["settings"] != settings:
      sys.exit(f"{ckpt} was trained with {meta['settings']}, not {settings}; use another "
               f"--out-dir")
    done = {k: meta.get(k, v) for k, v in done.items()}
    done["lr_per_epoch"] = meta.get("lr_per_epoch", [args.lr] * meta["epoch"])  # constant rate
    print(f"  {row}: resuming after epoch {done['epoch']} from {ckpt}", flush=True)
  lr_of, data = loop.rate_schedule(args.lr, args.epochs, args.lr_decay_start), jnp.asarray(train_x)

  def epoch_fn(e, state):
    cpu = time.process_time()
    state, info = trainer.epoch(jax.random.fold_in(key, e), loop.set_learning_rate(state, lr_of(e)),
                                data, args.batch_size)
    return state, {"recon_error": float(info.recon_error), "lr": lr_of(e),
                   "cpu": time.process_time() - cpu}

  saved = {}

  def save(epochs, state, rows):
    meta = {"settings": settings, "epoch": epochs,
            "recon": done["recon"] + [r["recon_error"] for r in rows],
            "lr_per_epoch": done["lr_per_epoch"] + [r["lr"] for r in rows],
            "train_wall": done["train_wall"] + sum(r["seconds"] for r in rows),
            "train_cpu": done["train_cpu"] + sum(r["cpu"] for r in rows)}
    checkpoint.save(ckpt, state, metadata=meta)
    saved.update(meta)
    print(f"  {row} epoch {epochs}/{args.epochs}: lr {rows[-1]['lr']:.4g}, recon "
          f"{rows[-1]['recon_error']:.4f} ({meta['train_wall']:.0f} s)", flush=True)

  try:
    state, _ = loop.fit(state, epoch_fn, epochs=args.epochs, start=done["epoch"], save=save,
                        checkpoint=ckpt, progress=False)
  except loop.TrainingDiverged as err:
    sys.exit(f"{row}: {err}")
  meta = saved or done  # done: no epoch was left to train
  return state.params, {k: meta[k] for k in ("recon", "lr_per_epoch", "train_wall", "train_cpu")}


def params_path(row: str, args) -> pathlib.Path:
  return pathlib.Path(args.out_dir) / f"{args.dataset}_{row}_h{args.n_hidden}_e{args.epochs}.npz"


def evaluate(row: str, params: R.RBM, train_x, test_x, args) -> dict:
  """AIS (compiled apart, then timed), its GEMMs alone, optionally short interleaved AIS and
  GEMM runs for a steadier ratio, and RAISE on ``--raise-examples`` test images."""
  betas = L.default_betas() if args.n_betas is None else np.linspace(0, 1, args.n_betas + 1)
  n_steps = len(betas) - 1
  key = jax.random.fold_in(jax.random.key(args.seed + 1, impl=args.prng), list(ROWS).index(row))
  base = L.base_rate_biases(params, train_x)
  betas_j = jnp.asarray(betas, jnp.float32)
  t0 = time.perf_counter()
  ais_fn = L.rbm._ais  # pylint: disable=protected-access  (compiled apart, to time it apart)
  compiled = ais_fn.lower(key, params, base, betas_j, n_chains=args.n_chains).compile()
  compile_s = time.perf_counter() - t0
  t0, c0 = time.perf_counter(), time.process_time()
  res = jax.block_until_ready(compiled(key, params, base, betas_j))
  ais_wall, ais_cpu = time.perf_counter() - t0, time.process_time() - c0
  # The same GEMMs alone, measured right after (median of --gemm-repeats).
  gemm = C.timeit(gemm_scan(n_steps, args.n_chains, params.n_visible, params.n_hidden),
                  repeats=args.gemm_repeats)
  out = {}
  if args.ratio_steps:  # a steadier ratio on a shared machine: short runs, interleaved
    short = jnp.linspace(0, 1, args.ratio_steps + 1, dtype=jnp.float32)
    short_ais = ais_fn.lower(key, params, base, short, n_chains=args.n_chains).compile()
    t = C.interleaved({"ais": lambda: short_ais(key, params, base, short),
                       "gemm": gemm_scan(args.ratio_steps, args.n_chains, params.n_visible,
                                         params.n_hidden)}, repeats=args.ratio_repeats)
    a, g = t["ais"], t["gemm"]
    out = {"short_steps": args.ratio_steps,
           "short_ais_cpu_per_step_ms": 1e3 * a.cpu_median / args.ratio_steps,
           "short_gemm_cpu_per_step_ms": 1e3 * g.cpu_median / args.ratio_steps,
           "short_ratio_wall": float(np.median(np.divide(a.times, g.times))),
           "short_ratio_cpu": float(np.median(np.divide(a.cpu, g.cpu)))}
  neg_f_test = -R.free_energy(params, jnp.asarray(test_x))
  neg_f_train = -R.free_energy(params, jnp.asarray(train_x[:len(test_x)]))
  out = {"row": row, "log_z": float(res.log_z), "log_z_lower": float(res.log_z_lower),
         "log_z_upper": float(res.log_z_upper), "ess": float(res.ess),
         "test_ll": float(jnp.mean(neg_f_test) - res.log_z),
         "test_ll_lower": float(jnp.mean(neg_f_test) - res.log_z_upper),
         "test_ll_upper": float(jnp.mean(neg_f_test) - res.log_z_lower),
         "train_ll": float(jnp.mean(neg_f_train) - res.log_z),
         "n_steps": n_steps, "n_chains": args.n_chains, "ais_compile_s": compile_s,
         "ais_wall": ais_wall, "ais_cpu": ais_cpu, "gemm_wall": gemm.median,
         "gemm_cpu": gemm.cpu_median, "ratio_wall": ais_wall / gemm.median,
         "ratio_cpu": ais_cpu / gemm.cpu_median, **out}
  if args.raise_examples:
    v = test_x[:args.raise_examples]
    t0 = time.perf_counter()
    r = L.raise_log_likelihood(jax.random.fold_in(key, 1), params, v, betas=betas, base_b=base)
    out.update(raise_ll=float(r.mean), raise_examples=len(v),
               raise_ais_same_examples=float(jnp.mean(neg_f_test[:len(v)]) - res.log_z),
               raise_wall=time.perf_counter() - t0)
  return out


def fmt_row(r: dict) -> str:
  paper = PAPER.get(r["row"])
  return (f"| {r['row'].upper()} | {r.get('epochs', '?')} | {r['test_ll']:.2f} "
          f"({r['test_ll_lower']:.2f}, {r['test_ll_upper']:.2f}) | {r['train_ll']:.2f} | "
          f"{r['log_z']:.2f} | {r['ess']:.1f} | "
          f"{f'{paper:.2f}' if paper is not None else '-'} | "
          f"{r.get('train_wall', float('nan')):.0f} | {r['ais_wall']:.0f} | "
          f"{r['gemm_wall']:.0f} | {r['ratio_wall']:.2f} / {r['ratio_cpu']:.2f} | "
          f"{r.get('short_ratio_cpu', float('nan')):.2f} |")


HEADER = ("| row | epochs | test log p (AIS, ±3 se bounds) | train log p | log Z | ESS | paper | "
          "train s | AIS s | GEMM s | AIS/GEMM wall / cpu | interleaved AIS/GEMM cpu |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def markdown(rows: dict) -> str:
  """The table of every row in ``experiments/results/likelihood_mnist.json``."""
  return "\n".join(["Salakhutdinov & Murray (2008), RBM rows: the latest full run of each "
                    "(`python -m experiments.likelihood_mnist`).", "", HEADER,
                    *(fmt_row(r) for r in rows.values())])


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--rows", default="cd1", help=f"comma-separated, from {','.join(ROWS)}")
  p.add_argument("--epochs", type=int, default=None, help="default 20 (1 with --quick)")
  p.add_argument("--n-hidden", type=int, default=500)
  p.add_argument("--batch-size", type=int, default=100)
  p.add_argument("--lr", type=float, default=0.05)
  p.add_argument("--lr-decay-start", type=int, default=None,
                 help="epoch after which the learning rate falls linearly to 0 at --epochs "
                 "(default: constant); may be added when resuming a constant-rate run")
  p.add_argument("--weight-decay", type=float, default=2e-4)
  p.add_argument("--n-chains", type=int, default=100)
  p.add_argument("--n-betas", type=int, default=None,
                 help="uniform schedule with this many steps (default: the paper's 14,500)")
  p.add_argument("--raise-examples", type=int, default=0,
                 help="also run RAISE (1 chain each) on this many test images")
  p.add_argument("--n-train", type=int, default=None)
  p.add_argument("--n-test", type=int, default=None)
  p.add_argument("--gemm-repeats", type=int, default=1,
                 help="repeats of the full-length GEMM scan (median)")
  p.add_argument("--ratio-steps", type=int, default=1000,
                 help="length of the short interleaved AIS / GEMM runs (0: skip)")
  p.add_argument("--ratio-repeats", type=int, default=3)
  p.add_argument("--dataset", choices=("mnist", "digits"), default="mnist")
  p.add_argument("--data-dir", default=os.environ.get(D.MNIST_ENV_VAR, str(DEFAULT_MNIST)))
  p.add_argument("--out-dir", default=str(DEFAULT_OUT))
  p.add_argument("--load", action="store_true", help="evaluate saved params, do not train")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--prng", default="threefry2x32", choices=PRNG_IMPLS,
                 help="PRNG implementation for training and AIS (the data's binarisation always "
                 "uses threefry2x32, so every row sees the same images)")
  p.add_argument("--quick", action="store_true",
                 help="smoke run: 2,000 training images, 1 epoch, 100 hidden, 300 temperatures; "
                 "writes nothing to experiments/results/")
  args = p.parse_args(argv)
  if args.epochs is None:
    args.epochs = 1 if args.quick else 20
  if args.quick:
    args.n_hidden, args.n_betas = 100, 300
    args.n_train, args.n_test, args.n_chains = 2000, 1000, 50
    args.ratio_steps, args.ratio_repeats = 100, 1
    args.out_dir = str(pathlib.Path(args.out_dir) / "quick")
  if args.lr_decay_start is not None and not 0 <= args.lr_decay_start < args.epochs:
    p.error(f"--lr-decay-start must be in [0, --epochs={args.epochs}), not {args.lr_decay_start}")
  for r in args.rows.split(","):
    if r not in ROWS:
      p.error(f"unknown row {r!r}; choose from {', '.join(ROWS)}")
  return args


def main(argv=None) -> list:
  args = parse_args(argv)
  info = C.machine_info()
  print(json.dumps(info), flush=True)
  train_x, test_x, name = load_data(args)
  print(f"{name}: {train_x.shape[0]} train, {test_x.shape[0]} test images", flush=True)
  pathlib.Path(args.out_dir).mkdir(parents=True, exist_ok=True)
  results = []
  for row in args.rows.split(","):
    path = params_path(row, args)
    if args.load:
      params, meta = checkpoint.load_params(path), checkpoint.read_metadata(path)
      print(f"{row}: loaded {path}", flush=True)
    else:
      params, meta = train(row, train_x, args)
      meta.update(epochs=args.epochs, lr=args.lr, lr_decay_start=args.lr_decay_start,
                  weight_decay=args.weight_decay,
                  batch_size=args.batch_size, dataset=name, n_train=int(train_x.shape[0]))
      checkpoint.save_params(path, params, metadata=meta)
      print(f"{row}: trained in {meta['train_wall']:.0f} s, saved {path}", flush=True)
    r = {**meta, **evaluate(row, params, train_x, test_x, args), "machine": info}
    results.append(r)
    print(json.dumps({k: v for k, v in r.items() if k != "recon"}), flush=True)
    checkpoint.write_json(path.with_suffix(".json"), r)
  print(HEADER)
  for r in results:
    print(fmt_row(r))
  if not args.quick and name == "mnist":
    record.merge("likelihood_mnist", {f"{r['row']}_h{args.n_hidden}": r for r in results},
                 markdown)
  return results


if __name__ == "__main__":
  main()
