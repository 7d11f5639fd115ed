"""Slice review at cohort scale: ``nbrisk cohort slices --auto`` proposes, :func:`decide` records a
reviewer's accept / move / reject, and every write is atomic (nothing half-written after a crash)."""

from __future__ import annotations

import os
import shutil
import threading

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.cli import main
from nbrisk_core.cohort import load_cohort, review
from nbrisk_core.cohort.review import (PROPOSAL_COLUMNS, atomic_write_bytes, decide, patient_states,
                                       read_proposals, read_slices, review_progress, review_queue)
from nbrisk_core.errors import InputError


@pytest.fixture
def proposed(proposed_site, tmp_path):
    shutil.copytree(proposed_site["proposed"], tmp_path / "cohort")
    return tmp_path / "cohort"


def test_slices_lists_the_state_of_an_imported_cohort(proposed_site, tmp_path, capsys):
    cohort_dir = tmp_path / "cohort"
    shutil.copytree(proposed_site["imported"], cohort_dir)
    assert main(["cohort", "slices", "--cohort", str(cohort_dir)]) == 0
    out = capsys.readouterr().out
    assert "2 patients: 2 to propose, 0 to review" in out and "--auto" in out
    assert not (cohort_dir / "proposals.csv").exists()   # listing proposes nothing


def test_slices_auto_proposes_every_phase_and_resumes(proposed_site, tmp_path, capsys):
    full = proposed_site["proposed"]   # proposed in one run (propose_cohort)
    cohort = load_cohort(full)   # the cohort stays valid format v1
    slices = cohort.slices
    assert len(slices) == 6 and set(slices["chosen_by"]) == {"auto"}
    assert slices["confirmed_by"].isna().all()
    volumes = review.phase_volumes(full, "SB-001")
    for row in slices[slices["patient_id"] == "SB-001"].itertuples():
        # the stored slice is the study's slice at the proposed index, with the proposal's contour
        np.testing.assert_array_equal(cohort.slice_hu("SB-001", row.phase),
                                      volumes[row.phase].hu[row.slice_index])
        mask = cohort.slice_mask("SB-001", row.phase)
        assert mask.any() and (full / "slices" / "SB-001" / f"{row.phase}.png").is_file()
        assert row.series_uid == volumes[row.phase].series_uid
        areas = review.load_proposal_arrays(full, "SB-001")[f"areas_{row.phase}"]
        assert int(np.argmax(areas)) in (row.slice_index - 1, row.slice_index, row.slice_index + 1)
    # a run interrupted after SB-001: the command resumes with SB-002 and ends where one run ends
    cohort_dir = tmp_path / "cohort"
    shutil.copytree(full, cohort_dir)
    for name in ("proposals.csv", "slices.csv"):
        table = pd.read_csv(cohort_dir / name, dtype=str, keep_default_na=False)
        table[table["patient_id"] == "SB-001"].to_csv(cohort_dir / name, index=False)
    shutil.rmtree(cohort_dir / "slices" / "SB-002")
    assert main(["cohort", "slices", "--cohort", str(cohort_dir), "--auto", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "proposed 1 patient(s); 1 already proposed" in out and "2 to review" in out
    assert (cohort_dir / "slices.csv").read_bytes() == (full / "slices.csv").read_bytes()
    assert (cohort_dir / "proposals.csv").read_bytes() == (full / "proposals.csv").read_bytes()


def test_slices_errors_exit_2(proposed_site, tmp_path, monkeypatch, capsys):
    assert main(["cohort", "slices", "--cohort", str(tmp_path / "none")]) == 2
    assert "cohort directory not found" in capsys.readouterr().err
    cohort_dir = tmp_path / "cohort"
    shutil.copytree(proposed_site["imported"], cohort_dir)
    monkeypatch.setenv("NBRISK_MODELS_DIR", str(tmp_path / "no-models"))
    assert main(["cohort", "slices", "--cohort", str(cohort_dir), "--auto", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no segmentation model" in err and "Traceback" not in err
    assert not (cohort_dir / "proposals.csv").exists()


def test_accept_move_reject_write_slices_csv(proposed):
    first, second, third = sorted(review_queue(proposed), key=lambda i: (i.patient_id, i.phase.value))[:3]
    decide(proposed, first.patient_id, first.phase, "accept", "alice")
    target = second.proposed_slice + 2
    decide(proposed, second.patient_id, second.phase, "move", "bob", index=target)
    decide(proposed, third.patient_id, third.phase, "reject", "carol")
    slices = read_slices(proposed).set_index(["patient_id", "phase"])
    accepted = slices.loc[(first.patient_id, first.phase.value)]
    assert (accepted["chosen_by"], accepted["confirmed_by"]) == ("auto", "alice")
    assert int(accepted["slice_index"]) == first.proposed_slice and accepted["confirmed_at"].endswith("Z")
    moved = slices.loc[(second.patient_id, second.phase.value)]
    assert (moved["chosen_by"], moved["confirmed_by"], int(moved["slice_index"])) == ("user", "bob", target)
    assert (third.patient_id, third.phase.value) not in slices.index
    cohort = load_cohort(proposed)
    volume = review.phase_volumes(proposed, second.patient_id)[second.phase]
    np.testing.assert_array_equal(cohort.slice_hu(second.patient_id, second.phase.value), volume.hu[target])
    with pytest.raises(InputError, match="no .* slice"):
        cohort.slice_hu(third.patient_id, third.phase.value)
    decisions = read_proposals(proposed).set_index(["patient_id", "phase"])["decision"]
    assert decisions[(third.patient_id, third.phase.value)] == "rejected"
    assert review_progress(proposed).decided == 3 and len(review_queue(proposed)) == 3
    # SB-001's three phases are decided, one rejected: a problem to solve in the Case viewer
    states = patient_states(proposed).set_index("patient_id")
    assert (first.patient_id, second.patient_id, third.patient_id) == ("SB-001",) * 3
    assert states.loc["SB-001", ["confirmed", "rejected", "state"]].tolist() == [2, 1, "problem"]
    assert states.loc["SB-002", "state"] == "to review"
    decide(proposed, "SB-001", third.phase, "move", "carol", index=third.proposed_slice)
    assert patient_states(proposed).set_index("patient_id").loc["SB-001", "state"] == "confirmed"


def test_decide_refuses_bad_input(proposed):
    item = review_queue(proposed)[0]
    with pytest.raises(InputError, match="expected 0..47"):
        decide(proposed, item.patient_id, item.phase, "move", "alice", index=48)
    with pytest.raises(InputError, match="expected one of accept, move, reject"):
        decide(proposed, item.patient_id, item.phase, "approve", "alice")
    with pytest.raises(InputError, match="no proposal for patient 'SB-999'"):
        decide(proposed, "SB-999", "art", "accept", "alice")
    with pytest.raises(InputError, match="user name"):
        decide(proposed, item.patient_id, item.phase, "accept", " ")
    assert review_progress(proposed).decided == 0


def _proposal(pid, phase, confidence, found=1):
    return {"patient_id": pid, "phase": phase, "series_uid": "2.25.1", "proposed_slice": 3, "z_mm": 0.0,
            "area_mm2": 10.0, "confidence": confidence, "found": found,
            "low_confidence": int(not found or confidence < 0.6), "decision": "", "decided_by": "",
            "decided_at": ""}


def test_queue_puts_not_found_and_low_confidence_first(tmp_path):
    rows = [_proposal("A", "nc", 0.95), _proposal("A", "art", 0.55), _proposal("B", "pv", 0.0, found=0),
            _proposal("B", "nc", 0.7), {**_proposal("C", "nc", 0.1), "decision": "accepted"}]
    pd.DataFrame(rows, columns=PROPOSAL_COLUMNS).to_csv(tmp_path / "proposals.csv", index=False)
    order = [(i.patient_id, i.phase.value) for i in review_queue(tmp_path)]
    assert order == [("B", "pv"), ("A", "art"), ("B", "nc"), ("A", "nc")]


def test_atomic_write_keeps_the_old_file_on_a_crash(tmp_path, monkeypatch):
    target = tmp_path / "slices.csv"
    target.write_bytes(b"old\n")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new\n" * 1000)
    assert target.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["slices.csv"]   # no temporary file left


def test_a_crash_inside_a_decision_leaves_a_valid_cohort_and_the_item_queued(proposed, monkeypatch):
    item = review_queue(proposed)[0]
    before = (proposed / "slices.csv").read_bytes()

    def crash(*args, **kwargs):
        raise OSError("killed")

    # killed after the slice files, before slices.csv is replaced
    monkeypatch.setattr(review, "_write_slices", crash)
    with pytest.raises(OSError):
        decide(proposed, item.patient_id, item.phase, "move", "alice", index=item.proposed_slice + 1)
    assert (proposed / "slices.csv").read_bytes() == before
    load_cohort(proposed)   # still a valid cohort
    monkeypatch.undo()
    # killed after slices.csv, before proposals.csv: the item stays in the queue; doing it again completes it
    monkeypatch.setattr(review, "_write_proposals", crash)
    with pytest.raises(OSError):
        decide(proposed, item.patient_id, item.phase, "move", "alice", index=item.proposed_slice + 1)
    monkeypatch.undo()
    assert (item.patient_id, item.phase) in {(i.patient_id, i.phase) for i in review_queue(proposed)}
    decide(proposed, item.patient_id, item.phase, "move", "alice", index=item.proposed_slice + 1)
    cohort = load_cohort(proposed)
    row = cohort.slices[(cohort.slices["patient_id"] == item.patient_id)
                        & (cohort.slices["phase"] == item.phase.value)]
    assert len(row) == 1 and int(row["slice_index"].iloc[0]) == item.proposed_slice + 1
    volume = review.phase_volumes(proposed, item.patient_id)[item.phase]
    np.testing.assert_array_equal(cohort.slice_hu(item.patient_id, item.phase.value),
                                  volume.hu[item.proposed_slice + 1])


def test_two_reviewers_at_once_lose_no_decision(proposed):
    items = review_queue(proposed)
    volumes = {pid: review.phase_volumes(proposed, pid) for pid in {i.patient_id for i in items}}
    errors = []

    def work(share):
        try:
            for item in share:
                decide(proposed, item.patient_id, item.phase, "accept", "alice",
                       volume=volumes[item.patient_id][item.phase])
        except Exception as error:   # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(items[k::2],)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert review_progress(proposed).accepted == len(items)
    assert (read_slices(proposed)["confirmed_by"] == "alice").sum() == len(items)


def test_a_decision_is_audited_without_the_study_number(proposed, tmp_path):
    """Each decision is one audit event (who, cohort, phase, action, slice) naming the proposals.csv row
    by its SHA-256, which finds the row again in the cohort; the study number is nowhere in the event."""
    from nbrisk_core.store import audit
    from nbrisk_core.store.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    migrate(engine)
    first, second, third = sorted(review_queue(proposed), key=lambda i: (i.patient_id, i.phase.value))[:3]
    rows = [decide(proposed, first.patient_id, first.phase, "accept", "alice"),
            decide(proposed, second.patient_id, second.phase, "move", "bob", index=second.proposed_slice + 1),
            decide(proposed, third.patient_id, third.phase, "reject", "carol")]
    for row in rows:
        action, detail = review.decision_audit_detail(proposed, row)
        audit.record(engine, row["decided_by"], action, detail=detail)
    events = sorted(audit.list_events(engine), key=lambda e: e.id)
    assert [(e.username, e.action) for e in events] == [
        ("alice", "slice_confirmed"), ("bob", "slice_confirmed"), ("carol", "slice_rejected")]
    name = load_cohort(proposed).meta["name"]
    assert [e.detail["cohort"] for e in events] == [name] * 3
    assert [(e.detail["phase"], e.detail["action"], e.detail["slice_index"]) for e in events] == [
        (first.phase.value, "accept", first.proposed_slice),
        (second.phase.value, "move", second.proposed_slice + 1), (third.phase.value, "reject", None)]
    assert [e.detail["chosen_by"] for e in events] == ["auto", "user", ""]
    for event, item in zip(events, (first, second, third)):
        found = review.find_decision(proposed, event.detail["proposal_sha256"])
        assert (found["patient_id"], found["phase"]) == (item.patient_id, item.phase.value)
        assert item.patient_id not in audit.canonical_json(event.detail)
    assert audit.verify_chain(engine).ok
    with pytest.raises(InputError, match="no review decision"):
        review.decision_audit_detail(proposed, {**rows[0], "decision": ""})
    engine.dispose()
