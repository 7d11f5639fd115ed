"""Prognosis: one patient's predicted overall survival from the CT embedding and the labs."""

from __future__ import annotations

import numpy as np
import streamlit as st

from nbrisk_core import service
from nbrisk_core.clinical.schema import CLINICAL_VARIABLES
from nbrisk_core.errors import InputError
from nbrisk_core.prognosis.validation import parse_entry
from nbrisk_ui import auth, state
from nbrisk_ui.prognosis import (cohort_and_pipeline, demo_embedding, header_prefill, pipeline_source,
                                 summary_csv)
from nbrisk_ui.text import md, show_error

#: Individual prediction must feel immediate (target from the Prognosis issue).
PREDICTION_TARGET_MS = 300
FORM = state.PROGNOSIS_FORM  # prefix of the form's widget keys


def number_text(value: float) -> str:
    """A stored number as the form's text (``27.0`` -> ``"27"``, 12 significant digits)."""
    return f"{float(value):.12g}"


auth.gate()
st.title("Prognosis")
path, clinical, meta, pipeline = cohort_and_pipeline(
    "The prognosis models use the 16 CT features of the shipped Swin-ART classifier. "
    "Train or install it (`nbrisk train`, then `nbrisk embed`) and reload this page.")

how_chosen = ("the one combination the dashboard uses" if pipeline.config_.get("grid") == "app"
              else f"best {pipeline.config_.get('selection_rule', 'mean')} C-index of the grid")
source = pipeline_source(pipeline)
st.caption(f"Model: **{pipeline.selected_}** ({how_chosen}"
           + (f"; {source}" if source else "")
           + f") · MLRS cutoff {pipeline.cutoff_:.3g} (training median, frozen). "
           "Details on the Cohort page.")

# ------------------------------------------------------------------ CT embedding
risk_result = st.session_state.get(state.RISK_RESULT)  # nbrisk_core.case.RiskResult
embedding = risk_result.embedding if risk_result is not None and np.size(risk_result.embedding) else None
demo_patient = None
if embedding is not None:
    embedding = np.asarray(embedding, dtype=float).ravel()
    st.success("CT features: the 16-value embedding of the current case from the Risk page.")
else:
    examples = list((meta or {}).get("example_patients", []))
    choices = examples + [p for p in pipeline.patients_["patient_id"] if p not in examples]
    demo_patient = st.selectbox("No case has been through the Risk page: use the CT features of a demo "
                                "cohort patient", choices, key=state.PROGNOSIS_DEMO_PATIENT)
    embedding = demo_embedding(path, demo_patient)
    if embedding is None:
        st.error(f"No CT embedding is stored for {md(demo_patient)}.")
        st.stop()
    st.info(f"**Demo:** CT features of cohort patient **{md(demo_patient)}** (not an uploaded case). "
            "This patient is part of the cohort the model was fitted on.")

# ------------------------------------------------------------------ clinical form
units_of = {v.name: [v.unit, *v.alt_units] for v in CLINICAL_VARIABLES}
if demo_patient is not None and st.button("Fill the form with this demo patient's values"):
    row = clinical.set_index("patient_id").loc[demo_patient]
    for v in CLINICAL_VARIABLES:
        value = row.get(v.name)
        missing = value is None or (isinstance(value, float) and np.isnan(value))
        if v.kind == "numeric":
            st.session_state[f"{FORM}{v.name}"] = "" if missing else number_text(value)
            st.session_state[f"{FORM}{v.name}.unit"] = v.unit
        elif v.kind == "binary":
            yes_no = "yes" if not missing and int(value) == 1 else "no"
            st.session_state[f"{FORM}{v.name}"] = None if missing else yes_no
        else:
            st.session_state[f"{FORM}{v.name}"] = None if missing else str(value)

if demo_patient is None:
    # age and sex come from the study's header: prefill them once per case so that MICE never
    # imputes values that contradict the images (the user can still change them)
    prefill = header_prefill(st.session_state.get(state.CASE))
    marker = f"{FORM}prefilled"
    if prefill and st.session_state.get(marker) != prefill:
        for name, value in prefill.items():
            st.session_state[f"{FORM}{name}"] = number_text(value) if isinstance(value, float) else value
            if name == "age_months":
                st.session_state[f"{FORM}{name}.unit"] = "months"
        st.session_state[marker] = prefill
    if prefill:
        st.caption("Prefilled from the study's DICOM header: "
                   + ", ".join(f"{name.replace('_', ' ')} {value:g}" if isinstance(value, float)
                               else f"{name} {value}" for name, value in prefill.items()) + ".")

with st.form("nbrisk.prognosis.form"):
    st.markdown("**Clinical values at diagnosis.** Leave a field empty when it is not known: missing "
                "values are imputed (MICE-PMM from the training cohort) and listed with the result.")
    entered: dict = {}
    columns = st.columns(3)
    for k, v in enumerate(CLINICAL_VARIABLES):
        col = columns[k % 3]
        label = v.label + (f" ({v.unit})" if v.unit and len(units_of[v.name]) == 1 else "")
        if v.kind == "numeric":
            # text, parsed on the server by the core's one lab parser: a browser's number field reads
            # "12,5" as 125 and "1e400" as empty, which would then be imputed without a word
            help_text = f"Accepted {v.low:g}-{v.high:g} {v.unit}, decimal point (12.5)".strip()
            if len(units_of[v.name]) > 1:
                inner = col.columns([2, 1])
                value = inner[0].text_input(label, help=help_text, key=f"{FORM}{v.name}")
                unit = inner[1].selectbox("unit", units_of[v.name], key=f"{FORM}{v.name}.unit")
            else:
                value = col.text_input(label, help=help_text, key=f"{FORM}{v.name}")
                unit = v.unit
            if value and value.strip():
                entered[v.name] = {"value": value, "unit": unit}
        elif v.kind == "binary":
            choice = col.selectbox(label, ["no", "yes"], index=None, placeholder="not known",
                                   key=f"{FORM}{v.name}")
            if choice is not None:
                entered[v.name] = 1 if choice == "yes" else 0
        else:
            choice = col.selectbox(label, list(v.categories), index=None, placeholder="not known",
                                   key=f"{FORM}{v.name}")
            if choice is not None:
                entered[v.name] = choice
    submitted = st.form_submit_button("Predict survival", type="primary")

if submitted:
    try:
        entered = parse_entry(entered)  # refuses "12,5", "1e400", "inf": the model never sees a guess
        prognosis = service.prognose_case(
            pipeline, embedding, entered,
            embedding_source="risk page" if demo_patient is None else f"demo patient {demo_patient}")
    except InputError as error:
        show_error(error)
        st.stop()
    st.session_state[state.CLINICAL_VALUES] = entered
    st.session_state[state.PROGNOSIS_RESULT] = prognosis
    st.session_state.pop(state.NOMOGRAM_SCENARIO, None)   # a new prediction: no scenario yet

result = st.session_state.get(state.PROGNOSIS_RESULT)  # nbrisk_core.case.Prognosis
if result is None:
    st.stop()

# ------------------------------------------------------------------ result
from nbrisk_core.prognosis.plots import individual_survival_figure, individual_survival_png  # noqa: E402

cols = st.columns(3)
cols[0].metric("MLRS", f"{result.mlrs:.3g}")
cols[1].metric("Percentile in the training cohort", f"{result.percentile:.0f}")
cols[2].metric("MLRS group", "High" if result.group == "high" else "Low")
if result.imputed:
    from nbrisk_core.prognosis.individual import describe_imputed

    filled = result.imputed_values
    st.warning("**Imputed (not entered):** "
               + ", ".join(describe_imputed(name, filled.get(name), label=True) for name in result.imputed)
               + ". Their values come from similar training patients (MICE-PMM); enter them for a "
                 "prediction that depends less on imputation.", icon=":material/edit_note:")
for note in result.notes:
    if not note.startswith("imputed"):  # imputation is already in the warning above
        st.info(note)

# the reference curves: Kaplan-Meier of the training cohort by MLRS group (the PDF draws the same)
train_time, train_event, train_group = service.training_cohort(pipeline)
st.plotly_chart(individual_survival_figure(result, train_time, train_event, train_group),
                key="nbrisk.prognosis.curve")
speed = result.prediction_ms
if speed is not None:
    verdict = "within" if speed < PREDICTION_TARGET_MS else "over"
    st.caption(f"Individual prediction took {speed:.0f} ms ({verdict} the {PREDICTION_TARGET_MS} ms target).")

dl = st.columns(2)
dl[0].download_button("Download summary (CSV)", summary_csv(result, meta), file_name="nbrisk_prognosis.csv",
                      mime="text/csv")
dl[1].download_button("Download curve (PNG)",
                      individual_survival_png(result, train_time, train_event,
                                              train_group.str.replace(" (training)", "", regex=False)),
                      file_name="nbrisk_prognosis.png", mime="image/png")

# ------------------------------------------------------------------ nomogram (+ scenario comparison)
from nbrisk_ui.prognosis import nomogram_panel  # noqa: E402

nomogram_panel(pipeline, clinical, path, result, st.session_state.get(state.CLINICAL_VALUES))

from nbrisk_ui.cases import save_case_widget; save_case_widget()  # noqa: E402,E702 - Workflow: save the case
