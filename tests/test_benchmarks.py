"""The benchmark suite's smoke run, so that it never rots (issue 5)."""

import pathlib
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_benchmark_suite_quick_run():
  result = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  assert "jdbn" in result.stdout
