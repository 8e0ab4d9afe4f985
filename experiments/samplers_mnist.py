"""Better negative phases at equal wall time: PCD, parallel tempering, fast PCD and centered PCD.

Issue "better negative phases": a 784-500 RBM on MNIST (stochastic binarisation, a fixed draw),
each sampler trained by the library's loop (:func:`jdbn.train.loop.fit`) for the same wall-clock
budget, then scored on the test set by AIS (Salakhutdinov & Murray's 14,500 temperatures, 100
runs, training-set base rates; the estimate errs high) and by RAISE on the first ``--raise-n``
test images (Burda, Grosse & Salakhutdinov 2015; errs low), so each row is a sandwich. Literature
for PCD-500 at a much longer training: -101.26 (AIS) / -101.28 (RAISE) (Burda et al. 2015).

    python -m experiments.samplers_mnist --budget 300            # seconds of training per row
    python -m experiments.samplers_mnist --quick                 # digits, seconds, nothing written

Every key is derived from ``--seed`` (recorded); results go to experiments/results/ as JSON and to
benchmarks/HISTORY.md (the dated log) as a section.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
METHODS = ("pcd", "pt", "fpcd", "centered")


def _trainer(method: str, lr: float, n_chains: int, replicas: int):
  import optax
  from jdbn.samplers import tempering
  from jdbn.train import contrastive, variants
  opt = optax.sgd(lr, momentum=0.5)
  if method == "pcd":
    return contrastive.pcd(opt, n_chains=n_chains)
  if method == "pt":
    return variants.pt(opt, n_chains=n_chains, betas=tempering.ladder(replicas, 0.1))
  if method == "fpcd":
    return variants.fpcd(opt, n_chains=n_chains, fast_rate=lr)
  return variants.centered(opt, n_chains=n_chains)


def train(key, method: str, x, *, n_hidden: int, budget: float, batch_size: int, lr: float,
          n_chains: int, replicas: int, progress: bool):
  """One sampler trained for ``budget`` seconds of epochs; returns ``(rbm, rows)``."""
  import jax
  from jdbn import rbm
  from jdbn.models import centered
  from jdbn.train import loop
  k_init, k_state, k_epochs = jax.random.split(key, 3)
  params = rbm.init(k_init, x.shape[1], n_hidden, data=np.asarray(x))
  if method == "centered":
    params = centered.center(params, x)
  trainer = _trainer(method, lr, n_chains, replicas)
  state = trainer.init(k_state, params)
  t0 = time.perf_counter()

  def epoch_fn(e, s):
    s, info = trainer.epoch(jax.random.fold_in(k_epochs, e), s, x, batch_size)
    return s, {f: float(v) for f, v in zip(info._fields, info)}

  state, rows = loop.fit(state, epoch_fn, epochs=10_000, progress=method if progress else False,
                         callback=lambda e, s, row: time.perf_counter() - t0 >= budget)
  params = state.params
  return (centered.uncentered(params) if method == "centered" else params), rows


def score(key, params, train_x, test_x, *, raise_n: int, quick: bool) -> dict:
  import jax
  import jax.numpy as jnp
  from jdbn import likelihood
  k_ais, k_raise = jax.random.split(key)
  betas = np.linspace(0, 1, 501).astype(np.float32) if quick else None
  t0 = time.perf_counter()
  est = jax.block_until_ready(
      likelihood.estimate_log_likelihood(k_ais, params, test_x, data=train_x, betas=betas))
  ais_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  rai = jax.block_until_ready(likelihood.raise_log_likelihood(
      k_raise, params, test_x[:raise_n], data=train_x, betas=betas))
  raise_s = time.perf_counter() - t0
  ais_same = float(jnp.mean(est.log_p[:raise_n]))
  return {"ais_mean": float(est.mean), "ais_lower": float(est.lower),
          "ais_upper": float(est.upper), "log_z": float(est.ais.log_z),
          "raise_mean": float(rai.mean), "ais_mean_on_raise_subset": ais_same,
          "ais_seconds": ais_s, "raise_seconds": raise_s}


def run(args) -> dict:
  import jax
  from jdbn import data
  key = jax.random.key(args.seed)
  k_bin_train, k_bin_test, k_train, k_score = jax.random.split(key, 4)
  name = "digits" if args.quick else "mnist"
  train_x = data.binarize_stochastic(k_bin_train, data.load(name, "train", args.data_dir).x)
  test_x = data.binarize_stochastic(k_bin_test, data.load(name, "test", args.data_dir).x)
  out = {"seed": args.seed, "budget_seconds": args.budget, "n_hidden": args.n_hidden,
         "batch_size": args.batch_size, "lr": args.lr, "n_chains": args.n_chains,
         "replicas": args.replicas, "raise_n": args.raise_n, "dataset": name, "rows": {}}
  for i, method in enumerate(args.methods):
    params, rows = train(jax.random.fold_in(k_train, i), method, train_x,
                         n_hidden=args.n_hidden, budget=args.budget, batch_size=args.batch_size,
                         lr=args.lr, n_chains=args.n_chains, replicas=args.replicas,
                         progress=not args.no_progress)
    res = score(k_score, params, train_x, test_x, raise_n=args.raise_n, quick=args.quick)
    res.update(epochs=len(rows), train_seconds=sum(r["seconds"] for r in rows))
    out["rows"][method] = res
    print(f"{method}: {json.dumps(res)}", flush=True)
  return out


def report(out: dict, machine: str) -> str:
  from benchmarks import common as C
  rows = []
  for m, r in out["rows"].items():
    rows.append([m, str(r["epochs"]), f"{r['train_seconds']:.0f}",
                 f"{r['ais_mean']:.2f} [{r['ais_lower']:.2f}, {r['ais_upper']:.2f}]",
                 f"{r['ais_mean_on_raise_subset']:.2f}", f"{r['raise_mean']:.2f}"])
  best = max(out["rows"].values(), key=lambda r: r["raise_mean"])
  pcd = out["rows"].get("pcd")
  gain = "" if pcd is None else (f" Best RAISE minus PCD's: {best['raise_mean'] - pcd['raise_mean']:.2f}"
                                 f" nats (target: 10 or more).")
  return (f"{out['dataset']}, {out['n_hidden']} hidden units, stochastic binarisation, "
          f"{out['budget_seconds']} s of training per sampler (lr {out['lr']}, momentum 0.5, "
          f"batch {out['batch_size']}, {out['n_chains']} chains, PT {out['replicas']} replicas), "
          f"seed {out['seed']}. AIS: 100 runs, 14,500 temperatures, train base rates; RAISE: 1 "
          f"chain per image on the first {out['raise_n']} test images.{gain} Literature PCD: "
          f"-101.26 AIS / -101.28 RAISE (Burda et al. 2015, far longer training). {machine}\n\n" +
          C.markdown_table(["sampler", "epochs", "train s", "AIS test log p [±3se]",
                            "AIS on RAISE subset", "RAISE (lower)"], rows) + "\n")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--budget", type=float, default=300.0, help="training seconds per sampler")
  p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
  p.add_argument("--n-hidden", type=int, default=500)
  p.add_argument("--batch-size", type=int, default=100)
  p.add_argument("--lr", type=float, default=0.01)
  p.add_argument("--n-chains", type=int, default=100)
  p.add_argument("--replicas", type=int, default=10)
  p.add_argument("--raise-n", type=int, default=200)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--data-dir", default=None)
  p.add_argument("--quick", action="store_true", help="digits, 2 s each, short schedules")
  p.add_argument("--no-progress", action="store_true")
  args = p.parse_args(argv)
  if args.quick:
    args.budget, args.n_hidden, args.raise_n, args.n_chains = 2.0, 16, 20, 20
  out = run(args)
  if not args.quick:
    from benchmarks import common as C
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "samplers_mnist.json").write_text(json.dumps(out, indent=2) + "\n")
    C.append_section("Better negative phases at equal wall time (MNIST 784-500)",
                     report(out, C.format_machine(C.machine_info())))
  else:
    from benchmarks import common as C
    print(report(out, "quick run"))


if __name__ == "__main__":
  main()
