"""AppTests: the Case page's "From PACS" source and the Saved cases page's push, against the test Orthanc."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from nbrisk_ui import state

TIMEOUT = 120


@pytest.fixture
def store_url(tmp_path, monkeypatch):
    from nbrisk_core.store.db import dispose_engines

    url = f"sqlite:///{tmp_path / 'ui.db'}"
    monkeypatch.setenv("NBRISK_DATABASE_URL", url)
    yield url
    dispose_engines()


def _case_page(repo_root) -> AppTest:
    at = AppTest.from_file(str(repo_root / "pages" / "1_Case.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    at.radio(key="case.source_kind").set_value("From PACS").run()
    assert not at.exception
    return at


def test_case_page_searches_picks_and_pulls(archive_env, repo_root, demo_study_uid):
    at = _case_page(repo_root)
    at.text_input(key="case.pacs.patient_id").input("SYNTH-P0001")
    at.button(key="case.pacs.search").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    results = at.dataframe[0].value
    assert list(results["patient ID"]) == ["SYNTH-P0001"] and list(results["series"]) == [3]
    series = at.dataframe[1].value
    assert list(series["modality"]) == ["CT", "CT", "CT"] and list(series["instances"]) == [48, 48, 48]
    at.button(key="case.pacs.pull").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    study = at.session_state[state.IMAGING_STUDY]
    assert [s.n_slices for s in study.series] == [48, 48, 48]
    assert sorted(p for p in at.session_state[state.PHASE_ASSIGNMENT].values() if p) == ["art", "nc", "pv"]
    assert study.meta["archive"]["study_uid"] == demo_study_uid  # the site allows the link here
    # the patient IDs of the search are gone from the session once the study is in
    assert "nbrisk.pacs.hits" not in at.session_state
    assert "SYNTH" not in at.session_state[state.IMAGING_SOURCE]
    # the usual steps follow: confirm the ART slice and send it to the Risk page
    at.button(key="case.confirm.art").click().run()
    at.button(key="case.send").click().run()
    assert not at.exception
    assert at.session_state[state.CASE]["archive"]["study_uid"] == demo_study_uid


def test_case_page_shows_archive_errors(archive_env, repo_root, monkeypatch):
    monkeypatch.setenv("NBRISK_DICOMWEB_PASSWORD", "wrong")
    at = _case_page(repo_root)
    at.button(key="case.pacs.search").click().run()
    assert not at.exception
    from nbrisk_ui.text import plain

    errors = [plain(e.value) for e in at.error]
    assert any("refused our credentials (HTTP 401)" in e for e in errors), errors
    assert "wrong" not in " ".join(errors)


def test_case_page_without_archive_says_how_to_configure(repo_root, monkeypatch):
    monkeypatch.delenv("NBRISK_DICOMWEB_URL", raising=False)
    monkeypatch.setenv("NBRISK_PACS_CONFIG", "/nonexistent/pacs.toml")
    at = _case_page(repo_root)
    assert any("No archive is configured" in i.value for i in at.info)


def test_cases_page_pushes_into_the_archive(archive_env, store_url, repo_root, push_study_uid):
    from nbrisk_core.case import Case, Phase, RiskResult, VariantScore
    from nbrisk_core.imaging.case import case_meta, chosen_slice
    from nbrisk_core.imaging.phases import suggest_phases
    from nbrisk_core.pacs.archive import open_archive
    from nbrisk_core.pacs.pull import load_pulled, pull_study
    from nbrisk_core.pacs.settings import resolve
    from nbrisk_core.service import save_case
    from nbrisk_core.store import audit
    from nbrisk_core.store.db import get_engine

    archive = open_archive(resolve())
    study = load_pulled(pull_study(archive, push_study_uid))
    assignment = {s.series_uid: s.phase for s in suggest_phases(study.series)}
    art = next(uid for uid, p in assignment.items() if p == "art")
    risk = RiskResult(scores={"art": VariantScore("art", "Swin-ART", 0.42, "NHR", 0.5, "c" * 64)},
                      embedding=np.zeros(16, np.float32))
    case = Case(label="pacs-ui", slices={Phase.ART: chosen_slice(study.by_uid(art), 30, Phase.ART)},
                study=case_meta(study, assignment), risk=risk)
    saved = save_case(get_engine(store_url), case, "local")
    case_uid = saved.stored.case_uid
    before = {s.series_uid for s in archive.list_series(push_study_uid)}

    at = AppTest.from_file(str(repo_root / "pages" / "5_Cases.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    at.button(key=f"cases.pacs.push.{case_uid}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    from nbrisk_ui.text import plain

    # no CAM in this case: the SR and the PDF
    assert any("Stored 2 object(s)" in plain(s.value) for s in at.success)
    added = [s for s in archive.list_series(push_study_uid) if s.series_uid not in before]
    assert sorted(s.modality for s in added) == ["DOC", "SR"]
    (event,) = audit.list_events(get_engine(store_url), action="case_pushed")
    assert event.case_uid == case_uid and event.username == "local"
    assert event.model_sha256 == "c" * 64
