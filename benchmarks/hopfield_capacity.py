"""Hopfield recall, pictured, and the capacity of Hebbian and Storkey storage.

``recall_picture`` stores a few binarised MNIST test digits (the embedded 8x8 digits when MNIST
is not found) in a Hebbian net, a Storkey net and an exponential dense associative memory
(Demircigil et al. 2017), flips a fraction of each probe's pixels and draws, one row a digit: the
pattern, the probe, the dense memory's state after each quarter of its first sweeps and its
final state, then the final states of the Hebbian and Storkey nets. MNIST digits overlap by
0.5-0.7, far from the random patterns of the capacity theory: the classical nets fall into
mixtures, the exponential memory does not.

``capacity`` measures, for random patterns at ``n`` units, the fraction of stored patterns that
are exact fixed points and the mean overlap reached from each stored pattern, against the load
``P / n``, for both rules; the Hebbian reference ``n / (2 ln n)`` (McEliece et al. 1987) and
Storkey's ``n / sqrt(2 ln n)`` are marked.

    python -m benchmarks.hopfield_capacity --picture benchmarks/hopfield_recall.png
    python -m benchmarks.hopfield_capacity --capacity benchmarks/hopfield_capacity.json
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from jdbn import data, viz
from jdbn.models import dense_memory as D
from jdbn.models import hopfield as H
from jdbn.samplers import recall as R


def _digits(n_patterns: int, mnist_dir):
  """The first test image of classes ``0..n_patterns-1`` as spins, and the image side.

  MNIST from ``mnist_dir`` (default ``$JDBN_MNIST_DIR`` or ``../shared/data/mnist`` beside the
  repository) when that folder exists, else the embedded 8x8 digits; never a download.
  """
  import os
  folder = mnist_dir or os.environ.get(data.MNIST_ENV_VAR) or (
      pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist")
  if pathlib.Path(folder).is_dir():
    ds, side = data.load_mnist("test", folder), 28
  else:
    ds, side = data.load_digits("all"), 8
  x, y = np.asarray(ds.x), np.asarray(ds.y)
  idx = [int(np.flatnonzero(y == c)[0]) for c in range(n_patterns)]
  return jnp.where(jnp.asarray(x[idx]) > 0.5, 1.0, -1.0), side


def _snapshots(update, s, order, every):
  """States ``[len(order) // every + 1, n]``: ``s`` and after every ``every`` unit updates."""

  def body(s, i):
    return s.at[i].set(update(s, i)), s

  def chunk(s, idx):
    s, _ = jax.lax.scan(body, s, idx)
    return s, s

  final, snaps = jax.lax.scan(chunk, s, order.reshape(-1, every))
  return jnp.concatenate([s[None], snaps])


def recall_picture(path, *, seed: int = 0, n_patterns: int = 6, noise: float = 0.25,
                   mnist_dir=None) -> dict:
  """Writes the recall figure to ``path`` (PNG, through :func:`jdbn.viz.save_rows`; columns as
  listed under ``"columns"`` in the result) and returns which rows each memory got exactly."""
  xi, side = _digits(n_patterns, mnist_dir)
  n = xi.shape[1]
  k_noise, k_order, k_recall = jax.random.split(jax.random.key(seed), 3)
  probes = xi * jnp.where(jax.random.bernoulli(k_noise, noise, xi.shape), -1.0, 1.0)
  mem = D.dense(xi, "exp")
  order = jnp.concatenate([jax.random.permutation(k, n) for k in jax.random.split(k_order, 2)])
  snaps = jax.vmap(lambda s: _snapshots(lambda s, i: D.update_unit(mem, s, i), s, order,
                                        n // 4))(probes)  # [P, 9, n]: two sweeps by quarters
  dense_final = R.async_recall(k_recall, mem, probes)
  heb = R.async_recall(k_recall, H.hebbian(xi), probes)
  sto = R.async_recall(k_recall, H.storkey(xi), probes)
  cols = ([("pattern", xi), ("probe", probes)] +
          [(f"exp {q}/4 sweep", snaps[:, q]) for q in (1, 2, 3, 4)] +
          [("exp final", dense_final.state), ("Hebbian", heb.state), ("Storkey", sto.state)])
  rows = np.stack([np.asarray(img) for _, img in cols], axis=1)  # [P, n_cols, n]
  viz.save_rows(path, (rows + 1) / 2, (side, side), zoom=3 if side == 28 else 8)

  def exact(r):
    return [bool(b) for b in np.all(np.asarray(r.state) == np.asarray(xi), axis=1)]

  return {"columns": [t for t, _ in cols], "units": n, "noise": noise, "seed": seed, "exp_dense_exact": exact(dense_final),
          "hebbian_exact": exact(heb), "storkey_exact": exact(sto)}


def capacity(*, n: int = 500, loads=(0.02, 0.05, 0.08, 0.1, 0.12, 0.14, 0.16, 0.2, 0.25, 0.3),
             seed: int = 0, n_probes: int = 50) -> dict:
  """Fixed-point fraction and recall overlap against ``P / n`` for Hebbian and Storkey storage.

  For each load, ``P = round(load n)`` random patterns are stored; ``fixed`` is the fraction of
  the ``P`` patterns that are exact fixed points, ``overlap`` the mean overlap ``m`` with its
  pattern after asynchronous recall started from (up to ``n_probes`` of) the patterns.
  """
  out = {"n": n, "seed": seed, "hebbian_limit": n / (2 * math.log(n)),
         "storkey_limit": n / math.sqrt(2 * math.log(n)), "rows": []}
  for j, load in enumerate(loads):
    p = max(1, round(load * n))
    kp, kr = jax.random.split(jax.random.fold_in(jax.random.key(seed), j))
    xi = jnp.where(jax.random.bernoulli(kp, 0.5, (p, n)), 1.0, -1.0)
    row = {"load": load, "P": p}
    for name, rule in (("hebbian", H.hebbian), ("storkey", H.storkey)):
      net = rule(xi)
      r = R.async_recall(kr, net, xi[:n_probes], max_sweeps=50)
      row[name] = {"fixed": float(H.is_fixed_point(net, xi).mean()),
                   "overlap": float(jnp.mean(jnp.sum(r.state * xi[:n_probes], 1) / n))}
    out["rows"].append(row)
  return out


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--picture", type=pathlib.Path)
  ap.add_argument("--capacity", type=pathlib.Path, help="JSON file for the capacity curves")
  ap.add_argument("--n", type=int, default=500)
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args(argv)
  if args.picture:
    print(json.dumps(recall_picture(args.picture, seed=args.seed)))
  if args.capacity:
    res = capacity(n=args.n, seed=args.seed)
    args.capacity.write_text(json.dumps(res, indent=1))
    for row in res["rows"]:
      print(f"P/n={row['load']:.2f} P={row['P']:4d}  hebbian fixed {row['hebbian']['fixed']:.2f} "
            f"m {row['hebbian']['overlap']:.3f}  storkey fixed {row['storkey']['fixed']:.2f} "
            f"m {row['storkey']['overlap']:.3f}")


if __name__ == "__main__":
  main()
