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
from nbrisk_core.case import Case
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


def current_case(label: str = "", notes: str = "", status: str = "draft") -> Case:
    """The session's working objects as one typed :class:`~nbrisk_core.case.Case` (pages' keys:
    ``state.CASE``, ``CHOSEN_SLICES``, ``RISK_RESULT``, ``CLINICAL_VALUES``, ``PROGNOSIS_RESULT``)."""
    stored = st.session_state.get(state.CASE_STORED)
    return Case(label=label, slices=st.session_state.get(state.CHOSEN_SLICES) or {},
                study=st.session_state.get(state.CASE) or {}, risk=st.session_state.get(state.RISK_RESULT),
                clinical=st.session_state.get(state.CLINICAL_VALUES) or {},
                prognosis=st.session_state.get(state.PROGNOSIS_RESULT), status=status, notes=notes,
                stored=stored if stored is not None and stored.case_uid == st.session_state.get(state.CASE_ID)
                else None)


def _has_anything_to_save() -> bool:
    return any(st.session_state.get(key) is not None
               for key in (state.CHOSEN_SLICES, state.RISK_RESULT, state.PROGNOSIS_RESULT))


def _default_label() -> str:
    return st.session_state.get(state.CASE_LABEL) or ""


def _put(case: Case, *, objects: bool = True) -> None:
    """Put a stored case into the session: its id and version and (``objects``) its objects under the
    pages' keys. After a save the working objects stay (e.g. the unmasked slices the Risk page reads)."""
    values = ((state.CASE, dict(case.study) or None), (state.CHOSEN_SLICES, dict(case.slices) or None),
              (state.RISK_RESULT, case.risk), (state.CLINICAL_VALUES, dict(case.clinical) or None),
              (state.PROGNOSIS_RESULT, case.prognosis))
    for key, value in values if objects else ():
        if value is None:
            st.session_state.pop(key, None)
        else:
            st.session_state[key] = value
    st.session_state[state.CASE_STORED] = case.stored
    st.session_state[state.CASE_ID] = case.stored.case_uid
    st.session_state[state.CASE_VERSION] = case.stored.version
    st.session_state[state.CASE_LABEL] = case.label
    st.session_state[state.CASE_NOTES] = case.notes
    st.session_state[state.CASE_STATUS] = case.status


def save_current_case(label: str, notes: str, status: str, include_series: bool = False,
                      burned_in_decision: str | None = None) -> Case:
    """Save the session's case (create, or update the opened one); returns it as stored.

    Chosen slices that may show burned-in identifying text (:mod:`nbrisk_core.imaging.burned_in`)
    are stored masked or, when ``burned_in_decision`` is ``"confirm"``, as shown with the signed-in
    reviewer's confirmation; without a decision nothing is saved (:class:`InputError`). With
    ``include_series`` each phase's whole series of the loaded study is stored with its slice.
    """
    from nbrisk_core import service
    from nbrisk_core.case import StoredInfo
    from nbrisk_core.imaging.case import with_series

    case = current_case(label, notes, status)
    if include_series:
        case = case.replace(slices=with_series(case.slices, st.session_state.get(state.IMAGING_STUDY),
                                               st.session_state.get(state.PHASE_ASSIGNMENT)))
    case_uid = st.session_state.get(state.CASE_ID)
    if case_uid and case.stored is None:  # opened in this session before CASE_STORED was kept
        case = case.replace(stored=StoredInfo(case_uid, st.session_state.get(state.CASE_VERSION)))
    saved = service.save_case(store_engine(), case, _username(), include_series=include_series,
                              burned_in_decision=burned_in_decision)
    _put(saved, objects=False)
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

    with st.container(border=True):
        st.subheader(title)
        case_uid = st.session_state.get(state.CASE_ID)
        if case_uid:
            st.caption(f"Editing stored case **{case_uid}** (version {st.session_state.get(state.CASE_VERSION)}).")
        if not _has_anything_to_save():
            st.info("Nothing to save yet: choose the slices on the Case page or get a prediction first.")
            return
        label = st.text_input("Case label (a pseudonym such as the study number, never a name)",
                              value=_default_label(), max_chars=64, key=_LABEL_WIDGET)
        notes = st.text_area("Notes", value=st.session_state.get(state.CASE_NOTES, ""), key=_NOTES_WIDGET)
        current = st.session_state.get(state.CASE_STATUS, "draft")
        status = st.selectbox("Status", CASE_STATUSES, index=CASE_STATUSES.index(current),
                              format_func=STATUS_LABELS.get, key=_STATUS_WIDGET)
        include_series = st.checkbox("Also store the whole series (default: only the chosen slice per phase)",
                                     value=False, key=_SERIES_WIDGET)
        decision = burned_in_choice(st.session_state.get(state.CHOSEN_SLICES))
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
                st.success(f"Saved as case **{saved.stored.case_uid}**, version {saved.stored.version}."
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


def open_case(case_uid: str) -> Case:
    """Load a stored case into this session (audited as ``case_opened``); returns it."""
    from nbrisk_core import service

    case = service.open_case(store_engine(), case_uid, _username())
    # the Case page's working study belongs to whatever was loaded before: it must not be shown
    # under the reopened case (the Case page shows the case's stored chosen slices instead)
    for key in state.IMAGING_KEYS:
        st.session_state.pop(key, None)
    _put(case)
    for widget in (_LABEL_WIDGET, _NOTES_WIDGET, _STATUS_WIDGET, _SERIES_WIDGET, _BURNED_IN_WIDGET):
        st.session_state.pop(widget, None)
    return case


def close_case() -> None:
    """Forget the current case (start a new one)."""
    for key in (*state.CASE_OBJECT_KEYS, state.CASE_STORED, state.CASE_ID, state.CASE_VERSION,
                state.CASE_LABEL,
                state.CASE_NOTES, state.CASE_STATUS, _LABEL_WIDGET, _NOTES_WIDGET, _STATUS_WIDGET,
                _SERIES_WIDGET, _BURNED_IN_WIDGET):
        st.session_state.pop(key, None)


#: session key of the export files made in this session: ``{(case_uid, version, fmt): bytes}``
_EXPORTS = "nbrisk.exports"


def make_export(case_uid: str, version: int, fmt: str) -> bytes:
    """Make one export file of a stored case version and audit it (:func:`nbrisk_core.service.export_case`).

    The PDF draws the reference curves stored with the prognosis (Kaplan-Meier of the training
    cohort by MLRS group, as the Prognosis page).
    """
    from nbrisk_core import service

    cohort = config.demo_cohort_dir()
    # the model cards of the models the pages used: the cohort's own models/, else NBRISK_MODELS_DIR
    return service.export_case(store_engine(), case_uid, _username(), fmt, version=version,
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
