"""Cohort builder: review the automatic slice proposals of an imported cohort, one patient-phase at a time.

``nbrisk cohort slices --cohort DIR --auto`` proposes each patient's max-area slice per phase; here a
reviewer works through the queue (not found and low confidence first): the proposed slice with its
contour and the area curve, then accept (A), use the slice shown (M), reject (X) or skip (S); the
Left/Right keys step through the slices. Each decision is written at once to the cohort's
``slices.csv``/``proposals.csv`` and ``slices/<patient_id>/`` (atomic files, ``confirmed_by`` and
``confirmed_at``): the work is resumable and a second reviewer sees the same progress. Each decision is
also an event of the audit trail (``slice_confirmed``/``slice_rejected``, without the study number).
"""

from __future__ import annotations

import streamlit as st

from nbrisk_core.errors import InputError
from nbrisk_ui import auth, review
from nbrisk_ui.common import cohort_dir, switch_page_or_say, synthetic_banner
from nbrisk_ui.text import show_error

VIEW_WIDTH = 512
WINDOW = (400.0, 40.0)   # W400/L40, the window of the cohort's slice exports

auth.gate()
st.title("Cohort builder")
path = cohort_dir()
try:
    from nbrisk_core.cohort.format import read_meta
    from nbrisk_core.cohort.review import patient_states, review_progress, review_queue

    synthetic_banner(read_meta(path))
    states = patient_states(path)
    progress = review_progress(path)
    queue = review_queue(path)
except InputError as error:
    show_error(error)
    st.stop()

st.caption(f"Cohort **{path.name}**: {len(states)} patients. Proposals are made with "
           f"`nbrisk cohort slices --cohort {path.name} --auto`; decisions are saved as you make them.")
counts = states["state"].value_counts()
columns = st.columns(5)
for column, name in zip(columns, ("to propose", "to review", "confirmed", "problem", "no study")):
    column.metric(name, int(counts.get(name, 0)))
fraction = progress.decided / progress.total if progress.total else 0.0
st.progress(fraction, text=f"{progress.decided} of {progress.total} phase proposals reviewed "
                           f"({progress.accepted} accepted, {progress.moved} moved, "
                           f"{progress.rejected} rejected)")
with st.expander("Patients", expanded=False):
    st.dataframe(states, hide_index=True, width="stretch", key="review.patients")

review.show_message()
item = review.current_item(queue)
if item is None:
    if progress.total:
        st.success("Every proposal has been reviewed.", icon=":material/task_alt:")
    else:
        st.info("No slice proposals yet: run `nbrisk cohort slices --cohort DIR --auto` on an imported "
                "cohort with DICOM studies.")
    st.stop()

from nbrisk_core.cohort.review import load_proposal_arrays  # noqa: E402
from nbrisk_core.imaging.render import area_curve_figure, render_slice  # noqa: E402

user = auth.current_username()
try:
    volume = review.volume_for(path, item.patient_id, item.phase.value)
except InputError as error:
    show_error(error)
    st.stop()
if volume is None:
    st.error(f"{item.patient_id}: no {item.phase.upper()} series under studies/{item.patient_id}.")
    st.stop()
arrays = load_proposal_arrays(path, item.patient_id)
mask = arrays.get(f"mask_{item.phase.value}")
areas = arrays.get(f"areas_{item.phase.value}")
n_slices = int(volume.hu.shape[0])

with st.container(border=True):
    flag = ("not found: move to the tumour's largest slice or reject" if not item.found else
            "low confidence: check the slice" if item.low_confidence else "")
    st.subheader(f"{item.patient_id} · {item.phase.title}")
    proposed = item.proposed_slice if item.found else "—"
    st.caption(f"Proposed slice {proposed} · area {item.area_mm2:.0f} mm² · "
               f"confidence {item.confidence:.0%}" + (f" · **{flag}**" if flag else "")
               + f" · {progress.to_review} left in the queue")
    key = review.slice_key(item)
    if key not in st.session_state:
        st.session_state[key] = min(item.proposed_slice, n_slices - 1)
    left, right = st.columns([3, 2])
    with right:
        index = st.slider("Slice", 0, n_slices - 1, key=key)
        step = st.columns(2)
        step[0].button("Previous slice", key="review.previous", shortcut=review.SHORTCUTS["previous"],
                       on_click=review.step_callback, args=(item, -1, n_slices), width="stretch")
        step[1].button("Next slice", key="review.next", shortcut=review.SHORTCUTS["next"],
                       on_click=review.step_callback, args=(item, 1, n_slices), width="stretch")
        if areas is not None:
            st.plotly_chart(area_curve_figure(areas, volume.z_mm, proposed=item.proposed_slice if item.found
                                              else None, current=index), key="review.curve")
        moved = index != item.proposed_slice or not item.found
        st.button(f"Accept proposed slice {item.proposed_slice}", type="primary", key="review.accept",
                  shortcut=review.SHORTCUTS["accept"], disabled=not item.found, width="stretch",
                  on_click=review.decide_callback, args=(path, item, "accept", user))
        st.button(f"Use slice {index} (move)", key="review.move", shortcut=review.SHORTCUTS["move"],
                  disabled=not moved, width="stretch",
                  on_click=review.decide_callback, args=(path, item, "move", user))
        buttons = st.columns(2)
        buttons[0].button("Reject", key="review.reject", shortcut=review.SHORTCUTS["reject"], width="stretch",
                          on_click=review.decide_callback, args=(path, item, "reject", user))
        buttons[1].button("Skip for now", key="review.skip", shortcut=review.SHORTCUTS["skip"],
                          width="stretch", on_click=review.skip_callback, args=(item,))
        st.caption("Keys: A accept · M use this slice · X reject · S skip · ←/→ slice")
        if st.button("Open in the Case viewer", key="review.open_case", width="stretch",
                     help="the whole study on the Case page (seed click, other windows); come back here "
                          "to record the decision"):
            review.open_in_case_viewer(item)
            switch_page_or_say("pages/1_Case.py", f"Open the Case page: {item.patient_id} is selected there "
                                                  "as the study to load.")
    with left:
        plane_mask = mask[index].astype(bool) if mask is not None and index < mask.shape[0] else None
        st.image(render_slice(volume.hu[index], *WINDOW, mask=plane_mask), width=VIEW_WIDTH,
                 caption=f"slice {index} · z {float(volume.z_mm[index]):.1f} mm · W400/L40")
