"""Restricted Boltzmann machines (moved to :mod:`jdbn.models.rbm`; this name stays)."""

from jdbn.models.rbm import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
from jdbn.models.rbm import __all__  # noqa: F401
