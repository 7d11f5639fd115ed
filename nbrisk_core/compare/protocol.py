"""One comparison protocol for every candidate model (issue 26 item 3).

1. **Development cohort** = the training part of the project's 8:2 split
   (:func:`nbrisk_core.split.stratified_split`, stratified by HR/NHR, seed 2025: the split Swin-ART and the
   prognosis engine use); the other 20 % is the **test** split.
2. **Stratified K-fold cross-validation** on the development cohort (``StratifiedKFold(shuffle=True,
   random_state=seed)``): in each fold a fresh candidate is fitted on the training folds only (every fitted
   step is inside :meth:`Candidate.fit`) and predicts the held-out fold. Reported: the per-fold AUCs with
   their mean and SD, and the pooled out-of-fold AUC with its DeLong CI.
3. Each candidate is then fitted once on the whole development cohort and scores the **test** split and,
   when given, an **external** cohort with that frozen fit (no refit, no re-standardisation: the scaler,
   imputer and coefficients are the development ones).

Per scored set (``test``, ``external``): AUC with DeLong 95 % CI
(:func:`nbrisk_core.classifier.metrics.auc_ci`); the paired DeLong p against Swin-ART
(:func:`nbrisk_core.radiomics.model.delong_paired`); NRI (category-free and at p = 0.5) and IDI against the
clinical logistic model with Wald CIs (:mod:`nbrisk_core.compare.reclassification`); accuracy, sensitivity,
specificity at 0.5 and the logistic calibration intercept and slope with the reliability deciles
(:func:`nbrisk_core.validation.external.classifier_metrics`, as ``nbrisk validate``); the decision curve of
p(high risk) (:func:`nbrisk_core.prognosis.metrics.decision_curve` with every patient's outcome known at
one common time, where its Kaplan-Meier net benefit is the binary one, ``TP/n - FP/n * pt/(1-pt)``); and,
where the candidate gives a survival risk score, Harrell's C-index with a percentile-bootstrap CI
(:func:`nbrisk_core.prognosis.bundle.bootstrap_c_index`).

:data:`EXTRA_OUTPUTS` lets another module add files to the output folder (e.g. ``nomogram.json``).
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from nbrisk_core.compare.candidates import (CANDIDATES, REFERENCE_CLINICAL, REFERENCE_IMAGE,
                                            CandidateUnavailable)
from nbrisk_core.compare.data import CompareData
from nbrisk_core.compare.nomogram_output import write_compare_nomogram
from nbrisk_core.compare.report import render_html, summary_table  # noqa: F401 - summary_table re-exported
from nbrisk_core.errors import InputError

DEFAULT_FOLDS = 5
DEFAULT_SEED = 2025
DEFAULT_BOOTSTRAP = 500
THRESHOLD = 0.5
#: decision-curve thresholds (0.01 ... 0.99)
DCA_THRESHOLDS = np.round(np.arange(1, 100) / 100, 2)
#: errors that mean "this candidate cannot run here" rather than a bug in it
UNAVAILABLE = (InputError, ImportError, OSError)


@dataclass
class CompareResult:
    """Everything :func:`run_compare` produced: the JSON report, the per-patient predictions, the
    development-fitted candidates (frozen) and the data they saw."""

    report: dict
    predictions: pd.DataFrame
    fitted: dict
    data: CompareData
    external: CompareData | None
    development_idx: np.ndarray
    test_idx: np.ndarray
    folds: list = field(default_factory=list)


#: callables ``(result, out_dir) -> {name: path}`` run after the standard outputs are written; each may
#: add a file to ``out_dir`` (and its name to ``report.json``'s ``files``)
EXTRA_OUTPUTS: list[Callable[[CompareResult, Path], dict]] = [write_compare_nomogram]


# --------------------------------------------------------------------------------------------
# splits
# --------------------------------------------------------------------------------------------
def development_split(data: CompareData, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(development, test)`` of the project's 8:2 split of ``data`` (stratified by HR)."""
    from nbrisk_core.split import DEFAULT_SPLIT_SEED, stratified_split

    # stratified by the risk-group labels themselves ("HR"/"NHR", not 1/0), as the classifier's evaluation,
    # the prognosis grid (prognosis.pipeline.split_strata) and the radiomics model: the same test patients
    strata = np.where(np.asarray(data.high_risk) == 1, "HR", "NHR")
    split = stratified_split(data.patient_id, strata, seed=DEFAULT_SPLIT_SEED if seed is None else seed)
    test = (split["cohort"] == "test").to_numpy()
    return np.flatnonzero(~test), np.flatnonzero(test)


def cv_folds(y: np.ndarray, rows: np.ndarray, folds: int = DEFAULT_FOLDS,
             seed: int = DEFAULT_SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified K-fold of ``rows`` (labels ``y[rows]``): ``[(train_rows, held_out_rows), ...]``."""
    from sklearn.model_selection import StratifiedKFold

    rows = np.asarray(rows)
    labels = np.asarray(y)[rows]
    smallest = int(min(np.bincount(labels, minlength=2)))
    if folds < 2 or folds > smallest:
        raise InputError(f"--folds {folds}: expected 2 to {smallest} (the smaller class of the development "
                         f"cohort has {smallest} patients)", source="--folds")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(rows[a], rows[b]) for a, b in splitter.split(rows, labels)]


# --------------------------------------------------------------------------------------------
# metrics of one set
# --------------------------------------------------------------------------------------------
def binary_decision_curve(y, p, thresholds=DCA_THRESHOLDS) -> pd.DataFrame:
    """Net benefit of treating ``p > pt`` for a binary outcome, via the survival decision curve with
    every outcome known at one time (columns ``threshold, net_benefit, treat_all, treat_none,
    n_treated``)."""
    from nbrisk_core.prognosis.metrics import decision_curve

    y = np.asarray(y, dtype=int)
    return decision_curve(y, np.ones(len(y)), np.clip(np.asarray(p, dtype=float), 0, 1), 1.0, thresholds)


def _finite(value):
    if value is None:
        return None
    value = float(value)
    return None if not np.isfinite(value) else value


def set_metrics(y, p, risk, time, event, *, swin_p=None, clinical_p=None, n_bootstrap: int = DEFAULT_BOOTSTRAP,
                seed: int = DEFAULT_SEED) -> dict:
    """The metrics of one candidate on one scored set (see the module docstring)."""
    from nbrisk_core.compare.reclassification import idi, nri
    from nbrisk_core.prognosis.bundle import bootstrap_c_index
    from nbrisk_core.radiomics.model import delong_paired
    from nbrisk_core.validation.external import classifier_metrics

    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    base = classifier_metrics(y, p, THRESHOLD)  # AUC with its DeLong CI, the threshold metrics, calibration
    out = {k: base[k] for k in ("n", "n_high_risk", "auc", "auc_ci", "auc_ci_method", "threshold", "accuracy",
                                "sensitivity", "specificity", "confusion", "calibration")}
    out["delong_p_vs_swin_art"] = None if swin_p is None else delong_paired(y, p, swin_p)["p"]
    if clinical_p is not None:
        out["nri"] = {"category_free": nri(y, clinical_p, p).to_dict(),
                      f"at_{THRESHOLD:g}": nri(y, clinical_p, p, threshold=THRESHOLD).to_dict()}
        out["idi"] = idi(y, clinical_p, p).to_dict()
    else:
        out["nri"] = out["idi"] = None
    dca = binary_decision_curve(y, p)
    out["decision_curve"] = {"threshold": dca["threshold"].tolist(), "net_benefit": dca["net_benefit"].tolist(),
                             "treat_all": dca["treat_all"].tolist()}
    if risk is not None:
        c = bootstrap_c_index(np.asarray(event, dtype=int), np.asarray(time, dtype=float),
                              np.asarray(risk, dtype=float), n_bootstrap=n_bootstrap, seed=seed)
        out["c_index"], out["c_index_ci"] = c[0], c[1:]
        out["c_index_ci_method"] = f"percentile bootstrap of patients ({n_bootstrap} resamples)"
    else:
        out["c_index"] = out["c_index_ci"] = None
    return out


def cv_summary(fold_auc: list[float], y_oof, p_oof, risk_oof=None, time=None, event=None) -> dict:
    from nbrisk_core.classifier.metrics import auc_ci
    from nbrisk_core.demo.oracle import harrell_c_index

    pooled = auc_ci(y_oof, p_oof)
    out = {"fold_auc": [float(a) for a in fold_auc], "mean": float(np.mean(fold_auc)),
           "sd": float(np.std(fold_auc, ddof=1)) if len(fold_auc) > 1 else None,
           "oof_auc": pooled.value, "oof_auc_ci": [pooled.ci_low, pooled.ci_high], "oof_auc_ci_method": "DeLong"}
    out["oof_c_index"] = (_finite(harrell_c_index(time, event, risk_oof)) if risk_oof is not None else None)
    return out


# --------------------------------------------------------------------------------------------
# the protocol
# --------------------------------------------------------------------------------------------
def _not_run(error: BaseException) -> str:
    if not isinstance(error, UNAVAILABLE):   # a bug in a candidate: keep its traceback visible
        traceback.print_exception(error, file=sys.stderr)
        return f"{type(error).__name__}: {error}"
    return str(error)


def _rows(data: CompareData, idx, set_name: str, model: str, p, risk, fold=None) -> pd.DataFrame:
    idx = np.asarray(idx)
    return pd.DataFrame({"patient_id": data.patient_id[idx], "set": set_name,
                         "fold": -1 if fold is None else fold, "model": model,
                         "high_risk": data.high_risk[idx], "p_high_risk": np.asarray(p, dtype=float),
                         "risk_score": np.nan if risk is None else np.asarray(risk, dtype=float),
                         "time": data.time[idx], "event": data.event[idx].astype(int)})


def run_compare(data: CompareData, *, external: CompareData | None = None, models=None,
                folds: int = DEFAULT_FOLDS, seed: int = DEFAULT_SEED, split_seed: int | None = None,
                n_bootstrap: int = DEFAULT_BOOTSTRAP, registry: dict | None = None,
                progress: Callable[[str], None] | None = None) -> CompareResult:
    """Run the protocol for ``models`` (names in ``registry``, default :data:`CANDIDATES`).

    A candidate that cannot run (missing images, model file, truth, package) is kept in the report as
    ``{"status": "not run", "reason": ...}``; it never stops the others.
    """
    registry = CANDIDATES if registry is None else registry
    names = list(registry) if models is None else list(models)
    for name in names:
        if name not in registry:
            raise InputError(f"model {name!r} is unknown; expected some of {', '.join(registry)}", source="--models")
    say = progress or (lambda message: None)
    dev, test = development_split(data, split_seed)
    fold_rows = cv_folds(data.high_risk, dev, folds, seed)

    entries: dict[str, dict] = {}
    fitted: dict = {}
    frames: list[pd.DataFrame] = []
    scored: dict[str, dict[str, tuple]] = {}   # model -> set -> (p, risk)
    for name in names:
        factory = registry[name]
        entry: dict = {"label": name, "status": "ok"}
        try:
            say(f"{name}: {folds}-fold cross-validation")
            fold_auc, p_oof, r_oof = [], np.full(data.n, np.nan), np.full(data.n, np.nan)
            has_risk = True
            for k, (train_rows, held_out) in enumerate(fold_rows):
                candidate = factory()
                entry["label"] = getattr(candidate, "label", name)
                candidate.fit(data, train_rows)
                p = np.asarray(candidate.predict_proba(data, held_out), dtype=float)
                risk = candidate.predict_risk(data, held_out)
                from nbrisk_core.classifier.metrics import roc_auc

                fold_auc.append(roc_auc(data.high_risk[held_out], p))
                p_oof[held_out] = p
                if risk is None:
                    has_risk = False
                else:
                    r_oof[held_out] = risk
                frames.append(_rows(data, held_out, "cv", name, p, risk, fold=k))
            entry["cv"] = cv_summary(fold_auc, data.high_risk[dev], p_oof[dev],
                                     r_oof[dev] if has_risk else None, data.time[dev], data.event[dev])
            say(f"{name}: fit on the development cohort ({len(dev)} patients), score the test split")
            final = factory()
            final.fit(data, dev)
            fitted[name] = final
            scored[name] = {"test": (np.asarray(final.predict_proba(data, test), dtype=float),
                                     final.predict_risk(data, test))}
            if external is not None:
                every = np.arange(external.n)
                try:
                    scored[name]["external"] = (np.asarray(final.predict_proba(external, every), dtype=float),
                                                final.predict_risk(external, every))
                except Exception as error:   # noqa: BLE001 - reported, see _not_run
                    entry["external"] = {"status": "not run", "reason": _not_run(error)}
        except Exception as error:   # noqa: BLE001 - a candidate never stops the others (_not_run)
            entry = {"label": entry["label"], "status": "not run", "reason": _not_run(error)}
            frames = [f for f in frames if not (len(f) and f["model"].iloc[0] == name)]
            scored.pop(name, None)
            fitted.pop(name, None)
            say(f"{name}: not run: {entry['reason']}")
        entries[name] = entry

    sets = {"test": (data, test)}
    if external is not None:
        sets["external"] = (external, np.arange(external.n))
    for set_name, (frame_data, idx) in sets.items():
        y = frame_data.high_risk[idx]
        swin = scored.get(REFERENCE_IMAGE, {}).get(set_name)
        clinical = scored.get(REFERENCE_CLINICAL, {}).get(set_name)
        for name, by_set in scored.items():
            if set_name not in by_set:
                continue
            p, risk = by_set[set_name]
            frames.append(_rows(frame_data, idx, set_name, name, p, risk))
            entries[name][set_name] = set_metrics(
                y, p, risk, frame_data.time[idx], frame_data.event[idx],
                swin_p=None if swin is None or name == REFERENCE_IMAGE else swin[0],
                clinical_p=None if clinical is None or name == REFERENCE_CLINICAL else clinical[0],
                n_bootstrap=n_bootstrap, seed=seed)

    report = {
        "cohort": {"name": data.name, "path": str(data.cohort_dir), "synthetic": data.synthetic,
                   "missing": data.missing, "classifier_sha256": data.classifier_sha256},
        "n": int(data.n), "n_development": int(len(dev)), "n_test": int(len(test)),
        "folds": int(folds), "seed": int(seed),
        "split": "nbrisk_core.split.stratified_split (8:2, stratified by HR/NHR, seed "
                 f"{2025 if split_seed is None else split_seed})",
        "references": {"delong": REFERENCE_IMAGE, "nri_idi": REFERENCE_CLINICAL},
        "models": entries,
        "caveats": caveats(data, names),
    }
    if external is not None:
        report["external"] = {"name": external.name, "path": str(external.cohort_dir), "n": int(external.n),
                              "synthetic": external.synthetic, "missing": external.missing,
                              "statement": "scored with the development-fitted models: no refit, no "
                                           "re-standardisation"}
    predictions = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return CompareResult(report, predictions, fitted, data, external, dev, test, fold_rows)


def caveats(data: CompareData, names) -> list[str]:
    notes = ["Swin-ART is frozen: its folds fit nothing, so its cross-validated AUC is the AUC of one fixed "
             "model on each fold, whereas every other model is refitted per fold."]
    if REFERENCE_IMAGE in names and data.classifier_sha256:
        notes.append("Swin-ART's own training data decide how optimistic its figures are here: the shipped demo "
                     "model (models/swin_art_demo) was trained on a separate synthetic cohort (seed 7), not on "
                     "this cohort; a Swin-ART trained on this cohort's training split would make the "
                     "development-cohort (CV) figures of swin_art, combined and combined_emb optimistic, and "
                     "only the test and external figures fair.")
    if data.synthetic:
        notes.append("Synthetic data: the figures rank the models on the generator's known truth, not on "
                     "patients.")
    return notes


# --------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------
def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """CSV with every text cell neutralised against spreadsheet formulas (OWASP; ``safe_csv``)."""
    from nbrisk_core.safe_csv import write_rows

    with open(path, "w", newline="", encoding="utf-8") as handle:
        write_rows(handle, [list(frame.columns), *frame.itertuples(index=False, name=None)])


def write_outputs(result: CompareResult, out_dir, *, figures: bool = True) -> dict:
    """Write ``report.json``, ``predictions.csv``, ``summary.csv``, ``report.html`` (and whatever
    :data:`EXTRA_OUTPUTS` add) into ``out_dir``; returns ``{name: path}``."""
    from nbrisk_core.jsonable import json_default
    from nbrisk_core.validation.external import _clean

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"report.json": out / "report.json", "predictions.csv": out / "predictions.csv",
             "summary.csv": out / "summary.csv", "report.html": out / "report.html"}
    _write_csv(result.predictions, files["predictions.csv"])
    _write_csv(summary_table(result.report), files["summary.csv"])
    files["report.html"].write_text(render_html(result.report, result.predictions, figures=figures),
                                    encoding="utf-8")
    for extra in EXTRA_OUTPUTS:
        files.update({k: Path(v) for k, v in (extra(result, out) or {}).items()})
    result.report["files"] = sorted(files)
    files["report.json"].write_text(json.dumps(_clean(result.report), indent=1, default=json_default,
                                               allow_nan=False), encoding="utf-8")
    return files


def read_outputs(out_dir) -> tuple[dict, pd.DataFrame] | None:
    """``(report, predictions)`` of a ``nbrisk compare`` output folder; None when it holds none yet.

    An unreadable ``report.json`` is an :class:`InputError` naming it."""
    out = Path(out_dir)
    report_path, predictions_path = out / "report.json", out / "predictions.csv"
    if not report_path.is_file():
        return None
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        predictions = (pd.read_csv(predictions_path, dtype={"patient_id": str, "set": str, "model": str})
                       if predictions_path.is_file() else pd.DataFrame())
    except (OSError, ValueError) as error:
        raise InputError(f"{report_path}: not a readable nbrisk compare output ({error})",
                         source=str(report_path)) from None
    if not isinstance(report, dict) or not isinstance(report.get("models"), dict):
        raise InputError(f"{report_path}: expected an nbrisk compare report (a 'models' object)",
                         source=str(report_path))
    return report, predictions
