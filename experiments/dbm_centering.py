"""Does a centered DBM train without greedy pretraining? Plain against centered, the same start.

Issue 26 (Deep Boltzmann Machines): Montavon & Müller (2012) and Melchior, Fischer & Wiskott (2016)
report that centering lets a DBM learn from a random start, where the plain DBM needs
Salakhutdinov & Hinton's greedy pretraining. Here both train with the library's DBM trainer
(:func:`jdbn.train.dbm.pcd` and :func:`jdbn.train.dbm.centered`: mean-field positive phase,
persistent chains) from one random DBM (weights ``N(0, 0.01^2)``, visible biases at the data's
base rates, hidden biases zero; the centered one is :func:`jdbn.models.centered.center` of it, the
same distribution), on the same binarised MNIST subset, with the same rate, epochs, chains and
keys. Each is scored on the test set by the mean-field variational bound with an AIS ``log Z``
(:func:`jdbn.likelihood.dbm.variational_bound`: 100 runs, Salakhutdinov & Murray's 14,500
temperatures, base rates from the training subset; the centered DBM scored as its uncentered
equivalent), and by the test error of a softmax regression on its mean-field features ``[q_1,
..., q_L]`` (how much the hidden layers learned).

    python -m experiments.dbm_centering --seed 0      # 784-500-500, MNIST[:10000], 20 epochs
    python -m experiments.dbm_centering --quick       # digits, seconds, nothing written

Every key derives from ``--seed`` (recorded); a full run merges its row (``seed<N>``) into
``experiments/results/dbm_centering.json`` and ``.md`` (:mod:`experiments.record`).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

METHODS = ("plain", "centered")
TITLE = "Centered against plain DBMs without pretraining (MNIST)"


def initial_dbm(key, sizes, train_x):
  """The common start: ``N(0, 0.01^2)`` weights, visible biases at the data's base rates."""
  import jax.numpy as jnp
  from jdbn import units as U
  from jdbn.models import dbm
  model = dbm.init(key, sizes, weight_scale=0.01)
  b = U.Bernoulli().base_rate(jnp.mean(train_x, axis=0))
  return model.replace(biases=(b,) + tuple(model.biases[1:]))


def train(key, method: str, model, x, args):
  """One method's training; returns ``(dbm, history, diverged)`` (the uncentered DBM)."""
  import jax
  import optax
  from jdbn.models import centered
  from jdbn.train import dbm as TD
  from jdbn.train import loop
  k_state, k_epochs = jax.random.split(key)
  opt = optax.sgd(args.lr, momentum=args.momentum)
  common = dict(n_chains=args.n_chains, k=args.k, max_iter=args.mf_max_iter)
  if method == "centered":
    model = centered.center(model, x)
    trainer = TD.centered(opt, offset_rate=args.offset_rate, **common)
  else:
    trainer = TD.pcd(opt, **common)
  state = trainer.init(k_state, model)

  def epoch_fn(e, s):
    s, info = trainer.epoch(jax.random.fold_in(k_epochs, e), s, x, args.batch_size)
    return s, {f: float(v) for f, v in zip(info._fields, info)}

  try:
    state, rows = loop.fit(state, epoch_fn, epochs=args.epochs,
                           progress=False if args.no_progress else method)
    diverged = None
  except loop.TrainingDiverged as err:  # the last good state is scored
    state, rows, diverged = err.state, err.history, str(err).split("\n")[0]
  return state.params.uncentered(), rows, diverged


def linear_error(key, model, train_x, train_y, test_x, test_y, *, steps: int, max_iter: int):
  """Test error of a softmax regression (Adam, full batch) on the mean-field ``[q_1, ..., q_L]``."""
  import jax
  import jax.numpy as jnp
  import optax
  from jdbn.models import dbm

  run = jax.jit(lambda m, v: jnp.concatenate(dbm.mean_field(m, v, max_iter=max_iter).states[1:],
                                             -1))

  def feats(x):
    return jnp.concatenate([run(model, x[i:i + 1000]) for i in range(0, x.shape[0], 1000)])

  f_train, f_test = feats(train_x), feats(test_x)
  params = {"w": 0.01 * jax.random.normal(key, (f_train.shape[1], 10)), "b": jnp.zeros(10)}
  opt = optax.chain(optax.add_decayed_weights(1e-4), optax.adam(0.01))

  def loss(p):
    logits = f_train @ p["w"] + p["b"]
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, train_y))

  def step(carry, _):
    p, s = carry
    updates, s = opt.update(jax.grad(loss)(p), s, p)
    return (optax.apply_updates(p, updates), s), None

  (params, _), _ = jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), None, steps))(params)
  pred = jnp.argmax(f_test @ params["w"] + params["b"], -1)
  return float(jnp.mean(pred != test_y))


def score(key, model, train_x, train_y, test_x, test_y, args) -> dict:
  import jax
  from jdbn.likelihood import dbm as LD
  from jdbn.train import dbm as TD
  k_ais, k_lin = jax.random.split(key)
  betas = np.linspace(0, 1, 1001).astype(np.float32) if args.quick else None
  t0 = time.perf_counter()
  est = LD.variational_bound(k_ais, model, test_x, base_data=train_x, n_chains=args.ais_chains,
                             betas=betas)
  out = {"bound": float(est.mean), "bound_lower": float(est.lower),
         "bound_upper": float(est.upper), "log_z": float(est.ais.log_z),
         "mf_converged": est.mean_field_converged, "ais_seconds": time.perf_counter() - t0}
  report = TD.mean_field_report(model, test_x, max_iter=args.mf_max_iter)
  out["mf_sweeps"] = report["mf_sweeps"]
  out["linear_error"] = linear_error(k_lin, model, train_x, train_y, test_x, test_y,
                                     steps=args.linear_steps, max_iter=100)
  return out


def load(args):
  """The binarised subsets (a fixed stochastic draw from the seed) and their labels."""
  import jax
  import jax.numpy as jnp
  from jdbn import data
  name = "digits" if args.quick else "mnist"
  k_train, k_test = jax.random.split(jax.random.fold_in(jax.random.key(args.seed), 1))
  train, test = data.load(name, "train", args.data_dir), data.load(name, "test", args.data_dir)
  n = min(args.n_train, train.x.shape[0])
  train_x = data.binarize_stochastic(k_train, train.x[:n])
  test_x = data.binarize_stochastic(k_test, test.x)
  return name, train_x, jnp.asarray(train.y[:n]), test_x, jnp.asarray(test.y)


def run(args) -> dict:
  import jax
  name, train_x, train_y, test_x, test_y = load(args)
  sizes = (train_x.shape[1],) + tuple(args.hidden)
  k_init, k_train, k_score = jax.random.split(jax.random.key(args.seed), 3)
  start = initial_dbm(k_init, sizes, train_x)
  out = {"seed": args.seed, "dataset": name, "sizes": list(sizes), "n_train": int(len(train_x)),
         "n_test": int(len(test_x)), "epochs": args.epochs, "lr": args.lr,
         "momentum": args.momentum, "batch_size": args.batch_size, "n_chains": args.n_chains,
         "k": args.k, "mf_max_iter": args.mf_max_iter, "offset_rate": args.offset_rate,
         "ais_chains": args.ais_chains, "ais_temperatures": 1001 if args.quick else 14_500,
         "binarize": "stochastic (fixed draw)", "pretraining": None,
         "rows": {}}
  for method in args.methods:
    t0 = time.perf_counter()
    model, rows, diverged = train(k_train, method, start, train_x, args)
    seconds = time.perf_counter() - t0
    res = score(k_score, model, train_x, train_y, test_x, test_y, args)
    res.update(train_seconds=seconds, epochs_done=len(rows), diverged=diverged,
               final_loss=rows[-1]["loss"] if rows else None,
               final_recon=rows[-1]["recon_error"] if rows else None)
    out["rows"][method] = res
    print(f"{method}: {json.dumps(res)}", flush=True)
  return out


def render(every: dict) -> str:
  """The markdown of every recorded seed."""
  from benchmarks import common as C
  lines, table = [f"## {TITLE}\n"], []
  for key, out in sorted(every.items()):
    for m, r in out["rows"].items():
      table.append([key, m, f"{r['bound']:.2f} [{r['bound_lower']:.2f}, {r['bound_upper']:.2f}]",
                    f"{100 * r['linear_error']:.2f}%", f"{r['mf_sweeps']:.1f}",
                    f"{r['epochs_done']}" + (" (diverged)" if r["diverged"] else ""),
                    f"{r['train_seconds']:.0f}"])
  any_run = next(iter(every.values()))
  lines.append(
      f"{any_run['dataset']}[:{any_run['n_train']}] binarised (a fixed stochastic draw), DBM "
      f"{'-'.join(map(str, any_run['sizes']))} from a random start (no pretraining; weights "
      f"N(0, 0.01^2), visible biases at the data's base rates), {any_run['epochs']} epochs of "
      f"SGD (rate {any_run['lr']}, momentum {any_run['momentum']}, batch "
      f"{any_run['batch_size']}), {any_run['n_chains']} persistent chains, {any_run['k']} Gibbs "
      f"sweeps per update, mean-field to 1e-6 or {any_run['mf_max_iter']} sweeps; centered: "
      f"offsets to the positive phase's means at rate {any_run['offset_rate']}. Test bound: "
      f"mean-field bound with AIS log Z ({any_run['ais_chains']} runs, "
      f"{any_run['ais_temperatures']:,} temperatures; "
      f"[±3 s.e. of log Z]); linear error: softmax regression on the mean-field [q1, q2] of the "
      f"{any_run['n_train']} training images, on all {any_run['n_test']} test images. "
      f"{any_run.get('machine', '')}\n")
  lines.append(C.markdown_table(["run", "model", "test bound (nats)", "linear error",
                                 "MF sweeps (test)", "epochs", "train s"], table))
  return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
  p.add_argument("--hidden", type=lambda s: tuple(int(n) for n in s.split(",")),
                 default=(500, 500), help="hidden layer sizes, e.g. 500,500")
  p.add_argument("--n-train", type=int, default=10_000)
  p.add_argument("--epochs", type=int, default=20)
  p.add_argument("--lr", type=float, default=0.005)
  p.add_argument("--momentum", type=float, default=0.9)
  p.add_argument("--batch-size", type=int, default=100)
  p.add_argument("--n-chains", type=int, default=100)
  p.add_argument("--k", type=int, default=5)
  p.add_argument("--mf-max-iter", type=int, default=10)
  p.add_argument("--offset-rate", type=float, default=0.01)
  p.add_argument("--ais-chains", type=int, default=100)
  p.add_argument("--linear-steps", type=int, default=300)
  p.add_argument("--data-dir", default=None, help="MNIST idx files (or JDBN_MNIST_DIR)")
  p.add_argument("--quick", action="store_true", help="digits, 16-16 hidden, 3 epochs")
  p.add_argument("--no-progress", action="store_true")
  return p


def main(argv=None) -> dict:
  args = parser().parse_args(argv)
  if args.quick:
    args.hidden, args.epochs, args.ais_chains, args.linear_steps = (16, 16), 3, 20, 50
    args.batch_size, args.n_chains = 20, 20
  out = run(args)
  if args.quick:
    print(render({"quick": out}))
  else:
    from benchmarks import common as C
    from experiments import record
    out["machine"] = C.format_machine(C.machine_info())
    record.merge("dbm_centering", {f"seed{args.seed}": _with_earlier(out)}, render)
  return out


def _with_earlier(out: dict) -> dict:
  """``out`` with the other methods' rows of an earlier run of this seed and these settings (so
  that ``--methods plain`` and ``--methods centered`` may run as two commands)."""
  from experiments import record
  path = record.RESULTS / "dbm_centering.json"
  old = json.loads(path.read_text()).get(f"seed{out['seed']}") if path.is_file() else None
  same = old is not None and all(old.get(k) == v for k, v in out.items()
                                 if k not in ("rows", "machine"))
  return {**out, "rows": {**old["rows"], **out["rows"]}} if same else out


if __name__ == "__main__":
  main()
