"""find -> pull -> predict -> save -> push -> read back, against a real Orthanc.

The SR read back from the archive carries the case's p(high risk) per model with the model's SHA-256,
the MLRS and its group, and references the chosen slices' original instances; the encapsulated PDF
is byte for byte the report; the Grad-CAM capture says NOT FOR DIAGNOSIS; the push is audited.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pydicom
import pytest

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


def _case_from_archive(archive, study_uid: str, repo_root, predict: bool = True):
    """What the Case and Risk pages do for a pulled study: phases, a slice each, the Swin-ART result
    (``predict=False``: a stand-in risk result, for tests of what happens before a model output is used)."""
    from nbrisk_core.classifier.explain import compute_cam
    from nbrisk_core.classifier.inference import Predictor, predict_case
    from nbrisk_core.classifier.model_io import load_model
    from nbrisk_core.imaging.case import case_meta, chosen_slice
    from nbrisk_core.imaging.model_input import build_model_input, grey_from_chosen_slice
    from nbrisk_core.imaging.phases import suggest_phases
    from nbrisk_core.pacs.pull import load_pulled, pull_study

    study = load_pulled(pull_study(archive, study_uid))
    assignment = {s.series_uid: s.phase for s in suggest_phases(study.series)}
    chosen = {
        phase: chosen_slice(study.by_uid(uid), 20 + i)
        for i, (uid, phase) in enumerate(assignment.items())
        if phase
    }
    case = case_meta(study, assignment)
    prognosis = {
        "mlrs": 1.37,
        "mlrs_percentile": 81.0,
        "mlrs_group": "high",
        "model_name": "NBRisk MLRS (test)",
    }
    if not predict:
        return case, chosen, {"p_high_risk": 0.5, "risk_class": "HR", "model_sha256": "0" * 64}, prognosis
    loaded = load_model(repo_root / "models" / "swin_art_demo.safetensors")
    grey = {phase: grey_from_chosen_slice(item) for phase, item in chosen.items()}
    result = predict_case(Predictor(loaded), grey)
    x = build_model_input(
        grey, "art", loaded.card["normalisation"]["mean"], loaded.card["normalisation"]["std"]
    )
    risk = {
        "p_high_risk": result.p_high_risk,
        "risk_class": result.risk_class,
        "model_sha256": result.model_sha256,
        "embedding": result.embedding.tolist(),
        "variants": {
            "art": {
                "p_high_risk": result.p_high_risk,
                "risk_class": result.risk_class,
                "model_sha256": result.model_sha256,
            }
        },
        "gradcam": {"art": compute_cam(loaded.model, x, "gradcam", "HR").heatmap},
    }
    return case, chosen, risk, prognosis


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
    archive = _archive(orthanc)
    out = {}
    for s in archive.list_series(study_uid):
        if s.series_uid not in before:
            out[s.modality] = list(archive.client.iter_series(study_uid, s.series_uid))
    return out


@pytest.mark.slow
def test_find_pull_predict_push_read_back(archive_env, store, store_url, repo_root, capsys):
    from nbrisk_core.pacs.push import NOT_FOR_DIAGNOSIS, read_report
    from nbrisk_core.report.export import render_export
    from nbrisk_core.store import audit, cases
    from nbrisk_core.store.session import record_from_session

    import json

    from nbrisk_core.cli import main

    orthanc = archive_env
    archive = _archive(orthanc)
    assert main(["pacs", "find", "--patient-id", "SYNTH-P0002", "--json"]) == 0
    (found,) = json.loads(capsys.readouterr().out)
    (hit,) = archive.find_studies(patient_id="SYNTH-P0002")
    assert found["study_uid"] == hit.study_uid
    case, chosen, risk, prognosis = _case_from_archive(archive, hit.study_uid, repo_root)
    assert case["archive"] == {"archive": "test-orthanc", "study_uid": hit.study_uid}
    record = record_from_session(
        case=case, chosen_slices=chosen, risk_result=risk, prognosis_result=prognosis, label="pacs-roundtrip"
    )
    saved = cases.save_case(store, record, "-")
    before = {s.series_uid for s in archive.list_series(hit.study_uid)}

    assert main(["pacs", "push", saved.case_uid, "--database-url", store_url, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kinds"] == ["sr", "pdf", "gradcam"] and len(result["stored"]) == 3

    new = _new_series(orthanc, hit.study_uid, before)
    assert set(new) == {"SR", "DOC", "OT"}
    stored = cases.load_case(store, saved.case_uid, "-", record_open=False)
    # SR: the case's values, the model's name and SHA-256, the chosen slices' original instances
    (sr,) = new["SR"]
    values = read_report(sr)
    ((model, (p, sha)),) = values["p_high_risk"].items()
    assert p == pytest.approx(stored.hr_probability) and sha == risk["model_sha256"]
    assert values["mlrs"] == pytest.approx(1.37) and values["mlrs_percentile"] == pytest.approx(81.0)
    assert values["mlrs_group"] == "high"
    assert str(sr.StudyInstanceUID) == hit.study_uid and sr.PatientID == "SYNTH-P0002"
    expected = {}
    for s in archive.list_series(hit.study_uid):
        if s.series_uid in before:
            for ds in archive.series_metadata(hit.study_uid, s.series_uid):
                expected[(s.description.split()[0].lower(), int(ds.InstanceNumber))] = str(ds.SOPInstanceUID)
    # the demo's instance numbers count from 1 in ascending z: slice index i is instance i + 1
    wanted = {
        expected[(phase, sl.slice_index + 1)]
        for phase, sl in stored.slices.items()
        for phase in [phase.lower()]
    }
    assert set(values["references"]) == wanted
    # PDF: the report's bytes, unchanged
    (doc,) = new["DOC"]
    pdf = bytes(doc.EncapsulatedDocument)[: int(doc.EncapsulatedDocumentLength)]
    assert hashlib.sha256(pdf).hexdigest() == result["pdf_sha256"] and pdf.startswith(b"%PDF")
    assert len(pdf) == len(render_export(stored, "pdf"))
    # Grad-CAM: a capture of the ART slice, marked not for diagnosis
    (sc,) = new["OT"]
    assert sc.SeriesDescription == NOT_FOR_DIAGNOSIS and "NOT FOR DIAGNOSIS" in sc.ImageComments
    assert sc.BurnedInAnnotation == "YES" and sc.pixel_array.ndim == 3
    top = sc.pixel_array[:4].reshape(-1, 3)
    assert (top == 0).all(axis=1).mean() > 0.5  # the black band carrying the stamp
    # audited, without identifiers
    (event,) = audit.list_events(store, action="case_pushed")
    assert event.case_uid == saved.case_uid and event.model_sha256 == risk["model_sha256"]
    assert event.detail["objects"] == {"sr": 1, "pdf": 1, "gradcam": 1}
    assert "SYNTH" not in str(event.detail) and hit.study_uid not in str(event.detail)
    assert audit.verify_chain(store).ok
    assert np.isfinite(values["p_high_risk"][model][0])


def test_push_without_study_link_is_refused(orthanc, store, store_url, repo_root, monkeypatch, capsys):
    from nbrisk_core.pacs.push import push_case
    from nbrisk_core.store import audit, cases
    from nbrisk_core.store.session import record_from_session

    archive = _archive(orthanc, keep_link=False)
    (hit,) = archive.find_studies(patient_id="SYNTH-P0002")
    case, chosen, risk, prognosis = _case_from_archive(archive, hit.study_uid, repo_root, predict=False)
    assert "archive" not in case
    saved = cases.save_case(
        store,
        record_from_session(
            case=case, chosen_slices=chosen, risk_result=risk, prognosis_result=prognosis, label="no-link"
        ),
        "-",
    )
    before = {s.series_uid for s in archive.list_series(hit.study_uid)}
    with pytest.raises(PacsError, match="keeps no link to an archive study") as caught:
        push_case(store, saved.case_uid, "-", archive)
    assert caught.value.kind == "no_link"
    from nbrisk_core.cli import main

    monkeypatch.setenv("NBRISK_DICOMWEB_URL", orthanc.url_with_credentials)
    assert main(["pacs", "push", saved.case_uid, "--database-url", store_url]) == 2
    assert "keeps no link" in capsys.readouterr().err
    assert {s.series_uid for s in archive.list_series(hit.study_uid)} == before
    assert audit.list_events(store, action="case_pushed") == []
