"""Case-store pieces of the dashboard: the shared engine, "Save case", reopening, exports.

Pages call :func:`save_case_widget` (Risk and Prognosis pages, at the end) to save the current
case; the Saved cases page uses :func:`open_case` to put a stored case back into the session so
the Case, Risk and Prognosis pages show it again, and :func:`export_buttons` for PDF/CSV/JSON.
All logic lives in :mod:`nbrisk_core.store` and :mod:`nbrisk_core.report`; this module only wires
widgets to it.
"""

from __future__ import annotations

import streamlit as st

from nbrisk_core import config
from nbrisk_ui import state
from nbrisk_ui.resources import store_engine  # the pages take the engine from here too
from nbrisk_ui.text import md, show_error

#: widget keys of the save form (the values live on in the CASE_LABEL/NOTES/STATUS keys, because
#: Streamlit forgets a widget's key on a page that does not draw it)
_LABEL_WIDGET = "nbrisk.save.label"
_NOTES_WIDGET = "nbrisk.save.notes"
_STATUS_WIDGET = "nbrisk.save.status"
_SERIES_WIDGET = "nbrisk.save.series"
_BURNED_IN_WIDGET = "nbrisk.save.burned_in"
#: what the reviewer may do with slices that may show burned-in identifying text (burned_in.DECISIONS)
BURNED_IN_CHOICES = {
    "mask": "Black out everything outside the body in the stored slices (recommended)",
    "confirm": "Store them as shown: I have looked at the slices and they show no name, date, number or "
               "other identifying text",
}
STATUS_LABELS = {"draft": "Draft", "reviewed": "Reviewed", "signed_off": "Signed off"}


def _username() -> str:
    from nbrisk_ui.auth import current_username

    return current_username()


def session_objects() -> dict:
    """The pages' working objects under their logical names (see ``state.CASE_OBJECT_KEYS``)."""
    return {name: st.session_state.get(key) for key, name in state.CASE_OBJECT_KEYS.items()}


def _has_anything_to_save(objects: dict) -> bool:
    return any(objects.get(name) is not None for name in ("chosen_slices", "risk_result", "prognosis_result"))


def _default_label(objects: dict) -> str:
    from nbrisk_core.store.session import lookup

    label = st.session_state.get(state.CASE_LABEL)
    if label:
        return label
    found = lookup(objects.get("case"), "label") or lookup(objects.get("risk_result"), "label")
    return str(found) if found and str(found) not in ("HR", "NHR") else ""


def save_current_case(label: str, notes: str, status: str, include_series: bool = False,
                      burned_in_decision: str | None = None):
    """Save the session's case (create, or update the opened one); returns the saved record.

    Chosen slices that may show burned-in identifying text (:mod:`nbrisk_core.imaging.burned_in`)
    are stored masked or, when ``burned_in_decision`` is ``"confirm"``, as shown with the signed-in
    reviewer's confirmation; without a decision nothing is saved (:class:`InputError`).
    """
    from nbrisk_core.imaging.burned_in import clear_for_storage
    from nbrisk_core.store import cases
    from nbrisk_core.store.session import record_from_session

    objects = session_objects()
    objects["chosen_slices"] = clear_for_storage(objects.get("chosen_slices"), burned_in_decision,
                                                 _username())
    record = record_from_session(**objects, label=label, notes=notes, status=status,
                                 include_series=include_series)
    record.case_uid = st.session_state.get(state.CASE_ID)
    record.version = st.session_state.get(state.CASE_VERSION)
    saved = cases.save_case(store_engine(), record, _username())
    st.session_state[state.CASE_ID] = saved.case_uid
    st.session_state[state.CASE_VERSION] = saved.version
    st.session_state[state.CASE_LABEL] = saved.label
    st.session_state[state.CASE_NOTES] = saved.notes
    st.session_state[state.CASE_STATUS] = saved.status
    return saved


def save_case_widget(*, title: str = "Save case") -> None:
    """A bordered box with label, notes, status, series opt-in and a Save button for the current case.

    Reads the session keys of the Case, Risk and Prognosis pages (``state.CASE_OBJECT_KEYS``) and
    writes the case to the store in one transaction. A conflict with another session's save is
    shown with who changed the case and when; nothing is overwritten.
    """
    from nbrisk_core.errors import InputError
    from nbrisk_core.store.cases import CaseConflictError
    from nbrisk_core.store.models import CASE_STATUSES

    objects = session_objects()
    with st.container(border=True):
        st.subheader(title)
        case_uid = st.session_state.get(state.CASE_ID)
        if case_uid:
            st.caption(f"Editing stored case **{case_uid}** (version {st.session_state.get(state.CASE_VERSION)}).")
        if not _has_anything_to_save(objects):
            st.info("Nothing to save yet: choose the slices on the Case page or get a prediction first.")
            return
        label = st.text_input("Case label (a pseudonym such as the study number, never a name)",
                              value=_default_label(objects), max_chars=64, key=_LABEL_WIDGET)
        notes = st.text_area("Notes", value=st.session_state.get(state.CASE_NOTES, ""), key=_NOTES_WIDGET)
        current = st.session_state.get(state.CASE_STATUS, "draft")
        status = st.selectbox("Status", CASE_STATUSES, index=CASE_STATUSES.index(current),
                              format_func=STATUS_LABELS.get, key=_STATUS_WIDGET)
        include_series = st.checkbox("Also store the whole series (default: only the chosen slice per phase)",
                                     value=False, key=_SERIES_WIDGET)
        decision = burned_in_choice(objects.get("chosen_slices"))
        st.session_state[state.CASE_LABEL] = label
        st.session_state[state.CASE_NOTES] = notes
        st.session_state[state.CASE_STATUS] = status
        if st.button("Save case", type="primary", icon=":material/save:", key="nbrisk.save.button"):
            try:
                saved = save_current_case(label, notes, status, include_series, decision)
            except CaseConflictError as error:
                show_error(error)
                st.caption("Open the case again from the Saved cases page to see the other changes.")
            except InputError as error:
                show_error(error)
            else:
                done = {"mask": " Burned-in annotation: the area outside the body was blacked out in the "
                                "stored slices.",
                        "confirm": " Burned-in annotation: your confirmation is stored with the slices."}
                st.success(f"Saved as case **{saved.case_uid}**, version {saved.version}."
                           + done.get(decision, ""))


def burned_in_choice(chosen_slices) -> str | None:
    """For chosen slices flagged as showing burned-in text: the warning and the reviewer's choice
    (mask or confirm; None when nothing is flagged)."""
    from nbrisk_core.imaging.burned_in import flagged_slices

    found = flagged_slices(chosen_slices)
    if not found:
        return None
    st.warning("**Burned-in annotation.** " + " ".join(
        f"{md(phase.upper())}: {md(', '.join(finding.reasons()))}." for phase, finding in found.items())
        + " A name, date or number drawn into the image is not removed by de-identifying the header.",
        icon=":material/badge:")
    return st.radio("Before saving", list(BURNED_IN_CHOICES), format_func=BURNED_IN_CHOICES.get,
                    key=_BURNED_IN_WIDGET)


def open_case(case_uid: str):
    """Load a stored case into this session (audited as ``case_opened``); returns the record."""
    from nbrisk_core.store import cases
    from nbrisk_core.store.session import session_from_record

    record = cases.load_case(store_engine(), case_uid, _username())
    objects = session_from_record(record)
    # the Case page's working study belongs to whatever was loaded before: it must not be shown
    # under the reopened case (the Case page shows the case's stored chosen slices instead)
    for key in state.IMAGING_KEYS:
        st.session_state.pop(key, None)
    for key, name in state.CASE_OBJECT_KEYS.items():
        if objects.get(name) is None:
            st.session_state.pop(key, None)
        else:
            st.session_state[key] = objects[name]
    st.session_state[state.CASE_ID] = record.case_uid
    st.session_state[state.CASE_VERSION] = record.version
    st.session_state[state.CASE_LABEL] = record.label
    st.session_state[state.CASE_NOTES] = record.notes
    st.session_state[state.CASE_STATUS] = record.status
    for widget in (_LABEL_WIDGET, _NOTES_WIDGET, _STATUS_WIDGET, _SERIES_WIDGET, _BURNED_IN_WIDGET):
        st.session_state.pop(widget, None)
    return record


def close_case() -> None:
    """Forget the current case (start a new one)."""
    for key in (*state.CASE_OBJECT_KEYS, state.CASE_ID, state.CASE_VERSION, state.CASE_LABEL,
                state.CASE_NOTES, state.CASE_STATUS, _LABEL_WIDGET, _NOTES_WIDGET, _STATUS_WIDGET,
                _SERIES_WIDGET, _BURNED_IN_WIDGET):
        st.session_state.pop(key, None)


@st.cache_data(show_spinner=False)
def cohort_curves(path: str):
    """Kaplan-Meier curves of the cohort by risk group, for the report (cached per cohort)."""
    from pathlib import Path

    from nbrisk_core.report.figures import cohort_km_curves

    if not (Path(path) / "clinical.csv").exists():
        return None
    import pandas as pd

    clinical = pd.read_csv(Path(path) / "clinical.csv")
    return cohort_km_curves(clinical["os_days"], clinical["os_event"], clinical["risk_group"])


#: session key of the export files made in this session: ``{(case_uid, version, fmt): bytes}``
_EXPORTS = "nbrisk.exports"


def make_export(case_uid: str, version: int, fmt: str) -> bytes:
    """Make one export file of a stored case version and audit it (:func:`nbrisk_core.report.export_case`)."""
    from nbrisk_core.report import export_case

    cohort = config.demo_cohort_dir()
    # the model cards of the models the pages used: the cohort's own models/, else NBRISK_MODELS_DIR
    return export_case(store_engine(), case_uid, _username(), fmt, version=version,
                       cohort_curves=cohort_curves(str(cohort)) if fmt == "pdf" else None,
                       models_dir=config.cohort_models_dir(cohort))


def export_buttons(case_uid: str, version: int, label: str, *, key: str = "export") -> None:
    """PDF, CSV and JSON of a stored case version: a "Make" button per format, then its download.

    A file is made (and its ``case_exported`` event written) only when the user asks for it, in the
    run of that click, and is kept in the session for the case version on screen; the download button
    then hands over those bytes. The button is an ordinary one with its file referenced by this
    session, so the file stays until the session's next run. This replaces a deferred download
    (``data=`` a function run on the click), which lost files under load: Streamlit leaves a deferred
    file unreferenced and deletes it after any two runs of any sessions end, and with ten sessions at
    once that happened between the click and the browser's request, so the download was cancelled.
    """
    from nbrisk_core.errors import InputError
    from nbrisk_core.report import EXPORT_FORMATS

    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in label)[:40] or "case"
    stem = f"nbrisk_{case_uid}_v{version}_{safe}"
    made: dict = st.session_state.setdefault(_EXPORTS, {})
    for stale in [k for k in made if k[:2] != (case_uid, version)]:
        del made[stale]  # only the case version on screen keeps its files in the session
    columns = st.columns(len(EXPORT_FORMATS))
    for column, (fmt, mime) in zip(columns, EXPORT_FORMATS.items(), strict=True):
        slot = column.empty()  # the Make button, replaced by the download once the file is made
        entry = (case_uid, version, fmt)
        if entry not in made:
            if not slot.button(f"Make {fmt.upper()}", key=f"{key}.make.{fmt}", icon=":material/description:"):
                continue
            try:
                with column, st.spinner(f"Making the {fmt.upper()} of case {case_uid}..."):
                    made[entry] = make_export(case_uid, version, fmt)
            except InputError as error:
                show_error(error, column)
                continue
        slot.download_button(f"Download {fmt.upper()}", made[entry],
                               file_name=f"{stem}.{fmt}", mime=mime, key=f"{key}.{fmt}",
                               icon=":material/download:", on_click="ignore", type="primary")
    st.caption(f"Downloads of case {case_uid}, version {version}. "
               "Making a file writes it to the audit trail.")


def audit_prediction(kind: str, model_sha256: str | None, **detail) -> None:
    """Write a ``prediction`` event when a page makes one (user, time, current case id, model SHA-256).

    Saved cases record their predictions too; this covers predictions that are looked at but not saved.
    """
    from nbrisk_core.store import audit

    audit.record(store_engine(), _username(), "prediction", case_uid=st.session_state.get(state.CASE_ID),
                 model_sha256=model_sha256, detail={"kind": kind, **detail})
