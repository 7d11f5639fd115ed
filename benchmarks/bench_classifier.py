"""Thin wrapper: ``python benchmarks/bench_classifier.py [--json]`` = ``nbrisk bench classifier``."""

import sys

from nbrisk_core.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "classifier", *sys.argv[1:]]))
