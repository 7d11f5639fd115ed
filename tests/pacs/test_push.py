"""What a push makes of a typed case, without an archive: the link, the chosen instances, the SR, the capture.

An in-memory stand-in archive holds three tiny CT series; the case's chosen slices carry the series UIDs
the link's de-identification key gives them (:func:`nbrisk_core.pacs.pull.link_deidentifier`).
"""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from nbrisk_core.case import PHASES, Case, ChosenSlice, Phase, Prognosis, RiskResult, VariantScore
from nbrisk_core.pacs.errors import PacsError
from nbrisk_core.pacs.query import SeriesHit

STUDY_UID = "2.25.31415926535897932384626433832795"
N_SLICES = 5
#: the study attributes a pushed object copies (read from the archive at push time)
STUDY = {"PatientID": "SYNTH-PUSH", "PatientName": "SYNTH^PUSH", "PatientBirthDate": "20200101",
         "PatientSex": "F", "StudyInstanceUID": STUDY_UID, "StudyDate": "20240102", "StudyTime": "101010",
         "AccessionNumber": "A1", "StudyID": "1", "ReferringPhysicianName": ""}


def _instance(series_uid: str, z: float, number: int) -> Dataset:
    ds = Dataset()
    for keyword, value in STUDY.items():
        setattr(ds, keyword, value)
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", generate_uid()
    ds.SeriesInstanceUID, ds.Modality, ds.InstanceNumber = series_uid, "CT", number
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0, 0, z]
    ds.Rows = ds.Columns = 32  # metadata only (as WADO-RS metadata gives it): no pixel data
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 1
    return ds


class StandInArchive:
    """``list_series`` and ``series_metadata`` of an archive holding three CT series (z = 0, 2, ... mm)."""

    def __init__(self):
        self.series = {str(phase): generate_uid() for phase in PHASES}
        self.instances = {uid: [_instance(uid, 2.0 * k, k + 1) for k in range(N_SLICES)]
                          for uid in self.series.values()}

    def list_series(self, study_uid):
        return [SeriesHit(uid, "CT", f"{phase.upper()} phase", n, N_SLICES)
                for n, (phase, uid) in enumerate(self.series.items(), start=1)]

    def series_metadata(self, study_uid, series_uid):
        return list(self.instances[series_uid])


def _case(archive: StandInArchive, *, link: bool = True, cams=None, prognosis: bool = True) -> Case:
    from nbrisk_core.pacs.pull import link_deidentifier

    deid = link_deidentifier(STUDY_UID)
    hu = np.full((32, 32), -1000, np.int16)
    hu[8:24, 8:24] = 40
    slices = {phase: ChosenSlice(phase, k + 1, 2.0 * (k + 1) + 0.4, hu=hu, pixel_spacing=(0.8, 0.8),
                                 series_uid=deid.uid(archive.series[str(phase)]),
                                 burned_in={"pixel_text": False})
              for k, phase in enumerate(PHASES)}
    scores = {"art": VariantScore("art", "Swin-ART", 0.73, "HR", 0.5, "a" * 64),
              "mp": VariantScore("mp", "Swin-MP", 0.61, "HR", 0.5, "b" * 64)}
    risk = RiskResult(scores=scores, embedding=np.zeros(16, np.float32), cams=cams or {})
    result = Prognosis(times=np.array([0.0, 365.0]), survival=np.array([1.0, 0.7]), mlrs=1.25,
                       percentile=77.0, group="high", cutoff=0.5, model="StepCox[backward] + RSF",
                       pipeline_sha256="c" * 64) if prognosis else None
    study = {"age": "003Y", "sex": "F", "phases": {}}
    if link:
        study["archive"] = {"archive": "stand-in", "study_uid": STUDY_UID}
    return Case(label="push-unit", slices=slices, study=study, risk=risk, prognosis=result)


def test_the_link_is_read_from_the_typed_case_study():
    from nbrisk_core.pacs.push import study_link

    archive = StandInArchive()
    assert study_link(_case(archive)) == {"archive": "stand-in", "study_uid": STUDY_UID}
    assert study_link(_case(archive, link=False)) is None


def test_chosen_instances_are_the_nearest_to_each_chosen_slice():
    from nbrisk_core.pacs.push import chosen_instances

    archive = StandInArchive()
    case = _case(archive)
    found = chosen_instances(archive, case, STUDY_UID)
    assert list(found) == list(PHASES)
    for phase, ds in found.items():  # z_mm = 2 (index + 1) + 0.4: the instance at index + 1
        assert ds.SeriesInstanceUID == archive.series[str(phase)]
        assert int(ds.InstanceNumber) == case.slices[phase].index + 1
    moved = case.replace(slices={**case.slices, Phase.PV: case.slices[Phase.PV].replace(series_uid="2.25.9")})
    with pytest.raises(PacsError, match="the pv slice's series is not in study") as caught:
        chosen_instances(archive, moved, STUDY_UID)
    assert caught.value.kind == "not_found"


def test_the_sr_carries_every_variant_and_the_prognosis():
    from nbrisk_core.pacs.push import build_sr, chosen_instances, read_report

    archive = StandInArchive()
    case = _case(archive)
    sources = chosen_instances(archive, case, STUDY_UID)
    values = read_report(build_sr(case, sources))
    assert values["p_high_risk"] == {"Swin-ART": (pytest.approx(0.73), "a" * 64),
                                     "Swin-MP": (pytest.approx(0.61), "b" * 64)}
    assert values["mlrs"] == pytest.approx(1.25) and values["mlrs_percentile"] == pytest.approx(77.0)
    assert values["mlrs_group"] == "high"
    assert set(values["references"]) == {str(ds.SOPInstanceUID) for ds in sources.values()}
    without = read_report(build_sr(_case(archive, prognosis=False), sources))
    assert without["mlrs"] is None and without["mlrs_group"] is None and len(without["p_high_risk"]) == 2
    with pytest.raises(PacsError, match="has no risk result to push"):
        build_sr(case.replace(risk=None), sources)


def test_the_capture_is_the_reports_cam_overlay_stamped():
    from PIL import Image

    from nbrisk_core.pacs.push import NOT_FOR_DIAGNOSIS, build_gradcam
    from nbrisk_core.report.figures import slice_png

    archive = StandInArchive()
    cam = np.zeros((16, 16))
    cam[4:12, 4:12] = 1.0
    case = _case(archive, cams={"pv": cam, "art": cam})
    study = Dataset()
    for keyword, value in STUDY.items():
        setattr(study, keyword, value)
    captures = build_gradcam(study, case)
    assert [c.ImageComments for c in captures] == [f"{NOT_FOR_DIAGNOSIS}; {p.title} phase"
                                                   for p in (Phase.ART, Phase.PV)]
    (art, _) = captures
    assert art.BurnedInAnnotation == "YES" and art.PatientID == "SYNTH-PUSH"
    # below the black band, the pixels are the PDF's image of the slice with its CAM
    import io

    expected = np.asarray(Image.open(io.BytesIO(slice_png(case.slices[Phase.ART].hu, cam, max_side=512)))
                          .convert("RGB"))
    band = max(12, expected.shape[0] // 20) + 1
    assert np.array_equal(art.pixel_array[band:], expected[band:])
    assert (art.pixel_array[:2] == 0).all(axis=-1).mean() > 0.5
    assert build_gradcam(study, _case(archive)) == []


def _segmented(case: Case, **by_phase) -> Case:
    """``case`` with a :class:`SegmentationSummary` (keyword arguments per phase) on the named phases."""
    from nbrisk_core.case import SegmentationSummary

    slices = dict(case.slices)
    for phase, fields in by_phase.items():
        summary = SegmentationSummary(**{"volume_ml": 12.5, "longest_diameter_mm": 40.0, "area_mm2": 900.0,
                                         "max_area_slice": 2, "confidence": 0.9, **fields})
        slices[Phase(phase)] = slices[Phase(phase)].replace(segmentation=summary)
    return case.replace(slices=slices)


def test_a_phase_without_an_automatic_segmentation_is_skipped_with_its_reason(tmp_path, monkeypatch):
    """Nothing to segment, or no model: no SEG, each phase's reason recorded, and the archive is not
    asked for the series (the stand-in cannot retrieve: asking would fail the test)."""
    from nbrisk_core.pacs.push import build_segs, chosen_instances

    archive = StandInArchive()
    case = _case(archive)
    sources = chosen_instances(archive, case, STUDY_UID)
    segs, skipped = build_segs(archive, case, STUDY_UID, sources)
    assert segs == [] and skipped == {p: "no segmentation in the case" for p in ("nc", "art", "pv")}

    case = _segmented(case, nc={"source": "seed click", "confidence": None},
                      art={"found": False, "volume_ml": 0.0}, pv={"model_sha256": "e" * 64})
    monkeypatch.setenv("NBRISK_MODELS_DIR", str(tmp_path))  # no seg_demo there
    segs, skipped = build_segs(archive, case, STUDY_UID, sources)
    assert segs == []
    assert skipped["nc"].startswith("the segmentation is a seed click")
    assert skipped["art"] == "the segmentation found no tumour"
    assert skipped["pv"] == "no segmentation model (seg_demo.safetensors not installed)"


def test_a_phase_segmented_by_another_model_is_skipped():
    from types import SimpleNamespace

    from nbrisk_core.pacs.push import build_segs, chosen_instances

    archive = StandInArchive()
    case = _segmented(_case(archive), pv={"model_sha256": "e" * 64})
    sources = chosen_instances(archive, case, STUDY_UID)
    installed = SimpleNamespace(sha256="f" * 64, path=None)
    segs, skipped = build_segs(archive, case, STUDY_UID, sources, seg_model=installed)
    assert segs == []
    assert skipped["pv"] == "segmented with model eeeeeeeeeeee..., the installed one is ffffffffffff..."
    assert set(skipped) == {"nc", "art", "pv"}
