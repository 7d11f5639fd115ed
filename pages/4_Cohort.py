"""Cohort: the survival-model search and the evaluation of its risk score (MLRS), training vs testing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from nbrisk_core.errors import InputError
from nbrisk_core.prognosis import plots
from nbrisk_core.prognosis.evaluation import CohortEvaluation, evaluate
from nbrisk_ui import auth, state
from nbrisk_ui.prognosis import (DAYS_PER_YEAR, FULL_SEARCH_GRID, ROC_YEARS, cohort_and_pipeline,
                                 embeddings_provenance, merged_patients, session_grid)
from nbrisk_ui.text import code, md, show_error

COHORTS = (("train", "Training cohort"), ("test", "Testing cohort"))
KEY = state.COHORT_WIDGETS  # prefix of this page's widget keys
DCA_YEARS = (1, 3, 5)


@st.cache_data(show_spinner=False, max_entries=256)
def figure(name: str, *args, **kwargs):
    """``plots.<name>(*args, **kwargs)`` cached on its inputs: a rerun (a filter, the horizon
    slider) redraws only what changed."""
    return getattr(plots, name)(*args, **kwargs)


@st.cache_data(show_spinner=False, max_entries=256)
def evaluation(part: pd.DataFrame, reference: pd.DataFrame, years: tuple = ROC_YEARS,
               horizon_years: float | None = None) -> CohortEvaluation:
    """:func:`~nbrisk_core.prognosis.evaluation.evaluate` of a (sub)cohort of the patients table, cached on
    its rows: C-index with CI, log-rank, td-AUC at ``years`` and, with a horizon, the decision curve and
    calibration. ``reference`` is the whole training cohort (IPC weights, score-to-probability model), as in
    the pipeline's summary and `nbrisk benchmark`: the same numbers everywhere."""
    return evaluate(None, part, reference=reference, times_days=[y * DAYS_PER_YEAR for y in years],
                    horizon_days=None if horizon_years is None else horizon_years * DAYS_PER_YEAR)


def roc_table(frame: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """td-AUC with 95 % CI at 1/3/5/7 years per cohort of ``frame``."""
    rows = []
    for cohort, label in COHORTS:
        part = frame[frame["cohort"] == cohort]
        if part.empty or part["event"].sum() == 0:
            continue
        for res in evaluation(part, reference).td_auc:
            rows.append({"cohort": label, "years": round(res.time / DAYS_PER_YEAR, 2), "auc": res.auc,
                         "low": res.low, "high": res.high, "cases": res.n_cases,
                         "controls": res.n_controls, "note": res.reason})
    return pd.DataFrame(rows)


def cohort_columns(sub: pd.DataFrame, need_deaths: bool = False):
    """Training and testing side by side: yields ``(cohort, label, part)`` inside each column, and
    says so in the column instead when the subgroup has no patient (or no death, when needed)."""
    for col, (cohort, label) in zip(st.columns(2), COHORTS):
        part = sub[sub["cohort"] == cohort]
        with col:
            if part.empty or (need_deaths and part["event"].sum() == 0):
                st.info(f"{label}: no {'deaths' if need_deaths else 'patient'} in this subgroup.")
                continue
            yield cohort, label, part


def c_index_text(result: CohortEvaluation) -> str:
    c = result.c_index
    if c is None:
        return "C-index of the MLRS: not defined (no death in this part)"
    interval = "" if np.isnan(c.low) else f" (95 % CI {c.low:.3f}-{c.high:.3f}, bootstrap)"
    return f"C-index of the MLRS: {c.value:.3f}{interval}"


def save_full_search(path, clinical: pd.DataFrame, pipeline) -> None:
    """After this session's full search: save it as the cohort's frozen bundle (admins only; the bundle
    replaces the model every user's Prognosis page loads), or say that only an admin can."""
    saved = st.session_state.get(state.PROGNOSIS_BUNDLE_SAVED)
    if saved and saved["fit"] == pipeline.fit_sha256():
        backup = f"; the bundle it replaced is kept as {code(saved['backup'])}" if saved["backup"] else ""
        st.success(f"Saved as the cohort's model: bundle **{md(saved['name'])}** (SHA-256 {saved['sha256'][:12]})"
                   f"{backup}. Every user's Prognosis page loads it from its next run.")
        return
    if not auth.is_admin():
        st.session_state.pop(state.PROGNOSIS_BUNDLE_PENDING, None)
        st.info("These search results are this session's. Only an admin can save them as the cohort's model "
                "(the frozen bundle every user's Prognosis page loads); the shared model is unchanged.")
        return
    pending = st.session_state.pop(state.PROGNOSIS_BUNDLE_PENDING, False)
    if not (pending or st.button("Save these results as the cohort's model", key=KEY + "save_bundle")):
        st.info("These search results are this session's until you save them as the cohort's model.")
        return
    from nbrisk_core import service
    from nbrisk_ui.resources import store_engine

    with st.spinner("Writing the cohort's prognosis bundle…"):
        try:
            published = service.publish_prognosis_bundle(store_engine(), auth.current_username(), pipeline, path,
                                                         embeddings=embeddings_provenance(path), clinical=clinical)
        except InputError as error:
            show_error(error)
            return
        except OSError as error:   # a full disk, a read-only models folder: nothing was replaced
            st.error(f"The bundle could not be written ({type(error).__name__}: {md(error)}); the cohort's "
                     "model is unchanged.")
            return
    st.session_state[state.PROGNOSIS_BUNDLE_SAVED] = {
        "fit": pipeline.fit_sha256(), "name": published.path.name, "sha256": published.sha256,
        "backup": f"{published.backup.parent.name}/{published.backup.name}" if published.backup else None}
    st.rerun()


def internal_validation(path) -> None:
    """``nbrisk benchmark --cv`` results of the cohort (per fold, and per selected combination), or how to
    make them."""
    from nbrisk_core.config import cv_results_dir
    from nbrisk_core.validation.internal import read_cv_results

    folder = cv_results_dir(path)
    command = f"nbrisk benchmark --cv 5 --repeats 2 --data {path} --out {folder}"
    try:
        results = read_cv_results(folder)
    except InputError as error:
        show_error(error)
        return
    if results is None:
        st.info(f"No internal validation of this cohort yet (looked in {code(folder)}). Make it with "
                f"{code(command)} (repeated stratified K-fold CV of the whole selection procedure; add "
                "`--optimism-bootstrap B` for Harrell's optimism-corrected C-index), then reload this page.")
        return
    summary, cv = results.summary, results.summary["cv"]
    from nbrisk_ui.common import cohort_sha256

    recorded = (summary.get("cohort") or {}).get("sha256")
    if recorded is not None and recorded != cohort_sha256(path):
        st.warning("These results were computed on another version of this cohort (its content hash differs): "
                   f"run {code(command)} again.")
    mean, sd = cv.get("c_index_mean"), cv.get("c_index_sd")
    value = "not defined" if mean is None else f"**{mean:.3f}**" + ("" if sd is None else f" ± {sd:.3f} (SD)")
    st.markdown(f"**{summary.get('repeats', '?')} x {summary.get('k', '?')}-fold** cross-validation of the whole "
                f"selection procedure (grid {code(summary.get('grid', '?'))}, features "
                f"{code(summary.get('features', '?'))}): held-out C-index of the selected model {value} over "
                f"{cv.get('folds')} folds. Each fold's procedure picks its own combination; the table groups "
                "the folds by it.")
    st.dataframe(results.by_combination, hide_index=True)
    optimism = summary.get("optimism")
    if isinstance(optimism, dict) and optimism.get("corrected") is not None:
        st.markdown(f"Harrell's bootstrap ({optimism.get('n_bootstrap')} resamples): apparent C-index "
                    f"{optimism['apparent']:.3f}, optimism {optimism['optimism']:.3f}, corrected "
                    f"**{optimism['corrected']:.3f}** (final model {md(optimism.get('selected', '?'))}).")
    with st.expander("Per fold"):
        st.dataframe(results.folds, hide_index=True)
    st.caption(f"From {code(results.folder)} (`cv_folds.csv`, `cv_summary.json`; written by `nbrisk benchmark --cv`). "
               "Per fold the held-out C-index is that of the combination the procedure selected in it; the "
               "other combinations are not scored on the held-out folds.")


auth.gate()
st.title("Cohort")
path, clinical, meta, pipeline = cohort_and_pipeline(
    "The cohort evaluation needs the prognosis pipeline, which uses the CT features of the shipped "
    "Swin-ART classifier. Train or install it (`nbrisk train`, then `nbrisk embed`) and reload.")

patients = merged_patients(pipeline, clinical)
current = st.session_state.get(state.PROGNOSIS_RESULT)
# the IPC weights' censoring distribution comes from the whole training cohort for every cohort and
# subgroup, as in the pipeline's summary and `nbrisk benchmark`: the same numbers everywhere
train_all = patients[patients["cohort"] == "train"]
TRAIN_CENSORING = dict(train_event=train_all["event"].to_numpy(), train_time=train_all["time"].to_numpy())
REFERENCE = train_all[["patient_id", "cohort", "time", "event", "mlrs", "mlrs_group"]]

# ------------------------------------------------------------------ subgroup filter
with st.container(border=True):
    st.markdown("**Subgroup** (applies to the MLRS evaluation; the models were fitted on the whole cohort)")
    f = st.columns(3)
    age_groups = sorted(patients["age_group"].unique())
    mycn_groups = sorted(patients["mycn"].unique())
    stage_groups = sorted(patients["stage"].astype(str).unique())   # INRG, else INSS (real cohorts)
    ages = f[0].multiselect("Age at diagnosis", age_groups, default=age_groups, key=KEY + "age")
    mycn = f[1].multiselect("MYCN", mycn_groups, default=mycn_groups, key=KEY + "mycn")
    stages = f[2].multiselect(f"{patients.attrs['stage_system']} stage", stage_groups, default=stage_groups,
                              key=KEY + "stage")
sub = patients[patients["age_group"].isin(ages) & patients["mycn"].isin(mycn)
               & patients["stage"].astype(str).isin(stages)]
counts = sub["cohort"].value_counts()
st.caption(f"{len(sub)} of {len(patients)} patients: {counts.get('train', 0)} training, "
           f"{counts.get('test', 0)} testing.")
if sub.empty:
    st.warning("No patient in this subgroup.")
    st.stop()

tabs = st.tabs(["Model search", "MLRS groups", "Time-dependent ROC", "Decision curve", "Cox screening",
                "Associations", "Clinical-only baseline", "Imputation", "Radiomics vs Swin-ART",
                "Internal validation (CV)"])

# ------------------------------------------------------------------ model search
with tabs[0]:
    combos = pipeline.combinations_
    n_fitted = int((combos["status"] == "fitted").sum())
    rule = pipeline.config_.get("selection_rule", "mean")
    st.markdown(f"**{n_fitted}** of {len(combos)} combinations fitted; selected: **{pipeline.selected_}** "
                f"(highest {rule} C-index). Rows are sorted by the mean of the training and testing "
                "C-index (the paper's rule).")
    if session_grid() == FULL_SEARCH_GRID:   # this session ran the full search: save it (admins) or say who can
        save_full_search(path, clinical, pipeline)
    elif pipeline.config_.get("grid") == "app":
        st.info(f"The dashboard uses one combination ({pipeline.selected_}), loaded from the cohort's "
                "frozen bundle when there is one (`nbrisk prognosis fit`), else fitted at start, so that "
                "it starts quickly. "
                "The paper's full search (up to 117 combinations, under a minute for the demo cohort on "
                "2 idle cores) runs here with the button below, with `nbrisk benchmark`, or at start-up "
                "with `NBRISK_PROGNOSIS_GRID=full`. The Prognosis page then uses the search's selected model.")
        admin = auth.is_admin()
        st.caption("Admins: the search ends by saving its selected model as the cohort's frozen bundle, which "
                   "every user's Prognosis page then loads (the replaced bundle is kept as a dated backup)."
                   if admin else "Only an admin can save the search as the cohort's model; you will see its "
                   "results in this session.")
        label = "Run the full model search and save it" if admin else "Run the full model search"
        if st.button(label, key=KEY + "full_search"):
            st.session_state[state.PROGNOSIS_GRID] = FULL_SEARCH_GRID
            if admin:
                st.session_state[state.PROGNOSIS_BUNDLE_PENDING] = True
            st.rerun()
    st.plotly_chart(figure("c_index_heatmap", combos), key=KEY + "heatmap")
    with st.expander("All combinations (incl. skipped, with the reason)"):
        st.dataframe(combos, hide_index=True)

# ------------------------------------------------------------------ MLRS groups
with tabs[1]:
    for cohort, label, part in cohort_columns(sub):
        result = evaluation(part, REFERENCE)
        p_text = (f"log-rank p = {result.logrank.p_value:.3g}" if result.logrank is not None
                  else "log-rank test not possible: all patients are in one MLRS group")
        groups = part["mlrs_group"] + " MLRS"
        st.plotly_chart(figure("kaplan_meier_figure", part["time"], part["event"], groups,
                               title=f"{label}: {p_text}", colours=plots.risk_group_colours(groups)),
                        key=KEY + f"km.{cohort}")
        st.caption(c_index_text(result))
        st.plotly_chart(figure("risk_factor_figure", part["mlrs"], part["time"], part["event"],
                               pipeline.cutoff_),
                        key=KEY + f"riskfactor.{cohort}")
    st.plotly_chart(figure("mlrs_distribution_figure", sub["mlrs"], sub["cohort"].map(dict(COHORTS)),
                           pipeline.cutoff_, patient_mlrs=current.mlrs if current else None),
                    key=KEY + "distribution")
    if current is not None:
        st.caption(f"Black line: the current patient of the Prognosis page (MLRS {current.mlrs:.3g}, "
                   f"{current.group} group).")

# ------------------------------------------------------------------ td-ROC
with tabs[2]:
    for cohort, label, part in cohort_columns(sub, need_deaths=True):
        st.plotly_chart(figure("td_roc_figure", part["event"], part["time"], part["mlrs"],
                               [y * DAYS_PER_YEAR for y in ROC_YEARS], title=label, **TRAIN_CENSORING),
                        key=KEY + f"roc.{cohort}")
    st.dataframe(roc_table(sub, REFERENCE), hide_index=True)
    st.caption("95 % CI: Clopper-Pearson exact interval over case-control pairs, as in the paper "
               "(narrow because pairs sharing a patient are treated as independent; see docs/prognosis.md).")

# ------------------------------------------------------------------ decision curve
with tabs[3]:
    years = st.select_slider("Horizon (years)", options=list(DCA_YEARS), value=3,
                             key=KEY + "horizon")
    horizon = years * DAYS_PER_YEAR
    for cohort, label, part in cohort_columns(sub):
        # probability of death by the horizon from a one-covariate Cox model of the MLRS fitted on
        # the whole training cohort, so the testing curve does not use testing outcomes
        result = evaluation(part, REFERENCE, horizon_years=years)
        dca_figure = figure("decision_curve_figure", result.decision_curve, horizon)
        dca_figure.update_layout(title=f"{label}: decision curve, {years} y")
        st.plotly_chart(dca_figure, key=KEY + f"dca.{cohort}")
        st.plotly_chart(figure("calibration_figure", result.calibration, horizon),
                        key=KEY + f"calibration.{cohort}")

# ------------------------------------------------------------------ screening
with tabs[4]:
    screening = pipeline.screening_
    st.markdown(f"Univariate Cox p < 0.05, then multivariate p < 0.2 (method.md section 6): "
                f"**{int(screening['kept'].sum())}** features kept: {', '.join(pipeline.features_)}.")
    st.plotly_chart(figure("forest_plot", pipeline.hazard_table().dropna(subset=["hr"])),
                    key=KEY + "forest")
    st.dataframe(screening, hide_index=True)

# ------------------------------------------------------------------ associations
with tabs[5]:
    try:
        figures = figure("association_figures", pd.Series(sub["mlrs"].to_numpy(), index=sub["patient_id"]),
                         sub.reset_index(drop=True))
    except InputError as error:
        st.info(f"Associations need both groups in the subgroup: {md(error)}")
    else:
        cols = st.columns(2)
        for k, name in enumerate(("risk_group", "mycn_amplified", "ferritin", "nse")):
            cols[k % 2].plotly_chart(figures[name], key=KEY + f"assoc.{name}")

# ------------------------------------------------------------------ baseline
with tabs[6]:
    baseline = pipeline.baseline_
    base = baseline.patients_[baseline.patients_["patient_id"].isin(sub["patient_id"])]
    rows = []
    for cohort, label in COHORTS:
        for name, frame in (("MLRS", sub), ("LASSO-Cox (clinical only)", base)):
            part = frame[frame["cohort"] == cohort]
            if part.empty or part["event"].sum() == 0:
                continue
            result = evaluation(part, REFERENCE, years=DCA_YEARS)
            rows.append({"cohort": label, "model": name,
                         "c_index": result.c_index.value if result.c_index else float("nan"),
                         **{f"AUC {a.time / DAYS_PER_YEAR:g} y": a.auc for a in result.td_auc}})
    st.markdown("The paper's benchmark: a LASSO-Cox model on clinical indicators only (fitted C-index "
                f"{baseline.c_index_train_:.3f} training, {baseline.c_index_test_:.3f} testing).")
    st.dataframe(pd.DataFrame(rows), hide_index=True)

# ------------------------------------------------------------------ imputation
with tabs[7]:
    imputer = pipeline.imputer_
    st.markdown("Kolmogorov-Smirnov D between observed and imputed training values (the paper: all well "
                "below 0.1). With a few dozen imputed values per lab, D is noisy: a variable's imputed values "
                "differ from its observed ones (5 % level) only where D exceeds `d_critical_05`.")
    st.dataframe(imputer.ks_, hide_index=True)
    completed = getattr(imputer, "completed_", None)
    mask = getattr(imputer, "missing_mask_", None)
    variables = list(imputer.ks_["variable"]) if len(imputer.ks_) else []
    if completed is not None and mask is not None and variables:
        variable = st.selectbox("Variable", variables, key=KEY + "imputed_variable")
        st.plotly_chart(figure("imputation_density_figure", completed.loc[~mask[variable], variable],
                               completed.loc[mask[variable], variable], variable),
                        key=KEY + "imputation")

# ------------------------------------------------------------------ radiomics beside Swin-ART
with tabs[8]:
    from nbrisk_core import config
    from nbrisk_ui.radiomics import cohort_panel

    cohort_panel(config.cohort_models_dir(path), path, pipeline)
    c = pipeline.summary_.get("c_index_test") if isinstance(getattr(pipeline, "summary_", None), dict) else None
    if c is not None:
        st.caption(f"The dashboard's own prognosis model ({pipeline.selected_}, "
                   f"{pipeline.config_.get('feature_set', 'both')} features): testing C-index {c:.3f}.")

# ------------------------------------------------------------------ internal validation
with tabs[9]:
    internal_validation(path)
