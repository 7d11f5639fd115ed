"""Thin wrapper: ``python benchmarks/bench_prognosis.py [--json] [--sizes 202,500,1000,2000] [--grid full]``.

Same as ``nbrisk bench prognosis``: fits the whole prognosis pipeline (imputation, screening, the
117-combination grid, the selected model, the baseline) on synthetic cohorts of growing size with
stand-in CT features, prints the time per size, the growth exponent and the time of one individual
prediction.
"""

from __future__ import annotations

import sys

from nbrisk_core.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "prognosis", *sys.argv[1:]]))
