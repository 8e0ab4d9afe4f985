"""Up-down learning curves of ``dbn_mnist.py`` runs, side by side, as one PNG.

Reads each run folder's ``updown.npz`` history (no arrays are loaded) and, where the run has
finished, the test error in its ``results.json``. Left: the generative validation error (the last
10,000 training images) every ``--valid-every`` epochs, the test error as a marker at the last
epoch; right: the wake-phase generative cost ``gen_nll`` per epoch (nats), which rises in every
run while the error falls (see experiments/README.md, the DBN rows).

    python -m experiments.updown_curves experiments/runs/dbn_m5=lr0.05 \\
        experiments/runs/dbn_m2="lr 0.01" --out experiments/results/dbn_updown_curves.png

Needs matplotlib (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from jdbn import checkpoint


def load_run(folder: pathlib.Path) -> dict:
  """``{"history": [...], "test_error": float | None, "epochs": int}`` of a run folder."""
  path = folder / "updown.npz"
  if not path.is_file():
    raise FileNotFoundError(f"{folder} has no updown.npz: not a dbn_mnist.py run with up-down")
  meta = checkpoint.read_metadata(path)
  history = meta["history"]
  results = folder / "results.json"
  test = None
  if results.is_file():
    data = json.loads(results.read_text())
    finished = data.get("updown", {}).get("epochs") == meta["epoch"]
    if finished and "gen_updown" in data:
      test = data["gen_updown"]["test_error"]
  return {"history": history, "test_error": test, "epochs": meta["epoch"]}


#: the up-down monitor of runs trained on all 60,000 images: ``dbn_mnist.TRAIN_MONITOR``, repeated
#: because this script runs from its file without the benchmarks package on the path
TRAIN_MONITOR = "error_on_last_10000_training_images"


def plot(runs: dict[str, dict], out: pathlib.Path) -> pathlib.Path:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, (ax_err, ax_nll) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
  for label, run in runs.items():
    rows = run["history"]
    valid = [(r["epoch"], 100 * r["valid_error"]) for r in rows if "valid_error" in r]
    # Runs with --pretrain-on-all train on the validation images too and record this instead.
    seen = [(r["epoch"], 100 * r[TRAIN_MONITOR]) for r in rows if TRAIN_MONITOR in r]
    line = None
    if valid:
      line, = ax_err.plot(*zip(*valid), marker=".", label=f"{label} (validation)")
    elif seen:
      line, = ax_err.plot(*zip(*seen), marker=".", linestyle="--",
                          label=f"{label} (last 10,000 training images)")
    if run["test_error"] is not None:
      ax_err.plot([run["epochs"]], [100 * run["test_error"]], marker="*", markersize=12,
                  linestyle="none", color=line.get_color() if line else None,
                  label=f"{label}: test {100 * run['test_error']:.2f}%")
    ax_nll.plot([r["epoch"] for r in rows], [r["gen_nll"] for r in rows], label=label)
  ax_err.axhline(1.25, color="grey", linestyle="--", linewidth=1)
  ax_err.annotate("HOT 2006: 1.25%", (0.01, 1.25), xycoords=("axes fraction", "data"),
                  xytext=(0, 3), textcoords="offset points", color="grey", fontsize=8)
  ax_err.set(xlabel="up-down epoch", ylabel="generative classification error (%)",
             title="DBN 784-500-500-2000+10 on MNIST")
  ax_err.legend(fontsize=8, loc="upper right")
  ax_err.grid(alpha=0.3)
  ax_nll.set(xlabel="up-down epoch", ylabel="nats per image",
             title="wake-phase generative cost gen_nll")
  ax_nll.legend(fontsize=8)
  ax_nll.grid(alpha=0.3)
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, dpi=110)
  plt.close(fig)
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("runs", nargs="+", metavar="FOLDER[=LABEL]",
                 help="dbn_mnist.py run folders, each optionally labelled")
  p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("dbn_updown_curves.png"))
  args = p.parse_args(argv)
  runs = {}
  for spec in args.runs:
    folder, _, label = spec.partition("=")
    try:
      runs[label or pathlib.Path(folder).name] = load_run(pathlib.Path(folder))
    except FileNotFoundError as err:
      sys.exit(str(err))
  print(plot(runs, args.out))
  return 0


if __name__ == "__main__":
  sys.exit(main())
