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
Training is checkpointed after every epoch (``jdbn.checkpoint``): the same command again, with a
larger ``--epochs`` say, resumes. The final params are saved and ``--load`` evaluates them again
without training.

Paper figure quoted beside ours: CD25(500), -86.34 nats (the only row checked against a source
here). The paper trained far longer than the default here; see RESULTS.md.

  python -m experiments.likelihood_mnist --rows cd1 --epochs 20
  python -m experiments.likelihood_mnist --quick            # < 1 minute smoke run
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.ais_speed import gemm_scan
from jdbn import checkpoint, contrastive
from jdbn import data as D
from jdbn import likelihood as L
from jdbn import rbm as R
from jdbn.cli import PRNG_IMPLS

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_MNIST = HERE.parent.parent / "shared" / "data" / "mnist"
DEFAULT_OUT = HERE / "runs" / "likelihood_mnist"
ROWS = {"cd1": ("cd", 1), "cd3": ("cd", 3), "cd25": ("cd", 25), "pcd": ("pcd", 1)}
#: Paper figures (nats, mean test log-probability, 500 hidden units) that we have checked.
PAPER = {"cd25": -86.34}


def cpu_seconds() -> float:
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def machine() -> dict:
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
    model = next((l.split(":", 1)[1].strip() for l in out.splitlines()
                  if l.startswith("Model name")), platform.processor())
  except (OSError, subprocess.SubprocessError):
    model = platform.processor()
  return {
      "cpu": model,
      "cores": os.cpu_count(),
      "jax": jax.__version__,
      "backend": jax.default_backend(),
      "date": datetime.date.today().isoformat(),
      "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
  }


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


def learning_rate(args, epoch: int) -> float:
  """The learning rate of 0-based ``epoch``: ``--lr``, and from epoch ``--lr-decay-start`` on a
  linear fall towards 0 at the end of ``--epochs`` (one rate per epoch). It is set in the
  optimizer state before each epoch, so a run trained at a constant rate resumes with a decay."""
  if args.lr_decay_start is None:
    return args.lr
  return float(optax.linear_schedule(args.lr, 0.0, args.epochs - args.lr_decay_start,
                                     args.lr_decay_start)(epoch))


def make_trainer(kind: str, k: int, args, steps_per_epoch: int) -> contrastive.Trainer:
  """SGD with momentum 0.5 then 0.9 (after 5 epochs) and L2 weight decay on W (Hinton 2010)."""
  momentum = optax.piecewise_constant_schedule(0.5, {5 * steps_per_epoch: 1.8})  # 0.5 -> 0.9
  sgd = optax.inject_hyperparams(optax.sgd)(learning_rate=args.lr, momentum=momentum)
  mask = lambda p: jax.tree.map(lambda _: False, p).replace(W=True)
  opt = optax.chain(optax.add_decayed_weights(args.weight_decay, mask=mask), sgd)
  if kind == "pcd":
    return contrastive.pcd(opt, k=k, n_chains=args.batch_size)
  return contrastive.cd(opt, k=k)


def train(row: str, train_x: np.ndarray, args) -> tuple[R.RBM, dict]:
  """Trains one row, checkpointing after every epoch under ``--out-dir``: the same command run
  again (with a larger ``--epochs``, say) resumes where the last one stopped."""
  kind, k = ROWS[row]
  key = jax.random.fold_in(jax.random.key(args.seed, impl=args.prng), list(ROWS).index(row))
  params = R.init(key, train_x.shape[1], args.n_hidden, data=train_x)
  steps = train_x.shape[0] // args.batch_size
  trainer = make_trainer(kind, k, args, steps)
  state = trainer.init(key, params)
  settings = {"row": row, "lr": args.lr, "weight_decay": args.weight_decay, "seed": args.seed,
              "batch_size": args.batch_size, "prng": args.prng, "n_train": int(train_x.shape[0])}
  ckpt = pathlib.Path(args.out_dir) / f"{args.dataset}_{row}_h{args.n_hidden}_state.npz"
  log, lrs, start, wall, cpu = [], [], 0, 0.0, 0.0
  if ckpt.exists():
    state, meta = checkpoint.restore(ckpt, like=state)
    if meta["settings"] != settings:
      sys.exit(f"{ckpt} was trained with {meta['settings']}, not {settings}; use another "
               f"--out-dir")
    log, start, wall, cpu = meta["recon"], meta["epoch"], meta["train_wall"], meta["train_cpu"]
    lrs = meta.get("lr_per_epoch", [args.lr] * start)  # runs before the decay option: constant
    print(f"  {row}: resuming after epoch {start} from {ckpt}", flush=True)
  data = jnp.asarray(train_x)
  for epoch in range(start, args.epochs):
    t0, c0 = time.time(), cpu_seconds()
    lr = learning_rate(args, epoch)
    state = state.replace(opt_state=optax.tree_utils.tree_set(
        state.opt_state, learning_rate=jnp.asarray(lr, jnp.float32)))
    state, info = trainer.epoch(jax.random.fold_in(key, epoch), state, data, args.batch_size)
    recon = float(info.recon_error)
    if not np.isfinite(recon):
      sys.exit(f"{row} diverged in epoch {epoch + 1}; the last good state is in {ckpt}")
    wall, cpu = wall + time.time() - t0, cpu + cpu_seconds() - c0
    log.append(recon)
    lrs.append(lr)
    checkpoint.save(ckpt, state, metadata={"settings": settings, "epoch": epoch + 1,
                                           "recon": log, "lr_per_epoch": lrs,
                                           "train_wall": wall, "train_cpu": cpu})
    print(f"  {row} epoch {epoch + 1}/{args.epochs}: lr {lr:.4g}, recon {recon:.4f} "
          f"({wall:.0f} s)", flush=True)
  return state.params, {"recon": log, "lr_per_epoch": lrs, "train_wall": wall, "train_cpu": cpu}


def params_path(row: str, args) -> pathlib.Path:
  return pathlib.Path(args.out_dir) / f"{args.dataset}_{row}_h{args.n_hidden}_e{args.epochs}.npz"


def save(params: R.RBM, path: pathlib.Path, meta: dict) -> None:
  checkpoint.save_params(path, params, metadata=meta)


def load(path: pathlib.Path) -> tuple[R.RBM, dict]:
  return checkpoint.load_params(path), checkpoint.read_metadata(path)


def timed(fn) -> tuple[float, float]:
  t0, c0 = time.time(), cpu_seconds()
  fn()
  return time.time() - t0, cpu_seconds() - c0


def evaluate(row: str, params: R.RBM, train_x, test_x, args) -> dict:
  betas = L.default_betas() if args.n_betas is None else np.linspace(0, 1, args.n_betas + 1)
  n_steps = len(betas) - 1
  key = jax.random.fold_in(jax.random.key(args.seed + 1, impl=args.prng), list(ROWS).index(row))
  base = L.base_rate_biases(params, train_x)
  betas_j = jnp.asarray(betas, jnp.float32)
  t0 = time.time()
  compiled = L.rbm._ais.lower(key, params, base, betas_j, n_chains=args.n_chains).compile()
  compile_s = time.time() - t0
  res = None

  def run():
    nonlocal res
    res = compiled(key, params, base, betas_j)
    jax.block_until_ready(res)

  ais_wall, ais_cpu = timed(run)
  # The same GEMMs alone, measured right after (3 repeats, median).
  gemms = gemm_scan(n_steps, args.n_chains, params.n_visible, params.n_hidden)
  gemms()  # compile
  g = [timed(gemms) for _ in range(args.gemm_repeats)]
  gemm_wall, gemm_cpu = float(np.median([x[0] for x in g])), float(np.median([x[1] for x in g]))
  # A steadier ratio on a shared machine: short AIS runs and the same GEMMs, interleaved.
  if args.ratio_steps:
    short = jnp.linspace(0, 1, args.ratio_steps + 1, dtype=jnp.float32)
    short_ais = L.rbm._ais.lower(key, params, base, short, n_chains=args.n_chains).compile()
    short_gemms = gemm_scan(args.ratio_steps, args.n_chains, params.n_visible, params.n_hidden)
    jax.block_until_ready(short_ais(key, params, base, short))
    short_gemms()
    pairs = []
    for i in range(args.ratio_repeats):
      k_i = jax.random.fold_in(key, i)
      a = timed(lambda k_i=k_i: jax.block_until_ready(short_ais(k_i, params, base, short)))
      g_ = timed(short_gemms)
      pairs.append((a, g_))
    ratio_short = {
        "short_steps": args.ratio_steps,
        "short_ais_cpu_per_step_ms": 1e3 * float(np.median([a[1] for a, _ in pairs])) /
                                     args.ratio_steps,
        "short_gemm_cpu_per_step_ms": 1e3 * float(np.median([g[1] for _, g in pairs])) /
                                      args.ratio_steps,
        "short_ratio_wall": float(np.median([a[0] / g[0] for a, g in pairs])),
        "short_ratio_cpu": float(np.median([a[1] / g[1] for a, g in pairs])),
    }
  else:
    ratio_short = {}
  neg_f_test = -R.free_energy(params, jnp.asarray(test_x))
  neg_f_train = -R.free_energy(params, jnp.asarray(train_x[:len(test_x)]))
  out = {
      "row": row,
      "log_z": float(res.log_z),
      "log_z_lower": float(res.log_z_lower),
      "log_z_upper": float(res.log_z_upper),
      "ess": float(res.ess),
      "test_ll": float(jnp.mean(neg_f_test) - res.log_z),
      "test_ll_lower": float(jnp.mean(neg_f_test) - res.log_z_upper),
      "test_ll_upper": float(jnp.mean(neg_f_test) - res.log_z_lower),
      "train_ll": float(jnp.mean(neg_f_train) - res.log_z),
      "n_steps": n_steps,
      "n_chains": args.n_chains,
      "ais_compile_s": compile_s,
      "ais_wall": ais_wall,
      "ais_cpu": ais_cpu,
      "gemm_wall": gemm_wall,
      "gemm_cpu": gemm_cpu,
      "ratio_wall": ais_wall / gemm_wall,
      "ratio_cpu": ais_cpu / gemm_cpu,
      **ratio_short,
  }
  if args.raise_examples:
    v = test_x[:args.raise_examples]
    t0 = time.time()
    r = L.raise_log_likelihood(jax.random.fold_in(key, 1), params, v, betas=betas, base_b=base)
    out["raise_ll"] = float(r.mean)
    out["raise_ais_same_examples"] = float(jnp.mean(neg_f_test[:len(v)]) - res.log_z)
    out["raise_examples"] = len(v)
    out["raise_wall"] = time.time() - t0
  return out


def fmt_row(r: dict) -> str:
  paper = PAPER.get(r["row"])
  return (f"| {r['row'].upper()} | {r.get('epochs', '?')} | {r['test_ll']:.2f} "
          f"({r['test_ll_lower']:.2f}, {r['test_ll_upper']:.2f}) | {r['train_ll']:.2f} | "
          f"{r['log_z']:.2f} | {r['ess']:.1f} | "
          f"{f'{paper:.2f}' if paper is not None else '-'} | {r.get('train_wall', float('nan')):.0f} | "
          f"{r['ais_wall']:.0f} | {r['gemm_wall']:.0f} | {r['ratio_wall']:.2f} / {r['ratio_cpu']:.2f} | "
          f"{r.get('short_ratio_cpu', float('nan')):.2f} |")


HEADER = ("| row | epochs | test log p (AIS, ±3 se bounds) | train log p | log Z | ESS | paper | "
          "train s | AIS s | GEMM s | AIS/GEMM wall / cpu | interleaved AIS/GEMM cpu |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


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
  p.add_argument("--prng", default="threefry2x32",
                 choices=PRNG_IMPLS,
                 help="PRNG implementation for training and AIS (the data's binarisation always "
                 "uses threefry2x32, so every row sees the same images)")
  p.add_argument("--quick", action="store_true",
                 help="smoke run: 2,000 training images, 1 epoch, 100 hidden, 300 temperatures")
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
  info = machine()
  print(json.dumps(info), flush=True)
  train_x, test_x, name = load_data(args)
  print(f"{name}: {train_x.shape[0]} train, {test_x.shape[0]} test images", flush=True)
  results = []
  for row in args.rows.split(","):
    path = params_path(row, args)
    if args.load:
      params, meta = load(path)
      print(f"{row}: loaded {path}", flush=True)
    else:
      params, meta = train(row, train_x, args)
      meta.update(epochs=args.epochs, lr=args.lr, lr_decay_start=args.lr_decay_start,
                  weight_decay=args.weight_decay,
                  batch_size=args.batch_size, dataset=name, n_train=int(train_x.shape[0]))
      save(params, path, meta)
      print(f"{row}: trained in {meta['train_wall']:.0f} s, saved {path}", flush=True)
    r = {**meta, **evaluate(row, params, train_x, test_x, args), "machine": info}
    results.append(r)
    print(json.dumps({k: v for k, v in r.items() if k != "recon"}), flush=True)
    with open(pathlib.Path(args.out_dir) / f"{name}_{row}_h{args.n_hidden}_e{args.epochs}.json",
              "w") as f:
      json.dump(r, f, indent=1)
  print(HEADER)
  for r in results:
    print(fmt_row(r))
  return results


if __name__ == "__main__":
  main()
