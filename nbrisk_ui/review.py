"""The Cohort builder page's pieces: the review queue's current item, its cached study volume, and
the decision buttons with their keyboard shortcuts (:mod:`nbrisk_core.cohort.review` does the work).

Shortcuts: ``A`` accept the proposed slice, ``M`` use the slice shown (a move), ``X`` reject,
``S`` skip for now (this session only), ``Left``/``Right`` previous/next slice. (``R`` and ``C`` are
reserved by Streamlit.)

Each decision is also one event of the store's audit trail (:func:`audit_decision`): who, when, which
cohort, phase, action and slice, and the SHA-256 of the ``proposals.csv`` row written; no study number.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from nbrisk_core.errors import InputError

_LOG = logging.getLogger(__name__)

#: session key: patient-phase items this reviewer skipped (shown again after the others)
SKIPPED = "review.skipped"
#: session key: the last decision's message (or error) for the next run
MESSAGE = "review.message"
#: keyboard shortcuts of the decision buttons
SHORTCUTS = {"accept": "A", "move": "M", "reject": "X", "skip": "S", "previous": "Left", "next": "Right"}


@st.cache_resource(show_spinner="Reading the study…", max_entries=4)
def phase_volume(cohort: str, patient_id: str, phase: str, mtime: float):
    """One phase of an imported study (shared by sessions, never mutated; ``mtime`` keys a re-import)."""
    from nbrisk_core.cohort.review import phase_volumes

    return phase_volumes(Path(cohort), patient_id).get(phase)


def volume_for(cohort: Path, patient_id: str, phase: str):
    folder = cohort / "studies" / patient_id / phase.upper()
    return phase_volume(str(cohort), patient_id, phase, folder.stat().st_mtime if folder.exists() else 0.0)


def slice_key(item) -> str:
    return f"review.slice.{item.patient_id}.{item.phase.value}"


def current_item(queue: list):
    """The first item of the queue this session has not skipped (skipped ones come back at the end)."""
    skipped = st.session_state.get(SKIPPED, [])
    fresh = [i for i in queue if (i.patient_id, i.phase.value) not in skipped]
    return (fresh or queue or [None])[0]


def decide_callback(cohort: Path, item, action: str, user: str) -> None:
    """``on_click`` of the decision buttons: record the decision (before the next run draws the queue)."""
    from nbrisk_core.cohort.review import decide

    index = st.session_state.get(slice_key(item), item.proposed_slice)
    try:
        volume = volume_for(cohort, item.patient_id, item.phase.value) if action != "reject" else None
        row = decide(cohort, item.patient_id, item.phase, action, user, index=index, volume=volume)
    except InputError as error:
        st.session_state[MESSAGE] = ("error", str(error))
        return
    try:
        audit_decision(cohort, row, user)
    except Exception:  # noqa: BLE001 - the decision is saved; say that its audit event is missing
        _LOG.exception("could not write a Cohort builder decision to the audit trail")
        st.session_state[MESSAGE] = ("error", f"{item.patient_id} {item.phase.upper()}: the decision is "
                                              "saved in the cohort, but it could not be written to the audit "
                                              "trail (the server's log says why).")
        return
    what = {"accept": f"accepted slice {item.proposed_slice}", "move": f"moved to slice {index}",
            "reject": "rejected"}[action]
    st.session_state[MESSAGE] = ("success", f"{item.patient_id} {item.phase.upper()}: {what}.")


def audit_decision(cohort: Path, row: dict, user: str) -> None:
    """One ``slice_confirmed``/``slice_rejected`` event per decision: cohort, phase, action, slice index
    and the SHA-256 of the written ``proposals.csv`` row, no study number
    (:func:`nbrisk_core.cohort.review.decision_audit_detail`)."""
    from nbrisk_core.cohort.review import decision_audit_detail
    from nbrisk_core.store import audit
    from nbrisk_ui.resources import store_engine

    action, detail = decision_audit_detail(cohort, row)
    audit.record(store_engine(), user, action, detail=detail)


def skip_callback(item) -> None:
    skipped = [s for s in st.session_state.get(SKIPPED, []) if s != (item.patient_id, item.phase.value)]
    st.session_state[SKIPPED] = [*skipped, (item.patient_id, item.phase.value)]


def step_callback(item, step: int, n_slices: int) -> None:
    key = slice_key(item)
    index = int(st.session_state.get(key, item.proposed_slice)) + step
    st.session_state[key] = min(max(index, 0), n_slices - 1)


def open_in_case_viewer(item) -> None:
    """Select the item's patient as the Case page's study (the page lists the cohort's ``studies/``)."""
    st.session_state["case.source_kind"] = "Demo case"
    st.session_state["case.demo_patient"] = item.patient_id


def show_message() -> None:
    message = st.session_state.pop(MESSAGE, None)
    if message:
        (st.error if message[0] == "error" else st.success)(message[1])
