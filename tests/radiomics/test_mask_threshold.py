"""The interpolated mask keeps a partial-volume fraction of exactly 0.5 despite floating-point error
(the cause of IBSI CT phantom configuration D's four deviations, docs/radiomics.md)."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from nbrisk_core.radiomics import processing


def test_exact_halves_of_an_interpolated_mask_stay_in_the_roi():
    # the CT phantom's grid (3 mm slices, 0.977 mm pixels) resampled to 2 mm: new centres fall exactly
    # half-way between old slices, and trilinear interpolation computes some halves as 0.49999999999999994
    shape, spacing, new = (10, 16, 16), (3.0, 0.977, 0.977), (2.0, 2.0, 2.0)
    mask = np.zeros(shape, dtype=bool)
    mask[3:9, 2:11, 2:11] = True
    _, resampled, _ = processing.resample(np.zeros(shape), mask, spacing, new)
    size = [max(1, math.ceil(n * s / t)) for n, s, t in zip(shape, spacing, new)]
    axes = [(np.arange(k) - (k - 1) / 2.0) * (t / s) + (n - 1) / 2.0
            for n, s, t, k in zip(shape, spacing, new, size)]
    fraction = ndimage.map_coordinates(mask.astype(float), np.meshgrid(*axes, indexing="ij"), order=1,
                                       mode="constant")
    half = np.isclose(fraction, 0.5, rtol=0, atol=1e-12)
    assert (half & (fraction < 0.5)).any()   # the floating-point case this guards against exists here
    assert resampled[half].all()             # ... and those voxels are in the ROI (IBSI: >= 0.5)
    assert not resampled[fraction < 0.5 - 1e-6].any() and resampled[fraction > 0.5].all()
