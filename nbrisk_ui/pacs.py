"""The dashboard's PACS parts: the Case page's "From PACS" source and the Saved cases page's push button.

Each is one call from its page (:func:`pacs_source`, :func:`push_controls`); everything else is in
:mod:`nbrisk_core.pacs`. Search results (patient IDs, dates) live in this session's memory only,
are never written to the case store and are dropped once a study is pulled; the pulled files are
deleted as soon as they are read (like an upload). Archive errors are shown with ``show_error``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from nbrisk_core.errors import InputError
from nbrisk_ui.text import md, show_error

#: the Case page's source option
SOURCE = "From PACS"
#: the Case page offers these besides Demo and Upload
SOURCES = [SOURCE]
ENVIRONMENT = "environment (NBRISK_DICOMWEB_URL)"
_HITS = "nbrisk.pacs.hits"  # this session's last search results (identifying: memory only)
_SERIES = "nbrisk.pacs.series"  # (study_uid, [SeriesHit]) of the picked study


def _archive_names() -> list[str]:
    from nbrisk_core.pacs.settings import from_environment, load_archives

    names = list(load_archives())
    return ([ENVIRONMENT] if from_environment() is not None else []) + names


def _open(name: str):
    from nbrisk_core.pacs.archive import open_archive
    from nbrisk_core.pacs.settings import resolve

    return open_archive(resolve(archive=None if name == ENVIRONMENT else name))


def pacs_source(reset_case) -> None:
    """Search the archive, pick a study, see its series, pull it (progress bar); then
    ``reset_case(study, ...)``."""
    try:
        names = _archive_names()
    except InputError as error:
        show_error(error)
        return
    if not names:
        st.info(
            "No archive is configured. Set NBRISK_DICOMWEB_URL (and NBRISK_DICOMWEB_USER / "
            "NBRISK_DICOMWEB_PASSWORD or NBRISK_DICOMWEB_TOKEN), or name archives in the PACS settings file "
            "(see docs/pacs.md).",
            icon=":material/dns:",
        )
        return
    name = st.selectbox("Archive", names, key="case.pacs.archive")
    c1, c2, c3 = st.columns(3)
    patient_id = c1.text_input("Patient ID", key="case.pacs.patient_id")
    accession = c2.text_input("Accession number", key="case.pacs.accession")
    study_date = c3.text_input("Study date (YYYYMMDD or range)", key="case.pacs.study_date")
    if st.button("Search", icon=":material/search:", key="case.pacs.search"):
        st.session_state.pop(_SERIES, None)
        try:
            with st.spinner("Searching the archive…"):
                st.session_state[_HITS] = _open(name).find_studies(
                    patient_id=patient_id or None, accession=accession or None, study_date=study_date or None
                )
        except InputError as error:
            st.session_state.pop(_HITS, None)
            show_error(error)
    hits = st.session_state.get(_HITS)
    if hits is None:
        return
    if not hits:
        st.info("No CT study matches.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "study": i + 1,
                    "patient ID": h.patient_id,
                    "date": h.study_date,
                    "description": h.description,
                    "modalities": "/".join(h.modalities),
                    "series": h.n_series,
                    "instances": h.n_instances,
                }
                for i, h in enumerate(hits)
            ]
        ),
        hide_index=True,
        width="stretch",
        key="case.pacs.results",
    )
    index = st.selectbox(
        "Study",
        range(len(hits)),
        key="case.pacs.pick",
        format_func=lambda i: (
            f"{i + 1}: {hits[i].study_date or 'no date'} · "
            f"{hits[i].description or hits[i].accession or hits[i].study_uid}"
        ),
    )
    hit = hits[index]
    try:
        series = _series_of(name, hit.study_uid)
    except InputError as error:
        show_error(error)
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "series": s.number,
                    "modality": s.modality,
                    "description": s.description,
                    "instances": s.n_instances,
                }
                for s in series
            ]
        ),
        hide_index=True,
        width="stretch",
        key="case.pacs.series_table",
    )
    if st.button("Pull study", type="primary", icon=":material/download:", key="case.pacs.pull"):
        _pull(name, hit.study_uid, reset_case)


def _series_of(name: str, study_uid: str):
    cached = st.session_state.get(_SERIES)
    if cached and cached[0] == study_uid:
        return cached[1]
    series = _open(name).list_series(study_uid)
    st.session_state[_SERIES] = (study_uid, series)
    return series


def _pull(name: str, study_uid: str, reset_case) -> None:
    from nbrisk_core.pacs.pull import load_pulled, pull_study

    bar = st.progress(0.0, text="Pulling the study…")

    def progress(done: int, total: int, what: str) -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=f"Pulled {done} of {total} instances ({what})")

    try:
        archive = _open(name)
        pulled = pull_study(archive, study_uid, progress=progress)
        with st.spinner("Reading and de-identifying the study…"):
            study = load_pulled(pulled)
    except InputError as error:
        bar.empty()
        show_error(error)
        return
    bar.progress(1.0, text=f"Pulled {sum(s.n_slices for s in study.series)} slices")
    # the search results name patients: not kept once the study is in
    st.session_state.pop(_HITS, None)
    st.session_state.pop(_SERIES, None)
    linked = " (study link kept)" if study.meta.get("archive") else ""
    reset_case(study, f"archive study from {archive.settings.name}{linked}")


def push_controls(case_uid: str, username: str, engine) -> None:
    """The Saved cases page's "Store results in the archive" button (when an archive is configured)."""
    from nbrisk_core.pacs.settings import from_environment, load_archives

    try:
        archives = load_archives()
        configured = bool(archives) or from_environment() is not None
    except InputError:
        configured, archives = False, {}
    if not configured:
        return
    with st.expander("Store results in the archive (PACS)", icon=":material/cloud_upload:"):
        st.caption(
            "Files the risk report (DICOM SR), the PDF and the Grad-CAM overlay (marked not for diagnosis) "
            "into the study this case was pulled from. Needs a case pulled from the archive with the "
            "study link kept. Every push is written to the audit trail."
        )
        if st.button("Store in archive", icon=":material/cloud_upload:", key=f"cases.pacs.push.{case_uid}"):
            _push(case_uid, username, engine, archives)


def _push(case_uid: str, username: str, engine, archives) -> None:
    from nbrisk_core import config
    from nbrisk_core.pacs.archive import open_archive
    from nbrisk_core.pacs.push import push_case, study_link
    from nbrisk_core.pacs.settings import resolve
    from nbrisk_core.service import open_case

    try:
        link = study_link(open_case(engine, case_uid, username, record_open=False, operation="export")) or {}
        name = link.get("archive") if link.get("archive") in archives else None
        with st.spinner("Storing into the archive…"):
            # the PDF with the model card the Saved cases page's export shows (nbrisk_ui.cases)
            models_dir = config.cohort_models_dir(config.demo_cohort_dir())
            result = push_case(engine, case_uid, username, open_archive(resolve(archive=name)),
                               models_dir=models_dir)
    except InputError as error:
        show_error(error)
        return
    kinds = {"sr": "SR", "seg": "SEG", "pdf": "PDF", "gradcam": "Grad-CAM capture"}
    st.success(
        f"Stored {len(result.stored)} object(s) into the archive study ({md(result.archive)}): "
        + ", ".join(kinds.get(k, k) for k in result.kinds)
        + "."
    )
    if result.seg_skipped:
        st.info("No DICOM SEG for "
                + "; ".join(f"{md(phase.upper())}: {md(why)}" for phase, why in result.seg_skipped.items()))


__all__ = ["SOURCE", "SOURCES", "pacs_source", "push_controls"]
