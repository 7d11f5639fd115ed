"""`nbrisk segment --out DIR --format seg`: one DICOM SEG per phase, read back with pydicom and highdicom:
the mask equals the network's and each frame references the CT instance it segments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from nbrisk_core.cli import main
from nbrisk_core.segment import inference
from nbrisk_core.segment.model import shipped_seg_model_path

segment_phases = inference.segment_phases

needs_model = pytest.mark.skipif(not shipped_seg_model_path().is_file(),
                                 reason="no shipped segmentation model")


def _sources_by_position(folder: Path) -> list:
    """A phase folder's CT files in ascending position along the slice normal."""
    members = [pydicom.dcmread(path, stop_before_pixels=True) for path in sorted(folder.glob("*.dcm"))]
    def along_normal(ds) -> float:
        orientation = np.asarray(ds.ImageOrientationPatient, float)
        normal = np.cross(orientation[:3], orientation[3:])
        return float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal))

    return sorted(members, key=along_normal)


@needs_model
def test_seg_files_hold_the_networks_mask_and_reference_the_source_ct(demo_dir, tmp_path, capsys,
                                                                      monkeypatch):
    import highdicom as hd

    study_dir = demo_dir / "studies" / "P0002"
    expected = {}

    def recording(model, phases, **kwargs):    # the network's masks of this very run
        expected.update(segment_phases(model, phases, **kwargs))
        return expected

    monkeypatch.setattr(inference, "segment_phases", recording)
    assert main(["segment", str(study_dir), "--out", str(tmp_path), "--format", "seg"]) == 0
    assert "_seg.dcm" in capsys.readouterr().out
    assert list(expected) == ["nc", "art", "pv"]
    for phase, result in expected.items():
        assert result.found, f"{phase}: the demo tumour should be found"
        members = _sources_by_position(study_dir / phase.upper())   # the demo study's folder per phase
        assert len(members) == result.mask.shape[0]
        seg = pydicom.dcmread(tmp_path / f"{phase}_seg.dcm")
        assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"           # Segmentation Storage
        assert seg.StudyInstanceUID == members[0].StudyInstanceUID
        assert seg.FrameOfReferenceUID == members[0].FrameOfReferenceUID
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == members[0].SeriesInstanceUID
        referenced = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
        assert {r.ReferencedSOPInstanceUID for r in referenced} == {ds.SOPInstanceUID for ds in members}
        # rebuild the volume frame by frame from each frame's source reference (pydicom alone)
        index_of = {ds.SOPInstanceUID: k for k, ds in enumerate(members)}
        frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
        rebuilt = np.zeros(result.mask.shape, dtype=bool)
        for frame, group in zip(frames, seg.PerFrameFunctionalGroupsSequence):
            source = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
            rebuilt[index_of[source]] = frame.astype(bool)
            # and the frame lies where its source slice lies
            position = group.PlanePositionSequence[0].ImagePositionPatient
            np.testing.assert_allclose(np.asarray(position, float),
                                       np.asarray(members[index_of[source]].ImagePositionPatient, float))
        np.testing.assert_array_equal(rebuilt, result.mask)
        # highdicom reads it back the same way
        read = hd.seg.segread(tmp_path / f"{phase}_seg.dcm")
        uids = [ds.SOPInstanceUID for ds in members]
        pixels = read.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1],
                                                    combine_segments=True)
        np.testing.assert_array_equal(pixels.astype(bool), result.mask)
        assert read.get_segment_description(1).segment_label == "Tumour"


def test_a_slice_without_a_source_file_at_its_position_is_an_input_error():
    from nbrisk_core.errors import InputError
    from nbrisk_core.segment.dicom_seg import match_slices

    ds = pydicom.Dataset()
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 5.0], [1, 0, 0, 0, 1, 0]
    with pytest.raises(InputError, match="slice 1 at z 7.50 mm has no source file"):
        match_slices([ds], np.array([5.0, 7.5]), "2.25.1")


def test_format_seg_without_out_exits_2(demo_dir, capsys):
    assert main(["segment", str(demo_dir / "studies" / "P0002"), "--format", "seg"]) == 2
    assert "give --out DIR" in capsys.readouterr().err
