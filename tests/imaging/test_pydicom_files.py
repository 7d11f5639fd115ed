"""pydicom's own test files, compressed ones included: each loads (pixels equal to pydicom's decode)
or is skipped with a clear reason naming the file; nothing raises."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from nbrisk_core.imaging import load_study

#: (file, transfer syntax it exercises); only files shipped inside pydicom (no download)
COMPRESSED = [
    ("JPEG2000.dcm", "JPEG 2000"),
    ("MR_small_jp2klossless.dcm", "JPEG 2000 lossless"),
    ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS lossless"),
    ("JPEGLSNearLossless_16.dcm", "JPEG-LS near-lossless"),
    ("MR_small_RLE.dcm", "RLE lossless"),
    ("JPEG-lossy.dcm", "JPEG baseline/extended"),
    ("JPGExtended.dcm", "JPEG extended"),
    ("image_dfl.dcm", "deflated explicit VR"),
    ("CT_small.dcm", "explicit VR little endian"),
    ("MR_small_bigendian.dcm", "explicit VR big endian"),
    ("MR_small_implicit.dcm", "implicit VR"),
]
BROKEN = ["MR_truncated.dcm", "rtplan_truncated.dcm", "SC_rgb_rle.dcm", "rtplan.dcm", "meta_missing_tsyntax.dcm"]


def _local(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not shipped with this pydicom")
    return path


@pytest.mark.parametrize(("name", "syntax"), COMPRESSED)
def test_compressed_files_decode_like_pydicom(name, syntax):
    path = _local(name)
    study = load_study(path)
    ds = pydicom.dcmread(path)
    try:
        stored = ds.pixel_array
    except Exception:  # noqa: BLE001 - no installed plugin decodes it: we must say so, not crash
        assert not study.series
        assert "cannot be decoded" in study.skipped[0].reason, study.skipped
        return
    assert len(study.series) == 1, f"{syntax}: {[f.reason for f in study.skipped]}"
    expected = pydicom.pixels.apply_modality_lut(stored, ds)
    if expected.ndim == 2:
        expected = expected[np.newaxis]
    got = study.series[0].hu
    assert got.shape == expected.shape
    # multi-frame files come sorted by position; compare as sets of frames when reordered
    np.testing.assert_allclose(np.sort(got.reshape(len(got), -1).sum(axis=1)),
                               np.sort(expected.reshape(len(expected), -1).sum(axis=1)), rtol=1e-5)


@pytest.mark.parametrize("name", BROKEN)
def test_broken_or_unsupported_files_give_a_reason(name):
    path = _local(name)
    study = load_study(path)
    if study.series:  # a file pydicom itself can read fully is fine too
        return
    assert study.skipped and study.skipped[0].name.endswith(name.split("/")[-1])
    assert len(study.skipped[0].reason) > 10
