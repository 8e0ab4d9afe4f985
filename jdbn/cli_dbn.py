"""The old name of :mod:`jdbn.cli.dbn`, the DBN subcommands of the ``jdbn`` command line (the same
module object, so every name it had still resolves)."""

import sys

from jdbn.cli import dbn as _module

sys.modules[__name__] = _module
