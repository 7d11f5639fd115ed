"""Case: load a three-phase CT study, assign phases, choose the max-area tumour slice per phase.

Thin page: every step is one call into ``nbrisk_core.imaging`` (load_study, suggest_phases,
segment_from_seed, render_slice, area_curve_figure, chosen_slice, case_meta). Per-user state lives
in ``st.session_state`` under the keys of ``nbrisk_ui.state``; one case per session.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from nbrisk_core.errors import InputError
from nbrisk_core.imaging.case import PHASE_ORDER, case_meta, check_assignment, chosen_slice, demo_study_ids
from nbrisk_core.imaging.model_input import PHASE_LABELS
from nbrisk_core.imaging.windowing import WINDOW_PRESETS
from nbrisk_ui import auth, segment_proposal, state
from nbrisk_ui import pacs as pacs_ui
from nbrisk_ui.common import cohort_dir, switch_page_or_say, synthetic_banner
from nbrisk_ui.text import md, show_error

VIEW_WIDTH = 512
SAVED_WINDOW = "as saved"
PHASE_CHOICES = ["—", *(p.upper() for p in PHASE_ORDER)]
UPLOAD_TYPES = None  # DICOM files often have no extension; the reader decides what each file is
#: session key: the dropped files (id, name, size) last read, so that a rerun does not read them again
UPLOAD_READ = "case.upload_read"
#: session key: the InputError of the dropped files last read (shown while they stay dropped)
UPLOAD_ERROR = "case.upload_error"

auth.gate()
st.title("Case")


@st.cache_resource(show_spinner="Reading the demo study…")
def load_demo_study(path: str):
    """A demo study, shared by sessions (synthetic data; never mutated after loading)."""
    from nbrisk_core.imaging.dicom_io import load_study

    return load_study(path)


@st.cache_data(show_spinner=False)
def cohort_meta(path: str) -> dict | None:
    import json

    meta_file = Path(path) / "cohort.json"
    return json.loads(meta_file.read_text()) if meta_file.exists() else None


def reset_case(study, source: str) -> None:
    from nbrisk_core.imaging.phases import suggest_phases

    suggestions = {s.series_uid: s for s in suggest_phases(study.series)}
    st.session_state[state.IMAGING_STUDY] = study
    st.session_state[state.IMAGING_SOURCE] = source
    st.session_state[state.PHASE_SUGGESTIONS] = suggestions
    st.session_state[state.PHASE_ASSIGNMENT] = {uid: s.phase for uid, s in suggestions.items()}
    st.session_state[state.SEGMENTATIONS] = {}
    st.session_state[state.VIEWER_SLICE] = {}
    st.session_state[state.CONFIRMED_SLICES] = {}
    # viewer widgets of the previous case (all drawn below the source block, so not yet this run)
    stale = ("case.slice.", "case.last_click.", "case.phase_table", "case.zoom.", "case.error.")
    for key in [k for k in st.session_state if str(k).startswith(stale)]:
        del st.session_state[key]


def upload_dir():
    from nbrisk_core.imaging.upload import UploadDir

    if state.UPLOAD_DIR not in st.session_state or st.session_state[state.UPLOAD_DIR].closed:
        st.session_state[state.UPLOAD_DIR] = UploadDir()
    return st.session_state[state.UPLOAD_DIR]


def show_reopened_case(case_uid: str) -> None:
    """The chosen slices of a saved case reopened from the Saved cases page (no study is loaded).

    Only the chosen 2-D slice per phase is stored with a case (and the series only on request), so
    this shows those slices, their positions, the phase assignment and the window they were
    confirmed with; loading the study again below gives the full viewer.
    """
    from nbrisk_core.imaging.render import render_slice

    views = list((st.session_state.get(state.CHOSEN_SLICES) or {}).values())  # nbrisk_core.case.ChosenSlice
    series_of = (st.session_state.get(state.CASE) or {}).get("phases") or {}
    with st.container(border=True):
        st.subheader("Reopened saved case")
        label, version = st.session_state.get(state.CASE_LABEL, ""), st.session_state.get(state.CASE_VERSION)
        st.info(f"This is saved case **{md(case_uid)}** ({md(label)}, version {version}), reopened from the "
                "Saved cases page. Shown: the slices chosen for it, as stored. To choose other slices, load "
                "its study again below.", icon=":material/folder_open:")
        if not views:
            st.warning("No chosen slices are stored with this case.")
            return
        st.dataframe(pd.DataFrame([{
            "phase": v.phase.upper(), "series": series_of.get(v.phase, {}).get("series_uid", "–"),
            "slices in series": series_of.get(v.phase, {}).get("n_slices"),
            "chosen slice": v.index, "z (mm)": v.z_mm,
            "pixel (mm)": " x ".join(f"{x:.3g}" for x in v.pixel_spacing or []) or "–",
            "window": (f"{v.window.get('name', '')} W{v.window['width']:g}/L{v.window['level']:g}"
                       if v.window else "–"),
            "tumour": v.segmentation.describe() if v.segmentation is not None else "–",
        } for v in views]), hide_index=True, width="stretch", key="case.reopened.table")
        columns = st.columns(3)
        for column, view in zip(columns, views):
            with column:
                options = ([SAVED_WINDOW] if view.window else []) + list(WINDOW_PRESETS)
                choice = st.selectbox(f"{view.phase.upper()} window", options, disabled=not view.is_hu,
                                      key=f"case.reopened.window.{case_uid}.{view.phase.upper()}")
                window = view.window if choice == SAVED_WINDOW else {"width": WINDOW_PRESETS[choice].width,
                                                                      "level": WINDOW_PRESETS[choice].level}
                where = [f"slice {view.index}" if view.index is not None else None,
                         f"z {view.z_mm:.1f} mm" if view.z_mm is not None else None]
                where = " · ".join(w for w in where if w) or "position not stored"
                width, level = float(window["width"]), float(window["level"])
                rgb = render_slice(view.plane, width, level, is_hu=view.is_hu)
                st.image(rgb, caption=f"{view.phase.upper()} · {where}", width="stretch")


meta = cohort_meta(str(cohort_dir()))
synthetic_banner(meta)
reopened_case = (st.session_state.get(state.CASE_ID) if st.session_state.get(state.IMAGING_STUDY) is None
                 and st.session_state.get(state.CHOSEN_SLICES) else None)
if reopened_case:
    show_reopened_case(reopened_case)

# ---------------------------------------------------------------------------------- 1. source
with st.container(border=True):
    st.subheader("1 · Study")
    demo_ids = demo_study_ids(cohort_dir())
    options = (["Demo case"] if demo_ids else []) + ["Upload"] + pacs_ui.SOURCES
    source = st.radio("Source", options, horizontal=True, key="case.source_kind")
    if source in pacs_ui.SOURCES:  # search, pick and pull a study from the archive (nbrisk_ui.pacs)
        pacs_ui.pacs_source(reset_case)
    elif source == "Demo case":
        patient = st.selectbox("Example study", demo_ids, key="case.demo_patient")
        if st.button("Load demo study", type="primary", key="case.load_demo"):
            reset_case(load_demo_study(str(cohort_dir() / "studies" / patient)), f"demo {patient}")
    else:
        files = st.file_uploader(
            "DICOM files, a zip, a DICOMDIR folder's files, or one BMP/PNG/JPEG/TIFF per phase "
            "(read as soon as they are dropped)",
            accept_multiple_files=True, type=UPLOAD_TYPES, key="case.uploads")
        # reading starts on the drop (issue 21): a new set of files is read once, with no extra click
        dropped = tuple((f.file_id, f.name, f.size) for f in files or ())
        if dropped and dropped != st.session_state.get(UPLOAD_READ):
            st.session_state[UPLOAD_READ] = dropped
            st.session_state.pop(UPLOAD_ERROR, None)
            folder = upload_dir()
            folder.clear()
            try:
                for f in files:
                    folder.save(f.name, f)
                with st.spinner("Reading and de-identifying the upload…"):
                    # the raw files (numbered names, 0600) are deleted as soon as they are read
                    reset_case(folder.read_study(), f"upload of {len(files)} files")
            except InputError as error:
                st.session_state[UPLOAD_ERROR] = error
            finally:
                folder.clear()
        if dropped and st.session_state.get(UPLOAD_ERROR) is not None:
            show_error(st.session_state[UPLOAD_ERROR])  # until other files are dropped

study = st.session_state.get(state.IMAGING_STUDY)
if study is None:
    if not reopened_case:
        st.info("Load a demo study or upload a CT study to start.")
    st.stop()

st.caption(f"Loaded: {md(st.session_state.get(state.IMAGING_SOURCE, ''))} · "
           f"{len(study.series)} image series · {len(study.skipped)} files skipped · headers de-identified "
           "(PS3.15 basic profile)")
for warning in study.warnings:
    st.warning(md(warning))
for series in study.series:
    if series.header.get("BurnedInAnnotation") == "YES":
        st.warning(f"**Burned-in annotation:** {md(series.label)} says (0028,0301) BurnedInAnnotation = "
                   "YES: its images may show a name, a date or a number in the pixels, which de-identifying "
                   "the header does not remove. A slice chosen from it is masked (or its absence of identifying "
                   "text confirmed by you) before the case is saved.", icon=":material/badge:")
if study.skipped:
    with st.expander(f"{len(study.skipped)} files skipped"):
        st.dataframe(pd.DataFrame([{"file": f.name, "reason": f.reason} for f in study.skipped]),
                     hide_index=True, width="stretch")
if not study.series:
    st.error("No image series could be loaded from this study.")
    st.stop()

# ---------------------------------------------------------------------------------- 2. phases
with st.container(border=True):
    st.subheader("2 · Phases")
    suggestions = st.session_state[state.PHASE_SUGGESTIONS]
    assignment = st.session_state[state.PHASE_ASSIGNMENT]
    rows = []
    for s in study.series:
        guess = suggestions.get(s.series_uid)
        current = assignment.get(s.series_uid)
        rows.append({
            "series": s.label, "phase": current.upper() if current else "—",
            "suggested": (f"{guess.phase.upper()} ({guess.confidence_label}, {guess.confidence:.0%})"
                          if guess and guess.phase else "none"),
            "why": "; ".join(guess.reasons) if guess else "",
            "slices": s.n_slices, "size": f"{s.shape[1]} x {s.shape[2]}",
            "pixel (mm)": " x ".join(f"{v:.3g}" for v in s.pixel_spacing),
            "warnings": "; ".join(s.warnings),
        })
    edited = st.data_editor(
        pd.DataFrame(rows), hide_index=True, width="stretch", key="case.phase_table",
        disabled=["series", "suggested", "why", "slices", "size", "pixel (mm)", "warnings"],
        column_config={"phase": st.column_config.SelectboxColumn("phase", options=PHASE_CHOICES, required=True,
                                                                 help="suggested automatically; always yours to change")},
    )
    new_assignment = {s.series_uid: (None if value == "—" else value.lower())
                      for s, value in zip(study.series, edited["phase"])}
    if new_assignment != assignment:
        st.session_state[state.PHASE_ASSIGNMENT] = new_assignment
        # a phase moved to another series: its segmentation and choice no longer apply
        for phase in PHASE_ORDER:
            old = [u for u, p in assignment.items() if p == phase]
            new = [u for u, p in new_assignment.items() if p == phase]
            if old != new:
                st.session_state[state.SEGMENTATIONS].pop(phase, None)
                st.session_state[state.CONFIRMED_SLICES].pop(phase, None)
                st.session_state[state.VIEWER_SLICE].pop(phase, None)
        assignment = new_assignment
    for problem in check_assignment(assignment):
        st.error(problem)

series_by_phase = {p: study.by_uid(uid) for uid, p in assignment.items() if p}
if not series_by_phase:
    st.info("Assign at least one series to a phase.")
    st.stop()


# ---------------------------------------------------------------------------------- 3. viewer
def go_to_slice(slider_key: str, value: int, n_slices: int, relative: bool) -> None:
    """Button callback (runs before the rerun, so the slider may still be set)."""
    target = st.session_state.get(slider_key, 0) + value if relative else value
    st.session_state[slider_key] = min(max(int(target), 0), n_slices - 1)


def confirm_slice(phase: str, index: int, series_by_phase: dict) -> None:
    from nbrisk_core.imaging.segmentation import carry_slice

    confirmed = st.session_state[state.CONFIRMED_SLICES]
    try:
        chosen = chosen_slice(series_by_phase[phase], index, phase)
    except InputError as error:
        st.session_state[f"case.error.{phase}"] = str(error)
        return
    # the display window goes with the slice, so a reopened case shows it as it was confirmed
    preset = st.session_state.get(f"case.window.{phase}", "abdomen")
    base = WINDOW_PRESETS.get(preset, WINDOW_PRESETS["abdomen"])
    # the tumour's volume, longest diameter and area go into the saved case and the report
    measured = segment_proposal.summary(phase, st.session_state[state.SEGMENTATIONS].get(phase),
                                        series_by_phase[phase])
    confirmed[phase] = chosen.replace(window={
        "name": preset, "width": float(st.session_state.get(f"case.ww.{phase}.{preset}", base.width)),
        "level": float(st.session_state.get(f"case.wl.{phase}.{preset}", base.level))}, segmentation=measured)
    # the other phases start near this position (each is still confirmed separately)
    for other, other_series in series_by_phase.items():
        if other not in confirmed and other != phase:
            start = carry_slice(confirmed[phase].z_mm, other_series.z_mm)
            st.session_state[state.VIEWER_SLICE][other] = start
            st.session_state[f"case.slice.{other}"] = start


def companion_phases(phase: str) -> list:
    """The study's other HU phases aligned onto this phase's slices: edges seen in any phase help
    the contour (see ``segment_from_seed``); a phase of another in-plane size is left out."""
    from nbrisk_core.imaging.segmentation import align_phase

    series = series_by_phase[phase]
    if not series.is_hu:
        return []
    aligned = (align_phase(series.hu, series.z_mm, other.hu, other.z_mm)
               for name, other in series_by_phase.items() if name != phase and other.is_hu)
    return [a for a in aligned if a is not None]


@st.fragment
def phase_viewer(phase: str) -> None:
    """Viewer of one phase; a fragment, so moving the slider reruns only this block."""
    from streamlit_image_coordinates import streamlit_image_coordinates

    from nbrisk_core.imaging.render import area_curve_figure, render_slice, view_to_slice
    from nbrisk_core.imaging.segmentation import carry_slice, segment_from_seed  # noqa: F811

    series = series_by_phase[phase]
    segmentations = st.session_state[state.SEGMENTATIONS]
    confirmed = st.session_state[state.CONFIRMED_SLICES]
    slices = st.session_state[state.VIEWER_SLICE]
    if phase not in slices:
        # start where another phase was confirmed (nearest slice by position), else mid-volume
        others = [c for p, c in confirmed.items() if p != phase]
        proposed_start = segment_proposal.start_slice(phase, found_proposals)
        slices[phase] = (proposed_start if proposed_start is not None
                         else carry_slice(others[0].z_mm, series.z_mm) if others else series.n_slices // 2)
    slider_key = f"case.slice.{phase}"
    if slider_key not in st.session_state:
        st.session_state[slider_key] = slices[phase]

    controls, view, curve = st.columns([1, 2, 2])
    with controls:
        preset = st.selectbox("Window", [*WINDOW_PRESETS, "custom"], key=f"case.window.{phase}",
                              disabled=not series.is_hu)
        base = WINDOW_PRESETS.get(preset, WINDOW_PRESETS["abdomen"])
        width = st.number_input("Width (HU)", 1.0, 4000.0, float(base.width), 10.0, key=f"case.ww.{phase}.{preset}",
                                disabled=preset != "custom")
        level = st.number_input("Level (HU)", -1200.0, 3000.0, float(base.level), 10.0,
                                key=f"case.wl.{phase}.{preset}", disabled=preset != "custom")
        zoom = st.select_slider("Zoom", [1.0, 1.5, 2.0, 3.0, 4.0], value=1.0, key=f"case.zoom.{phase}")
        step_back, step_fwd = st.columns(2)
        step_back.button("◀ slice", key=f"case.prev.{phase}", width="stretch",
                         on_click=go_to_slice, args=(slider_key, -1, series.n_slices, True))
        step_fwd.button("slice ▶", key=f"case.next.{phase}", width="stretch",
                        on_click=go_to_slice, args=(slider_key, 1, series.n_slices, True))
        if series.n_slices > 1:
            index = st.slider("Slice (arrow keys step when focused)", 0, series.n_slices - 1, key=slider_key)
        else:
            index = 0
        slices[phase] = index
        st.caption(f"z = {series.z_mm[index]:.1f} mm · {series.n_slices} slices")

    segmentation = segmentations.get(phase)
    mask = (segmentation.mask[index] if segmentation is not None
            else segment_proposal.proposal_mask(phase, index, found_proposals))
    seed_rc = segmentation.seed[1:] if segmentation is not None and segmentation.seed[0] == index else None
    centre = seed_rc
    rgb = render_slice(series.hu[index], width, level, mask=mask, seed_rc=seed_rc, zoom=zoom,
                       center_rc=centre, is_hu=series.is_hu)
    with view:
        # "stretch": the whole slice scaled to the column (a fixed 512 px was cut off in narrow columns)
        click = streamlit_image_coordinates(rgb, width="stretch", key=f"case.click.{phase}",
                                            cursor="crosshair")
        st.caption("Click the tumour to seed the segmentation.")
    last_key = f"case.last_click.{phase}"
    if click and click.get("unix_time") != st.session_state.get(last_key):
        st.session_state[last_key] = click.get("unix_time")
        row, col = view_to_slice(click["x"], click["y"], series.hu.shape[1:], zoom, centre,
                                 displayed_width=click.get("width") or VIEW_WIDTH)
        from nbrisk_core.imaging.segmentation import pseudo_hu_from_grey

        # a 2-D image upload is 8-bit grey: segment it on the HU its W400/L40 export stands for
        volume = series.hu if series.is_hu else pseudo_hu_from_grey(series.hu)
        try:
            segmentations[phase] = segment_from_seed(volume, (index, row, col), series.pixel_spacing,
                                                     series.slice_spacing_mm, companions=companion_phases(phase))
        except InputError as error:
            show_error(error)
        st.rerun(scope="fragment")

    with curve:
        chosen = confirmed.get(phase)
        if segmentation is not None:
            st.plotly_chart(area_curve_figure(segmentation.areas_mm2, series.z_mm, segmentation.max_area_slice,
                                              chosen.index if chosen else None, index,
                                              title=f"{phase.upper()}: tumour area per slice"),
                            width="stretch", key=f"case.curve.{phase}")
            proposed = segmentation.max_area_slice
            st.write(f"Proposed max-area slice: **{proposed}** "
                     f"({segmentation.areas_mm2[proposed]:.0f} mm²)")
            st.button("Go to proposed slice", key=f"case.goto.{phase}", disabled=index == proposed,
                      on_click=go_to_slice, args=(slider_key, proposed, series.n_slices, False))
        elif (proposal := (found_proposals or {}).get(phase)) is not None and proposal.found:
            st.plotly_chart(area_curve_figure(proposal.areas_mm2, series.z_mm, proposal.max_area_slice,
                                              chosen.index if chosen else None, index,
                                              title=f"{phase.upper()}: tumour area per slice (automatic)"),
                            width="stretch", key=f"case.curve.{phase}")
            st.write(f"Proposed max-area slice: **{proposal.max_area_slice}** ({proposal.area_mm2:.0f} mm², "
                     f"{proposal.volume_ml:.1f} mL, longest diameter {proposal.longest_diameter_mm:.0f} mm, "
                     f"confidence {proposal.confidence:.0%}); a click on the tumour replaces it.")
            if proposal.low_confidence:
                st.warning("Low confidence: check this slice or click the tumour.")
        else:
            st.info("No segmentation yet: click the tumour in the image.")
        if f"case.error.{phase}" in st.session_state:
            st.error(st.session_state.pop(f"case.error.{phase}"))
        if chosen:
            st.success(f"Confirmed: slice {chosen.index} (z {chosen.z_mm:.1f} mm)")
        if st.button(f"Confirm slice {index} for {phase.upper()}", type="primary", key=f"case.confirm.{phase}",
                     on_click=confirm_slice, args=(phase, index, series_by_phase)):
            st.rerun()  # the thumbnails below live outside this fragment


with st.container(border=True):
    st.subheader("3 · Max-area slice per phase")
    found_proposals = segment_proposal.proposals(series_by_phase)
    segment_proposal.proposal_panel(series_by_phase, found_proposals, confirm_slice)
    phases_present = [p for p in PHASE_ORDER if p in series_by_phase]
    tabs = st.tabs([f"{p.upper()} · {PHASE_LABELS[p]}" for p in phases_present])
    for tab, phase in zip(tabs, phases_present):
        with tab:
            phase_viewer(phase)

# ---------------------------------------------------------------------------------- 4. send
with st.container(border=True):
    from nbrisk_core.imaging.render import thumbnail

    st.subheader("4 · Chosen slices")
    confirmed = st.session_state[state.CONFIRMED_SLICES]
    columns = st.columns(3)
    for column, phase in zip(columns, PHASE_ORDER):
        entry = confirmed.get(phase)
        with column:
            if entry is None:
                st.caption(f"{phase.upper()}: not confirmed")
                continue
            st.image(thumbnail(entry.plane, 400, 40, is_hu=entry.is_hu),
                     caption=f"{phase.upper()} · slice {entry.index} · z {entry.z_mm:.1f} mm")
            finding = entry.burned_in or {}
            if finding.get("pixel_text"):
                st.warning(f"{phase.upper()}: {finding.get('text_marks')} text-like marks outside the body: "
                           "burned-in text (a name, a date?). The case is saved with the area outside the "
                           "body blacked out unless you confirm the slice shows no identifying text.",
                           icon=":material/badge:")
    problems = check_assignment(st.session_state[state.PHASE_ASSIGNMENT])
    send = st.button("Send to Risk", type="primary", disabled=not confirmed or bool(problems), key="case.send")
    if (send or segment_proposal.send_requested()) and confirmed and not problems:
        st.session_state[state.CHOSEN_SLICES] = dict(confirmed)
        st.session_state[state.CASE] = case_meta(study, st.session_state[state.PHASE_ASSIGNMENT])
        switch_page_or_say("pages/2_Risk.py", "Chosen slices stored for the Risk page.")
