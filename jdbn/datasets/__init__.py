"""Data sets generated in code, deterministic given a PRNG key (no downloads).

* :mod:`jdbn.datasets.bouncing_balls`: the bouncing-balls videos of Sutskever, Hinton & Taylor
  (2009), balls bouncing elastically in a box, rendered to small frames.
"""

from jdbn.datasets import bouncing_balls  # noqa: F401
