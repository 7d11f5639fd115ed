"""``python -m nbrisk_core.cli``: the same entry point as ``nbrisk`` and ``python -m nbrisk_core``."""

import sys

from nbrisk_core.cli import main

sys.exit(main())
