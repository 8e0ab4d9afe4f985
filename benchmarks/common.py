"""Shared machinery of the benchmarks: timing, the peer worker, data; the record re-exported.

Timing. Every figure is the median (with the interquartile range) of several repeats, after a
warm-up call that pays for compilation; JAX results are waited for with ``jax.block_until_ready``.
:func:`interleaved` measures several implementations round-robin (the order rotating each round),
so that the load of a shared machine falls on all of them alike; report ratios of its medians.

Peers. NumPy, scikit-learn and PyTorch run in a separate process (:class:`PeerWorker`, code in
``benchmarks/peers.py``) whose environment has ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE``
removed: some machines set them to work around old OpenBLAS builds, and they slow current NumPy
down. The worker reports the BLAS kernel NumPy actually uses (threadpoolctl). jdbn runs in the
main process, whose environment is left as it is. The two processes take turns: while one
measures, the other waits on a pipe.

GEMM bound. The products an algorithm needs, timed alone: :mod:`benchmarks.bound`.

Record. The machine, the markdown tables, the latest results files (``benchmarks/results/``) and
the dated log (``benchmarks/HISTORY.md``) live in :mod:`benchmarks.record`; their names are
repeated here (``common.write_latest``, ``common.machine_info`` ...) for the scripts that use them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Optional

import numpy as np

from benchmarks import record

HERE, REPO_ROOT = record.HERE, record.REPO_ROOT
HISTORY_PATH, RESULTS_DIR, QUICK_DIR = record.HISTORY_PATH, record.RESULTS_DIR, record.QUICK_DIR
#: Environment variables removed from the peers' process (see the module docstring).
BLAS_ENV_VARS = record.BLAS_ENV_VARS
machine_info, format_machine, load_average = (record.machine_info, record.format_machine,
                                              record.load_average)
markdown_table, append_section = record.markdown_table, record.append_section
write_latest, update_quality = record.write_latest, record.update_quality

# ----------------------------------------------------------------------------------------- timing


@dataclasses.dataclass
class Timing:
  """Seconds of each repeat of one measurement, with the statistics the tables report.

  ``times`` are wall-clock seconds; ``cpu`` the CPU seconds of the measuring process (all its
  threads) in the same repeats: on a shared machine a process that waits for a core loses wall
  time but not CPU time, so CPU time is the steadier way to compare variants of one program.
  """
  times: list
  cpu: list = dataclasses.field(default_factory=list)

  @property
  def cpu_median(self) -> float:
    return float(np.median(self.cpu)) if self.cpu else float("nan")

  @property
  def median(self) -> float:
    return float(np.median(self.times))

  @property
  def q1(self) -> float:
    return float(np.percentile(self.times, 25))

  @property
  def q3(self) -> float:
    return float(np.percentile(self.times, 75))

  @property
  def iqr(self) -> float:
    return self.q3 - self.q1

  def fmt(self, scale: float = 1.0, unit: str = "s", digits: int = 3) -> str:
    """``"median (IQR)"``, times multiplied by ``scale`` (e.g. 1e3 with ``unit="ms"``)."""
    return f"{_sig(self.median * scale, digits)} {unit} (±{_sig(self.iqr * scale / 2, 2)})"


def _sig(x: float, digits: int) -> str:
  if x == 0 or not np.isfinite(x):
    return f"{x:g}"
  return f"{x:.{max(0, digits - 1 - int(np.floor(np.log10(abs(x)))))}f}"


class Elapsed(float):
  """Returned by a timed function that measured itself (e.g. in the worker): use this value.

  ``cpu`` is the CPU time it measured, if any.
  """
  cpu: Optional[float] = None


def _block(x):
  if isinstance(x, Elapsed):
    return x
  if "jax" in sys.modules:
    import jax
    return jax.block_until_ready(x)
  return x


def time_once(fn: Callable[[], Any]) -> tuple:
  """``(wall, cpu)`` seconds of one call of ``fn``, waiting for JAX results.

  If ``fn`` returns an :class:`Elapsed` (it measured itself), its figures are used.
  """
  c = time.process_time()
  t = time.perf_counter()
  out = _block(fn())
  elapsed = time.perf_counter() - t
  cpu = time.process_time() - c
  if isinstance(out, Elapsed):
    return float(out), (out.cpu if out.cpu is not None else float("nan"))
  return elapsed, cpu


def timeit(fn: Callable[[], Any], *, warmup: int = 1, repeats: int = 5) -> Timing:
  """Times ``fn`` ``repeats`` times after ``warmup`` untimed calls."""
  for _ in range(warmup):
    _block(fn())
  runs = [time_once(fn) for _ in range(repeats)]
  return Timing([w for w, _ in runs], [c for _, c in runs])


def interleaved(fns: dict, *, warmup: int = 1, repeats: int = 5,
                log: Optional[Callable[[str], None]] = None) -> dict:
  """Times several functions round-robin; returns ``{name: Timing}``.

  Each function is called ``warmup`` times first (compilation, caches); then every round calls
  each function once, starting the round with a different one each time.
  """
  names = list(fns)
  for name in names:
    for _ in range(warmup):
      _block(fns[name]())
  times = {name: Timing([], []) for name in names}
  for r in range(repeats):
    order = names[r % len(names):] + names[:r % len(names)]
    for name in order:
      wall, cpu = time_once(fns[name])
      times[name].times.append(wall)
      times[name].cpu.append(cpu)
    if log:
      log(f"  round {r + 1}/{repeats}: " + ", ".join(f"{n} {times[n].times[-1]:.4g}s"
                                                    for n in names))
  return times


# ----------------------------------------------------------------------------------- peer worker


def peer_env() -> dict:
  """The environment of the peers' process: this one's, without :data:`BLAS_ENV_VARS`."""
  env = {k: v for k, v in os.environ.items() if k not in BLAS_ENV_VARS}
  env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] +
                                      ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
  return env


def have(module: str) -> bool:
  """Whether ``module`` can be imported (without importing it)."""
  try:
    return importlib.util.find_spec(module) is not None
  except (ImportError, ValueError):
    return False


class PeerError(RuntimeError):
  pass


class PeerWorker:
  """A process running ``benchmarks/_worker.py``, which sets up and times peer implementations.

  ``setup(name, factory, **kwargs)`` calls ``benchmarks.peers.<factory>(**kwargs)`` there, which
  returns the function to time; ``timed(name)`` is a zero-argument function for
  :func:`interleaved` that runs it once and returns the worker's own measurement.
  """

  def __init__(self):
    self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks._worker"],
                                 cwd=str(REPO_ROOT), env=peer_env(), stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, bufsize=1)
    self.metrics = {}

  def call(self, **msg) -> dict:
    self.proc.stdin.write(json.dumps(msg) + "\n")
    self.proc.stdin.flush()
    line = self.proc.stdout.readline()
    if not line:
      raise PeerError(f"peer worker died (exit code {self.proc.poll()})")
    reply = json.loads(line)
    if "error" in reply:
      raise PeerError(reply["error"])
    return reply

  def info(self) -> dict:
    return self.call(op="info")

  def setup(self, name: str, factory: str, **kwargs) -> None:
    self.call(op="setup", name=name, factory=factory, kwargs=kwargs)

  def drop(self, name: str) -> None:
    self.call(op="drop", name=name)

  def timed(self, name: str) -> Callable[[], Elapsed]:

    def fn():
      reply = self.call(op="run", name=name)
      if reply.get("metrics"):
        self.metrics[name] = reply["metrics"]
      out = Elapsed(reply["seconds"])
      out.cpu = reply.get("cpu")
      return out

    return fn

  def close(self) -> None:
    if self.proc.poll() is None:
      try:
        self.call(op="quit")
      except (PeerError, OSError, ValueError):
        pass
      try:
        self.proc.wait(timeout=30)
      except subprocess.TimeoutExpired:
        self.proc.kill()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def save_array(x, folder: str, name: str) -> str:
  """Writes ``x`` as ``folder/name.npy`` (for the worker to load) and returns the path."""
  path = os.path.join(folder, name + ".npy")
  np.save(path, np.asarray(x))
  return path


def scratch_dir() -> tempfile.TemporaryDirectory:
  return tempfile.TemporaryDirectory(prefix="jdbn_bench_")


# ------------------------------------------------------------------------------------------ data


def mnist_dir() -> Optional[pathlib.Path]:
  """The MNIST IDX folder: ``$JDBN_MNIST_DIR``, else ``<repo>/../shared/data/mnist``; or None."""
  env = os.environ.get("JDBN_MNIST_DIR")
  folder = pathlib.Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "mnist"
  if folder.is_dir() and any(folder.glob("train-images-idx3-ubyte*")):
    return folder
  return None


def load_mnist_train() -> Optional[np.ndarray]:
  """The 60,000 MNIST training images ``[60000, 784]`` float32 in [0, 1], or None if absent.

  Reads the IDX files only (never downloads).
  """
  folder = mnist_dir()
  if folder is None:
    return None
  from jdbn import data
  return np.asarray(data.load_mnist("train", folder).x, np.float32)


def load_digits() -> np.ndarray:
  """The embedded 8x8 digits, ``[1797, 64]`` float32 in [0, 1]."""
  from jdbn import data
  return np.asarray(data.load_digits().x, np.float32)
