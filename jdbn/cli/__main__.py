"""``python -m jdbn.cli``: runs the ``jdbn`` command line (:func:`jdbn.cli.main`)."""

import sys

from jdbn.cli import main

sys.exit(main())
