"""Risk: high-risk probability per Swin-T variant, Grad-CAM overlays, the model card."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from nbrisk_core import service
from nbrisk_core.case import PHASES, Phase
from nbrisk_core.errors import InputError
from nbrisk_ui import auth, state
from nbrisk_ui.common import cohort_dir, synthetic_banner
from nbrisk_ui.text import md, show_error

auth.gate()
st.title("Risk")


@st.cache_resource(show_spinner="Loading the classifiers…")
def load_predictors(models_dir: str) -> dict:
    """variant -> Predictor for every shipped model present (shared by sessions; never mutated)."""
    from nbrisk_core.classifier.inference import Predictor, optimized_config
    from nbrisk_core.classifier.model_io import SHIPPED_MODELS, load_model

    config = optimized_config()
    found = {}
    for variant, stem in SHIPPED_MODELS.items():
        path = Path(models_dir) / f"{stem}.safetensors"
        if path.exists():
            found[variant] = Predictor(load_model(path, device=config.device), config)
    return found


@st.cache_data(show_spinner=False)
def demo_patients(path: str) -> list[str]:
    folder = Path(path) / "slices"
    return sorted(p.name for p in folder.iterdir() if (p / "hu.npz").exists()) if folder.exists() else []


@st.cache_data(show_spinner=False)
def demo_case(path: str, patient_id: str) -> dict:
    from nbrisk_core.classifier.data import read_grey_slices

    return read_grey_slices(Path(path), patient_id, PHASES)


def grey_from_upload(upload) -> np.ndarray:
    try:
        return np.asarray(Image.open(io.BytesIO(upload.getvalue())).convert("L"))
    except Exception as error:  # PIL raises several types for a file that is not an image
        raise InputError(f"{upload.name}: not a readable BMP/PNG image ({error})") from None


# Predictions and CAMs are cached on (slices' SHA-256, the models' SHA-256): a widget change
# that does not change the slices or the models reruns nothing. The arrays are passed with a
# leading underscore (not hashed); their hash is the key. cache_resource keeps the frozen results
# as they are (nothing is pickled); they are never mutated.
@st.cache_resource(show_spinner="Scoring the case…", max_entries=64)
def model_inputs(slices_sha256: str, models: tuple, models_dir: str, _slices: dict) -> dict:
    return service.model_inputs(load_predictors(models_dir), _slices)


@st.cache_resource(show_spinner=False, max_entries=64)
def score(slices_sha256: str, models: tuple, models_dir: str, _slices: dict):
    return service.score_case(load_predictors(models_dir), _slices,
                              inputs=model_inputs(slices_sha256, models, models_dir, _slices))


@st.cache_resource(show_spinner="Computing the heat map…", max_entries=64)
def explain(slices_sha256: str, models: tuple, models_dir: str, variant: str, method: str, target: str,
            _slices: dict) -> np.ndarray:
    x = model_inputs(slices_sha256, models, models_dir, _slices)[variant]
    return service.explain_case(load_predictors(models_dir)[variant], x, method, target)


from nbrisk_core import config  # noqa: E402  (light; after the page helpers for readability)

path = cohort_dir()
meta = None
if (path / "cohort.json").exists():
    import json

    meta = json.loads((path / "cohort.json").read_text())
synthetic_banner(meta)

models_dir = config.cohort_models_dir(path)   # the cohort's own models/, else NBRISK_MODELS_DIR
predictors = load_predictors(str(models_dir))
if "art" not in predictors:
    st.error(f"No Swin-ART model in `{models_dir}` (expected `swin_art_demo.safetensors` with its "
             "model card). Train it with `nbrisk train --stage pretrain ...` then `nbrisk train --init ...`.")
    st.stop()

# ------------------------------------------------------------------ the case
sources = []
chosen = st.session_state.get(state.CHOSEN_SLICES)
if chosen:
    sources.append("Case from the Case page")
patients = demo_patients(str(path))
if patients:
    sources.append("Demo patient")
sources.append("Upload BMP/PNG slices")
source = st.radio("Case", sources, horizontal=True)

grey: dict = {}   # what the page shows (8-bit)
slices: dict = {}  # what the models read: the chosen slices (HU windowed by each model's card) or grey
case_label = ""
radiomics_patient = None  # a cohort patient: its stored tumour mask lets the radiomics model score it
try:
    if source.startswith("Case from"):
        # DICOM slices carry HU, 2-D image uploads a grey image: one builder for both (and the CLI)
        grey, slices = service.grey_slices(chosen), dict(chosen)
        case_label = "current case"
    elif source == "Demo patient":
        patient = st.selectbox("Demo patient", patients)
        grey = {Phase(p): g for p, g in demo_case(str(path), patient).items()}
        case_label = patient
        radiomics_patient = patient
    else:
        cols = st.columns(3)
        for col, phase in zip(cols, PHASES):
            upload = col.file_uploader(f"{phase.upper()} slice", type=["bmp", "png"], key=f"risk_upload_{phase}")
            if upload is not None:
                grey[phase] = grey_from_upload(upload)
        case_label = "uploaded slices"
except InputError as error:
    show_error(error)
    st.stop()

slices = slices or grey
if Phase.ART not in grey:
    st.info("The arterial (ART) slice is needed: Swin-ART is the reference model.")
    st.stop()

# ------------------------------------------------------------------ predictions

slices_sha256 = service.slices_sha256(slices)
models_key = tuple((v, p.loaded.card["sha256"]) for v, p in predictors.items())
try:
    result = score(slices_sha256, models_key, str(models_dir), slices)
except InputError as error:
    show_error(error)
    st.stop()
art = result.score
cols = st.columns(len(result.scores))
for col, r in zip(cols, result.scores.values()):
    col.metric(r.label, f"{r.p_high_risk:.1%}", f"{'high risk' if r.risk_class == 'HR' else 'non-high risk'}",
               delta_color="inverse" if r.risk_class == "HR" else "normal")
st.caption(f"Case: {md(case_label)} · p(high risk) per model, class at threshold {art.threshold:g} · "
           f"device: **{result.device}** · Swin-ART {result.seconds * 1000:.0f} ms")

card = predictors["art"].loaded.card
if card.get("synthetic_data", False):
    st.warning("The demo model was trained on **synthetic data** only. It is not a medical device and "
               "is not for clinical use.", icon=":material/warning:")

previous = st.session_state.get(state.RISK_RESULT)
if not (isinstance(previous, type(result)) and previous.scores == result.scores
        and np.array_equal(previous.embedding, result.embedding)):
    st.session_state[state.RISK_RESULT] = result  # the CAMs are added below, as they are shown
# audit each distinct prediction once (not every rerun of the page)
_audit_key = (case_label, art.model_sha256, round(float(art.p_high_risk), 6))
if st.session_state.get("nbrisk.risk_audited") != _audit_key:
    from nbrisk_ui.cases import audit_prediction

    audit_prediction("risk", art.model_sha256, p_high_risk=float(art.p_high_risk), device=result.device)
    st.session_state["nbrisk.risk_audited"] = _audit_key

# ------------------------------------------------------------------ Grad-CAM
from nbrisk_core.classifier.explain import CAM_METHODS  # noqa: E402
from nbrisk_core.imaging.render import CAM_OPACITY, cam_overlay  # noqa: E402


@st.fragment
def cam_panel() -> None:
    """The CAM controls and maps: a fragment, so changing them reruns no prediction."""
    st.subheader("Where the model looked (Grad-CAM)")
    c1, c2, c3 = st.columns(3)
    method = c1.selectbox("Method", list(CAM_METHODS), format_func=CAM_METHODS.get, key="risk.cam.method")
    target = c2.selectbox("Class explained", ["HR", "NHR"], key="risk.cam.target",
                          format_func={"HR": "high risk", "NHR": "non-high risk"}.get)
    opacity = c3.slider("Heat-map opacity", 0.0, 1.0, CAM_OPACITY, 0.05, key="risk.cam.opacity")
    cam_variants = [v for v in result.scores if len(predictors[v].loaded.card["phases"]) == 1]
    cols = st.columns(max(1, len(cam_variants)))
    current = st.session_state[state.RISK_RESULT]
    for col, variant in zip(cols, cam_variants):
        phase = Phase(predictors[variant].loaded.card["phases"][0])
        heatmap = explain(slices_sha256, models_key, str(models_dir), variant, method, target, slices)
        # kept with the result so a saved case and its PDF report carry the map that was shown
        current = current.with_cam(phase, heatmap)
        col.image(cam_overlay(grey[phase], heatmap, opacity),
                  caption=f"{result.scores[variant].label}: {phase.upper()} slice "
                          f"({grey[phase].shape[0]}×{grey[phase].shape[1]})", width="stretch")
    st.session_state[state.RISK_RESULT] = current


cam_panel()

# ------------------------------------------------------------------ model card
with st.expander("Model card (Swin-ART)"):
    metrics = card.get("metrics", {})
    cohort = card.get("training_cohort", {})
    st.markdown(
        f"- **{md(card.get('variant_label'))}** · architecture `{card['architecture']}` · "
        f"input {card['input_size']} px · "
        f"window W{card['window']['width']:.0f}/L{card['window']['level']:.0f} · classes {card['class_order']}\n"
        f"- threshold {card.get('decision_threshold')}: {md(card.get('threshold_rule', ''))}\n"
        f"- training cohort: {md(cohort.get('name', '?'))} (seed {cohort.get('seed', '?')}, "
        f"{cohort.get('size', '?')} patients, synthetic: {card.get('synthetic_data', False)})\n"
        f"- weights SHA-256 `{card['sha256'][:16]}…`"
    )
    rows = {c: {"AUC": m["auc"]["value"], "95% CI": f"{m['auc']['ci_low']:.3f}-{m['auc']['ci_high']:.3f}",
                "accuracy": m.get("accuracy"), "n": m.get("n")}
            for c, m in metrics.items() if isinstance(m, dict) and "auc" in m}
    if rows:  # one row per cohort: each column holds one type (Arrow cannot mix the CI text with floats)
        st.dataframe(pd.DataFrame.from_dict(rows, orient="index"),
                     column_config={"AUC": st.column_config.NumberColumn(format="%.3f"),
                                    "accuracy": st.column_config.NumberColumn(format="%.3f")})
    for evaluation in card.get("evaluations", []):
        for cohort_name, m in evaluation.get("results", {}).items():
            oracle = evaluation.get("oracle_auc")
            st.caption(f"Evaluated on {evaluation.get('cohort')} (seed {evaluation.get('seed')}, {cohort_name}, "
                       f"n={m['n']}): AUC {m['auc']['value']:.3f} ({m['auc']['ci_low']:.3f}-{m['auc']['ci_high']:.3f})"
                       + (f" vs oracle AUC {oracle:.3f}" if oracle is not None else ""))

# ------------------------------------------------------------------ radiomics beside Swin-ART
from nbrisk_ui.radiomics import risk_panel  # noqa: E402

risk_panel(models_dir, path, radiomics_patient, float(art.p_high_risk))

from nbrisk_ui.cases import save_case_widget; save_case_widget()  # noqa: E402,E702 - Workflow: save the case
