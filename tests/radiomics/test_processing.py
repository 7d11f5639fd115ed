"""IBSI image processing steps and the 2-D shape features, against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from nbrisk_core.errors import InputError
from nbrisk_core.radiomics import Settings, extract, processing, shape


def test_fixed_bin_size_counts_from_the_lower_resegmentation_bound():
    image = np.array([[[-500.0, -476.0, -475.0, 0.0, 400.0]]])
    mask = np.ones(image.shape, dtype=bool)
    levels = processing.discretise(image, mask, "fbs", bin_width=25, low=-500)
    assert levels.ravel().tolist() == [1, 1, 2, 21, 37]


def test_fixed_bin_number_puts_the_maximum_in_the_last_bin():
    image = np.array([[[0.0, 1.0, 2.0, 3.0, 4.0]]])
    mask = np.array([[[True, True, True, True, False]]])
    levels = processing.discretise(image, mask, "fbn", n_bins=3)
    assert levels.ravel().tolist() == [1, 2, 3, 3, 0]


def test_resegmentation_and_outlier_filter_shrink_the_intensity_mask_only():
    image = np.array([[[-1200.0, 0.0, 50.0, 3000.0]]])
    mask = np.ones(image.shape, dtype=bool)
    assert processing.resegment(image, mask, -1000, 400).ravel().tolist() == [False, True, True, False]
    values = np.concatenate([np.zeros(50), [100.0]])[None, None]
    kept = processing.outlier_filter(values, np.ones(values.shape, dtype=bool), 3.0)
    assert kept.sum() == 50 and not kept[0, 0, -1]


def test_resampling_aligns_grid_centres_and_keeps_a_linear_ramp():
    ramp = np.tile(np.arange(6.0), (1, 4, 1))  # x ramp 0..5 at 1 mm
    mask = np.ones(ramp.shape, dtype=bool)
    img, msk, spacing = processing.resample(ramp, mask, (1.0, 1.0, 1.0), (2.0, 2.0), in_plane_only=True)
    assert img.shape == (1, 2, 3) and spacing == (1.0, 2.0, 2.0)
    # new centres at -0.5+... : x_old = (k - 1) * 2 + 2.5 -> 0.5, 2.5, 4.5
    assert np.allclose(img[0, 0], [0.5, 2.5, 4.5])
    assert msk.all()


def test_bad_inputs_are_named():
    with pytest.raises(InputError, match="mask: shape"):
        extract(np.zeros((4, 4)), np.ones((3, 3)), (1, 1))
    with pytest.raises(InputError, match="mask: empty"):
        extract(np.zeros((4, 4)), np.zeros((4, 4)), (1, 1))
    with pytest.raises(InputError, match="a 2-D slice takes a 2D_"):
        extract(np.zeros((4, 4)), np.ones((4, 4)), (1, 1), Settings(aggregation="3D_avg"))
    with pytest.raises(InputError, match="discretisation"):
        extract(np.zeros((4, 4)), np.ones((4, 4)), (1, 1), Settings(discretisation="equal"))
    with pytest.raises(InputError, match="no voxel left after re-segmentation"):
        extract(np.full((4, 4), 5000.0), np.ones((4, 4)), (1, 1), Settings(resegment=(-100, 400)))


def test_shape_2d_of_a_rectangle():
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:6, 3:11] = True  # 4 x 8 pixels of 0.5 x 0.5 mm -> 2 x 4 mm
    feats = shape.shape_2d(mask, (0.5, 0.5))
    assert feats["shape2d_area"] == pytest.approx(8.0)
    assert feats["shape2d_perimeter"] == pytest.approx(12.0)
    assert feats["shape2d_max_diameter"] == pytest.approx(np.hypot(2.0, 4.0))
    assert feats["shape2d_circularity"] == pytest.approx(4 * np.pi * 8.0 / 144.0)
    assert 0 < feats["shape2d_elongation"] < 1


def test_a_slice_is_invariant_to_rotation_by_90_degrees():
    rng = np.random.default_rng(0)
    image = rng.integers(-50, 200, size=(30, 30)).astype(float)
    mask = np.zeros((30, 30), dtype=bool)
    mask[5:25, 8:22] = True
    a = extract(image, mask, (1.0, 1.0))
    b = extract(np.rot90(image), np.rot90(mask), (1.0, 1.0))
    for name in ("stat_mean", "ih_entropy", "cm_contrast", "rlm_sre", "szm_sze", "dzm_sde",
                 "ngt_coarseness", "ngl_hde", "shape2d_area"):
        assert a[name] == pytest.approx(b[name], rel=1e-9), name
