"""The NIfTI-1 mask writer: header, affine and voxels read back exactly."""

from __future__ import annotations

import gzip
import struct

import numpy as np

from nbrisk_core.segment.nifti import mask_affine, read_mask_nifti, write_mask_nifti


def test_mask_round_trips_with_its_affine(tmp_path):
    rng = np.random.default_rng(0)
    mask = rng.random((5, 7, 9)) > 0.6
    affine = mask_affine((0.8, 0.7), 2.5, -10.0)
    path = write_mask_nifti(tmp_path / "m.nii.gz", mask, affine)
    back, back_affine = read_mask_nifti(path)
    assert back.shape == mask.shape and np.array_equal(back.astype(bool), mask)
    np.testing.assert_allclose(back_affine, affine, rtol=1e-6)
    # RAS: columns run to the patient's right-to-left, so x decreases with the column index
    assert affine[0, 0] == -0.7 and affine[1, 1] == -0.8 and affine[2, 2] == 2.5 and affine[2, 3] == -10.0
    raw = gzip.decompress(path.read_bytes())
    assert struct.unpack_from("<8h", raw, 40)[:4] == (3, 9, 7, 5)   # i = column varies fastest
    assert len(raw) == 352 + mask.size


def test_same_mask_gives_same_bytes(tmp_path):
    mask = np.zeros((2, 4, 4), dtype=bool)
    mask[1, 1:3, 1:3] = True
    affine = mask_affine((1.0, 1.0), 1.0, 0.0)
    a = write_mask_nifti(tmp_path / "a.nii.gz", mask, affine).read_bytes()
    b = write_mask_nifti(tmp_path / "b.nii.gz", mask, affine).read_bytes()
    assert a == b
