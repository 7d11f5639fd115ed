"""External validation: score another centre's cohort with frozen models and report how they do.

Nothing is fitted on the external cohort: the prognosis bundle's imputer (training donors), scaler
(training means and SDs), selected model and MLRS cut-off (training median) are applied as they were
saved, and the classifier is run with its card's preprocessing and threshold. The report says so.

Metrics (``report.json`` keys in brackets):

- classifier [``classifier``]: AUC with DeLong 95 % CI, accuracy / sensitivity / specificity at the
  card's threshold, calibration intercept (calibration-in-the-large, logistic with offset logit p) and
  slope (logistic on logit p) with a reliability plot;
- prognosis [``prognosis``]: Harrell's C-index with a percentile-bootstrap CI, cumulative/dynamic
  time-dependent AUC at 1/3/5 years (IPCW from the external cohort's censoring, bootstrap CI),
  calibration of S(3 y) per decile of predicted risk (observed = Kaplan-Meier of the decile),
  integrated Brier score (IPCW) with the frozen development Kaplan-Meier as a reference, KM by the
  frozen MLRS groups with the log-rank test, and the decision curve at 3 years;
- case mix [``case_mix``] and the TRIPOD+AI items covered [``tripod_ai``].
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nbrisk_core.errors import InputError
from nbrisk_core.validation.scoring import DAYS_PER_YEAR

TD_AUC_YEARS = (1, 3, 5)
CALIBRATION_YEARS = 3
CALIBRATION_BINS = 10
IBS_POINTS = 30

FROZEN_STATEMENTS = (
    "No model was refitted on this cohort: the prognosis bundle and the classifier are applied as saved.",
    "No re-standardisation: CT and clinical features are scaled with the training cohort's means and SDs.",
    "Missing clinical values were imputed with the frozen training models and donors of the bundle "
    "(predictive mean matching against training patients' observed values), never from this cohort.",
    "The MLRS high/low cut-off is the frozen training median of the bundle.",
)


# --------------------------------------------------------------------------------------------
# classifier
# --------------------------------------------------------------------------------------------


def run_classifier(model_path, cohort_dir) -> tuple[pd.DataFrame, object]:
    """``(table patient_id, p_high_risk, ct01..ct16; the loaded model)`` of every patient with images.

    The inputs are built as the model card's data config says (window, input size, mean/std) by the
    classifier's one cohort input builder, the same as for its embeddings.
    """
    from nbrisk_core.classifier.data import cohort_model_inputs
    from nbrisk_core.classifier.embeddings import EMBEDDING_COLUMNS
    from nbrisk_core.classifier.inference import Predictor
    from nbrisk_core.classifier.model_io import load_model

    loaded = load_model(Path(model_path))
    data, x = cohort_model_inputs(Path(cohort_dir), loaded.model_card.data, labels=False)
    proba, embedding = Predictor(loaded).predict_batches(x)
    class_order = list(loaded.model_card.class_order)
    table = pd.DataFrame(embedding.astype(np.float64), columns=list(EMBEDDING_COLUMNS),
                         index=pd.Index(data.patient_ids, name="patient_id"))
    table.insert(0, "p_high_risk", proba[:, class_order.index("HR")].astype(float))
    return table, loaded


def logistic_calibration(y, p) -> dict:
    """Calibration intercept (with offset logit p) and slope (logistic regression on logit p)."""
    import statsmodels.api as sm

    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    logit = np.log(p / (1 - p))
    out: dict = {"intercept": None, "slope": None}
    try:
        slope_fit = sm.GLM(y, sm.add_constant(logit), family=sm.families.Binomial()).fit()
        intercept_fit = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=logit).fit()
        out["slope"] = float(slope_fit.params[1])
        out["slope_ci"] = [float(v) for v in slope_fit.conf_int()[1]]
        out["intercept"] = float(intercept_fit.params[0])
        out["intercept_ci"] = [float(v) for v in intercept_fit.conf_int()[0]]
    except (ValueError, np.linalg.LinAlgError) as error:   # perfect separation in a tiny cohort
        out["reason"] = f"{type(error).__name__}: {error}"
    return out


def classifier_metrics(y, p, threshold: float) -> dict:
    from nbrisk_core.classifier.metrics import accuracy, auc_ci, confusion, sensitivity, specificity

    auc = auc_ci(y, p, method="delong")
    matrix = confusion(y, p, threshold)
    out = {"n": int(len(y)), "n_high_risk": int(np.sum(y)), "auc": auc.value,
           "auc_ci": [auc.ci_low, auc.ci_high],
           "auc_ci_method": "DeLong", "threshold": float(threshold)}
    named = (("accuracy", accuracy), ("sensitivity", sensitivity), ("specificity", specificity))
    for name, function in named:
        result = function(y, p, threshold)
        out[name] = result.value
        out[f"{name}_ci"] = [result.ci_low, result.ci_high]
    out["confusion"] = {k: int(v) for k, v in vars(matrix).items() if isinstance(v, (int, np.integer))}
    out["calibration"] = logistic_calibration(y, p)
    bins = pd.qcut(pd.Series(p).rank(method="first"), min(10, len(p)), labels=False)
    reliability = pd.DataFrame({"bin": bins, "p": p, "y": y}).groupby("bin").agg(
        predicted=("p", "mean"), observed=("y", "mean"), n=("y", "size")).reset_index()
    out["calibration"]["deciles"] = reliability.to_dict(orient="records")
    return out


# --------------------------------------------------------------------------------------------
# prognosis
# --------------------------------------------------------------------------------------------


def _none_if_nan(value):
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def prognosis_metrics(scored, bundle, *, n_bootstrap: int = 500, seed: int = 2025) -> dict:
    from nbrisk_core.prognosis import metrics
    from nbrisk_core.prognosis.bundle import bootstrap_c_index

    patients = scored.patients
    event = patients["event"].to_numpy(dtype=int)
    time = patients["time"].to_numpy(dtype=float)
    mlrs = patients["mlrs"].to_numpy(dtype=float)
    out: dict = {"n": int(len(patients)), "events": int(event.sum())}
    c = bootstrap_c_index(event, time, mlrs, n_bootstrap=n_bootstrap, seed=seed)
    out["c_index"], out["c_index_ci"] = c[0], c[1:]
    out["c_index_ci_method"] = f"percentile bootstrap of patients ({n_bootstrap} resamples)"

    aucs = metrics.time_dependent_auc(event, time, mlrs, [DAYS_PER_YEAR * y for y in TD_AUC_YEARS],
                                      ci="bootstrap", n_bootstrap=min(n_bootstrap, 200), seed=seed)
    out["td_auc"] = {str(y): {"auc": _none_if_nan(a.auc), "ci": [_none_if_nan(a.low), _none_if_nan(a.high)],
                              "n_cases": a.n_cases, "n_controls": a.n_controls, "reason": a.reason}
                     for y, a in zip(TD_AUC_YEARS, aucs)}
    out["td_auc_method"] = ("cumulative/dynamic AUC (Uno, sksurv.metrics.cumulative_dynamic_auc), "
                            "IPC weights "
                            "from this cohort's censoring; percentile bootstrap CI")

    horizon = DAYS_PER_YEAR * CALIBRATION_YEARS
    predicted_risk = 1.0 - patients[f"s_{CALIBRATION_YEARS}y"].to_numpy(dtype=float)
    bins = min(CALIBRATION_BINS, len(patients))
    table = metrics.calibration_at(event, time, predicted_risk, horizon, bins=bins)
    deciles = [{"bin": int(r.bin), "n": int(r.n), "n_events": int(r.n_events),
                "predicted_survival": float(1 - r.predicted),
                "observed_survival": _none_if_nan(1 - r.observed),
                "observed_low": _none_if_nan(1 - r.observed_high),
                "observed_high": _none_if_nan(1 - r.observed_low)}
               for r in table.itertuples()]
    overall_km = metrics._km_survival_at(time, event.astype(int), horizon)
    out["calibration"] = {"horizon_years": CALIBRATION_YEARS, "bins": deciles,
                          "mean_predicted_survival": float(1 - predicted_risk.mean()),
                          "observed_km_survival": _none_if_nan(overall_km),
                          "method": "patients sorted by predicted risk 1 - S(3 y) into equal-size bins; "
                                    "observed = Kaplan-Meier S(3 y) of the bin (metrics.calibration_at)"}

    # integrated Brier score over the central part of the follow-up, and the frozen development KM as
    # the reference a model must beat
    observed = np.sort(time)
    grid = np.linspace(np.quantile(observed, 0.1), np.quantile(observed, 0.9), IBS_POINTS)
    grid = grid[(grid > observed.min()) & (grid < observed.max())]
    try:
        matrix = scored.survival_matrix(grid)
        out["ibs"] = metrics.integrated_brier_score(event, time, event, time, matrix, grid)
        development = bundle.pipeline.patients_[bundle.pipeline.patients_["cohort"] == "train"]
        km = metrics.kaplan_meier(development["event"], development["time"], times=grid)
        km = km["survival"].to_numpy()
        out["ibs_reference_development_km"] = metrics.integrated_brier_score(
            event, time, event, time, np.tile(km, (len(time), 1)), grid)
        out["ibs_times_days"] = [float(grid[0]), float(grid[-1])]
    except InputError as error:
        out["ibs"], out["ibs_reason"] = None, str(error)

    groups = patients["mlrs_group"].to_numpy()
    out["groups"] = {g: {"n": int((groups == g).sum()), "events": int(event[groups == g].sum())}
                     for g in ("high", "low")}
    out["high_risk_share"] = float((groups == "high").mean())
    if len(set(groups.tolist())) > 1:
        result = metrics.logrank_test(event, time, groups)
        out["logrank"] = {"statistic": result.statistic, "p_value": result.p_value}
    else:
        out["logrank"] = {"statistic": None, "p_value": None,
                          "reason": f"every patient is in the {groups[0]} group"}
    dca = metrics.decision_curve(event, time, predicted_risk, horizon)
    out["decision_curve"] = {"horizon_years": CALIBRATION_YEARS,
                             "table": dca.replace({np.nan: None}).to_dict(orient="records")}
    return out


# --------------------------------------------------------------------------------------------
# the whole validation
# --------------------------------------------------------------------------------------------


def _embeddings_for(bundle, cohort_dir, truth, classifier_table, classifier_loaded, embeddings_file,
                    stand_in: bool):
    """CT features of the external cohort on the scale the bundle was fitted on, and a line saying which."""
    from nbrisk_core.prognosis.pipeline import CT_COLUMNS, read_embeddings, stand_in_embeddings

    if not bundle.pipeline.ct_columns_:
        return None, "none (the bundle uses clinical variables only)"
    source = bundle.embeddings.get("source")
    if source == "radiomics":
        if embeddings_file or stand_in or classifier_table is not None:
            raise InputError("the prognosis bundle uses the radiomics rad-score it recorded: leave out "
                             "--embeddings, --stand-in-embeddings and --classifier")
        from nbrisk_core.radiomics.score import RadScore, cohort_rad_scores

        rad_score = RadScore.from_dict(bundle.embeddings.get("rad_score"), source=f"{bundle.path}: rad-score")
        if rad_score.sha256() != bundle.embeddings.get("rad_score_sha256"):
            raise InputError(f"{bundle.path}: the recorded rad-score does not match its SHA-256")
        return (cohort_rad_scores(cohort_dir, rad_score),
                f"radiomics rad-score of the bundle (SHA-256 {rad_score.sha256()[:12]}, "
                f"{len(rad_score.features)} features)")
    if embeddings_file:
        return read_embeddings(embeddings_file), f"file {embeddings_file} (given by the user)"
    if stand_in:
        if source != "stand-in":
            raise InputError(f"--stand-in-embeddings: the bundle was fitted on {source or 'unknown'} "
                             "CT features, "
                             "not stand-ins; the MLRS would be on another scale")
        if truth is None:
            raise InputError(f"{cohort_dir}: --stand-in-embeddings needs the truth.csv of a synthetic cohort")
        return (stand_in_embeddings(truth, seed=int(bundle.embeddings.get("seed", 2025))),
                "stand-in (noisy latent score; NOT classifier features)")
    if classifier_table is not None:
        wanted = bundle.embeddings.get("model_sha256")
        if source != "classifier" or wanted != classifier_loaded.sha256:
            raise InputError(f"--classifier {classifier_loaded.path.name} "
                             f"(SHA-256 {classifier_loaded.sha256[:12]}) "
                             f"is not the classifier whose CT features the bundle was fitted on "
                             f"({source}, {str(wanted)[:12]}); the MLRS would be on another scale")
        return classifier_table[list(CT_COLUMNS)], f"classifier {classifier_loaded.path.name}"
    raise InputError("the prognosis bundle uses CT features: give --classifier MODEL (the one it was fitted "
                     "with), --embeddings FILE or, for a synthetic cohort and a stand-in bundle, "
                     "--stand-in-embeddings")


def validate_external(bundle_dir, cohort_dir, out_dir, *, classifier=None, embeddings_file=None,
                      stand_in: bool = False, n_bootstrap: int = 500, seed: int = 2025,
                      figures: bool = True) -> dict:
    """Validate frozen models on ``cohort_dir``; writes ``report.json``, ``report.html``, ``patients.csv``.

    Returns the report dict (what ``report.json`` holds).
    """
    from nbrisk_core.cohort.format import cohort_hash
    from nbrisk_core.prognosis.bundle import load_pipeline
    from nbrisk_core.prognosis.pipeline import read_cohort
    from nbrisk_core.validation.case_mix import compare_case_mix, describe_cohort
    from nbrisk_core.validation.tripod import checklist

    bundle = load_pipeline(bundle_dir)
    cohort_dir = Path(cohort_dir)
    clinical, truth, meta = read_cohort(cohort_dir)
    notes: list[str] = []
    classifier_table, loaded = None, None
    if classifier is not None:
        from nbrisk_core.classifier.data import usable_patients
        from nbrisk_core.classifier.model_io import read_model_card

        phases = read_model_card(Path(classifier)).data.phases
        try:
            usable_patients(cohort_dir, clinical[["patient_id"]], phases, labels=False)
        except InputError as error:
            raise InputError(f"--classifier: {error}; a cohort without images validates the prognosis bundle "
                             "alone (leave out --classifier)") from None
        classifier_table, loaded = run_classifier(classifier, cohort_dir)
    embeddings, embedding_source = _embeddings_for(bundle, cohort_dir, truth, classifier_table, loaded,
                                                   embeddings_file, stand_in)
    from nbrisk_core.validation.scoring import score_cohort

    scored = score_cohort(bundle.pipeline, clinical, embeddings)
    if scored.left_out:
        notes.append(f"{len(scored.left_out)} patient(s) without CT features were left out of the prognosis "
                     f"(e.g. {', '.join(scored.left_out[:3])})")
    patients = scored.patients.drop(columns="n_imputed")
    report: dict = {
        "kind": "nbrisk-external-validation",
        "n": int(len(patients)), "events": int(patients["event"].sum()),
        "cohort": {"name": meta.get("name", cohort_dir.name), "synthetic": bool(meta.get("synthetic", False)),
                   "sha256": cohort_hash(cohort_dir), "n_patients": int(len(clinical))},
        "bundle": {"path": str(bundle.path), "sha256": bundle.sha256, "selected": bundle.pipeline.selected_,
                   "features": list(bundle.pipeline.features_), "mlrs_cutoff": float(bundle.pipeline.cutoff_),
                   "development_cohort": bundle.card.get("cohort"),
                   "development_metrics": bundle.card.get("metrics")},
        "ct_features": embedding_source,
        "frozen": list(FROZEN_STATEMENTS),
        "imputation": {"method": "frozen training models and donors of the bundle "
                                 "(PMM, nearest training donor)",
                       "imputed_values_per_variable": dict(sorted(scored.imputed_counts.items())),
                       "patients_with_imputation": int((scored.patients["n_imputed"] > 0).sum()),
                       "variables_absent_in_cohort": scored.absent_variables},
    }
    if classifier_table is not None:
        groups = clinical.set_index("patient_id").get("risk_group")
        table = classifier_table[["p_high_risk"]].join(groups, how="left") if groups is not None \
            else classifier_table[["p_high_risk"]].assign(risk_group=np.nan)
        known = table["risk_group"].isin(["HR", "NHR"])
        y = (table.loc[known, "risk_group"] == "HR").to_numpy(dtype=int)
        p = table.loc[known, "p_high_risk"].to_numpy(dtype=float)
        threshold = float(loaded.model_card.decision_threshold)
        if len(set(y.tolist())) < 2:
            notes.append("classifier: the cohort does not hold both HR and NHR patients; no AUC")
        else:
            report["classifier"] = {"model": loaded.path.name, "sha256": loaded.sha256,
                                    **classifier_metrics(y, p, threshold)}
        patients = patients.merge(classifier_table[["p_high_risk"]], left_on="patient_id", right_index=True,
                                  how="left")
    report["prognosis"] = prognosis_metrics(scored, bundle, n_bootstrap=n_bootstrap, seed=seed)
    external_mix = describe_cohort(clinical, mlrs=patients["mlrs"].to_numpy())
    report["case_mix"] = {"development": bundle.development_case_mix, "external": external_mix}
    if bundle.development_case_mix is None:
        notes.append("the bundle holds no development case mix (saved without the training table)")
    report["tripod_ai"] = checklist()
    report["notes"] = notes

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    patients.to_csv(out / "patients.csv", index=False)
    compare_case_mix(bundle.development_case_mix, external_mix).to_csv(out / "case_mix.csv", index=False)
    (out / "report.json").write_text(json.dumps(_clean(report), indent=2, allow_nan=False) + "\n")
    from nbrisk_core.validation.report import render_html

    (out / "report.html").write_text(render_html(report, patients, bundle, scored, figures=figures),
                                     encoding="utf-8")
    for note in notes:
        print(f"NOTE: {note}", file=sys.stderr)
    return report


def _clean(value):
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
