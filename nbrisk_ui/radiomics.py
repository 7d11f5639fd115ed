"""The radiomics model beside Swin-ART: the Risk page's per-case panel and the Cohort page's table.

Both read the frozen model and its **saved** evaluation (``models/radiomics_demo.json``, written by
``nbrisk radiomics ... --baseline R.json --save-model models/radiomics_demo.json``): test AUCs with DeLong
CIs and paired DeLong p are never recomputed on a page view. Only the case's own probability is computed
(the IBSI features of its chosen slice, a fraction of a second).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from nbrisk_core.errors import InputError

MODEL_FILE = "radiomics_demo.json"
BUILD = ("nbrisk radiomics --cohort data/demo --out runs/radiomics.parquet --baseline runs/radiomics.json "
         "--save-model models/radiomics_demo.json (make radiomics-model)")


@st.cache_resource(show_spinner=False)
def load_model(path: str, mtime: float):
    """``(RadScore, evaluation)`` of the saved model (cached on path and modification time)."""
    from nbrisk_core.radiomics.score import load

    return load(path)


def model_or_none(models_dir) -> tuple | None:
    path = Path(models_dir) / MODEL_FILE
    if not path.is_file():
        return None
    return load_model(str(path), path.stat().st_mtime)


def _ci(auc: dict) -> str:
    return f"{auc['ci_low']:.3f}-{auc['ci_high']:.3f}"


def auc_table(evaluation: dict, oracle: bool = True) -> pd.DataFrame:
    """Model | test AUC | 95 % CI (DeLong) | DeLong p vs radiomics, from a saved evaluation."""
    rows = [{"model": "radiomics (logistic)", "test AUC": evaluation["test_auc"]["value"],
             "95% CI (DeLong)": _ci(evaluation["test_auc"]), "DeLong p vs radiomics": None}]
    for name, c in (evaluation.get("comparisons") or {}).items():
        if name == "oracle" and not oracle:
            continue
        rows.append({"model": name, "test AUC": c["test_auc"]["value"], "95% CI (DeLong)": _ci(c["test_auc"]),
                     "DeLong p vs radiomics": c["delong_vs_radiomics"]["p"]})
    return pd.DataFrame(rows)


def _columns():
    return {"test AUC": st.column_config.NumberColumn(format="%.3f"),
            "DeLong p vs radiomics": st.column_config.NumberColumn(format="%.2g")}


def _p_sentence(evaluation: dict) -> str:
    swin = (evaluation.get("comparisons") or {}).get("Swin-ART")
    if not swin:
        return "No Swin-ART scores were saved with this evaluation."
    d = swin["delong_vs_radiomics"]
    return (f"Paired DeLong test, Swin-ART vs radiomics on the same {evaluation['n_test']} test patients: "
            f"difference {-d['diff']:+.3f}, z = {-d['z']:.2f}, **p = {d['p']:.2g}**.")


def _model_or_message(models_dir) -> tuple | None:
    """The frozen radiomics model and its evaluation, or None after telling the user why there is none."""
    try:
        loaded = model_or_none(models_dir)
    except InputError as error:
        st.error(f"Radiomics model: {error}")
        return None
    if loaded is None:
        st.info(f"No radiomics model in `{models_dir}`. Build it with `{BUILD}`.")
    return loaded


def risk_panel(models_dir, cohort_path, patient_id: str | None, swin_p: float) -> None:
    """Radiomics p(HR) of the case beside Swin-ART's, and both models' saved test AUCs."""
    st.subheader("Radiomics model beside Swin-ART")
    loaded = _model_or_message(models_dir)
    if loaded is None:
        return
    model, evaluation = loaded
    cols = st.columns(2)
    cols[0].metric("Swin-ART", f"{swin_p:.1%}")
    if patient_id is None:
        cols[1].metric("Radiomics", "n/a")
        st.caption("The radiomics model reads the IBSI features of the tumour on the ART slice, so it needs "
                   "the tumour mask: available for the cohort's patients (Demo patient), not for an uploaded "
                   "image or a case without a stored mask.")
    else:
        try:
            p = _probability(str(models_dir), str(cohort_path), str(patient_id), model.sha256())
        except InputError as error:
            cols[1].metric("Radiomics", "n/a")
            st.caption(f"Radiomics model: {error}")
        else:
            cols[1].metric("Radiomics", f"{p:.1%}")
            st.caption(f"p(high risk) of {patient_id}: Swin-ART (image) and the radiomics model "
                       f"({len(model.features)} IBSI features of the tumour on the ART slice, logistic).")
    if evaluation.get("test_auc"):
        st.dataframe(auc_table(evaluation, oracle=False), hide_index=True, column_config=_columns())
        st.caption(f"Test split of {Path(str(evaluation.get('cohort', 'the demo'))).name} "
                   f"({evaluation['n_test']} patients; saved evaluation, not recomputed). " + _p_sentence(evaluation))


@st.cache_data(show_spinner="Radiomics of the case…", max_entries=64)
def _probability(models_dir: str, cohort_path: str, patient_id: str, model_sha256: str) -> float:
    from nbrisk_core.radiomics.score import patient_probability

    model, _ = model_or_none(models_dir)
    return patient_probability(model, cohort_path, patient_id)


def cohort_panel(models_dir, cohort_path, pipeline=None) -> None:
    """Radiomics vs Swin-ART (vs oracle on the demo) AUC table and the grid's C-index by CT feature block."""
    st.subheader("Radiomics vs Swin-ART")
    loaded = _model_or_message(models_dir)
    if loaded is None:
        return
    _, evaluation = loaded
    from nbrisk_ui.common import cohort_sha256

    try:
        same = evaluation.get("cohort_sha256") == cohort_sha256(cohort_path)
    except (InputError, OSError):
        same = False
    st.dataframe(auc_table(evaluation, oracle=same), hide_index=True, column_config=_columns())
    where = ("this cohort's" if same else "the demo cohort's (not this cohort: the oracle is left out)")
    st.caption(f"High risk vs non-high risk on {where} test split ({evaluation['n_test']} patients), saved "
               "evaluation. " + _p_sentence(evaluation))
    rows = []
    for g in evaluation.get("survival_grid") or []:
        test = (g.get("c_index") or {}).get("test") or [None, None, None]
        rows.append({"CT features": {"radiomics": "radiomics rad-score + clinical",
                                     "both": "Swin-ART CT + clinical"}.get(g["feature_set"], g["feature_set"]),
                     "grid": g.get("grid"), "selected": g.get("selected"), "test C-index": test[0],
                     "95% CI (bootstrap)": None if test[1] is None else f"{test[1]:.3f}-{test[2]:.3f}"})
    if rows:
        st.markdown("**Survival grid by CT feature block** (overall survival, testing cohort)")
        st.dataframe(pd.DataFrame(rows), hide_index=True,
                     column_config={"test C-index": st.column_config.NumberColumn(format="%.3f")})
    elif pipeline is not None:
        st.caption("No survival-grid result with radiomics features was saved with the model "
                   "(`--grid-card` of `nbrisk radiomics`).")
