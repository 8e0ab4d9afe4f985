"""One entry per paper row: what the paper reports, the commands and seeds that reproduce it here,
where the result is written, and the latest figure.

``experiments/README.md``'s table is :func:`markdown` of :data:`ROWS` (a test checks that they
agree, and that every command parses with its script's options). Print a row's commands::

    python -m experiments.configs                 # every row, its commands
    python -m experiments.configs hot2006_updown  # one row

A command runs from the repository root; ``{seed}`` is each of the row's seeds in turn. Run
folders go under ``experiments/runs/`` (not committed); a command run again resumes its run.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys


@dataclasses.dataclass(frozen=True)
class Row:
  """A paper row and how it is reproduced.

  Attributes:
    paper: the paper and where in it the row is.
    target: the paper's figure.
    steps: shell commands, in order; ``{seed}`` stands for each of ``seeds``.
    seeds: the seeds the reported figure is over.
    result: where the figures are written.
    ours: the latest figure reproduced here, and when.
  """
  paper: str
  target: str
  steps: tuple[str, ...]
  seeds: tuple[int, ...]
  result: str
  ours: str

  def commands(self, seed: int) -> list[str]:
    """The steps for ``seed``."""
    return [s.format(seed=seed) for s in self.steps]


_DBN = "python -m experiments.dbn_mnist --prng philox4x32 --pretrain-epochs 30"
_R3 = f"{_DBN} --out experiments/runs/dbn_r3 --stages pretrain,gen_pretrained"
_M8 = (f"{_DBN} --pretrained-from experiments/runs/dbn_r3 --seed {{seed}} --updown-lr 0.1 "
       "--updown-lr-decay-start 130 --stages pretrain,gen_pretrained,updown")
_FT = ("--dropout 0.5 --input-dropout 0.2 --finetune-schedule cosine --finetune-epochs 200 "
       "--finetune-on-all --patience 1000 --finetune-lr 0.2 --pretrain-on-all")
_LL = "python -m experiments.likelihood_mnist"
_DBN_RESULT = "experiments/results/dbn_mnist.json (a row per run folder), the folder's results.json"

ROWS: dict[str, Row] = {
    "hot2006_updown": Row(
        paper="Hinton, Osindero & Teh 2006, section 6: 784-500-500-2000 DBN, generative "
        "classification after up-down",
        target="1.25% test error",
        steps=(_R3,
               f"{_M8} --out experiments/runs/dbn_m8s{{seed}} --updown-epochs 160 "
               "--updown-k-schedule 3:100,6:130,10",
               "mkdir -p experiments/runs/dbn_m8K100s{seed} && cp -rn "
               "experiments/runs/dbn_m8s{seed}/. experiments/runs/dbn_m8K100s{seed}/",
               f"{_M8} --out experiments/runs/dbn_m8K100s{{seed}} --updown-epochs 190 "
               "--updown-k-schedule 3:100,6:130,10:160,100"),
        seeds=(0, 1, 2), result=_DBN_RESULT,
        ours="1.35% (1.34, 1.39, 1.31), CD-100 in the last 30 epochs; 1.44% after the 160 "
        "(2026-12-03)"),
    "hs2006_finetune": Row(
        paper="Hinton & Salakhutdinov 2006 (Science), supporting material: the DBN fine-tuned "
        "by back-propagation; Srivastava et al. 2014 with dropout 0.92%",
        target="1.2% test error",
        steps=(f"{_DBN} --out experiments/runs/dbn_pa {_FT} --stages pretrain,gen_pretrained",
               f"{_DBN} --out experiments/runs/dbn_pas{{seed}} --seed {{seed}} {_FT} "
               "--pretrained-from experiments/runs/dbn_pa --stages pretrain,finetune_all"),
        seeds=(0, 1, 2), result=_DBN_RESULT,
        ours="0.96% (mean of the three seeds; pretrained and fine-tuned on all 60,000 images, "
        "2026-12-03)"),
    "sm2008_cd1": Row(
        paper="Salakhutdinov & Murray 2008, table 1: 500-hidden RBM trained by CD-1",
        target="(not checked against the paper here)",
        steps=(f"{_LL} --rows cd1 --epochs 20 --raise-examples 100",), seeds=(0,),
        result="experiments/results/likelihood_mnist.json, row cd1_h500",
        ours="-147.44 nats (AIS), 20 epochs (2026-11-22)"),
    "sm2008_cd3": Row(
        paper="Salakhutdinov & Murray 2008, table 1: 500-hidden RBM trained by CD-3",
        target="(not checked against the paper here)",
        steps=(f"{_LL} --rows cd3 --epochs 20",), seeds=(0,),
        result="experiments/results/likelihood_mnist.json, row cd3_h500",
        ours="-117.27 nats (AIS), 20 epochs (2026-11-22)"),
    "sm2008_cd25": Row(
        paper="Salakhutdinov & Murray 2008, table 1: 500-hidden RBM trained by CD-25",
        target="-86.34 nats",
        steps=(f"{_LL} --rows cd25 --epochs 115 --prng philox4x32",
               f"{_LL} --rows cd25 --epochs 175 --lr-decay-start 115 --prng philox4x32"),
        seeds=(0,), result="experiments/results/likelihood_mnist.json, row cd25_h500",
        ours="-85.19 nats (-85.44, -84.86), 175 epochs, the rate decayed over the last 60 "
        "(2026-12-02)"),
    "sm2008_pcd": Row(
        paper="Salakhutdinov & Murray 2008, table 1: 500-hidden RBM trained by PCD",
        target="(not checked against the paper here)",
        steps=(f"{_LL} --rows pcd --epochs 200 --lr 0.02 --lr-decay-start 0 --prng philox4x32 "
               "--n-chains 500 --out-dir experiments/runs/likelihood_pcd200",),
        seeds=(0,), result="experiments/results/likelihood_mnist.json, row pcd_h500",
        ours="-90.57 nats (AIS; RAISE -88.20 on 100 images), 200 epochs (2026-12-02)"),
    "sh2009_dbm": Row(
        paper="Salakhutdinov & Hinton 2009, table 1: 784-500-1000 DBM on MNIST",
        target="-84.62 nats (variational bound), 0.95% test error",
        steps=("jdbn train dbm --dataset mnist --hidden 500,1000 --pretrain-epochs 50 --epochs 120 "
               "--mf-max-iter 10 --binarize stochastic --finetune-epochs 50 --patience 10 "
               "--seed {seed} --out experiments/runs/dbm_mnist_long",
               "cp -r experiments/runs/dbm_mnist_long experiments/runs/dbm_mnist_ftall && rm "
               "experiments/runs/dbm_mnist_ftall/finetune.npz "
               "experiments/runs/dbm_mnist_ftall/classifier.npz",
               "jdbn train dbm --dataset mnist --hidden 500,1000 --pretrain-epochs 50 --epochs 120 "
               "--mf-max-iter 10 --binarize stochastic --finetune-epochs 200 --finetune-on-all "
               "--finetune-schedule cosine --finetune-lr 0.2 --dropout 0.5 --input-dropout 0.2 "
               "--seed {seed} --out experiments/runs/dbm_mnist_ftall",
               "jdbn evaluate experiments/runs/dbm_mnist_ftall --seed {seed} --n-chains 1000"),
        seeds=(0,), result="the run folder's metrics.json; the evaluation is printed",
        ours="-85.14 nats (1,000 AIS chains, ESS 9.5), 1.22% with the DBN's dropout recipe on "
        "the grey levels (1.60% on the binarised images, 1.81% with early stopping, 2.08% "
        "without dropout), after 18% of the paper's updates, no label block (2026-12-06). At 300 joint "
        "epochs with --epochs 300 and the same recipe (benchmarks/HISTORY.md): 1.03%, -86.30 nats"),
    "sh2009_dbm_labels": Row(
        paper="Salakhutdinov & Hinton 2009: the 784-500-1000 DBM with 10 label units on h2, as "
        "their code trains it",
        target="-84.62 nats (variational bound), 0.95% test error",
        steps=("jdbn train dbm --dataset mnist --hidden 500,1000 --labels --pretrain-epochs 50 "
               "--epochs 120 --mf-max-iter 10 --binarize stochastic --finetune-epochs 200 "
               "--finetune-on-all --finetune-schedule cosine --finetune-lr 0.2 --dropout 0.5 "
               "--input-dropout 0.2 --seed {seed} --out experiments/runs/dbm_mnist_labels",
               "jdbn evaluate experiments/runs/dbm_mnist_labels --seed {seed} --n-chains 1000"),
        seeds=(0,), result="the run folder's metrics.json; the evaluation is printed",
        ours="1.23% fine-tuned, 2.28% by the label block; the AIS log Z is under-annealed "
        "(+13 nats with 4x the temperatures on one class), so no bound yet; 120 joint epochs "
        "(2026-12-06). Resumed to 300 joint epochs (benchmarks/HISTORY.md): 1.15% and 1.85%"),
    "dbm_centering": Row(
        paper="Montavon & Müller 2012; Melchior, Fischer & Wiskott 2016: a centered DBM trains "
        "without greedy pretraining (issue 26); plain and centered 784-500-500 DBMs from the "
        "same random start on MNIST[:10000]",
        target="the centered DBM's test bound above the plain one's (no paper figure checked)",
        steps=("python -m experiments.dbm_centering --seed {seed} --methods plain",
               "python -m experiments.dbm_centering --seed {seed} --methods centered"),
        seeds=(0,), result="experiments/results/dbm_centering.json and .md, row seed{seed}",
        ours="centered -122.88 nats [-123.25, -122.29] vs plain -168.16 [-169.10, +inf: its AIS "
        "log Z is unreliable]; linear error 9.36% vs 8.11%; 20 epochs (2026-12-05)"),
    "samplers_equal_time": Row(
        paper="PCD (Tieleman 2008), parallel tempering (Desjardins et al. 2010), fast PCD "
        "(Tieleman & Hinton 2009), centered PCD; PCD-500 in Burda et al. 2015",
        target="-101.26 nats (AIS) / -101.28 (RAISE), PCD trained far longer",
        steps=("python -m experiments.samplers_mnist --budget 180 --seed {seed}",), seeds=(0,),
        result="experiments/results/samplers_mnist.json and .md",
        ours="PCD best at -101.75 nats (AIS) in 180 s (2026-12-04)"),
    "crbm_tasks": Row(
        paper="Sutskever, Hinton & Taylor 2009 (bouncing balls); MNIST completion",
        target="30% below copying the last frame; 10% below per-pixel logistic regression",
        steps=("python -m experiments.crbm_tasks",), seeds=(0,),
        result="experiments/results/crbm_tasks.json and .md",
        ours="balls 54.5% below copy-last; MNIST -log p(y|x) 10.9% below logistic (RAISE), "
        "marginals 18% worse (2026-12-05)"),
    "ising_onsager": Row(
        paper="Onsager 1949 / Yang 1952: spontaneous magnetisation of the 2D Ising model",
        target="m(T) = (1 - sinh(2/T)^-4)^(1/8)",
        steps=("python -m experiments.ising_onsager --write",), seeds=(0,),
        result="experiments/results/ising_onsager.json and .md",
        ours="T = 1.5, 2.0, 2.2 within 2 standard errors, 64 x 64 torus (2026-12-04)"),
    "hopfield_capacity": Row(
        paper="McEliece et al. 1987, Amit, Gutfreund & Sompolinsky 1985, Storkey 1997: "
        "capacity of Hebbian and Storkey storage",
        target="N / (2 ln N) exact fixed points (Hebbian); 0.138 N recall collapse",
        steps=("python -m experiments.hopfield_capacity --write --seed {seed}",
               "python -m experiments.hopfield_capacity --picture "
               "experiments/results/hopfield_recall.png --seed {seed}"),
        seeds=(0,), result="experiments/results/hopfield_capacity.json, .md and .png",
        ours="N = 500 curve (2026-12-04)"),
    "lgrn2009_cdbn_mnist": Row(
        paper="Lee, Grosse, Ranganath & Ng 2009, table 3: linear classifier on the pooled "
        "features of a two-layer convolutional DBN (they used an SVM)",
        target="0.82% test error with 60,000 labels; 2.62% with 1,000",
        steps=("python -m experiments.cdbn_mnist --n-unsup 60000 --epochs 20,12 --seed {seed}",),
        seeds=(0,),
        result="experiments/results/cdbn_mnist.json and .md, cdbn_mnist_filters1.png and "
        "cdbn_mnist_filters2.png",
        ours="1.05% and 4.18% (mean of 5 subsets of 1,000) after 20 + 12 epochs on 60,000 "
        "images, the loss (softmax or squared hinge) and L2 chosen on validation; 1.17% / 4.20% "
        "with softmax only (2026-12-06)"),
    "lgrn2009_natural": Row(
        paper="Lee, Grosse, Ranganath & Ng 2009, figure 2 (left): first-layer bases of a "
        "Gaussian conv RBM on whitened natural images",
        target="localized, oriented, Gabor-like filters",
        steps=("python -m experiments.crbm_natural --seed {seed}",), seeds=(0,),
        result="experiments/results/crbm_natural.json and .md, crbm_natural_filters.png",
        ours="partly: a few oriented edges and one grating, many blobs and checkers; orientation "
        "selectivity median 0.24, 10 epochs on 20,000 patches (2026-12-05)"),
}


def markdown(rows: dict[str, Row] = ROWS) -> str:
  """The table of ``experiments/README.md``: row, paper, target, commands, seeds, result, ours."""
  lines = ["| row | paper | target | commands (`{seed}`: each seed) | seeds | result | ours |",
           "|---|---|---|---|---|---|---|"]
  for name, r in rows.items():
    steps = "<br>".join(f"`{s}`" for s in r.steps)
    lines.append(f"| `{name}` | {r.paper} | {r.target} | {steps} | "
                 f"{', '.join(map(str, r.seeds))} | {r.result} | {r.ours} |")
  return "\n".join(lines)


def argv(step: str) -> list[str]:
  """A step as an argument list (for the tests, which parse every command)."""
  return shlex.split(step)


def main(names=None) -> int:
  for name in names or list(ROWS):
    if name not in ROWS:
      print(f"unknown row {name!r}; rows: {', '.join(ROWS)}", file=sys.stderr)
      return 2
    row = ROWS[name]
    print(f"# {name}: {row.paper}; target {row.target}; ours {row.ours}")
    for seed in row.seeds:
      print("\n".join(row.commands(seed)) if len(row.seeds) == 1 else
            f"# seed {seed}\n" + "\n".join(row.commands(seed)))
    print()
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
