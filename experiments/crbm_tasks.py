"""Conditional RBMs on two small tasks, quality against the baselines the issue names.

(a) **Bouncing balls** (Sutskever, Hinton & Taylor 2009; :mod:`jdbn.datasets.bouncing_balls`):
a CRBM of order 3 over 15x15 frames, trained by CD-1 on generated videos; one-step prediction of
the next frame of held-out videos (the mean over chains of ``E[y | h, x]`` after ``k`` sweeps with
the context fixed) against copying the last frame, by mean squared error per pixel; a filmstrip of
true and generated frames.

(b) **MNIST completion**: the bottom half ``y`` (392 pixels) of a binarised digit from its top
half ``x``, against independent per-pixel logistic regression on the same input (Optax Adam, full
batch), whose log-loss of the whole half is the sum of its per-pixel log-losses. Two figures per
pixel: the structured one, the CRBM's test ``-log p(y | x) / 392`` of the whole half
(:func:`jdbn.likelihood.crbm.log_conditional`: per-example AIS, and RAISE, the stochastic lower
bound on ``log p`` that the headline uses, so the CRBM's figure errs against it), and the mean
log-loss of the CRBM's marginals ``p(y_i = 1 | x)`` (``E[y | h, x]`` after ``k`` sweeps from a
blank bottom half, averaged over chains) pixel by pixel, the figure an independent model is built
to win. Completed digits as a picture.

Both CRBMs are trained by the library's loop (:func:`jdbn.train.loop.fit`). Every seed is recorded
in the JSON; a full run writes ``crbm_tasks.json``, ``.md`` and both figures to
experiments/results/ (:mod:`experiments.record`); ``--quick`` trains tiny models for a few epochs
and writes nothing::

    python -m experiments.crbm_tasks [--quick]
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
from jdbn import data, viz
from jdbn.likelihood import crbm as LC
from jdbn.datasets import bouncing_balls as BB
from jdbn.models import crbm as C
from jdbn.samplers import sequence as S
from jdbn.train import crbm as TC
from jdbn.train import loop
BALLS = dict(seed_train=0, seed_test=1, seed_init=2, seed_train_keys=3, seed_predict=4,
             seed_generate=5, n_train=150, n_test=20, n_frames=40, res=15, order=3,
             n_hidden=200, epochs=30, batch=50, lr=0.05, momentum=0.9, k_train=1,
             k_predict=20, n_chains=10)
MNIST = dict(seed_init=10, seed_train_keys=11, seed_predict=12, seed_logreg=13, seed_ais=14,
             n_train=10_000, n_test=1_000, n_hidden=300, epochs=30, batch=50, lr=0.05,
             momentum=0.9, k_train=10, start="zeros", n_chains=20, logreg_steps=500,
             logreg_lr=0.01, ais_examples=500, ais_chains=16, raise_chains=4,
             ais_betas=1_000)
#: ``--quick``: the same tasks at a tiny size, a few epochs (a smoke run, not a result)
QUICK = {"balls": dict(BALLS, n_train=10, n_test=4, n_frames=12, res=8, n_hidden=20, epochs=2,
                       batch=20, k_predict=2, n_chains=2),
         "mnist": dict(MNIST, n_train=500, n_test=100, n_hidden=20, epochs=2, k_train=2,
                       n_chains=2, logreg_steps=20, ais_chains=2, raise_chains=1,
                       ais_betas=50)}


def _train(trainer, params, v, epochs, batch, seed):
  """``epochs`` epochs of ``trainer`` by :func:`jdbn.train.loop.fit`, epoch ``e`` keyed
  ``fold_in(key(seed), e)``: ``(params, the last epoch's recon_error)``."""
  key = jax.random.key(seed)

  def epoch_fn(e, state):
    state, info = trainer.epoch(jax.random.fold_in(key, e), state, v, batch)
    return state, {name: float(x) for name, x in info._asdict().items()}

  state, rows = loop.fit(trainer.init(key, params), epoch_fn, epochs=epochs, progress=False)
  return state.params, rows[-1]["recon_error"]


def balls(out: pathlib.Path, c: dict = BALLS) -> dict:
  train = BB.videos(jax.random.key(c["seed_train"]), c["n_train"], c["n_frames"], res=c["res"])
  test = BB.videos(jax.random.key(c["seed_test"]), c["n_test"], c["n_frames"], res=c["res"])
  v = S.windows(train, c["order"]).reshape(-1, (c["order"] + 1) * c["res"]**2)
  d = c["res"]**2
  params = C.init(jax.random.key(c["seed_init"]), c["order"] * d, d, c["n_hidden"], data=v)
  t0 = time.perf_counter()
  params, recon = _train(TC.cd(optax.sgd(c["lr"], momentum=c["momentum"]), c["k_train"]),
                         params, v, c["epochs"], c["batch"], c["seed_train_keys"])
  train_s = time.perf_counter() - t0
  pairs = S.windows(test, c["order"]).reshape(-1, (c["order"] + 1) * d)
  x, y = C.split(params, pairs)
  last = x[:, -d:]

  @jax.jit
  def predict(key):
    keys = jax.random.split(key, c["n_chains"])
    means = jax.vmap(lambda k: S.sample(k, params, x, c["k_predict"], y0=last,
                                        mean_last=True))(keys)
    return jnp.mean(means, 0)

  pred = predict(jax.random.key(c["seed_predict"]))
  mse = float(jnp.mean(jnp.square(pred - y)))
  mse_copy = float(jnp.mean(jnp.square(last - y)))
  gen = S.generate(jax.random.key(c["seed_generate"]), params, test[:4, :c["order"]],
                   c["n_frames"] - c["order"], k=c["k_predict"])
  n_show = 16
  rows = np.concatenate([np.asarray(test[:4, c["order"]:c["order"] + n_show]),
                         np.asarray(gen[:, :n_show])], 0)[[0, 4, 1, 5, 2, 6, 3, 7]]
  viz.save_rows(out / "crbm_balls_filmstrip.png", rows, (c["res"], c["res"]), zoom=3)
  return dict(config=c, mse_crbm=mse, mse_copy_last=mse_copy, reduction=1 - mse / mse_copy,
              final_recon=recon, train_seconds=train_s, figure="crbm_balls_filmstrip.png")


def _log_loss(p, y):
  p = jnp.clip(p, 1e-6, 1 - 1e-6)
  return float(-jnp.mean(y * jnp.log(p) + (1 - y) * jnp.log1p(-p)))


def _logreg(x, y, steps, lr, seed):
  """Independent per-pixel logistic regressions ``p(y_i | x) = sigmoid(x w_i + a_i)``."""
  params = {"w": jnp.zeros((x.shape[1], y.shape[1])), "a": jnp.zeros(y.shape[1])}
  del seed  # zero start, full batch: deterministic (the seed is recorded for the table)
  opt = optax.adam(lr)

  def loss(p):
    z = x @ p["w"] + p["a"]
    return jnp.mean(optax.sigmoid_binary_cross_entropy(z, y))

  @jax.jit
  def run(p):
    def step(carry, _):
      p, s = carry
      g = jax.grad(loss)(p)
      u, s = opt.update(g, s, p)
      return (optax.apply_updates(p, u), s), None
    return jax.lax.scan(step, (p, opt.init(p)), None, length=steps)[0][0]

  return run(params)


def mnist(out: pathlib.Path, mnist_dir, c: dict = MNIST) -> dict:
  train = data.binarize(data.load("mnist", "train", mnist_dir).x[:c["n_train"]])
  test = data.binarize(data.load("mnist", "test", mnist_dir).x[:c["n_test"]])
  half = 392
  params = C.init(jax.random.key(c["seed_init"]), half, half, c["n_hidden"], data=train)
  t0 = time.perf_counter()
  trainer = TC.cd(optax.sgd(c["lr"], momentum=c["momentum"]), c["k_train"], start=c["start"])
  params, recon = _train(trainer, params, train, c["epochs"], c["batch"], c["seed_train_keys"])
  train_s = time.perf_counter() - t0
  x, y = test[:, :half], test[:, half:]

  @jax.jit
  def marginals(key):
    keys = jax.random.split(key, c["n_chains"])
    return jnp.mean(jax.vmap(lambda k: S.sample(k, params, x, c["k_train"], mean_last=True))(keys),
                    0)

  p_crbm = marginals(jax.random.key(c["seed_predict"]))
  t0 = time.perf_counter()
  lr_params = _logreg(train[:, :half], train[:, half:], c["logreg_steps"], c["logreg_lr"],
                      c["seed_logreg"])
  logreg_s = time.perf_counter() - t0
  p_lr = jax.nn.sigmoid(x @ lr_params["w"] + lr_params["a"])
  loss_crbm, loss_lr = _log_loss(p_crbm, y), _log_loss(p_lr, y)
  t0 = time.perf_counter()
  sub = test[:c["ais_examples"]]
  est = LC.log_conditional(jax.random.key(c["seed_ais"]), params, sub, n_chains=c["ais_chains"],
                           raise_chains=c["raise_chains"],
                           betas=np.linspace(0.0, 1.0, c["ais_betas"] + 1))
  joint = dict(ais=float(-jnp.mean(est.log_p)) / half,
               raise_=float(-jnp.mean(est.raise_log_p)) / half,
               ais_lower=float(-jnp.mean(est.log_p_upper)) / half,
               median_ess=float(jnp.median(est.ess)), seconds=time.perf_counter() - t0)
  rows = np.stack([np.asarray(test[:8]), np.asarray(jnp.concatenate([x[:8], p_crbm[:8]], 1)),
                   np.asarray(jnp.concatenate([x[:8], p_lr[:8]], 1))], 0)
  viz.save_rows(out / "crbm_mnist_completion.png", rows, (28, 28), zoom=2)
  return dict(config=c, log_loss_crbm=loss_crbm, log_loss_logreg=loss_lr,
              reduction=1 - loss_crbm / loss_lr, joint_log_loss_crbm=joint,
              log_loss_logreg_ais_examples=_log_loss(p_lr[:len(sub)], y[:len(sub)]),
              joint_reduction=1 - joint["raise_"] / _log_loss(p_lr[:len(sub)], y[:len(sub)]),
              final_recon=recon,
              train_seconds=train_s, logreg_seconds=logreg_s, figure="crbm_mnist_completion.png")


def _markdown(res: dict) -> str:
  b, m = res["balls"], res["mnist"]
  lines = [
      "## Conditional RBMs: bouncing balls and MNIST completion", "",
      f"Machine: {res['machine_short']}, {res['date']}; {res['total_seconds']:.0f} s in all. Seeds "
      "and settings: `experiments/results/crbm_tasks.json`.", "",
      "| task | CRBM | baseline | CRBM below baseline | target |", "|---|---|---|---|---|",
      f"| bouncing balls {b['config']['res']}x{b['config']['res']}, order "
      f"{b['config']['order']}: one-step MSE/pixel | {b['mse_crbm']:.5f} | "
      f"{b['mse_copy_last']:.5f} (copy last frame) | {100 * b['reduction']:.1f}% | 30% |",
  ]
  if m is not None:
    j = m["joint_log_loss_crbm"]
    lines.append(f"| MNIST bottom half from top: test log-loss/pixel of the whole half, "
                 f"`-log p(y \\| x) / 392` (RAISE; AIS {j['ais']:.4f}; median ESS "
                 f"{j['median_ess']:.1f} of {m['config']['ais_chains']} chains) | "
                 f"{j['raise_']:.4f} | "
                 f"{m['log_loss_logreg_ais_examples']:.4f} (per-pixel logistic, the same "
                 f"{m['config']['ais_examples']} images) | {100 * m['joint_reduction']:.1f}% | "
                 "10% |")
    lines.append(f"| MNIST bottom half from top: mean log-loss of the marginals `p(y_i \\| x)` "
                 f"| {m['log_loss_crbm']:.4f} | {m['log_loss_logreg']:.4f} (per-pixel logistic) "
                 f"| {100 * m['reduction']:.1f}% | - |")
  lines += ["", "Figures: `experiments/results/crbm_balls_filmstrip.png` (rows: true, "
            "generated; alternating per video) and `experiments/results/crbm_mnist_completion.png` "
            "(rows: digit, "
            "CRBM marginals, logistic marginals)."]
  return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--mnist-dir", default=None, help="MNIST IDX folder (default $JDBN_MNIST_DIR)")
  ap.add_argument("--quick", action="store_true", help="tiny models, seconds; writes nothing")
  return ap


def main(argv=None) -> dict:
  args = parser().parse_args(argv)
  configs = QUICK if args.quick else {"balls": BALLS, "mnist": MNIST}
  t0 = time.perf_counter()
  with tempfile.TemporaryDirectory() as scratch:
    out = pathlib.Path(scratch) if args.quick else record.RESULTS
    out.mkdir(parents=True, exist_ok=True)
    res = {"balls": balls(out, configs["balls"])}
    print(json.dumps(res["balls"]), flush=True)
    try:
      res["mnist"] = mnist(out, args.mnist_dir, configs["mnist"])
    except (FileNotFoundError, OSError) as err:
      print(f"MNIST not found ({err}); the completion task is skipped")
      res["mnist"] = None
  print(json.dumps(res["mnist"]), flush=True)
  from benchmarks import common  # noqa: PLC0415 (only for the machine line)
  from benchmarks import record as bench_record  # noqa: PLC0415
  info = common.machine_info()
  res["machine"], res["machine_short"] = info, bench_record.short_machine(info)
  res["date"] = bench_record.today()
  res["total_seconds"] = time.perf_counter() - t0
  if not args.quick:
    record.write("crbm_tasks", res, _markdown(res))
  print(_markdown(res))
  return res


if __name__ == "__main__":
  main()
