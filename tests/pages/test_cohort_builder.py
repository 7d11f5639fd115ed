"""The Cohort builder page (AppTest): the review queue of an imported cohort's slice proposals;
accept / move / reject write the cohort's slices.csv and the audit trail, and a second reviewer sees the
progress."""

from __future__ import annotations

import shutil

import pytest
from streamlit.testing.v1 import AppTest

from nbrisk_core.cohort.review import read_proposals, read_slices, review_queue

PAGE = "pages/7_Cohort_builder.py"
TIMEOUT = 120


@pytest.fixture(autouse=True)
def store_url(tmp_path, monkeypatch):
    """A throwaway case store: the decisions' audit events go there, not to data/nbrisk.db."""
    from nbrisk_core.store.db import dispose_engines

    url = f"sqlite:///{tmp_path / 'ui.db'}"
    monkeypatch.setenv("NBRISK_DATABASE_URL", url)
    yield url
    dispose_engines()


def _page(repo_root, cohort, monkeypatch):
    monkeypatch.setenv("NBRISK_DATA_DIR", str(cohort))
    at = AppTest.from_file(str(repo_root / PAGE), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _row(cohort, item):
    slices = read_slices(cohort)
    match = slices[(slices["patient_id"] == item.patient_id) & (slices["phase"] == item.phase.value)]
    return None if match.empty else match.iloc[0]


def test_accept_move_reject_and_a_second_reviewer_sees_the_progress(repo_root, proposed_site, tmp_path,
                                                                       monkeypatch, store_url):
    cohort = tmp_path / "cohort"
    shutil.copytree(proposed_site["proposed"], cohort)
    queue = review_queue(cohort)
    at = _page(repo_root, cohort, monkeypatch)
    assert "0 of 6 phase proposals reviewed" in at.get("progress")[0].proto.text
    assert queue[0].patient_id in at.subheader[0].value and len(at.get("plotly_chart")) == 1

    at.button(key="review.accept").click().run()
    assert not at.exception
    accepted = _row(cohort, queue[0])
    assert (accepted["chosen_by"], accepted["confirmed_by"]) == ("auto", "local")
    assert int(accepted["slice_index"]) == queue[0].proposed_slice and accepted["confirmed_at"]

    # the next item opens on its proposal; two steps on, "use this slice" moves it
    item = queue[1]
    assert item.patient_id in at.subheader[0].value and item.phase.title in at.subheader[0].value
    assert at.slider(key=f"review.slice.{item.patient_id}.{item.phase.value}").value == item.proposed_slice
    at.button(key="review.next").click().run()
    at.button(key="review.next").click().run()
    at.button(key="review.move").click().run()
    assert not at.exception
    moved = _row(cohort, item)
    assert (moved["chosen_by"], moved["confirmed_by"]) == ("user", "local")
    assert int(moved["slice_index"]) == item.proposed_slice + 2

    at.button(key="review.reject").click().run()
    assert not at.exception and _row(cohort, queue[2]) is None
    decisions = read_proposals(cohort).set_index(["patient_id", "phase"])["decision"]
    assert decisions[(queue[2].patient_id, queue[2].phase.value)] == "rejected"

    # every decision is in the audit trail: who, cohort, phase, action, slice; no study number
    from nbrisk_core.cohort.review import find_decision
    from nbrisk_core.store import audit
    from nbrisk_core.store.db import get_engine

    events = sorted(audit.list_events(get_engine(store_url)), key=lambda e: e.id)
    assert [(e.username, e.action, e.detail["action"]) for e in events] == [
        ("local", "slice_confirmed", "accept"), ("local", "slice_confirmed", "move"),
        ("local", "slice_rejected", "reject")]
    assert [e.detail["slice_index"] for e in events] == [queue[0].proposed_slice, item.proposed_slice + 2,
                                                          None]
    for event, decided in zip(events, queue[:3]):
        assert event.detail["phase"] == decided.phase.value
        assert find_decision(cohort, event.detail["proposal_sha256"])["patient_id"] == decided.patient_id
        assert decided.patient_id not in audit.canonical_json(event.detail)

    # a second reviewer (a new session) resumes where the first one is
    second = _page(repo_root, cohort, monkeypatch)
    assert "3 of 6 phase proposals reviewed" in second.get("progress")[0].proto.text
    title = second.subheader[0].value
    assert queue[3].patient_id in title and queue[3].phase.title in title


def test_skip_shows_the_next_item_without_writing(repo_root, proposed_site, tmp_path, monkeypatch):
    cohort = tmp_path / "cohort"
    shutil.copytree(proposed_site["proposed"], cohort)
    queue = review_queue(cohort)
    before = (cohort / "slices.csv").read_bytes()
    at = _page(repo_root, cohort, monkeypatch)
    at.button(key="review.skip").click().run()
    assert not at.exception
    assert queue[1].phase.title in at.subheader[0].value and queue[1].patient_id in at.subheader[0].value
    assert (cohort / "slices.csv").read_bytes() == before


def test_open_in_the_case_viewer_selects_the_patient(repo_root, proposed_site, tmp_path, monkeypatch):
    cohort = tmp_path / "cohort"
    shutil.copytree(proposed_site["proposed"], cohort)
    item = review_queue(cohort)[0]
    at = _page(repo_root, cohort, monkeypatch)
    at.button(key="review.open_case").click().run()
    assert not at.exception
    assert at.session_state["case.demo_patient"] == item.patient_id
    assert at.session_state["case.source_kind"] == "Demo case"


def test_a_cohort_without_proposals_says_how_to_make_them(repo_root, proposed_site, tmp_path, monkeypatch):
    cohort = tmp_path / "cohort"
    shutil.copytree(proposed_site["imported"], cohort)
    at = _page(repo_root, cohort, monkeypatch)
    assert any("nbrisk cohort slices" in info.value for info in at.info)
    assert [m.value for m in at.metric][:1] == ["2"]   # 2 patients to propose


def test_a_decision_the_audit_trail_refuses_is_saved_and_the_page_says_so(repo_root, proposed_site, tmp_path,
                                                                          monkeypatch):
    from nbrisk_core.store import audit

    def refuse(*args, **kwargs):
        raise RuntimeError("database is locked")

    cohort = tmp_path / "cohort"
    shutil.copytree(proposed_site["proposed"], cohort)
    item = review_queue(cohort)[0]
    at = _page(repo_root, cohort, monkeypatch)
    monkeypatch.setattr(audit, "record", refuse)
    at.button(key="review.accept").click().run()
    assert not at.exception
    assert any("could not be written to the audit trail" in e.value for e in at.error)
    assert _row(cohort, item)["confirmed_by"] == "local"
