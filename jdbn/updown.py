"""The old name of :mod:`jdbn.train.updown` (the same module object, so every name, private ones
included, and every checkpoint that names a class here still resolves)."""

import sys

from jdbn.train import updown as _module

sys.modules[__name__] = _module
