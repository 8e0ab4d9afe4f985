"""The ``jdbn`` command line: train, sample, evaluate, demo.

::

    jdbn demo [--out DIR] [--epochs E]
    jdbn train rbm --dataset {digits,mnist} [--data-dir DIR] --n-hidden N --out DIR [...]
    jdbn train dbm --dataset {digits,mnist} [--hidden 500,1000] --out DIR [...]
    jdbn train crbm --dataset {digits,mnist,photos} [--filters K --filter-size R --pool C] --out DIR
    jdbn train cdbn --dataset {digits,mnist,photos} [--filters 24,40 ...] --out DIR [...]
    jdbn sample CHECKPOINT [--n-samples N] [--n-steps K] [--out samples.png]
                           [--seed S] [--prng IMPL]
    jdbn evaluate CHECKPOINT [--dataset mnist] [--data-dir DIR] [--n-chains C]
                             [--n-betas B | --quick]

``CHECKPOINT`` is a run folder (holding ``checkpoint.npz``) or a checkpoint file. Each subcommand is
one ``add_*`` function that declares its arguments and one ``cmd_*`` function that runs it; a new
subcommand is a pair of these plus a line in :func:`build_parser`. The CLI only wires the library
together: every number it prints comes from ``jdbn.train``, ``jdbn.likelihood`` and friends.

This module assembles the parser and runs it. The subcommands live in :mod:`jdbn.cli.rbm`
(``train rbm``, ``sample``), :mod:`jdbn.cli.evaluate`, :mod:`jdbn.cli.demo` and
:mod:`jdbn.cli.dbn` (``train dbn``, ``generate``, a DBN's ``evaluate``), :mod:`jdbn.cli.dbm`
(``train dbm``; its fine-tuning stage in :mod:`jdbn.cli.dbm_finetune`, a DBM run's ``evaluate``
and ``sample`` in :mod:`jdbn.cli.dbm_run`), :mod:`jdbn.cli.conv` (``train crbm``, ``train
cdbn``), what they share in :mod:`jdbn.cli.common`; imports go one way, from here to the command
modules to ``common``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from jdbn.cli.common import (EXIT_DIVERGED, PRESETS, PRNG_IMPLS, PROG, CLIError, add_seed,
                             apply_preprocess, apply_preset, betas_schedule, make_key,
                             preprocess_spec, settings_diff, to_image, writable_file,
                             writable_folder)
from jdbn.cli import conv, dbm, dbn, demo, evaluate, rbm
from jdbn.cli.demo import DEMO, add_demo, cmd_demo
from jdbn.cli.evaluate import add_evaluate, cmd_evaluate, evaluate_model
from jdbn.cli.rbm import add_sample, add_train_rbm, cmd_sample, cmd_train_rbm

# The names of the old single-module CLI that tests use.
_preprocess_spec, _apply_preprocess, _to_image = preprocess_spec, apply_preprocess, to_image

__all__ = ["PROG", "EXIT_DIVERGED", "CLIError", "PRNG_IMPLS", "PRESETS", "DEMO", "add_seed",
           "make_key", "settings_diff", "apply_preset", "writable_folder", "writable_file",
           "betas_schedule", "evaluate_model", "add_train", "add_train_rbm", "cmd_train_rbm",
           "add_sample", "cmd_sample", "add_evaluate", "cmd_evaluate", "add_demo", "cmd_demo",
           "build_parser", "main", "conv", "dbm", "dbn", "demo", "evaluate", "rbm"]


def add_train(sub) -> None:
  p = sub.add_parser("train", help="train a model", description="Train a model.")
  models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
  add_train_rbm(models)
  dbn.add_train_dbn(models)
  dbm.add_train_dbm(models)
  conv.add_train_crbm(models)
  conv.add_train_cdbn(models)


def _show_defaults(parser: argparse.ArgumentParser) -> None:
  """``--help`` shows every option's default, with or without a help text of its own."""
  for action in parser._actions:  # pylint: disable=protected-access
    if isinstance(action, argparse._SubParsersAction):  # pylint: disable=protected-access
      for child in action.choices.values():
        _show_defaults(child)
    elif (action.option_strings and not any(action.default is v for v in
                                             (None, False, argparse.SUPPRESS))
          and "default" not in (action.help or "")):
      action.help = ((action.help + " ") if action.help else "") + "(default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
  """The argument parser; add a subcommand with an ``add_*`` function here."""
  parser = argparse.ArgumentParser(
      prog=PROG, description="RBMs and DBNs in JAX: train, sample, evaluate, demo.")
  from jdbn import __version__
  parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
  sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
  add_train(sub)
  add_sample(sub)
  add_evaluate(sub)
  add_demo(sub)
  dbn.add_generate(sub)
  _show_defaults(parser)
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Runs the command line; returns the exit status: 0 ok, 2 bad input (a one-line message),
  3 training diverged (the last good checkpoint is kept). An unexpected error is a traceback with
  Python's status 1."""
  parser = build_parser()
  args = parser.parse_args(argv)
  from jdbn.train import TrainingDiverged
  try:
    return args.func(args)
  except (TrainingDiverged, FloatingPointError) as err:  # the last good checkpoint is kept
    print(f"{PROG}: {err}", file=sys.stderr)
    return EXIT_DIVERGED
  except (CLIError, ValueError) as err:
    print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
    return 2
