"""The Case page's automatic proposal (issue 21): the MONAI segmentation proposes each phase's
max-area slice when a study is loaded; one button confirms every confident proposal.

"Confirm all proposals" confirms every confident phase (a phase with a seed click: the click's
max-area slice instead of the proposal) and goes on to the Risk page (the page's
"Send to Risk", through :func:`send_requested`). Self-contained: the page calls :func:`proposals` (cached per loaded study in the session),
:func:`proposal_panel` (the table and the "Confirm all" button) and reads
:func:`start_slice` / :func:`proposal_mask` in its viewer. A seed click still replaces the proposal
of its phase (the page's own segmentation takes precedence). Without the shipped model the page
works as before (no proposal, a caption says why).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from nbrisk_ui import state

#: session key: (study key, {phase: PhaseSegmentation}) of the loaded study
PROPOSALS = "nbrisk.imaging.seg_proposals"
#: session key: "Confirm all proposals" was pressed, so the page goes on to the Risk page
SEND_REQUESTED = "case.confirm_all.send"


@st.cache_resource(show_spinner=False)
def _model(path: str, mtime: float):
    """The shipped segmentation network, SHA-checked once per file version (shared, never mutated)."""
    from nbrisk_core.segment.model import load_seg_model

    return load_seg_model(path)


def _study_key(series_by_phase: dict) -> tuple:
    return tuple(sorted((phase, s.series_uid) for phase, s in series_by_phase.items()))


def proposals(series_by_phase: dict) -> dict | None:
    """``{phase: PhaseSegmentation}`` for the HU phases of the loaded study (computed once per
    study and phase assignment), or None when no segmentation model is installed."""
    from nbrisk_core.segment.inference import PhaseVolume, segment_phases
    from nbrisk_core.segment.model import shipped_seg_model_path

    path = shipped_seg_model_path()
    if not path.is_file():
        return None
    key = _study_key(series_by_phase)
    cached = st.session_state.get(PROPOSALS)
    if cached and cached[0] == key:
        return cached[1]
    volumes = {p: PhaseVolume.from_series(s) for p, s in series_by_phase.items()
               if s.is_hu and s.hu.ndim == 3}
    results = {}
    if volumes:
        with st.spinner("Proposing the max-area slice in every phase…"):
            results = segment_phases(_model(str(path), path.stat().st_mtime), volumes)
    st.session_state[PROPOSALS] = (key, results)
    return results


def summary(phase: str, seeded=None, series=None):
    """The :class:`~nbrisk_core.case.SegmentationSummary` stored with ``phase``'s confirmed slice: the
    seed click's contour when there is one (it replaces the proposal), else the loaded study's proposal."""
    from nbrisk_core.segment.inference import seed_summary
    from nbrisk_core.segment.model import shipped_seg_model_path

    if seeded is not None and series is not None:
        return seed_summary(seeded.mask, series.pixel_spacing, series.slice_spacing_mm or 1.0)
    cached = st.session_state.get(PROPOSALS)
    proposal = cached[1].get(phase) if cached else None
    if proposal is None:
        return None
    path = shipped_seg_model_path()
    sha = _model(str(path), path.stat().st_mtime).sha256 if path.is_file() else None
    return proposal.summary(sha)


def start_slice(phase: str, found: dict | None) -> int | None:
    proposal = (found or {}).get(phase)
    return int(proposal.max_area_slice) if proposal is not None and proposal.found else None


def proposal_mask(phase: str, index: int, found: dict | None):
    proposal = (found or {}).get(phase)
    return proposal.mask[index] if proposal is not None and proposal.found else None


def proposal_panel(series_by_phase: dict, found: dict | None, confirm) -> None:
    """Table of the proposals and "Confirm all" (low-confidence phases excluded and flagged).

    ``confirm(phase, index, series_by_phase)`` is the page's own confirm callback.
    """
    if found is None:
        st.caption("No segmentation model installed (models/seg_demo): click the tumour in each phase.")
        return
    if not found:
        return
    rows, confident = [], {}
    for phase, r in found.items():
        rows.append({"phase": phase.upper(), "proposed slice": r.max_area_slice if r.found else "—",
                     "area (mm²)": round(r.area_mm2), "volume (mL)": round(r.volume_ml, 1),
                     "longest diameter (mm)": round(r.longest_diameter_mm, 1),
                     "confidence": f"{r.confidence:.0%}",
                     "check": "" if not r.low_confidence else ("not found: click the tumour" if not r.found
                                                              else "low confidence: check or click")})
        if not r.low_confidence:
            confident[phase] = r.max_area_slice
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="case.proposals_table")
    flagged = [p.upper() for p, r in found.items() if r.low_confidence]
    if flagged:
        st.warning(f"{', '.join(flagged)}: the proposal is uncertain and is not confirmed by the button; "
                   "check the slice or click the tumour in that phase.")

    def confirm_all():
        for phase, index in to_confirm(found, confident).items():
            confirm(phase, index, series_by_phase)
            st.session_state[f"case.slice.{phase}"] = index
        st.session_state[SEND_REQUESTED] = True

    shown = to_confirm(found, confident)
    st.button(f"Confirm all proposals ({', '.join(p.upper() for p in shown) or 'none'})", type="primary",
              key="case.confirm_all", disabled=not shown, on_click=confirm_all)


def to_confirm(found: dict, confident: dict) -> dict:
    """Phase -> slice "Confirm all" confirms: a phase's seed click replaces its proposal (its own
    max-area slice, also in a phase whose proposal was flagged), else the confident proposals.

    Read when the button is pressed: a click in a viewer reruns only that viewer, not this panel.
    """
    seeded = st.session_state.get(state.SEGMENTATIONS) or {}
    out = dict(confident)
    for phase in found:
        if phase in seeded:
            out[phase] = int(seeded[phase].max_area_slice)
    return {p: out[p] for p in found if p in out}


def send_requested() -> bool:
    """True once after "Confirm all proposals": the page then sends the slices to the Risk page."""
    return bool(st.session_state.pop(SEND_REQUESTED, False))

