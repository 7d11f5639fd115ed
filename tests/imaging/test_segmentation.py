"""Seeded segmentation, area curve and max-area slice, on a phantom and on the demo studies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from nbrisk_core.errors import InputError
from nbrisk_core.imaging import load_study
from nbrisk_core.imaging.segmentation import (
    align_phase, area_curve, carry_slice, dice, propose_max_area_slice, segment_from_seed,
)


def test_phantom_max_area_slice_and_dice(phantom):
    hu, mask = phantom
    truth = propose_max_area_slice(area_curve(mask), smoothing=False)
    cy, cx = ndimage.center_of_mass(mask[truth])
    seg = segment_from_seed(hu, (truth, int(cy), int(cx)), (0.8, 0.8), 2.0)
    assert abs(seg.max_area_slice - truth) <= 1
    assert dice(seg.mask[truth], mask[truth]) >= 0.85
    np.testing.assert_allclose(seg.areas_mm2, seg.mask.sum(axis=(1, 2)) * 0.64)


def test_seed_off_the_largest_section_still_finds_it(phantom):
    hu, mask = phantom
    truth = propose_max_area_slice(area_curve(mask), smoothing=False)
    seed_slice = truth - 2
    cy, cx = ndimage.center_of_mass(mask[seed_slice])
    seg = segment_from_seed(hu, (seed_slice, int(cy), int(cx)), (0.8, 0.8), 2.0)
    assert abs(seg.max_area_slice - truth) <= 1
    assert (seg.areas_mm2 > 0).sum() >= 5  # the curve spans the tumour, not just the clicked slice


def test_area_curve_units_and_proposal():
    mask = np.zeros((4, 10, 10), dtype=bool)
    mask[1, :2, :2] = True
    mask[2, :3, :3] = True
    areas = area_curve(mask, (0.5, 2.0))
    np.testing.assert_allclose(areas, [0.0, 4.0, 9.0, 0.0])
    assert propose_max_area_slice(areas, smoothing=False) == 2
    with pytest.raises(InputError):
        propose_max_area_slice(np.array([]))


def test_seed_outside_the_volume_is_an_input_error(phantom):
    hu, _ = phantom
    with pytest.raises(InputError, match="outside the volume"):
        segment_from_seed(hu, (40, 3, 3))


def test_carry_slice_nearest_position():
    assert carry_slice(10.2, np.array([0.0, 5.0, 10.0, 15.0])) == 2
    assert carry_slice(-100.0, np.array([0.0, 5.0])) == 0


def test_demo_studies_max_area_slice_and_dice(demo_dir_or_skip):
    """Seed at the true tumour centroid of each phase's max-area slice (mask in hu.npz), the other
    two phases as aligned companions as on the Case page: the proposal is within one slice of the
    generator's truth and the Dice of the mask at the proposed slice is >= 0.8, case by case
    (per-case figures in the assertion message; the whole cohort: benchmarks/eval_segmentation.py)."""
    truth = pd.read_csv(demo_dir_or_skip / "truth.csv").set_index("patient_id")
    good, lines = [], []
    for patient in sorted(p.name for p in (demo_dir_or_skip / "studies").iterdir()):
        saved = np.load(demo_dir_or_skip / "slices" / patient / "hu.npz")
        series = {phase: load_study(demo_dir_or_skip / "studies" / patient / phase.upper()).series[0]
                  for phase in ("nc", "art", "pv")}
        for phase, one in series.items():
            k = int(truth.loc[patient, f"max_area_slice_{phase}"])
            np.testing.assert_array_equal(one.hu[k], saved[phase])  # DICOM round trip is exact
            true_mask = saved[f"mask_{phase}"].astype(bool)
            cy, cx = ndimage.center_of_mass(true_mask)
            companions = [align_phase(one.hu, one.z_mm, other.hu, other.z_mm)
                          for name, other in series.items() if name != phase]
            seg = segment_from_seed(one.hu, (k, int(round(cy)), int(round(cx))), one.pixel_spacing,
                                    one.slice_spacing_mm, companions=companions)
            score = dice(seg.mask[seg.max_area_slice], true_mask)
            good.append(abs(seg.max_area_slice - k) <= 1 and score >= 0.8)
            lines.append(f"{patient} {phase}: proposed {seg.max_area_slice} truth {k} dice {score:.2f}")
    # the 5 shipped studies (15 phase series) all pass; on all 202 patients it is 95.05 %
    # (benchmarks/eval_segmentation.py; the failures are listed in its --out table)
    assert np.mean(good) >= 0.95, "\n".join(lines)


def test_align_phase_recovers_a_breathing_shift(phantom):
    hu, _ = phantom
    hu = hu.copy()
    hu[3:5, 8:16, 8:16] = 900    # bone that changes along z (the phantom's spine does not)
    hu[8, 40:44, 50:60] = 900
    z = np.arange(hu.shape[0]) * 2.0
    moved = np.concatenate([hu[:1], hu[:1], hu[:-2]])   # moved[z] = hu[z - 2]: anatomy 2 slices down
    aligned = align_phase(hu, z, moved, z)
    assert aligned.shift == -2 and aligned.shape == hu.shape
    np.testing.assert_array_equal(np.asarray(aligned)[2:-2], hu[2:-2])
    np.testing.assert_array_equal(aligned[5, 10:20, 3], hu[5, 10:20, 3])   # read without a copy
    assert align_phase(hu, z, hu[:, :32, :32], z) is None   # another in-plane size: not used


def test_companion_phase_edge_cuts_a_leak_into_an_organ_of_the_same_density():
    """Tumour against an 'organ' of its own HU in one phase, with the boundary visible in another
    (as tumour against liver in the arterial phase, seen in the non-contrast phase)."""
    rng = np.random.default_rng(0)
    n, size = 5, 96
    yy, xx = np.mgrid[0:size, 0:size]
    tumour = (yy - 48) ** 2 + (xx - 40) ** 2 <= 14 ** 2
    organ = ((yy - 48) ** 2 / 30 ** 2 + (xx - 75) ** 2 / 22 ** 2 <= 1) & ~tumour
    def volume(tumour_hu, organ_hu):
        plane = np.full((size, size), -90.0)
        plane[organ], plane[tumour] = organ_hu, tumour_hu
        return np.stack([plane + rng.normal(0, 6, plane.shape) for _ in range(n)]).astype(np.float32)
    art, nc = volume(75.0, 75.0), volume(35.0, 60.0)
    alone = segment_from_seed(art, (2, 48, 40), (0.8, 0.8), 5.0)
    helped = segment_from_seed(art, (2, 48, 40), (0.8, 0.8), 5.0, companions=[nc])
    assert dice(helped.mask[2], tumour) >= 0.85
    assert dice(helped.mask[2], tumour) > dice(alone.mask[2], tumour)
    with pytest.raises(InputError, match="companion"):
        segment_from_seed(art, (2, 48, 40), companions=[nc[:3]])


def test_segmentation_of_a_windowed_grey_export(phantom):
    from nbrisk_core.imaging.model_input import hu_to_uint8
    from nbrisk_core.imaging.segmentation import pseudo_hu_from_grey

    hu, mask = phantom
    k = propose_max_area_slice(area_curve(mask), smoothing=False)
    grey = hu_to_uint8(hu[k])
    cy, cx = ndimage.center_of_mass(mask[k])
    seg = segment_from_seed(pseudo_hu_from_grey(grey)[np.newaxis], (0, int(cy), int(cx)), (0.8, 0.8))
    assert dice(seg.mask[0], mask[k]) >= 0.85


def test_proposal_climbs_from_the_click_to_the_local_maximum():
    # a second, larger rise further along z is another structure, not this tumour
    areas = np.array([0, 5, 9, 12, 8, 4, 6, 20, 30, 0], dtype=float)
    assert propose_max_area_slice(areas, smoothing=False, start=2) == 3
    assert propose_max_area_slice(areas, smoothing=False) == 8
    assert propose_max_area_slice(areas, smoothing=False, start=6) == 8
