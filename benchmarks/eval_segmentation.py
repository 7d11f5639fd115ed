"""Accuracy of the seeded segmentation on the synthetic demo cohort (the issue's yardstick).

``python benchmarks/eval_segmentation.py [--patients 1-202] [--jobs 2] [--single-phase] [--out FILE.tsv]``

For every patient and phase the generator's volume is rendered, the seed is put at the centroid of
the true tumour on the true max-area slice, and :func:`segment_from_seed` runs with the other two
phases as companions (aligned by :func:`align_phase`, as on the Case page; ``--single-phase`` runs
without them). Prints, per phase and overall: the share of proposals within one slice of the truth,
the share of cases whose Dice at the proposed slice is >= 0.8, mean and minimum Dice, and seconds
per call; the per-case table goes to ``--out``. Not a test: it renders 606 volumes (minutes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from nbrisk_core.config import demo_cohort_dir

PHASES = ("nc", "art", "pv")


@lru_cache(maxsize=1)
def _cohort():
    from nbrisk_core.demo.cohort import generate_cohort_tables

    meta = json.loads((demo_cohort_dir() / "cohort.json").read_text())
    return int(meta["seed"]), generate_cohort_tables(int(meta["n_patients"]), int(meta["seed"]))


def evaluate_patient(number: int, single_phase: bool = False) -> list[dict]:
    from nbrisk_core.demo.cohort import cohort_geometry
    from nbrisk_core.demo.render import render_slice
    from nbrisk_core.imaging.segmentation import align_phase, dice, segment_from_seed

    seed, table = _cohort()
    geom = cohort_geometry(table.iloc[number - 1], seed, number)
    spacing = (geom.pixel_spacing, geom.pixel_spacing)
    z_mm = np.arange(geom.n_slices) * geom.slice_thickness
    volumes, masks = {}, {}
    for phase in PHASES:
        hus, phase_masks = zip(*(render_slice(geom, phase, k) for k in range(geom.n_slices)))
        volumes[phase], masks[phase] = np.stack(hus), np.stack(phase_masks).astype(bool)
    rows = []
    for phase in PHASES:
        k = geom.max_area_slice(phase)
        cy, cx = ndimage.center_of_mass(masks[phase][k])
        companions = []
        if not single_phase:
            for other in PHASES:
                aligned = None if other == phase else align_phase(volumes[phase], z_mm, volumes[other], z_mm)
                if aligned is not None:
                    companions.append(aligned)
        started = time.perf_counter()
        seg = segment_from_seed(volumes[phase], (k, int(round(cy)), int(round(cx))), spacing,
                                geom.slice_thickness, companions=companions)
        seconds = time.perf_counter() - started
        proposed = seg.max_area_slice
        rows.append({"patient": number, "phase": phase, "true_slice": k, "proposed": proposed,
                     "dice": dice(seg.mask[proposed], masks[phase][k]),
                     "area_ratio": seg.mask[proposed].sum() / max(masks[phase][k].sum(), 1), "seconds": seconds})
    return rows


def summarise(table: pd.DataFrame) -> str:
    table = table.assign(within=(table.proposed - table.true_slice).abs() <= 1, dice_ok=table.dice >= 0.8)
    lines = [f"{'phase':<6}{'n':>5}{'within 1':>10}{'Dice>=0.8':>11}{'mean Dice':>11}{'min Dice':>10}"
             f"{'median s':>10}{'max s':>8}"]
    for name, part in [*table.groupby("phase", sort=False), ("all", table)]:
        lines.append(f"{name:<6}{len(part):>5}{part.within.mean():>10.3f}{part.dice_ok.mean():>11.3f}"
                     f"{part.dice.mean():>11.3f}{part.dice.min():>10.3f}{part.seconds.median():>10.3f}"
                     f"{part.seconds.max():>8.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", default="1-202", help="range FIRST-LAST of demo patient numbers")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--single-phase", action="store_true", help="no companion phases")
    parser.add_argument("--out", type=Path, help="per-case TSV")
    args = parser.parse_args(argv)
    first, last = (int(v) for v in args.patients.split("-"))
    numbers = list(range(first, last + 1))
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(evaluate_patient, numbers, [args.single_phase] * len(numbers)))
    table = pd.DataFrame([row for rows in results for row in rows])
    if args.out:
        table.to_csv(args.out, sep="\t", index=False)
    print(summarise(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
