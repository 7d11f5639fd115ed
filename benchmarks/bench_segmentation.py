"""Thin wrapper: ``python benchmarks/bench_segmentation.py [--json] [--patients 1-100] [--out FILE]``.

Same as ``nbrisk bench segmentation``: the MONAI segmentation (shipped ``models/seg_demo``) on demo
patients' full studies rendered on the fly, all three phases, next to the seed-click contour on the
same series: max-area slice within one slice, mean Dice on the chosen slice, median volume error,
and seconds per 48-slice phase and per 512 x 512 x 300 phase. Minutes on 2 cores.
"""

from __future__ import annotations

import sys

from nbrisk_core.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "segmentation", *sys.argv[1:]]))
