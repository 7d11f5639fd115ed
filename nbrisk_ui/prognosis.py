"""Cached access to the fitted prognosis pipeline for the Prognosis and Cohort pages.

The pipeline is loaded or fitted once per (cohort, grid) and shared by every session through
``st.cache_resource``: pages only read it (``predict_patient`` does not mutate it). With grid ``"app"``
the app loads the cohort's frozen bundle when one matches (``make run``/``make test`` write the demo's,
``models/prognosis_demo``, with ``nbrisk prognosis fit``), else fits one combination (about 10 s);
``NBRISK_PROGNOSIS_GRID=full`` fits the paper's whole grid.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from nbrisk_core.errors import InputError

#: Grid fitted by the app: "app" fits one combination (the paper's best unless
#: ``NBRISK_PROGNOSIS_MODEL`` names another, e.g. the ``selected`` of a full ``nbrisk benchmark`` run);
#: "quick" or "full" fit the whole grid (minutes to hours on a laptop).
APP_GRID = os.environ.get("NBRISK_PROGNOSIS_GRID", "app")
APP_MODEL = os.environ.get("NBRISK_PROGNOSIS_MODEL") or None
#: Time points of the time-dependent ROC (method.md section 7: 1, 3, 5 and 7 years), in days.
ROC_YEARS = (1, 3, 5, 7)
DAYS_PER_YEAR = 365.25
#: Age split used for subgroups: 18 months, the INRG age cut-off.
AGE_CUTOFF_MONTHS = 18


def load_embeddings(cohort_dir: str) -> pd.DataFrame:
    """The cohort's CT embeddings from the shipped classifier (:class:`InputError` saying how to
    make them when the model or the embeddings are missing)."""
    from nbrisk_core.features import cohort_ct_features

    return cohort_ct_features(Path(cohort_dir))


def shipped_classifier_sha256(cohort_dir) -> str | None:
    """SHA-256 of the Swin-ART model whose embeddings the app uses for ``cohort_dir`` (None: no model).

    A bundle fitted on classifier embeddings is used only with this very model.
    """
    from nbrisk_core.classifier.model_io import read_model_card, shipped_model_path

    model_path = shipped_model_path("art", cohort_dir)
    if not model_path.exists():
        return None
    try:
        return read_model_card(model_path).sha256
    except InputError:   # a damaged card: no bundle match; fitting reports the problem
        return None


def embeddings_provenance(cohort_dir) -> dict:
    """Where the app's CT features of ``cohort_dir`` come from, for a bundle's card (as ``nbrisk prognosis
    fit`` writes it): the shipped Swin-ART classifier's embeddings, with its SHA-256."""
    from nbrisk_core.classifier.model_io import shipped_model_path

    return {"source": "classifier", "model": shipped_model_path("art", cohort_dir).name,
            "model_sha256": shipped_classifier_sha256(cohort_dir)}


#: Where each pipeline the app holds came from (:func:`pipeline_source`); keyed weakly so that a
#: pipeline dropped from the cache is not kept alive, and the shared pipeline is never written to.
_SOURCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fit_pipeline(cohort_dir: str, grid: str, selected: str | None = None):
    """The cohort's prognosis pipeline: its matching frozen bundle for grid ``"app"``, else a fit
    (uncached; the cached entry is :func:`get_pipeline`)."""
    from nbrisk_core.prognosis.pipeline import fit_cohort_pipeline

    if grid == "app":   # the cohort's frozen bundle ('nbrisk prognosis fit') when one matches: no fit
        from nbrisk_core.prognosis.bundle import app_bundle

        bundle = app_bundle(Path(cohort_dir), selected,
                            classifier_sha256=lambda: shipped_classifier_sha256(cohort_dir))
        if bundle is not None:
            _SOURCES[bundle.pipeline] = {"kind": "bundle", "name": bundle.path.name, "sha256": bundle.sha256,
                                         "nomogram": bundle.nomogram}
            return bundle.pipeline
    # one worker: the app shares its machine with its users' sessions
    fitted = fit_cohort_pipeline(Path(cohort_dir), load_embeddings(cohort_dir), grid=grid, n_jobs=1,
                                 selected=selected)
    _SOURCES[fitted] = {"kind": "fit"}
    return fitted


def pipeline_source(pipeline) -> str:
    """How the app got ``pipeline``, for the pages' caption: the frozen bundle (name, SHA-256) or a
    fit at start ('' when unknown, e.g. a pipeline a test hands over)."""
    source = _SOURCES.get(pipeline)
    if source is None:
        return ""
    if source["kind"] == "bundle":
        from nbrisk_ui.text import md

        return f"frozen bundle {md(source['name'])} (SHA-256 {source['sha256'][:12]}), not refitted"
    return "fitted on the cohort by this server (no matching frozen bundle)"


#: nomograms fitted by this server for pipelines it fitted (or a test handed over), one per pipeline
_NOMOGRAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
NO_NOMOGRAM_IN_BUNDLE = ("No nomogram in this bundle: it was written before bundles carried one. Refit it with "
                         "`nbrisk prognosis fit` (or `make bundle`) to get the nomogram.")


def pipeline_nomogram(pipeline, clinical: pd.DataFrame, cohort_dir=None):
    """``(Nomogram, None)`` for the pipeline the page uses, or ``(None, message)``.

    A frozen bundle's nomogram is the one stored in it (none in an older bundle: the message says so); a
    pipeline fitted by this server gets one fitted here on its training patients (a single Cox fit).
    """
    source = _SOURCES.get(pipeline)
    if source is not None and source["kind"] == "bundle":
        nomogram = source.get("nomogram")
        return (nomogram, None) if nomogram is not None else (None, NO_NOMOGRAM_IN_BUNDLE)
    if pipeline not in _NOMOGRAMS:
        from nbrisk_core.prognosis.nomogram import available_covariates, nomogram_for_pipeline

        covariates = available_covariates(clinical)
        try:
            _NOMOGRAMS[pipeline] = (nomogram_for_pipeline(pipeline, clinical, covariates, cohort_dir=cohort_dir),
                                    None)
        except InputError as error:
            _NOMOGRAMS[pipeline] = (None, f"No nomogram for this cohort: {error}")
    return _NOMOGRAMS[pipeline]


@st.cache_resource(show_spinner="Loading the prognosis model of the cohort…", max_entries=4)
def get_pipeline(cohort_dir: str, grid: str = APP_GRID, selected: str | None = APP_MODEL, bundles: str = ""):
    """The fitted :class:`~nbrisk_core.prognosis.pipeline.PrognosisPipeline` of ``cohort_dir``.

    Shared by all sessions (``st.cache_resource``): pages only read it. Raises
    :class:`InputError` (not cached, so a later rerun retries) when the cohort or its CT
    embeddings are missing. ``bundles`` is only part of the cache key: the fingerprint of the cohort's
    bundle cards (:func:`bundles_key`), so that a new bundle (the Cohort page's full search, saved by an
    admin, or ``nbrisk prognosis fit``) is loaded at the next run of any page.
    """
    return fit_pipeline(str(cohort_dir), grid, selected)


def bundles_key(cohort_dir, grid: str) -> str:
    """The cache key part of the cohort's bundles for ``grid`` (``""`` for grids that never load one):
    :func:`nbrisk_core.prognosis.bundle.bundles_key`, a hash of the bundle cards' SHA-256 (cards only, ~1 ms)."""
    if grid != "app":
        return ""
    from nbrisk_core.prognosis.bundle import bundles_key as cards_key

    return cards_key(cohort_dir)


def app_pipeline(cohort_dir, grid: str | None = None):
    """:func:`get_pipeline` of ``cohort_dir`` for ``grid`` (default :data:`APP_GRID`) as the pages call it
    (the warm start at server start fills the same cache entry)."""
    grid = grid or APP_GRID
    path = str(cohort_dir)
    return get_pipeline(path, grid, APP_MODEL if grid == "app" else None, bundles_key(path, grid))


#: Grid fitted when a user asks the Cohort page for the paper's whole search.
FULL_SEARCH_GRID = "full"


def session_grid() -> str:
    """The grid this session's pages use: :data:`APP_GRID`, or the full search once asked for."""
    from nbrisk_ui import state

    return st.session_state.get(state.PROGNOSIS_GRID, APP_GRID)


def pipeline_or_message(cohort_dir) -> tuple[object | None, str | None]:
    """``(pipeline, None)``, or ``(None, message)`` when it cannot be fitted from this cohort."""
    path = Path(cohort_dir)
    if not (path / "cohort.json").exists():
        return None, (f"No cohort found at `{path}`. Build the demo cohort with "
                      f"`nbrisk demo build --out {path}`.")
    try:
        return app_pipeline(path, session_grid()), None
    except InputError as error:
        return None, str(error)


def cohort_and_pipeline(missing_pipeline_hint: str):
    """The shared top of the Prognosis and Cohort pages: the cohort tables (banner shown) and the
    fitted pipeline; shows the problem and stops the page when either is missing."""
    from nbrisk_ui.common import cohort_dir, load_cohort_tables, synthetic_banner

    path = cohort_dir()
    try:
        clinical, _, meta = load_cohort_tables(str(path))
    except InputError as error:  # no cohort, or a damaged one: say which file and how to rebuild
        synthetic_banner(None)
        st.error(str(error))
        st.stop()
    synthetic_banner(meta)
    pipeline, problem = pipeline_or_message(path)
    if pipeline is None:
        st.error(problem)
        st.info(missing_pipeline_hint)
        st.stop()
    weak_ct = pipeline.ct_signal_note()
    if weak_ct:
        st.warning(weak_ct)
    return path, clinical, meta, pipeline


@st.cache_data(show_spinner=False, max_entries=4)
def cohort_embedding_table(cohort_dir: str) -> pd.DataFrame | None:
    """The cohort's CT embeddings (``ct01..ct16`` by ``patient_id``), or None if not available."""
    try:
        return load_embeddings(cohort_dir)
    except InputError:
        return None


def demo_embedding(cohort_dir, patient_id: str) -> np.ndarray | None:
    """A cohort patient's 16 CT features (for the demo when no case went through the Risk page)."""
    table = cohort_embedding_table(str(cohort_dir))
    if table is None or patient_id not in table.index:
        return None
    return table.loc[patient_id, [f"ct{k:02d}" for k in range(1, 17)]].to_numpy(dtype=float)


def merged_patients(pipeline, clinical: pd.DataFrame) -> pd.DataFrame:
    """The pipeline's per-patient MLRS table joined to the clinical table, with subgroup labels.

    ``stage`` is the INRG stage, or the INSS stage on a cohort that records only INSS (the two are never
    mixed; ``stage_system`` says which); a missing stage or MYCN status is the group ``unknown``.
    """
    columns = ["patient_id", "age_months", "mycn_amplified", "inrg_stage", "inss_stage", "risk_group",
               "ferritin", "nse"]
    table = pipeline.patients_.merge(clinical[[c for c in columns if c in clinical.columns]],
                                     on="patient_id", how="left")
    table["age_group"] = np.where(table["age_months"] < AGE_CUTOFF_MONTHS,
                                  f"< {AGE_CUTOFF_MONTHS} months", f">= {AGE_CUTOFF_MONTHS} months")
    table["mycn"] = np.where(table["mycn_amplified"] == 1, "amplified",
                             np.where(table["mycn_amplified"] == 0, "not amplified", "unknown"))
    system = "inrg_stage" if "inrg_stage" in table and table["inrg_stage"].notna().any() else "inss_stage"
    table["stage"] = table[system].astype(object).where(table[system].notna(), "unknown") \
        if system in table else "unknown"
    table.attrs["stage_system"] = "INRG" if system == "inrg_stage" else "INSS"
    return table


def summary_csv(result, meta: dict | None) -> str:
    """The downloadable prognosis summary of a :class:`nbrisk_core.case.Prognosis`: ``#`` header lines,
    then the survival curve as CSV.

    Read it back with ``pandas.read_csv(path, comment="#")``.
    """
    import io

    meta = meta or {}
    curve = pd.DataFrame({"time_days": result.times, "survival": result.survival})
    if result.low is not None and result.high is not None:
        curve["survival_low"] = result.low
        curve["survival_high"] = result.high
    buffer = io.StringIO()
    buffer.write(f"# NBRisk prognosis summary (research use only, not for clinical decisions); "
                 f"cohort={meta.get('name', '?')} synthetic={bool(meta.get('synthetic', True))}\n")
    buffer.write(f"# model={result.model} mlrs={result.mlrs:.6g} percentile={result.percentile:.1f} "
                 f"group={result.group} cutoff={result.cutoff:.6g}\n")
    filled = result.imputed_values
    imputed = ";".join(f"{name}={filled[name]}" if name in filled else name for name in result.imputed)
    buffer.write(f"# ct_features={result.embedding_source or '?'} imputed={imputed or 'none'}\n")
    curve.to_csv(buffer, index=False)
    return buffer.getvalue()


def header_prefill(case: dict | None) -> dict:
    """Form values known from the study's (de-identified) DICOM header: ``age_months`` and ``sex``.

    The Prognosis form starts from these so that MICE never imputes an age or a sex that
    contradicts the images; the user can still change them. Values outside the schema's
    accepted range or categories are left out (the form then shows the field empty).

    Examples
    --------
    >>> header_prefill({"age_months": 30.0, "sex": "F"})
    {'age_months': 30.0, 'sex': 'F'}
    >>> header_prefill({"age_months": None, "sex": "O"})
    {}
    """
    from nbrisk_core.clinical.schema import CLINICAL_VARIABLES

    spec = {v.name: v for v in CLINICAL_VARIABLES}
    case = case if isinstance(case, dict) else {}
    values = {}
    age = case.get("age_months")
    low, high = spec["age_months"].low, spec["age_months"].high
    if isinstance(age, (int, float)) and np.isfinite(age) and low <= age <= high:
        values["age_months"] = float(age)
    sex = case.get("sex")
    if isinstance(sex, str) and sex.upper() in spec["sex"].categories:
        values["sex"] = sex.upper()
    return values


def _scenario_widget(column, p, value, key):
    """One input of the scenario form, starting at the patient's value."""
    from nbrisk_core.prognosis.nomogram import as_level
    from nbrisk_core.prognosis.nomogram_plots import level_text

    label = p.label + (f" ({p.unit})" if p.unit else "")
    if p.kind == "numeric":
        return column.number_input(label, value=float(value), key=key, format="%.4g",
                                   help=f"training range {p.low:g}-{p.high:g}")
    levels = list(p.levels)
    current = as_level(value)
    choice = column.selectbox(label, levels, index=levels.index(current) if current in levels else 0, key=key,
                              format_func=lambda level, name=p.name: level_text(name, level))
    return choice


def nomogram_panel(pipeline, clinical: pd.DataFrame, cohort_dir, result, entered: dict | None) -> None:
    """The Prognosis page's nomogram: the patient's points on each axis, total points, S at 1/3/5 years,
    and a scenario (one or more inputs changed) with both survival curves and the difference (DynNom)."""
    from nbrisk_core.prognosis.nomogram import patient_row
    from nbrisk_core.prognosis.nomogram_plots import (nomogram_plotly, scenario_survival_figure,
                                                      survival_difference)
    from nbrisk_ui import state

    st.subheader("Nomogram")
    nomogram, problem = pipeline_nomogram(pipeline, clinical, cohort_dir)
    if nomogram is None:
        st.info(problem)
        return
    try:
        row, from_imputation = patient_row(nomogram, result.mlrs, entered, result.imputed_values)
    except InputError as error:
        st.warning(str(error))
        return
    st.caption("A Cox model of " + ", ".join(p.label for p in nomogram.predictors)
               + f" fitted on the training cohort (N = {nomogram.n}, {nomogram.events} deaths): a separate, "
               "readable model next to the selected one, whose curve is above. Points: the widest predictor spans "
               "0-100; linear predictor centred at the training means; survival from the Breslow baseline.")
    if from_imputation:
        st.caption("From imputed values: " + ", ".join(from_imputation) + ".")
    for note in nomogram.outside_range(row):
        st.warning(f"{note}: its points are extrapolated.")
    points = nomogram.points(row)
    total = sum(points.values())
    survival = nomogram.survival(row).iloc[0]
    cols = st.columns(1 + len(survival))
    cols[0].metric("Total points", f"{total:.1f}")
    for col, (name, value) in zip(cols[1:], survival.items()):
        col.metric(name.replace("S(", "Survival (").replace(" y)", " y)"), f"{value:.1%}")

    scenario = st.session_state.get(state.NOMOGRAM_SCENARIO)
    with st.form("nbrisk.prognosis.nomogram.form"):
        st.markdown("**Scenario:** change one or more inputs and compare.")
        columns = st.columns(min(len(nomogram.predictors), 3))
        values = {}
        for k, p in enumerate(nomogram.predictors):
            start = (scenario or row).get(p.name, row[p.name])
            values[p.name] = _scenario_widget(columns[k % len(columns)], p, start, f"{state.NOMOGRAM_FORM}{p.name}")
        compare = st.form_submit_button("Compare scenario")
    if compare:
        scenario = values
        st.session_state[state.NOMOGRAM_SCENARIO] = scenario
    rows = {"patient": row}
    if scenario is not None:
        rows["scenario"] = scenario
    st.plotly_chart(nomogram_plotly(nomogram, rows), key="nbrisk.prognosis.nomogram")
    if scenario is not None:
        changed = [p.label for p in nomogram.predictors if str(scenario[p.name]) != str(row[p.name])]
        st.plotly_chart(scenario_survival_figure(nomogram, rows), key="nbrisk.prognosis.nomogram.curves")
        table = pd.DataFrame(survival_difference(nomogram, row, scenario))
        table.columns = ["years", "patient", "scenario", "difference (scenario - patient)"]
        st.caption("Scenario changes: " + (", ".join(changed) if changed else "nothing yet") + ".")
        st.dataframe(table.style.format({"years": "{:g}", "patient": "{:.3f}", "scenario": "{:.3f}",
                                         "difference (scenario - patient)": "{:+.3f}"}),
                     hide_index=True)
