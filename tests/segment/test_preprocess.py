"""The network input is built the same way as MONAI's transforms would build it."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nbrisk_core.segment.preprocess import downsample, network_input, scale_intensity, window


def test_numpy_window_equals_monai_scale_intensity_range():
    hu = np.random.default_rng(0).integers(-1024, 1500, (3, 16, 16)).astype(np.int16)
    expected = np.asarray(scale_intensity()(hu.astype(np.float32)))
    np.testing.assert_allclose(window(hu), expected, atol=1e-6)


def test_block_average_equals_area_interpolation_and_other_sizes_work():
    hu = np.random.default_rng(1).integers(-300, 500, (4, 64, 64)).astype(np.int16)
    reference = F.interpolate(torch.from_numpy(window(hu))[:, None], size=(32, 32), mode="area")[:, 0].numpy()
    np.testing.assert_allclose(downsample(hu, 32), reference, atol=1e-6)
    assert downsample(hu[:, :60, :50], 32).shape == (4, 32, 32)


def test_each_slice_sees_its_neighbours_and_the_edges_repeat():
    hu = np.stack([np.full((8, 8), v, dtype=np.int16) for v in (-200, 100, 400)])
    x = network_input(hu, 8)
    assert x.shape == (3, 3, 8, 8)
    assert [float(v) for v in x[0, :, 0, 0]] == [0.0, 0.0, 0.5]
    assert [float(v) for v in x[2, :, 0, 0]] == [0.5, 1.0, 1.0]
