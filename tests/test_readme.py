"""README.md's Python examples run as printed, so the front page of the library stays true.

The first example (the library in one screen), the second (the block core: a DBM-shaped
model and a lattice Boltzmann machine) and the third (a DBM and the better samplers) run in this
process; the fourth (many devices) needs several devices and runs in a subprocess on 4 CPU
devices; the fifth needs a multi-host cluster
(``jax.distributed.initialize``), so only the ``jdbn`` names it uses are checked. Each
example's log-likelihood is checked against a bound it cannot fake: a model trained on the
binarised digits must score above the uniform distribution over 64 binary pixels,
``-64 ln 2 = -44.4`` nats.
"""

import ast
import math
import os
import pathlib
import pkgutil
import re
import subprocess
import sys

import numpy as np
import pytest

import jdbn

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
UNIFORM_NATS = -64 * math.log(2)


def _examples() -> list[str]:
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
  assert len(blocks) == 5, f"README.md has {len(blocks)} Python examples; this test knows 5"
  return blocks


def _jdbn_attributes(source: str) -> set[tuple[str, str]]:
  """``(module, name)`` for every ``module.name`` in ``source`` where ``module`` is the name of
  a jdbn module (``rbm.free_energy``, ``parallel.make_mesh`` ...)."""
  modules = {m.name for m in pkgutil.iter_modules(jdbn.__path__)}
  return {(n.value.id, n.attr) for n in ast.walk(ast.parse(source))
          if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
          and n.value.id in modules}


def test_every_jdbn_name_in_the_examples_exists():
  import importlib  # pylint: disable=import-outside-toplevel
  missing = []
  for i, block in enumerate(_examples()):
    for module, name in sorted(_jdbn_attributes(block)):
      if not hasattr(importlib.import_module(f"jdbn.{module}"), name):
        missing.append(f"example {i + 1}: jdbn.{module}.{name}")
  assert not missing, f"README.md uses names jdbn does not have: {missing}"


def test_library_in_one_screen_runs():
  ns = {}
  exec(compile(_examples()[0], "README.md example 1", "exec"), ns)  # pylint: disable=exec-used
  assert ns["f"].shape == (1797,) and ns["ph"].shape == (1797, 100)
  assert ns["final"].v.shape == (10_000, 64) and ns["final"].h.shape == (10_000, 100)
  est = ns["est"]
  assert float(est.lower) <= float(est.mean) <= float(est.upper)
  assert float(est.upper) - float(est.lower) < 1.0, est
  assert UNIFORM_NATS < float(est.mean) < 0, float(est.mean)


def test_block_core_example_runs(capsys):
  ns = {}
  exec(compile(_examples()[1], "README.md example 2", "exec"), ns)  # pylint: disable=exec-used
  assert [len(g) for g in ns["ising"].groups] == [8, 8]  # a 4x4 lattice is bipartite
  assert ns["trace"][0].shape == (10, 1000, 8)
  v, h1, h2 = ns["state"]
  assert v.shape == (1000, 6) and h1.shape == (1000, 4) and h2.shape == (1000, 3)
  assert set(np.unique(h1).tolist()) - {0.0, 1.0}  # h1 took its mean, not a sample
  log_z = float(capsys.readouterr().out.strip().splitlines()[-1])
  assert np.isfinite(log_z) and log_z > 0  # the all-zero state alone has E = 0, so Z > 1


@pytest.mark.slow
def test_dbm_and_samplers_example_runs():
  ns = {}
  exec(compile(_examples()[2], "README.md example 3", "exec"), ns)  # pylint: disable=exec-used
  bound = ns["bound"]
  assert float(bound.lower) <= float(bound.mean) <= float(bound.upper) < 0
  assert float(bound.mean) > UNIFORM_NATS  # a lower bound above the uniform model's
  assert ns["rbm_state"].chains.fast.W.shape == (64, 16)  # the last trainer was fast PCD
  assert ns["c_state"].params.mu.shape == (64,)
  assert ns["y_hat"].shape == ns["y"].shape and set(np.unique(ns["y_hat"])) <= set(range(10))


def test_many_devices_example_runs_on_four_cpu_devices():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  driver = ("import sys, jax\n"
            "assert jax.device_count() == 4, jax.devices()\n"
            "exec(compile(sys.stdin.read(), 'README.md example 4', 'exec'), {})\n")
  run = subprocess.run([sys.executable, "-c", driver], input=_examples()[3], env=env,
                       capture_output=True, text=True, timeout=600, check=False)
  assert run.returncode == 0, run.stderr[-3000:]
  nats = float(run.stdout.strip().splitlines()[-1])
  assert np.isfinite(nats) and UNIFORM_NATS < nats < 0, run.stdout
