"""find -> pull -> segment -> predict -> save -> push -> read back, against a real Orthanc.

The SR read back from the archive carries the case's p(high risk) per model with the model's SHA-256,
the MLRS and its group, and references the chosen slices' original instances; each phase's DICOM SEG
references that phase's original series and instances and its mask is the case's segmentation; the
encapsulated PDF is byte for byte the report; the Grad-CAM capture says NOT FOR DIAGNOSIS; the push
is audited.
"""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pydicom
import pytest

from nbrisk_core.case import Case, Phase, Prognosis, RiskResult, VariantScore
from nbrisk_core.pacs.archive import DicomWebArchive
from nbrisk_core.pacs.errors import PacsError
from nbrisk_core.pacs.settings import ArchiveSettings


def _archive(orthanc, keep_link: bool = True) -> DicomWebArchive:
    return DicomWebArchive(
        ArchiveSettings(
            name="test-orthanc",
            url=orthanc.dicomweb,
            auth="basic",
            username=orthanc.username,
            password=orthanc.password,
            keep_study_link=keep_link,
            timeout_s=60,
        )
    )


def _case_from_archive(archive, study_uid: str, repo_root, predict: bool = True, masks=None) -> Case:
    """The typed case the Case, Risk and Prognosis pages make of a pulled study: phases, a slice each,
    the Swin-ART result with its Grad-CAM (``predict=False``: a stand-in risk result, for tests of what
    happens before a model output is used) and a prognosis.

    With ``masks`` (a dict), the Case page's automatic proposal as well: the shipped network segments
    the phases together (``nbrisk_ui.segment_proposal``), each phase's max-area slice is chosen
    ("Confirm all proposals") with its measurements, and ``masks`` gets each phase's mask."""
    from nbrisk_core import service
    from nbrisk_core.classifier.inference import Predictor
    from nbrisk_core.classifier.model_io import load_model
    from nbrisk_core.imaging.case import case_meta, chosen_slice
    from nbrisk_core.imaging.phases import suggest_phases
    from nbrisk_core.pacs.pull import load_pulled, pull_study

    study = load_pulled(pull_study(archive, study_uid))
    assignment = {s.series_uid: s.phase for s in suggest_phases(study.series)}
    chosen = {
        Phase(phase): chosen_slice(study.by_uid(uid), 20 + i, phase)
        for i, (uid, phase) in enumerate(assignment.items())
        if phase
    }
    if masks is not None:
        from nbrisk_core.segment.inference import PhaseVolume, segment_phases
        from nbrisk_core.segment.model import load_seg_model

        model = load_seg_model(repo_root / "models" / "seg_demo.safetensors")
        volumes = {uid: PhaseVolume.from_series(study.by_uid(uid)) for uid in assignment}
        found = segment_phases(model, {assignment[uid]: v for uid, v in volumes.items()})
        for phase, result in found.items():
            assert result.found, f"{phase}: the demo tumour should be found"
            series = study.by_uid(result.series_uid)
            chosen[Phase(phase)] = chosen_slice(series, result.max_area_slice, phase).replace(
                segmentation=result.summary(model.sha256)
            )
            masks[Phase(phase)] = result.mask
    prognosis = Prognosis(
        times=np.array([0.0, 365.0, 730.0]),
        survival=np.array([1.0, 0.8, 0.6]),
        mlrs=1.37,
        percentile=81.0,
        group="high",
        cutoff=0.9,
        model="NBRisk MLRS (test)",
        pipeline_sha256="d" * 64,
    )
    if predict:  # the Risk page's calls: score every variant, then the CAM of the ART model's input
        predictor = Predictor(load_model(repo_root / "models" / "swin_art_demo.safetensors"))
        inputs = service.model_inputs({"art": predictor}, chosen)
        risk = service.score_case({"art": predictor}, chosen, inputs=inputs)
        risk = risk.with_cam(Phase.ART, service.explain_case(predictor, inputs["art"]))
    else:
        score = VariantScore("art", "Swin-ART (stand-in)", 0.5, "HR", 0.5, "0" * 64)
        risk = RiskResult(scores={"art": score}, embedding=np.zeros(16, np.float32))
    return Case(
        label="pacs-roundtrip",
        slices=chosen,
        study=case_meta(study, assignment),
        risk=risk,
        prognosis=prognosis,
    )


@pytest.fixture
def store_url(tmp_path):
    from nbrisk_core.store.db import dispose_engines, get_engine, migrate

    url = f"sqlite:///{tmp_path / 'cases.db'}"
    migrate(get_engine(url))
    yield url
    dispose_engines()


@pytest.fixture
def store(store_url):
    from nbrisk_core.store.db import get_engine

    return get_engine(store_url)


def _new_series(orthanc, study_uid: str, before: set[str]) -> dict[str, list[pydicom.Dataset]]:
    """Modality -> the instances of the series that were not in the study ``before``."""
    archive = _archive(orthanc)
    out: dict[str, list[pydicom.Dataset]] = {}
    for s in archive.list_series(study_uid):
        if s.series_uid not in before:
            out.setdefault(s.modality, []).extend(archive.client.iter_series(study_uid, s.series_uid))
    return out


def _along_normal(ds) -> float:
    orientation = np.asarray(ds.ImageOrientationPatient, float)
    normal = np.cross(orientation[:3], orientation[3:])
    return float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal))


def _seg_volume(seg, members: list) -> np.ndarray:
    """A SEG's mask rebuilt frame by frame from each frame's source reference (pydicom alone) onto
    ``members`` (the source series in ascending position)."""
    index_of = {str(ds.SOPInstanceUID): k for k, ds in enumerate(members)}
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    volume = np.zeros((len(members), int(seg.Rows), int(seg.Columns)), dtype=bool)
    for frame, group in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        source = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        volume[index_of[str(source)]] = frame.astype(bool)
        np.testing.assert_allclose(  # and the frame lies where its source slice lies
            np.asarray(group.PlanePositionSequence[0].ImagePositionPatient, float),
            np.asarray(members[index_of[str(source)]].ImagePositionPatient, float),
        )
    return volume


def _report_text(pdf: bytes, tmp_path) -> list[str]:
    """The PDF's text lines (poppler's pdftotext) but the report's date; its size where poppler is missing."""
    import subprocess

    if shutil.which("pdftotext") is None:
        return [f"{len(pdf) // 1000} kB"]  # a report made at another minute compresses a byte or two apart
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    )
    lines = [" ".join(line.split()) for line in text.stdout.splitlines()]
    assert any(line.startswith("Report date") for line in lines)
    return [line for line in lines if line and not line.startswith("Report date")]


@pytest.mark.slow
def test_find_pull_predict_push_read_back(archive_env, store, store_url, repo_root, capsys, tmp_path):
    import json

    from nbrisk_core.cli import main
    from nbrisk_core.pacs.push import NOT_FOR_DIAGNOSIS, read_report
    from nbrisk_core.service import export_case, open_case, save_case
    from nbrisk_core.store import audit

    orthanc = archive_env
    archive = _archive(orthanc)
    assert main(["pacs", "find", "--patient-id", "SYNTH-P0002", "--json"]) == 0
    (found,) = json.loads(capsys.readouterr().out)
    (hit,) = archive.find_studies(patient_id="SYNTH-P0002")
    assert found["study_uid"] == hit.study_uid
    masks: dict = {}
    case = _case_from_archive(archive, hit.study_uid, repo_root, masks=masks)
    assert case.study["archive"] == {"archive": "test-orthanc", "study_uid": hit.study_uid}
    assert set(masks) == set(Phase)
    assert list(case.risk.cams) == [Phase.ART]
    saved = save_case(store, case, "-")
    before = {s.series_uid for s in archive.list_series(hit.study_uid)}

    assert main(["pacs", "push", saved.stored.case_uid, "--database-url", store_url, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kinds"] == ["sr", "pdf", "gradcam", "seg", "seg", "seg"] and len(result["stored"]) == 6
    assert result["seg_skipped"] == {}

    new = _new_series(orthanc, hit.study_uid, before)
    assert set(new) == {"SR", "DOC", "OT", "SEG"}
    stored = open_case(store, saved.stored.case_uid, "-", record_open=False)
    # SR: the case's values, the model's name and SHA-256, the chosen slices' original instances
    (sr,) = new["SR"]
    values = read_report(sr)
    ((model, (p, sha)),) = values["p_high_risk"].items()
    assert model == stored.risk.score.label and p == pytest.approx(stored.risk.p_high_risk)
    assert sha == case.risk.model_sha256 and len(sha) == 64
    assert values["mlrs"] == pytest.approx(1.37) and values["mlrs_percentile"] == pytest.approx(81.0)
    assert values["mlrs_group"] == "high"
    assert str(sr.StudyInstanceUID) == hit.study_uid and sr.PatientID == "SYNTH-P0002"
    expected, originals = {}, {}
    for s in archive.list_series(hit.study_uid):
        if s.series_uid in before and s.modality == "CT":  # earlier tests may have pushed into the study
            phase = s.description.split()[0].lower()
            members = sorted(archive.series_metadata(hit.study_uid, s.series_uid), key=_along_normal)
            originals[Phase(phase)] = (s.series_uid, members)
            for ds in members:
                expected[(phase, int(ds.InstanceNumber))] = str(ds.SOPInstanceUID)
    # the demo's instance numbers count from 1 in ascending z: slice index i is instance i + 1
    wanted = {expected[(str(phase), chosen.index + 1)] for phase, chosen in stored.slices.items()}
    assert len(wanted) == 3 and set(values["references"]) == wanted
    # SEG: one per phase, referencing that phase's original series and instances in the archive, its
    # mask the case's segmentation (the proposal's mask, and the measurements the case stores)
    segs = {}
    for seg in new["SEG"]:
        assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and seg.SegmentationType == "BINARY"
        referenced = seg.ReferencedSeriesSequence[0]
        (phase,) = [p for p, (uid, _) in originals.items() if uid == referenced.SeriesInstanceUID]
        segs[phase] = seg
    assert set(segs) == set(Phase)
    for phase, seg in segs.items():
        _, members = originals[phase]
        assert str(seg.StudyInstanceUID) == hit.study_uid and seg.PatientID == "SYNTH-P0002"
        assert seg.FrameOfReferenceUID == members[0].FrameOfReferenceUID
        references = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
        assert {str(r.ReferencedSOPInstanceUID) for r in references} == {
            str(ds.SOPInstanceUID) for ds in members
        }
        description = seg.SegmentSequence[0]
        assert description.SegmentLabel == "Tumour" and description.SegmentAlgorithmType == "AUTOMATIC"
        summary = stored.slices[phase].segmentation
        algorithm = description.SegmentationAlgorithmIdentificationSequence[0]
        assert algorithm.AlgorithmVersion == summary.model_sha256 and len(summary.model_sha256) == 64
        mask = _seg_volume(seg, members)
        np.testing.assert_array_equal(mask, masks[phase])
        spacing = [float(v) for v in members[0].PixelSpacing]
        step = abs(_along_normal(members[1]) - _along_normal(members[0]))
        areas = mask.reshape(len(members), -1).sum(axis=1) * spacing[0] * spacing[1]
        volume_ml = mask.sum() * spacing[0] * spacing[1] * step / 1000
        assert volume_ml == pytest.approx(summary.volume_ml, rel=1e-6) and volume_ml > 0
        assert areas[summary.max_area_slice] == pytest.approx(areas.max())
        assert areas[summary.max_area_slice] == pytest.approx(summary.area_mm2, rel=1e-6)
    # PDF: the report's bytes, unchanged
    (doc,) = new["DOC"]
    pdf = bytes(doc.EncapsulatedDocument)[: int(doc.EncapsulatedDocumentLength)]
    assert hashlib.sha256(pdf).hexdigest() == result["pdf_sha256"] and pdf.startswith(b"%PDF")
    # the report of the stored case as the Saved cases page exports it, model card included (only the
    # date it was made differs)
    exported = export_case(store, saved.stored.case_uid, "-", "pdf", models_dir=repo_root / "models")
    assert _report_text(pdf, tmp_path) == _report_text(exported, tmp_path)
    if shutil.which("pdftotext"):
        assert any(line.startswith("Weights SHA-256") for line in _report_text(pdf, tmp_path))
    # Grad-CAM: a capture of the ART slice, marked not for diagnosis
    (sc,) = new["OT"]
    assert sc.SeriesDescription == NOT_FOR_DIAGNOSIS and "NOT FOR DIAGNOSIS" in sc.ImageComments
    assert Phase.ART.title in sc.ImageComments
    assert sc.BurnedInAnnotation == "YES" and sc.pixel_array.ndim == 3
    top = sc.pixel_array[:4].reshape(-1, 3)
    assert (top == 0).all(axis=1).mean() > 0.5  # the black band carrying the stamp
    # audited, without identifiers
    (event,) = audit.list_events(store, action="case_pushed")
    assert event.case_uid == saved.stored.case_uid and event.model_sha256 == case.risk.model_sha256
    assert event.detail["objects"] == {"sr": 1, "pdf": 1, "gradcam": 1, "seg": 3}
    assert event.detail["seg_skipped"] == []
    assert event.detail["version"] == stored.stored.version
    assert "SYNTH" not in str(event.detail) and hit.study_uid not in str(event.detail)
    assert audit.verify_chain(store).ok
    assert np.isfinite(values["p_high_risk"][model][0])


def test_push_without_study_link_is_refused(orthanc, store, store_url, repo_root, monkeypatch, capsys):
    from nbrisk_core.pacs.push import push_case
    from nbrisk_core.service import save_case
    from nbrisk_core.store import audit

    archive = _archive(orthanc, keep_link=False)
    (hit,) = archive.find_studies(patient_id="SYNTH-P0002")
    case = _case_from_archive(archive, hit.study_uid, repo_root, predict=False)
    assert "archive" not in case.study
    saved = save_case(store, case.replace(label="no-link"), "-")
    case_uid = saved.stored.case_uid
    before = {s.series_uid for s in archive.list_series(hit.study_uid)}
    with pytest.raises(PacsError, match="keeps no link to an archive study") as caught:
        push_case(store, case_uid, "-", archive)
    assert caught.value.kind == "no_link"
    from nbrisk_core.cli import main

    monkeypatch.setenv("NBRISK_DICOMWEB_URL", orthanc.url_with_credentials)
    assert main(["pacs", "push", case_uid, "--database-url", store_url]) == 2
    assert "keeps no link" in capsys.readouterr().err
    assert {s.series_uid for s in archive.list_series(hit.study_uid)} == before
    assert audit.list_events(store, action="case_pushed") == []
