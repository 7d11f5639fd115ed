"""`nbrisk segment`: exit 2 without CT, one JSON object with the issue's keys, masks as NIfTI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from nbrisk_core.cli import main
from nbrisk_core.segment.model import shipped_seg_model_path
from nbrisk_core.segment.nifti import read_mask_nifti


def test_a_study_without_ct_exits_2_with_one_line(tmp_path, capsys):
    png = tmp_path / "slice.png"
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(png)
    assert main(["segment", str(png)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no CT series" in err


def test_missing_path_exits_2(tmp_path, capsys):
    assert main(["segment", str(tmp_path / "nothing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


@pytest.mark.skipif(not shipped_seg_model_path().is_file(), reason="no shipped segmentation model")
def test_json_report_and_nifti_masks(demo_dir, tmp_path, capsys):
    assert main(["segment", str(demo_dir / "studies" / "P0002"), "--json", "--out", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report["phases"]) == ["nc", "art", "pv"]
    for phase, record in report["phases"].items():
        assert {"series_uid", "max_area_slice", "area_mm2", "volume_ml", "longest_diameter_mm",
                "confidence"} <= set(record)
        mask, _ = read_mask_nifti(tmp_path / f"{phase}_mask.nii.gz")
        assert mask.shape == (48, 256, 256)
        # the reported area is the mask's area on the reported slice
        assert mask[record["max_area_slice"]].sum() > 0
        assert 0.0 <= record["confidence"] <= 1.0 and record["volume_ml"] > 0
