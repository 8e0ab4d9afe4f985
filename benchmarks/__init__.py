"""jdbn's benchmark suite: ``python -m benchmarks.run [--quick]`` (see ``benchmarks/run.py``)."""
