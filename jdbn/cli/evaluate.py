"""The ``jdbn evaluate`` subcommand: AIS log Z and the test log-likelihood of an RBM run; a DBN run
is handed to :func:`jdbn.cli.dbn.cmd_evaluate_dbn`, a DBM run to
:func:`jdbn.cli.dbm_run.cmd_evaluate_dbm`.

::

    jdbn evaluate CHECKPOINT [--dataset mnist] [--data-dir DIR] [--n-chains C]
                             [--n-betas B | --quick]
"""

from __future__ import annotations

import time
from typing import Any, Optional

import numpy as np

from jdbn.cli import dbm_run, dbn
from jdbn.cli.common import (CLIError, add_seed, ais_warning, apply_preprocess, betas_schedule,
                             data_dir_for, fmt, load_dataset, make_key, positive_int, warn)
from jdbn.cli.rbm import load_model, resolve_checkpoint


def add_evaluate(sub) -> None:
  p = sub.add_parser("evaluate", help="AIS log Z and test log-likelihood of an RBM (a DBM: "
                     "its variational bound)",
                     description="Estimate log Z by annealed importance sampling (Salakhutdinov & "
                     "Murray 2008) and the test log-likelihood in nats per example, with +-3 "
                     "standard-error bounds; exact log Z too when a layer is small enough.")
  p.add_argument("checkpoint", metavar="CHECKPOINT", help="run folder or checkpoint file")
  p.add_argument("--dataset", choices=("digits", "mnist"), default=None,
                 help="default: the dataset the model was trained on")
  p.add_argument("--data-dir", help="folder of the MNIST IDX files (default: $JDBN_MNIST_DIR)")
  p.add_argument("--split", choices=("train", "test"), default="test")
  p.add_argument("--n-chains", type=positive_int, default=100, help="AIS runs")
  g = p.add_mutually_exclusive_group()
  g.add_argument("--n-betas", type=positive_int, default=None,
                 help="inverse temperatures (default 14501, Salakhutdinov & Murray's schedule; "
                 "fewer thins it, more subdivides its steps)")
  g.add_argument("--quick", action="store_true", help="1000 betas (a rough estimate, seconds)")
  p.add_argument("--max-examples", type=positive_int, default=None,
                 help="score only the first this many examples")
  add_seed(p)
  p.set_defaults(func=cmd_evaluate)


def evaluate_model(key, params, test_x: np.ndarray, train_x: Optional[np.ndarray], *,
                   n_chains: int, n_betas: Optional[int]) -> dict:
  """AIS log Z, the mean log-likelihood of ``test_x`` and, where feasible, their exact values."""
  import jax
  import jax.numpy as jnp
  from jdbn import likelihood
  from jdbn import units as U

  out: dict[str, Any] = {"n_examples": int(test_x.shape[0])}
  betas = betas_schedule(n_betas)
  t0 = time.perf_counter()
  est = likelihood.estimate_log_likelihood(key, params, test_x, n_chains=n_chains, betas=betas,
                                           **({} if train_x is None else {"data": train_x}))
  res = est.ais
  out.update({"ais_n_chains": n_chains, "ais_n_betas": int(len(betas)),
              "log_z": float(res.log_z), "log_z_lower": float(res.log_z_lower),
              "log_z_upper": float(res.log_z_upper), "ais_ess": float(res.ess),
              "log_likelihood": float(est.mean), "log_likelihood_lower": float(est.lower),
              "log_likelihood_upper": float(est.upper),
              "ais_seconds": time.perf_counter() - t0})
  sizes = [u.n_states(n) for u, n in ((params.hidden, params.n_hidden),
                                      (params.visible, params.n_visible)) if u.enumerable]
  if sizes and min(sizes) <= 2**20:
    log_z = likelihood.exact_log_z(params)
    out["log_z_exact"] = float(log_z)
    out["log_likelihood_exact"] = float(
        jnp.mean(likelihood.log_likelihood(params, jnp.asarray(test_x), log_z)))
  if isinstance(params.visible, U.Bernoulli):
    # Exact (n_visible free energies per example) where cheap, else the one-unit estimate.
    exact = params.n_visible <= 256
    pl_x = jnp.asarray(test_x[:1000])
    pl = likelihood.pseudo_likelihood(None if exact else jax.random.fold_in(key, 1), params, pl_x)
    out["pseudo_likelihood"] = float(jnp.mean(pl))
    out["pseudo_likelihood_method"] = (f"{'exact' if exact else 'one random unit per example'}, "
                                       f"{pl_x.shape[0]} examples")
  return out


def print_evaluation(r: dict) -> None:
  print(f"log Z (AIS, {r['ais_n_chains']} chains, {r['ais_n_betas']:,} betas): "
        f"{fmt(r['log_z'])}  [{fmt(r['log_z_lower'])}, {fmt(r['log_z_upper'])}] "
        f"(+-3 s.e.; ESS {r['ais_ess']:.1f} of {r['ais_n_chains']}; {r['ais_seconds']:.1f} s)")
  warn(ais_warning(r["ais_ess"], r["ais_n_chains"]))
  if "log_z_exact" in r:
    print(f"log Z (exact):     {fmt(r['log_z_exact'])}")
  print(f"log-likelihood (AIS): {fmt(r['log_likelihood'])} nats/example  "
        f"[{fmt(r['log_likelihood_lower'])}, {fmt(r['log_likelihood_upper'])}] "
        f"over {r['n_examples']} examples")
  if "log_likelihood_exact" in r:
    print(f"log-likelihood (exact): {fmt(r['log_likelihood_exact'])} nats/example")
  if "pseudo_likelihood" in r:
    print(f"pseudo-log-likelihood: {fmt(r['pseudo_likelihood'])} nats/example "
          f"({r['pseudo_likelihood_method']})")


def cmd_evaluate(args) -> int:
  import jax
  from jdbn import units as U
  if dbn.is_dbn(args.checkpoint):
    return dbn.cmd_evaluate_dbn(args)
  if dbm_run.is_dbm(args.checkpoint):
    return dbm_run.cmd_evaluate_dbm(args)
  path = resolve_checkpoint(args.checkpoint)
  params, user = load_model(path)
  name = args.dataset or user.get("dataset")
  if name is None:
    raise CLIError(f"{path} does not record its dataset; pass --dataset")
  spec = dict(user.get("preprocess", {"binarize": "none"}))
  if isinstance(params.visible, U.Bernoulli) and spec.get("binarize", "none") == "none":
    # log p(v) is a probability only for binary v: score a fixed stochastic binarisation.
    spec["binarize"] = "stochastic"
    print("scoring a stochastic binarisation of the data (the model was trained on "
          "intensities; a likelihood needs binary vectors)")
  key = make_key(args)
  k_test, k_ais = jax.random.split(key)
  data_dir = data_dir_for(args.data_dir, name, user)
  test = load_dataset(name, args.split, data_dir)
  train = load_dataset(name, "train", data_dir)
  if test.x.shape[1] != params.n_visible:
    raise CLIError(f"{name} has {test.x.shape[1]} pixels but the model has {params.n_visible} "
                   f"visible units")
  test_x = apply_preprocess(k_test, np.asarray(test.x), spec)
  if args.max_examples:
    test_x = test_x[:args.max_examples]
  # AIS's base-rate model only needs the training set's means: no binarisation draw needed.
  base_spec = dict(spec, binarize="none" if spec["binarize"] == "stochastic" else spec["binarize"])
  train_x = apply_preprocess(None, np.asarray(train.x), base_spec)
  n_betas = 1000 if args.quick else args.n_betas
  print(f"evaluating {path} on {name} {args.split} ({len(test_x)} examples)")
  if "mean" in spec:
    print("(log-likelihoods are densities of the standardised pixels, as the model saw them)")
  print_evaluation(evaluate_model(k_ais, params, test_x, train_x, n_chains=args.n_chains,
                                  n_betas=n_betas))
  return 0
