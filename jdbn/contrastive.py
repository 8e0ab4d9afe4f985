"""The old name of :mod:`jdbn.train.contrastive` (the same module object, so every name, private ones
included, and every checkpoint that names a class here still resolves)."""

import sys

from jdbn.train import contrastive as _module

sys.modules[__name__] = _module
