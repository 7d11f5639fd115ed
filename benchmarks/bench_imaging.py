"""Thin wrapper: ``python benchmarks/bench_imaging.py [--json] [--slices 300] [--size 512]``.

Same as ``nbrisk bench imaging``: writes an uncompressed CT series with pydicom into a temporary
directory, then measures loading (sort + HU) time and peak extra memory relative to the HU volume,
the seeded region grow + area curve of one phase, and the render of one viewer slice with overlay.
"""

from __future__ import annotations

import sys

from nbrisk_core.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "imaging", *sys.argv[1:]]))
