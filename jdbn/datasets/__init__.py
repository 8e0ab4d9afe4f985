"""Data sets without downloads, deterministic given a PRNG key: generated in code, or bundled.

* :mod:`jdbn.datasets.bouncing_balls`: the bouncing-balls videos of Sutskever, Hinton & Taylor
  (2009), balls bouncing elastically in a box, rendered to small frames.
* :mod:`jdbn.datasets.photos`: scikit-learn's two sample photographs, whitened, as patches
  (natural images offline, for Gaussian-visible conv RBMs).
"""

from jdbn.datasets import bouncing_balls, photos  # noqa: F401
