"""The DBN subcommands of the ``jdbn`` command line: ``generate`` and the DBN side of ``evaluate``
here, ``train dbn`` in :mod:`jdbn.cli.dbn_train` (its names are re-exported, so this module is
the whole DBN command line, also under its old name ``jdbn.cli_dbn``).

::

    jdbn train dbn --dataset {digits,mnist} [--sizes 500,500,2000] --out DIR [--epochs E]
                   [--updown-epochs U] [--finetune-epochs F [--dropout P] [--max-norm C]] [...]
    jdbn generate MODEL [--per-class N | --labels 3,3,7 | --n-samples N] [--n-steps K]
                  [--out generated.png] [--seed S]
    jdbn evaluate MODEL [--dataset ...] [--split test] [--n-chains C] [--n-betas B | --quick]

``MODEL`` is a DBN run folder (holding ``dbn.npz``, and ``classifier.npz`` when it was
fine-tuned discriminatively) or a DBN model file. Each subcommand is an ``add_*`` function
declaring its arguments and a ``cmd_*`` function running it; the numbers come from
:mod:`jdbn.dbn`, :mod:`jdbn.likelihood` and :mod:`jdbn.train`.
"""

from __future__ import annotations

import pathlib
import time
from typing import Any

import numpy as np

from jdbn.cli.common import (CLIError, add_seed, ais_warning, betas_schedule, binarize,
                             data_dir_for, fmt, labels_list, load_dataset, make_key, positive_int,
                             warn, writable_file)
from jdbn.cli.dbn_run import (CLASSIFIER_NAME, FINETUNE_NAME, MODEL_NAME, N_CLASSES, UPDOWN_NAME,
                              generative_error, image_shape, is_dbn, load_classifier, load_model,
                              resolve_model, save_sheet)
from jdbn.cli.dbn_train import add_train_dbn, cmd_train_dbn

__all__ = ["MODEL_NAME", "UPDOWN_NAME", "FINETUNE_NAME", "CLASSIFIER_NAME", "N_CLASSES",
           "add_subcommands", "add_train_dbn", "cmd_train_dbn", "add_generate", "cmd_generate",
           "cmd_evaluate_dbn", "add_evaluate_dbn", "is_dbn", "load_model", "load_classifier",
           "generative_error"]


def add_subcommands(subparsers, train_models=None) -> None:
  """Adds ``generate`` to ``subparsers`` and, given the ``train`` group's subparsers, ``dbn``."""
  add_generate(subparsers)
  if train_models is not None:
    add_train_dbn(train_models)


# --------------------------------------------------------------------------- generate


def add_generate(sub) -> None:
  """``jdbn generate``: class-conditional (or free) samples from a DBN."""
  p = sub.add_parser(
      "generate", help="draw digits from a trained DBN, a row per class",
      description="Run Gibbs chains in the DBN's top RBM (label units clamped) and pass the "
      "result down through the generative weights; saves a PNG with a row per label.")
  p.add_argument("model", metavar="MODEL", help="DBN run folder or model file")
  g = p.add_mutually_exclusive_group()
  g.add_argument("--per-class", type=positive_int, default=None,
                 help="samples per label, one row per label (default 10)")
  g.add_argument("--labels", type=labels_list, default=None, help="explicit labels, one row")
  g.add_argument("--n-samples", type=positive_int, default=None,
                 help="free-running samples (labels not clamped)")
  p.add_argument("--n-steps", type=positive_int, default=1000, help="Gibbs sweeps")
  p.add_argument("--out", default="generated.png", help="PNG file to write")
  add_seed(p)
  p.set_defaults(func=cmd_generate)


def cmd_generate(args) -> int:
  import jax.numpy as jnp
  from jdbn import dbn as D
  writable_file(args.out)
  model, meta = load_model(args.model)
  shape = image_shape(model, meta)
  n_labels = D.n_labels(model)
  key = make_key(args)
  if not n_labels and (args.labels is not None or args.per_class is not None):
    raise CLIError("this DBN has no label units, so --labels and --per-class do not apply; "
                   "use --n-samples for free-running samples")
  if args.n_samples is not None or not n_labels:
    n = args.n_samples or 100
    images, n_rows = D.generate(key, model, n_steps=args.n_steps, n_samples=n), 1
  else:
    if args.labels is not None:
      labels = jnp.asarray(args.labels, jnp.int32)
      n_rows = 1
    else:
      labels = jnp.repeat(jnp.arange(n_labels), args.per_class or 10)
      n_rows = n_labels
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= n_labels):
      raise CLIError(f"labels must lie in 0..{n_labels - 1}")
    images = D.generate(key, model, labels, n_steps=args.n_steps)
  path = save_sheet(args.out, images, n_rows, shape)
  print(f"{images.shape[0]} samples after {args.n_steps} Gibbs sweeps: {path}")
  return 0


# --------------------------------------------------------------------------- evaluate


def cmd_evaluate_dbn(args) -> int:
  """``jdbn evaluate`` on a DBN: generative classification error and a log-likelihood bound.

  Uses the arguments of ``jdbn evaluate`` (``checkpoint``, ``--dataset``, ``--data-dir``,
  ``--split``, ``--n-chains``, ``--n-betas``/``--quick``, ``--max-examples``, ``--seed``). The bound
  is Salakhutdinov & Murray's (2008) variational lower bound on ``log p(v)`` with the top RBM's
  ``log Z`` from AIS (:func:`jdbn.dbn.log_likelihood_bound`), on a stochastic binarisation of the
  data; it is printed with the AIS interval carried through.
  """
  import jax
  model, meta = load_model(args.checkpoint)
  name, data_dir, x, y = _test_data(args, model, meta)
  spec = meta.get("preprocess", {"binarize": "none"})
  key = make_key(args)
  k_x, k_b, k_ais, k_bound = jax.random.split(key, 4)
  result: dict[str, Any] = {"n_examples": int(len(x))}
  print(f"evaluating the DBN {resolve_model(args.checkpoint)} on {name} {args.split} "
        f"({len(x)} examples)")
  x_in = binarize(k_x, x, spec.get("binarize", "none"))
  result.update(_classification_errors(args, model, x_in, y))
  # Likelihood bound on binary data.
  xb = binarize(k_b, x, "stochastic")
  train = load_dataset(name, "train", data_dir)
  result.update(_likelihood_bound(k_ais, k_bound, model, xb, train, args))
  return 0


def _test_data(args, model, meta: dict):
  """``(dataset name, data folder, x, y)`` of the examples ``jdbn evaluate`` scores."""
  from jdbn import dbn as D
  name = args.dataset or meta.get("dataset")
  if name is None:
    raise CLIError("the model does not record its dataset; pass --dataset")
  data_dir = data_dir_for(args.data_dir, name, meta)
  test = load_dataset(name, args.split, data_dir)
  n_in = D.layer_sizes(model)[0]
  if test.x.shape[1] != n_in:
    raise CLIError(f"{name} has {test.x.shape[1]} pixels but the DBN has {n_in} inputs")
  x, y = np.asarray(test.x), np.asarray(test.y)
  if args.max_examples:
    x, y = x[:args.max_examples], y[:args.max_examples]
  return name, data_dir, x, y


def _classification_errors(args, model, x, y) -> dict:
  """The generative classifier's error (labelled DBNs) and the fine-tuned network's (if any)."""
  from jdbn import dbn as D
  result: dict[str, Any] = {}
  if D.n_labels(model):
    err = generative_error(model, x, y)
    result["generative_error"] = err
    print(f"generative classification error: {err:.4f} ({round(err * len(x))} of {len(x)})")
  folder = pathlib.Path(args.checkpoint)
  classifier = load_classifier(folder) if folder.is_dir() else None
  if classifier is not None:
    from jdbn.train import finetune as F
    err = F.error_rate(*classifier, x, y)
    result["finetuned_error"] = err
    print(f"fine-tuned network's classification error: {err:.4f} ({round(err * len(x))} of "
          f"{len(x)})")
  return result


def _likelihood_bound(k_ais, k_bound, model, xb: np.ndarray, train, args) -> dict:
  """AIS on the top RBM, then the variational bound on the binary ``xb``, over the AIS interval."""
  import jax.numpy as jnp
  from jdbn.likelihood import dbn as LD
  betas = betas_schedule(1000 if args.quick else args.n_betas)
  t0 = time.perf_counter()
  res = LD.top_ais(k_ais, model, jnp.asarray(train.x[:10_000]), train.y[:10_000],
                   n_chains=args.n_chains, betas=betas)
  bounds = np.asarray(LD.log_likelihood_bounds(k_bound, model, jnp.asarray(xb), res.log_z))
  mean = float(bounds.mean())
  shift = float(res.log_z) - np.array([float(res.log_z_upper), float(res.log_z_lower)])
  result = {"log_z": float(res.log_z), "log_z_lower": float(res.log_z_lower),
            "log_z_upper": float(res.log_z_upper), "ais_n_betas": int(len(betas)),
            "ais_ess": float(res.ess),
            "ais_n_chains": args.n_chains, "log_likelihood_bound": mean,
            "log_likelihood_bound_interval": [mean + shift[0], mean + shift[1]],
            "seconds": time.perf_counter() - t0}
  print(f"top RBM log Z (AIS, {args.n_chains} chains, {len(betas):,} betas): "
        f"{fmt(float(res.log_z))} [{fmt(float(res.log_z_lower))}, "
        f"{fmt(float(res.log_z_upper))}] (+-3 s.e.; ESS {result['ais_ess']:.1f} of "
        f"{args.n_chains})")
  warn(ais_warning(result["ais_ess"], args.n_chains))
  print(f"log-likelihood lower bound (Salakhutdinov & Murray 2008): {fmt(mean)} "
        f"nats/example [{fmt(mean + shift[0])}, {fmt(mean + shift[1])}] over the AIS "
        f"interval, {result['seconds']:.1f} s")
  return result


def add_evaluate_dbn(sub, name: str = "evaluate-dbn") -> None:
  """A separate ``evaluate-dbn`` subcommand, for wiring without touching ``cmd_evaluate``."""
  p = sub.add_parser(name, help="generative classification error and log-likelihood bound of a "
                     "DBN", description=cmd_evaluate_dbn.__doc__.split("\n\n")[0])
  p.add_argument("checkpoint", metavar="MODEL", help="DBN run folder or model file")
  p.add_argument("--dataset", choices=("digits", "mnist"), default=None)
  p.add_argument("--data-dir")
  p.add_argument("--split", choices=("train", "test"), default="test")
  p.add_argument("--n-chains", type=positive_int, default=100)
  g = p.add_mutually_exclusive_group()
  g.add_argument("--n-betas", type=positive_int, default=None)
  g.add_argument("--quick", action="store_true")
  p.add_argument("--max-examples", type=positive_int, default=None)
  add_seed(p)
  p.set_defaults(func=cmd_evaluate_dbn)
