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

    python -m experiments.hopfield_capacity --picture experiments/results/hopfield_recall.png
    python -m experiments.hopfield_capacity --write   # N = 500: .json, .md, .png in results/
    python -m experiments.hopfield_capacity --quick   # N = 60, three loads, writes nothing

The capacity curve is drawn with Pillow (what :mod:`jdbn.viz` uses), so matplotlib is not needed.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common as C
from experiments import record
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

  return {"columns": [t for t, _ in cols], "units": n, "noise": noise, "seed": seed,
          "exp_dense_exact": exact(dense_final), "hebbian_exact": exact(heb),
          "storkey_exact": exact(sto)}


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


QUICK_LOADS = (0.05, 0.14, 0.3)
JSON_PATH = record.RESULTS / "hopfield_capacity.json"
CURVE_PATH = record.RESULTS / "hopfield_capacity.png"


def capacity_table(res: dict) -> str:
  """The capacity rows as a markdown table."""
  rows = [[f"{r['load']:.2f}", r["P"], f"{r['hebbian']['fixed']:.2f}",
           f"{r['hebbian']['overlap']:.3f}", f"{r['storkey']['fixed']:.2f}",
           f"{r['storkey']['overlap']:.3f}"] for r in res["rows"]]
  return C.markdown_table(["P/N", "P", "Hebbian: fixed points", "Hebbian: overlap m",
                           "Storkey: fixed points", "Storkey: overlap m"], rows)


def _line(d, a, b, fill, dashed, width=2, on=8.0, off=6.0):
  """A solid or dashed line from ``a`` to ``b`` on a Pillow ``ImageDraw``."""
  length = math.dist(a, b)
  if not dashed or length == 0:
    d.line([a, b], fill=fill, width=width)
    return
  for t in np.arange(0.0, length, on + off):
    u, v = t / length, min(t + on, length) / length
    d.line([(a[0] + u * (b[0] - a[0]), a[1] + u * (b[1] - a[1])),
            (a[0] + v * (b[0] - a[0]), a[1] + v * (b[1] - a[1]))], fill=fill, width=width)


def capacity_curve(res: dict, path, size=(760, 440)) -> pathlib.Path:
  """Draws the overlap and the fixed-point fraction against ``P / N`` (both rules) as a PNG.

  Solid lines and dots: overlap ``m``; dashed lines and squares: fraction of exact fixed points;
  blue Hebbian, red Storkey. Grey verticals mark ``N / (2 ln N)``, ``0.138 N`` (Amit et al.
  1985) and ``N / sqrt(2 ln N)``.
  """
  from PIL import Image, ImageDraw
  w, h = size
  left, right, top, bottom = 60, 110, 30, 50
  x_max = max(0.3, max(r["load"] for r in res["rows"]))
  img = Image.new("RGB", size, "white")
  d = ImageDraw.Draw(img)

  def xy(load, y):
    return (left + (w - left - right) * load / x_max, top + (h - top - bottom) * (1.02 - y) / 1.04)

  d.rectangle([xy(0, 1.02), xy(x_max, -0.02)], outline="black")
  for t in np.arange(0, x_max + 1e-9, 0.05):
    d.text((xy(t, 0)[0] - 10, h - bottom + 8), f"{t:.2f}", fill="black")
  for y in (0, 0.25, 0.5, 0.75, 1):
    d.text((left - 34, xy(0, y)[1] - 6), f"{y:.2f}", fill="black")
  d.text((w // 2 - 40, h - 22), f"load P/N  (N = {res['n']})", fill="black")
  n = res["n"]
  for load, label in ((res["hebbian_limit"] / n, "N/(2 ln N)"), (0.138, "0.138"),
                      (res["storkey_limit"] / n, "N/sqrt(2 ln N)")):
    d.line([xy(load, -0.02), xy(load, 1.02)], fill=(170, 170, 170))
    d.text((xy(load, 1)[0] - 20, top - 18), label, fill=(110, 110, 110))
  loads = [r["load"] for r in res["rows"]]
  legend = []
  for rule, colour in (("hebbian", (30, 80, 200)), ("storkey", (210, 40, 40))):
    for key, dash in (("overlap", False), ("fixed", True)):
      pts = [xy(x, r[rule][key]) for x, r in zip(loads, res["rows"])]
      for a, b in zip(pts, pts[1:]):
        _line(d, a, b, colour, dash)
      for x, y in pts:
        (d.rectangle if dash else d.ellipse)([x - 3, y - 3, x + 3, y + 3], fill=colour)
      legend.append((f"{rule.capitalize()} {'fixed' if dash else 'm'}", colour, dash))
  for k, (label, colour, dash) in enumerate(legend):
    y0 = top + 40 + 22 * k
    a, b = (w - right + 6, y0), (w - right + 26, y0)
    _line(d, a, b, colour, dash, on=5.0, off=3.0)
    d.text((w - right + 30, y0 - 6), label, fill=colour)
  img.save(path)
  return pathlib.Path(path)


def run(*, quick: bool = False, write: bool = False, n: int = 500, seed: int = 0,
        log=print) -> dict:
  """The capacity experiment: prints its table; with ``write`` writes ``hopfield_capacity.json``,
  ``.md`` and ``.png`` to ``experiments/results/`` (:mod:`experiments.record`)."""
  if quick and write:
    raise SystemExit("--quick writes nothing: drop --write")
  t0 = time.perf_counter()
  res = (capacity(n=60, loads=QUICK_LOADS, seed=seed, n_probes=10) if quick else
         capacity(n=n, seed=seed))
  res["seconds"] = round(time.perf_counter() - t0, 1)
  table = capacity_table(res)
  limits = (f"Theory: Hebbian exact fixed points up to N / (2 ln N) = {res['hebbian_limit']:.1f} "
            f"patterns (P/N = {res['hebbian_limit'] / res['n']:.3f}, McEliece et al. 1987), the "
            f"overlap collapsing near 0.138 N (Amit, Gutfreund & Sompolinsky 1985); Storkey up to "
            f"N / sqrt(2 ln N) = {res['storkey_limit']:.1f} (P/N = "
            f"{res['storkey_limit'] / res['n']:.3f}, Storkey 1997).")
  log(f"Hopfield capacity, N = {res['n']}, seed {seed} ({res['seconds']} s)\n\n{table}\n\n{limits}")
  if write:
    capacity_curve(res, record.RESULTS / CURVE_PATH.name)
    machine = C.machine_info()
    body = [f"## Hopfield capacity, N = {res['n']} ({machine['date']})", "",
            "Machine:", "", C.format_machine(machine), "",
            f"N = {res['n']} units, P = round(load N) random +-1 patterns per load (seed {seed}). "
            "Fixed points: the fraction of the P stored patterns that no single-unit update "
            "changes. Overlap m: the mean (1/N) xi . s of the state s that asynchronous "
            "zero-temperature recall (random order, at most 50 sweeps) reaches from each of the "
            f"first 50 stored patterns. {res['seconds']} s.", "", table, "", limits, "",
            f"Picture: `experiments/results/{CURVE_PATH.name}`; figures: "
            f"`experiments/results/{JSON_PATH.name}`."]
    record.write("hopfield_capacity", {**res, "machine": machine}, "\n".join(body))
  return res


def parser() -> argparse.ArgumentParser:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--picture", type=pathlib.Path, help="PNG file for the MNIST recall picture")
  ap.add_argument("--quick", action="store_true", help="N = 60, three loads, writes nothing")
  ap.add_argument("--write", action="store_true",
                  help="write the JSON, the table (.md) and the PNG to experiments/results/")
  ap.add_argument("--n", type=int, default=500)
  ap.add_argument("--seed", type=int, default=0)
  return ap


def main(argv=None):
  args = parser().parse_args(argv)
  if args.picture:
    print(json.dumps(recall_picture(args.picture, seed=args.seed)))
    return None
  return run(quick=args.quick, write=args.write, n=args.n, seed=args.seed)


if __name__ == "__main__":
  main()
