"""Thin wrapper: ``python benchmarks/bench_demo.py [--json] [--patients N] [--studies K]``.

Same as ``nbrisk bench demo``: builds the demo cohort into a temporary directory and prints the
wall time, the size on disk, the per-study time and the training-sample time with target ratios.
"""

from __future__ import annotations

import sys

from nbrisk_core.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "demo", *sys.argv[1:]]))
