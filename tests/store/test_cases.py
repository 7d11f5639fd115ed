"""Saved cases: round trip, optimistic locking, transactional saves, filters, soft delete, audit."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import func, select, text

from nbrisk_core.errors import InputError
from nbrisk_core.store import audit, cases
from nbrisk_core.store.access import system
from nbrisk_core.store.cases import CaseConflictError, CaseNotFoundError, PredictionRecord
from nbrisk_core.store.models import Case, CaseSlice, Prediction, utc_now

# colleagues of alice's who may change her cases (admins here; sharing is tested in tests/security)
BOB, CAROL, ADMIN = system("bob"), system("carol"), system("admin")


def _count(engine, model) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def test_round_trip_keeps_slices_predictions_and_values(engine, tiny_case):
    saved = cases.save_case(engine, tiny_case, "alice")
    assert saved.case_uid.startswith("C") and saved.version == 1
    loaded = cases.load_case(engine, saved.case_uid, BOB)
    assert loaded.label == "P0007" and loaded.sex == "F" and loaded.age_months == 30.0
    for phase in ("nc", "art", "pv"):
        np.testing.assert_array_equal(loaded.slices[phase].hu, tiny_case.slices[phase].hu)
        assert loaded.slices[phase].hu.dtype == np.int16
    assert [loaded.slices[p].slice_index for p in ("nc", "art", "pv")] == [3, 4, 5]
    assert loaded.slices["pv"].slice_position_mm == 20.0
    risk = loaded.prediction("risk")
    assert risk.model_sha256 == "a" * 64 and risk.input_sha256 == "b" * 64
    np.testing.assert_array_equal(risk.result["gradcam"], tiny_case.predictions[0].result["gradcam"])
    assert risk.result["p_high_risk"] == 0.81
    assert risk.software_versions["nbrisk"] and risk.software_versions["numpy"] == np.__version__
    assert loaded.clinical_imputed == {"ldh": 410.0} and loaded.clinical_entered["ldh"] is None
    assert (loaded.risk_class, loaded.mlrs_group, loaded.created_by) == ("HR", "high", "alice")
    actions = [e.action for e in audit.list_events(engine, case_uid=saved.case_uid)]
    assert actions == ["case_opened", "prediction", "case_created"]


def test_concurrent_edit_is_refused_with_a_clear_message(engine, tiny_case):
    saved = cases.save_case(engine, tiny_case, "alice")
    mine = cases.load_case(engine, saved.case_uid, "alice")
    theirs = cases.load_case(engine, saved.case_uid, BOB)
    theirs.notes = "bob's review"
    cases.save_case(engine, theirs, BOB)
    mine.notes = "alice's review"
    with pytest.raises(CaseConflictError, match=r"changed by bob .*version 2; you opened version 1"):
        cases.save_case(engine, mine, "alice")
    assert cases.load_case(engine, saved.case_uid, ADMIN).notes == "bob's review"


def test_version_id_col_guards_the_race_between_read_and_write(engine, tiny_case):
    # Simulate another writer committing after our version check: the UPDATE ... WHERE version = n
    # of SQLAlchemy's version_id_col matches no row and the save must fail, not overwrite.
    saved = cases.save_case(engine, tiny_case, "alice")
    from sqlalchemy import event

    from nbrisk_core.store.db import session_factory

    def bump(session, flush_context, instances):
        with engine.begin() as conn:
            conn.execute(text("UPDATE cases SET version = version + 1, notes = 'other' WHERE case_uid = :u"),
                         {"u": saved.case_uid})

    record = cases.load_case(engine, saved.case_uid, "alice", record_open=False)
    record.notes = "mine"
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite allows one writer at a time: the racing UPDATE would wait for this transaction")
    Session = session_factory(engine)
    event.listen(Session, "before_flush", bump)
    try:
        import nbrisk_core.store.db as db

        original = db.session_factory
        db.session_factory = lambda e: Session
        with pytest.raises(CaseConflictError, match="changed by someone else"):
            cases.save_case(engine, record, "alice")
    finally:
        db.session_factory = original
    assert cases.load_case(engine, saved.case_uid, ADMIN, record_open=False).notes == "other"


def test_failed_save_leaves_no_half_case(engine, tiny_case, monkeypatch):
    # the audit write happens after the case row and slices are flushed: make it fail there
    calls = {"n": 0}
    original = audit.record

    def failing(target, username, action, **kw):
        calls["n"] += 1
        if action == "prediction":
            raise RuntimeError("disk full")
        return original(target, username, action, **kw)

    monkeypatch.setattr(audit, "record", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        cases.save_case(engine, tiny_case, "alice")
    assert calls["n"] >= 2
    assert (_count(engine, Case), _count(engine, CaseSlice), _count(engine, Prediction)) == (0, 0, 0)


def test_invalid_slice_is_refused_before_anything_is_written(engine, tiny_case):
    bad = dataclasses.replace(tiny_case, slices={**tiny_case.slices})
    bad.slices["art"] = dataclasses.replace(bad.slices["art"], hu=np.zeros((3, 4, 4)))
    with pytest.raises(InputError, match=r"ART chosen slice has shape \(3, 4, 4\)"):
        cases.save_case(engine, bad, "alice")
    assert _count(engine, Case) == 0


@pytest.mark.parametrize("field, value, message", [
    ("status", "approved", "case status = 'approved' is not known"),
    ("label", "", "case label = '' is not valid"),
    ("risk_class", "high", "risk class = 'high' is not known"),
    ("mlrs_group", "medium", "MLRS group = 'medium' is not known"),
])
def test_bad_fields_are_refused(engine, tiny_case, field, value, message):
    with pytest.raises(InputError, match=message):
        cases.save_case(engine, dataclasses.replace(tiny_case, **{field: value}), "alice")


def test_new_predictions_are_appended_and_versioned(engine, tiny_case):
    saved = cases.save_case(engine, tiny_case, "alice")
    again = cases.save_case(engine, saved, "alice")  # nothing changed: no new version, no duplicate
    assert again.version == 1 and len(again.predictions) == 1
    again.predictions.append(PredictionRecord("prognosis", {"mlrs": 1.3}, "stepcox_rsf", "c" * 64, "d" * 64))
    third = cases.save_case(engine, again, BOB)
    assert third.version == 2 and [p.kind for p in third.predictions] == ["risk", "prognosis"]
    events = audit.list_events(engine, case_uid=saved.case_uid, action="prediction")
    assert [e.model_sha256 for e in events] == ["c" * 64, "a" * 64]


def test_status_workflow_records_reviewer_and_sign_off(engine, tiny_case):
    saved = cases.save_case(engine, tiny_case, "alice")
    saved.status = "reviewed"
    saved = cases.save_case(engine, saved, BOB)
    saved.status = "signed_off"
    saved = cases.save_case(engine, saved, CAROL)
    assert (saved.reviewed_by, saved.signed_off_by, saved.version) == ("bob", "carol", 3)
    changed = audit.list_events(engine, case_uid=saved.case_uid, action="case_changed")
    assert [e.detail["status"] for e in changed] == ["signed_off", "reviewed"]


def test_list_filters_and_search(engine, tiny_case):
    a = cases.save_case(engine, tiny_case, "alice")
    b = cases.save_case(engine, dataclasses.replace(tiny_case, label="P0042", risk_class="NHR",
                                                    hr_probability=0.2, mlrs_group="low",
                                                    notes="small adrenal mass"), BOB)
    assert {c.case_uid for c in cases.list_cases(engine, ADMIN)} == {a.case_uid, b.case_uid}
    assert [c.case_uid for c in cases.list_cases(engine, ADMIN, risk_class="NHR")] == [b.case_uid]
    assert [c.case_uid for c in cases.list_cases(engine, ADMIN, mlrs_group="high")] == [a.case_uid]
    assert [c.case_uid for c in cases.list_cases(engine, ADMIN, search="ADRENAL")] == [b.case_uid]
    assert [c.case_uid for c in cases.list_cases(engine, ADMIN, search="p0007")] == [a.case_uid]
    assert cases.list_cases(engine, ADMIN, status="signed_off") == []
    assert cases.list_cases(engine, ADMIN, since=utc_now() + timedelta(days=1)) == []
    with pytest.raises(InputError, match="case filter status = 'done' is not known"):
        cases.list_cases(engine, ADMIN, status="done")


def test_soft_delete_hides_the_case_but_keeps_it_and_its_trail(engine, tiny_case):
    saved = cases.save_case(engine, tiny_case, "alice")
    cases.delete_case(engine, saved.case_uid, "alice", version=saved.version)
    assert cases.list_cases(engine, ADMIN) == []
    with pytest.raises(CaseNotFoundError):
        cases.load_case(engine, saved.case_uid, "alice")
    kept = cases.load_case(engine, saved.case_uid, ADMIN, include_deleted=True, record_open=False)
    assert kept.deleted_at is not None and _count(engine, Case) == 1
    assert [c.deleted for c in cases.list_cases(engine, ADMIN, include_deleted=True)] == [True]
    with pytest.raises(CaseConflictError, match="was deleted by alice"):
        cases.save_case(engine, saved, BOB)
    assert audit.list_events(engine, action="case_deleted")[0].case_uid == saved.case_uid


def test_whole_series_only_when_opted_in(engine, tiny_case):
    volume = np.arange(4 * 16 * 16, dtype=np.int16).reshape(4, 16, 16)
    without = dataclasses.replace(tiny_case, session={"case": {"series_hu": volume, "PatientName": "Doe^Jane"}})
    uid = cases.save_case(engine, without, "alice").case_uid
    stored = cases.load_case(engine, uid, "alice")
    assert stored.session["case"] == {"series_hu": None}  # series left out, identifier dropped
    with_series = dataclasses.replace(without, include_series=True)
    uid2 = cases.save_case(engine, with_series, "alice").case_uid
    np.testing.assert_array_equal(cases.load_case(engine, uid2, "alice").session["case"]["series_hu"], volume)
    with engine.connect() as conn:
        blobs = conn.execute(text("SELECT session_state FROM cases")).scalars().all()
    assert all("Doe" not in str(b) for b in blobs)


def test_export_is_audited(engine, tiny_case):
    saved = cases.save_case(engine, tiny_case, "alice")
    cases.record_export(engine, saved.case_uid, "alice", "pdf")
    event = audit.list_events(engine, action="case_exported")[0]
    assert (event.username, event.case_uid, event.detail) == ("alice", saved.case_uid, {"format": "pdf"})
