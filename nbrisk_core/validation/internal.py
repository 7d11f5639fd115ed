"""Internal validation as the seed papers did it: repeated stratified K-fold CV of the whole selection
procedure, and Harrell's bootstrap optimism-corrected C-index of the final model.

In each fold the *whole* procedure (imputation, standardisation, screening, the grid, the selection
by its own internal split, the cut-off) is fitted on the training folds only, and the selected model,
frozen, scores the held-out fold (:func:`~nbrisk_core.validation.scoring.score_cohort`): no step sees
the held-out patients. Harrell's optimism (Harrell, Lee & Mark 1996): the procedure is refitted on
``B`` bootstrap samples; optimism_b = C(bootstrap model on its bootstrap sample) - C(bootstrap model on
the original cohort); corrected C = apparent C - mean optimism.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nbrisk_core.clinical.schema import OUTCOME_COLUMNS
from nbrisk_core.errors import InputError


def _c_index(event, time, risk) -> float | None:
    """The engine's C-index (:func:`~nbrisk_core.prognosis.metrics.concordance_index`); None without a
    death or a comparable pair."""
    from nbrisk_core.prognosis.metrics import concordance_index

    event = np.asarray(event, dtype=int)
    if not event.any():
        return None
    try:
        return concordance_index(event, time, risk)
    except InputError:
        return None


@dataclass(frozen=True)
class FittedProcedure:
    """The selection procedure fitted on one cohort: the frozen pipeline of the combination it chose,
    and that combination's C-index in the procedure's own internal testing part."""

    pipeline: object   # nbrisk_core.prognosis.pipeline.PrognosisPipeline
    c_index_internal_test: float | None

    @property
    def selected(self) -> str:
        return self.pipeline.selected_


def _fit(clinical, embeddings, grid, features, seed) -> FittedProcedure:
    """The whole procedure on ``clinical`` alone, as :func:`~nbrisk_core.prognosis.pipeline.fit_prognosis`
    runs it (without the clinical baseline and the evaluation, which CV does not use): its own 8:2 split
    (:func:`split_cohort`, seed ``seed``), imputation, standardisation and screening on its training part
    (:class:`CohortPreprocessor`), the grid and the selection (:func:`search_combinations`), then the
    chosen combination fitted on that training part (:class:`PrognosisPipeline`, cut-off = its median)."""
    from nbrisk_core.prognosis.pipeline import (CohortPreprocessor, PrognosisPipeline, cohort_design,
                                                search_combinations, split_cohort)

    clinical = clinical.reset_index(drop=True)
    _, X, y = cohort_design(clinical, embeddings, features)
    train = split_cohort(clinical, seed=seed)["cohort"].to_numpy() == "train"
    preprocessor = CohortPreprocessor(features=features, seed=seed).fit(X[train], y[train])
    design_test = preprocessor.transform(X[~train])
    _, chosen, profile, _ = search_combinations(preprocessor.training_design_, y[train], design_test,
                                                y[~train], preprocessor.features_, grid=grid,
                                                backend="sequential", n_jobs=1, seed=seed)
    pipeline = PrognosisPipeline(combination=chosen, profile=profile, features=features, seed=seed)
    pipeline.fit(X[train], y[train], preprocessor=preprocessor)
    internal = _c_index(y["event"][~train], y["time"][~train], pipeline.model_.predict(design_test))
    return FittedProcedure(pipeline, internal)


def repeated_cv(clinical: pd.DataFrame, embeddings, *, k: int = 5, repeats: int = 1, grid: str = "test",
                features: str = "both", seed: int = 2025) -> pd.DataFrame:
    """One row per fold.

    Columns ``repeat, fold, selected, n_test, events_test, c_index_heldout, c_index_internal_test``.
    """
    from sklearn.model_selection import StratifiedKFold

    from nbrisk_core.validation.scoring import score_cohort

    if k < 2 or repeats < 1:
        raise InputError(f"--cv {k} --repeats {repeats}: expected K >= 2 folds and R >= 1 repeats")
    event = clinical[OUTCOME_COLUMNS[1]].to_numpy(dtype=int)
    if event.sum() < 2 * k:
        raise InputError(f"--cv {k}: the cohort has {int(event.sum())} deaths; "
                         "at least 2 per fold are needed")
    rows = []
    for repeat in range(repeats):
        folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed + repeat)
        for fold, (train, test) in enumerate(folds.split(clinical, event)):
            fitted = _fit(clinical.iloc[train], embeddings, grid, features, seed)
            held_out = clinical.iloc[test].reset_index(drop=True)
            scored = score_cohort(fitted.pipeline, held_out, embeddings).patients
            rows.append({"repeat": repeat + 1, "fold": fold + 1, "selected": fitted.selected,
                         "n_test": len(scored), "events_test": int(scored["event"].sum()),
                         "c_index_heldout": _c_index(scored["event"], scored["time"], scored["mlrs"]),
                         "c_index_internal_test": fitted.c_index_internal_test})
    return pd.DataFrame(rows)


def bootstrap_optimism(clinical: pd.DataFrame, embeddings, *, n_bootstrap: int = 20, grid: str = "test",
                       features: str = "both", seed: int = 2025) -> dict:
    """Harrell's optimism-corrected C-index of the whole procedure.

    Keys ``apparent``, ``optimism``, ``corrected``, ``n_bootstrap``, ``failed_resamples``.
    """
    from nbrisk_core.validation.scoring import score_cohort

    clinical = clinical.reset_index(drop=True)
    final = _fit(clinical, embeddings, grid, features, seed)
    apparent_scores = score_cohort(final.pipeline, clinical, embeddings).patients
    apparent = _c_index(apparent_scores["event"], apparent_scores["time"], apparent_scores["mlrs"])
    rng = np.random.default_rng(seed)
    optimism, failures = [], []
    for b in range(n_bootstrap):
        idx = rng.integers(0, len(clinical), len(clinical))
        sample = clinical.iloc[idx].reset_index(drop=True)
        original_ids = sample["patient_id"].astype(str).to_numpy()
        # a patient drawn twice becomes two distinct patients
        sample["patient_id"] = [f"{pid}#b{j}" for j, pid in enumerate(original_ids)]
        sample_embeddings = None
        if embeddings is not None:
            sample_embeddings = embeddings.loc[original_ids].copy()
            sample_embeddings.index = sample["patient_id"].to_numpy()
        try:
            model = _fit(sample, sample_embeddings, grid, features, seed)
        except InputError as error:   # e.g. too few deaths in this resample's internal split
            failures.append(str(error))
            continue
        on_sample = score_cohort(model.pipeline, sample, sample_embeddings).patients
        on_original = score_cohort(model.pipeline, clinical, embeddings).patients
        c_sample = _c_index(on_sample["event"], on_sample["time"], on_sample["mlrs"])
        c_original = _c_index(on_original["event"], on_original["time"], on_original["mlrs"])
        if c_sample is None or c_original is None:
            failures.append(f"resample {b + 1}: no comparable pair")
            continue
        optimism.append(c_sample - c_original)
    mean_optimism = float(np.mean(optimism)) if optimism else None
    return {"selected": final.selected, "apparent": apparent, "optimism": mean_optimism,
            "corrected": None if mean_optimism is None else apparent - mean_optimism,
            "n_bootstrap": len(optimism), "failed_resamples": failures,
            "method": "Harrell: refit the whole procedure on each bootstrap sample; optimism = C on the "
                      "bootstrap sample - C on the original cohort; apparent C by the frozen final model"}


def summarise_cv(table: pd.DataFrame) -> dict:
    values = table["c_index_heldout"].dropna().to_numpy(dtype=float)
    return {"folds": int(len(table)), "c_index_mean": float(values.mean()) if values.size else None,
            "c_index_sd": float(values.std(ddof=1)) if values.size > 1 else None,
            "c_index_quantiles": ([float(v) for v in np.quantile(values, [0.025, 0.5, 0.975])]
                                  if values.size else None),
            "selected_counts": {str(k): int(v) for k, v in table["selected"].value_counts().items()}}


def run_benchmark_cv(args, data, out, embeddings, features: str) -> int:
    """``nbrisk benchmark --cv K [--repeats R] [--optimism-bootstrap B]``: writes ``cv_folds.csv`` and
    ``cv_summary.json`` into ``out``."""
    import json
    from pathlib import Path

    from nbrisk_core.prognosis.pipeline import read_cohort

    clinical, _, _ = read_cohort(data)
    if embeddings is not None:
        embeddings = embeddings.copy()
        embeddings.index = embeddings.index.astype(str)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = repeated_cv(clinical, embeddings, k=args.cv, repeats=args.repeats, grid=args.grid,
                        features=features,
                        seed=args.seed)
    table.to_csv(out / "cv_folds.csv", index=False)
    from nbrisk_core.cohort.format import cohort_hash

    summary = {"cv": summarise_cv(table), "k": args.cv, "repeats": args.repeats, "grid": args.grid,
               "features": features, "cohort": {"path": str(data), "sha256": cohort_hash(Path(data))}}
    if args.optimism_bootstrap:
        summary["optimism"] = bootstrap_optimism(clinical, embeddings, n_bootstrap=args.optimism_bootstrap,
                                                 grid=args.grid, features=features, seed=args.seed)
    (out / "cv_summary.json").write_text(json.dumps(summary, indent=2))
    cv = summary["cv"]
    print(f"{args.repeats} x {args.cv}-fold CV of the whole selection: held-out C-index "
          f"{cv['c_index_mean']:.3f} "
          f"(SD {cv['c_index_sd'] if cv['c_index_sd'] is not None else float('nan'):.3f}); "
          f"selected: {cv['selected_counts']}")
    if "optimism" in summary and summary["optimism"]["corrected"] is not None:
        o = summary["optimism"]
        print(f"Harrell bootstrap ({o['n_bootstrap']}): apparent C {o['apparent']:.3f}, "
              f"optimism {o['optimism']:.3f}, "
              f"corrected {o['corrected']:.3f}")
    return 0


#: the columns ``cv_folds.csv`` must have (:func:`repeated_cv`)
CV_FOLD_COLUMNS = ("repeat", "fold", "selected", "n_test", "events_test", "c_index_heldout")


@dataclass(frozen=True)
class CVResults:
    """``nbrisk benchmark --cv`` results read back: the per-fold table, ``cv_summary.json`` and the
    held-out C-index per selected combination."""

    folds: pd.DataFrame
    summary: dict
    by_combination: pd.DataFrame
    folder: object   # pathlib.Path


def cv_by_combination(folds: pd.DataFrame) -> pd.DataFrame:
    """Held-out C-index of the folds grouped by the combination the procedure selected in them.

    One row per combination: ``combination, times_selected, c_index_mean, c_index_sd, c_index_min,
    c_index_max``, most often selected first; a last row ``all folds`` summarises every fold (the estimate
    of the whole procedure). The SD is the sample SD (NaN with one fold).
    """
    def row(name, part):
        values = part["c_index_heldout"].dropna().to_numpy(dtype=float)
        return {"combination": name, "times_selected": int(len(part)),
                "c_index_mean": float(values.mean()) if values.size else float("nan"),
                "c_index_sd": float(values.std(ddof=1)) if values.size > 1 else float("nan"),
                "c_index_min": float(values.min()) if values.size else float("nan"),
                "c_index_max": float(values.max()) if values.size else float("nan")}

    rows = [row(name, part) for name, part in folds.groupby("selected", sort=False)]
    rows.sort(key=lambda r: (-r["times_selected"], r["combination"]))
    rows.append(row("all folds", folds))
    return pd.DataFrame(rows)


def read_cv_results(folder) -> CVResults | None:
    """The CV results ``nbrisk benchmark --cv K --out FOLDER`` wrote (``cv_folds.csv``, ``cv_summary.json``),
    or None when ``FOLDER`` holds none. A damaged file raises :class:`InputError` naming it."""
    import json
    from pathlib import Path

    folder = Path(folder)
    folds_path, summary_path = folder / "cv_folds.csv", folder / "cv_summary.json"
    if not folds_path.exists() and not summary_path.exists():
        return None
    for path in (folds_path, summary_path):
        if not path.exists():
            raise InputError(f"{path}: missing (expected beside the other file that "
                             "'nbrisk benchmark --cv' writes); run it again")
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{summary_path}: not a readable JSON summary ({error})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("cv"), dict):
        raise InputError(f"{summary_path}: expected an object with a 'cv' summary, as 'nbrisk benchmark --cv' "
                         "writes")
    try:
        folds = pd.read_csv(folds_path, dtype={"selected": str})
    except (OSError, ValueError) as error:
        raise InputError(f"{folds_path}: not a readable CSV ({error})") from None
    missing = [c for c in CV_FOLD_COLUMNS if c not in folds.columns]
    if missing:
        raise InputError(f"{folds_path}: columns {missing} missing; expected {list(CV_FOLD_COLUMNS)}")
    folds["c_index_heldout"] = pd.to_numeric(folds["c_index_heldout"], errors="coerce")
    return CVResults(folds=folds, summary=summary, by_combination=cv_by_combination(folds), folder=folder)
