"""The prognosis pipeline: a feature table (CT features + clinical variables) -> MLRS and survival.

Steps (``../shared/spec/method.md`` sections 4-7), each a separate function or estimator:

1. :func:`read_cohort` validates the clinical table (:mod:`~nbrisk_core.prognosis.validation`);
   :func:`cohort_design` joins it to the CT feature table the caller made
   (:func:`nbrisk_core.features.cohort_ct_features`): ``(ids, X, y)``;
2. :func:`split_cohort`: 8:2 stratified by risk group with :func:`nbrisk_core.split.stratified_split`
   (seed 2025), the same split as the classifier;
3. :class:`CohortPreprocessor` (fitted on training rows only): MICE-PMM imputation
   (:mod:`~nbrisk_core.prognosis.impute`), standardisation, Cox screening
   (:mod:`~nbrisk_core.prognosis.screening`);
4. :func:`search_combinations`: the combination grid and the selection (:mod:`~nbrisk_core.prognosis.grid`);
5. :class:`PrognosisPipeline` ``.fit(X, y)``: preprocessing + the selected combination (a fitted
   ``Pipeline(select, model)``), MLRS cut-off = training median (frozen), a Breslow baseline on the MLRS;
6. :func:`fit_baseline`: LASSO-Cox on the clinical variables only;
7. :func:`~nbrisk_core.prognosis.evaluation.evaluate` of each cohort, :func:`oracle_c_index`.

:func:`fit_prognosis` (tables in memory) and :func:`fit_cohort_pipeline` (a cohort directory) run them in
that order and record the cohort-level results on the fitted pipeline (``split_``, ``combinations_``,
``patients_``, ``baseline_``, ``summary_``, ``config_``). Nothing is unpickled: a pipeline is rebuilt
from the data plus :attr:`PrognosisPipeline.config_` (seed, grid, selection and the software versions).
"""

from __future__ import annotations

import csv
import functools
import json
import time as _time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from nbrisk_core.clinical.schema import CLINICAL_VARIABLES, OUTCOME_COLUMNS
from nbrisk_core.cohort.format import read_meta_if_any, table_dtypes
from nbrisk_core.errors import InputError
from nbrisk_core.prognosis.evaluation import DAYS_PER_YEAR, TD_AUC_YEARS, evaluate_by_cohort, summary_of
from nbrisk_core.prognosis.grid import has_survival_function, predict_with_band
from nbrisk_core.prognosis.individual import IndividualPrognosis, describe_imputed
from nbrisk_core.prognosis.inputs import (  # noqa: F401  (re-exported: the engine's input tables)
    BLOCK_COLUMNS,
    CT_COLUMNS,
    RADIOMICS_COLUMNS,
    check_embeddings,
    read_embedding_vector,
    read_embeddings,
    stand_in_embeddings,
)

GRIDS = ("full", "quick", "test", "app")
#: Which candidate features the grid sees: ``both`` (the paper: CT features + clinical variables),
#: ``clinical`` (clinical variables alone: a cohort without images), ``ct`` (CT features alone) or
#: ``radiomics`` (the radiomics rad-score, fitted on the training patients, + clinical variables).
FEATURE_SETS = ("both", "clinical", "ct", "radiomics")

#: The combination ``grid="app"`` fits when none is given: the paper's best (StepCox[backward] + RSF,
#: method.md section 6), which is also the one a full run on the demo cohort is compared with.
APP_DEFAULT_COMBINATION = "StepCox[backward] + RSF"
#: If the app's combination cannot be fitted on a cohort (its selector keeps < 2 features), this one is.
APP_FALLBACK_COMBINATION = "RSF"


def _software_versions() -> dict:
    from nbrisk_core.versions import software_versions

    return software_versions(("numpy", "pandas", "scipy", "scikit-learn", "scikit-survival", "lifelines",
                              "joblib"))


# --------------------------------------------------------------------------------------------
# 1-2. inputs and split
# --------------------------------------------------------------------------------------------


def read_cohort(cohort_dir) -> tuple[pd.DataFrame, pd.DataFrame | None, dict]:
    """``(clinical validated, truth or None, cohort.json or {})`` of a cohort directory."""
    cohort_dir = Path(cohort_dir)
    clinical_path = cohort_dir / "clinical.csv"
    if not clinical_path.exists():
        raise InputError(f"{clinical_path}: not found (a cohort directory holds clinical.csv with patient_id, "
                         "the clinical schema's columns, os_days and os_event; build the demo with "
                         "'nbrisk demo build --out DIR')", source=str(clinical_path))
    from nbrisk_core.prognosis.validation import duplicate_names

    with open(clinical_path, newline="", encoding="utf-8", errors="replace") as handle:
        duplicates = duplicate_names(next(csv.reader(handle), []))
    if duplicates:  # pandas would keep both, the second as "nse.1", and the model would use the first
        raise InputError(f"{clinical_path.name}: header: " + "; ".join(duplicates), source=clinical_path.name)
    raw = pd.read_csv(clinical_path, dtype=table_dtypes())
    for column in ("patient_id", *OUTCOME_COLUMNS):
        if column not in raw.columns:
            raise InputError(f"{clinical_path.name}: column {column!r} is missing (expected patient_id, the "
                             "clinical variables, os_days and os_event)", source=clinical_path.name)
    from nbrisk_core.prognosis.validation import validate_clinical

    clinical = validate_clinical(raw, source=clinical_path.name, allow_extra=True, cohort=True)
    truth_path = cohort_dir / "truth.csv"
    truth = pd.read_csv(truth_path, dtype={"patient_id": str}) if truth_path.exists() else None
    return clinical, truth, read_meta_if_any(cohort_dir)


def missing_embeddings_message(cohort_dir) -> str:
    """What to do when a cohort is fitted with CT features but none were given."""
    return (f"the CT embeddings of cohort {cohort_dir} are missing: make them with "
            f"'nbrisk embed --cohort {cohort_dir} --out FILE.parquet' (needs the shipped classifier, made by "
            "'nbrisk train') and pass --embeddings FILE.parquet (patient_id, ct01..ct16), or fit on the "
            "clinical variables alone (--features clinical)")


def cohort_design(clinical: pd.DataFrame, embeddings: pd.DataFrame | None, features: str = "both"):
    """``(patient ids, X, y)`` of a validated clinical table and a CT feature table.

    ``X`` is indexed by patient id: the CT block (ct01..ct16; ``rad_score`` with ``features="radiomics"``;
    none with ``features="clinical"``) then the encoded clinical variables, missing values kept for the imputer; ``y = Surv.from_arrays(os_event, os_days)``.
    """
    from sksurv.util import Surv

    from nbrisk_core.prognosis.validation import encode_clinical

    if features not in FEATURE_SETS:
        raise InputError(f"features {features!r} is not known (expected one of {', '.join(FEATURE_SETS)})")
    ids = clinical["patient_id"].astype(str).to_numpy()
    if features == "clinical":
        ct = pd.DataFrame(index=pd.Index(ids))
    else:
        columns = BLOCK_COLUMNS[features]
        if embeddings is None:
            raise InputError(f"embeddings: no CT feature table given (expected patient_id + "
                             f"{', '.join(columns) if features == 'radiomics' else 'ct01..ct16'}; "
                             "or features='clinical')")
        embeddings = check_embeddings(embeddings, columns=columns)
        absent = [i for i in ids if i not in embeddings.index]
        if absent:
            raise InputError(f"embeddings: no CT features for {len(absent)} of {len(ids)} patients "
                             f"(e.g. {', '.join(absent[:3])}); expected one row per patient of "
                             "clinical.csv")
        ct = pd.DataFrame(embeddings.loc[ids, columns].to_numpy(dtype=float), columns=columns,
                          index=pd.Index(ids))
    encoded = encode_clinical(clinical)
    encoded.index = ids
    X = pd.concat([ct, encoded], axis=1)
    time = clinical[OUTCOME_COLUMNS[0]].to_numpy(dtype=float)
    event = clinical[OUTCOME_COLUMNS[1]].to_numpy(dtype=int)
    return ids, X, Surv.from_arrays(event.astype(bool), time)


def split_strata(clinical: pd.DataFrame) -> np.ndarray:
    """Strata of the train/test split: the risk group (the paper's), ``unknown`` where it is missing.

    When a stratum has fewer than 2 patients (stratification then fails) or no risk group is known at
    all, the split is stratified by the event indicator instead.
    """
    groups = (clinical["risk_group"] if "risk_group" in clinical.columns
              else pd.Series(np.nan, index=clinical.index))
    strata = groups.astype(object).where(groups.notna(), "unknown").astype(str).to_numpy()
    counts = pd.Series(strata).value_counts()
    if groups.notna().any() and counts.min() >= 2:
        return strata
    return clinical[OUTCOME_COLUMNS[1]].astype(int).astype(str).to_numpy()


def split_cohort(clinical: pd.DataFrame, seed: int = 2025) -> pd.DataFrame:
    """``patient_id, cohort`` (train/test), 8:2 stratified by :func:`split_strata`; InputError when a
    part has too few deaths to fit (5 in training) or evaluate (1 in testing)."""
    from nbrisk_core.split import stratified_split

    split = stratified_split(clinical["patient_id"].astype(str).to_numpy(), split_strata(clinical), seed=seed)
    event = clinical[OUTCOME_COLUMNS[1]].to_numpy(dtype=int)
    train = split["cohort"].to_numpy() == "train"
    if event[train].sum() < 5 or event[~train].sum() < 1:
        raise InputError(f"cohort has {int(event[train].sum())} deaths in training and "
                         f"{int(event[~train].sum())} in testing; at least 5 and 1 are needed")
    return split


# --------------------------------------------------------------------------------------------
# 3. imputation, standardisation, screening
# --------------------------------------------------------------------------------------------


class CohortPreprocessor(BaseEstimator):
    """MICE-PMM imputation of the clinical columns, standardisation and Cox screening.

    ``fit(X, y)`` on the training rows of :func:`cohort_design`'s ``X``. A clinical column no training
    patient has is left out (``notes_`` says so). :meth:`transform` gives the screened, standardised
    design of new rows; the training rows' design is ``training_design_`` (their MICE completion, not a
    re-imputation).

    Attributes
    ----------
    ct_columns_, clinical_columns_, candidate_columns_, features_ : list of str
    imputer_ : MICEPMMImputer
    scaler_ : StandardScaler
    screening_ : DataFrame (see :func:`~nbrisk_core.prognosis.screening.cox_screening`)
    training_standard_ : DataFrame (all candidate columns, standardised)
    training_design_ : ndarray (``features_`` columns)
    notes_ : list of str
    """

    def __init__(self, *, features: str = "both", p_univariate: float = 0.05, p_multivariate: float = 0.2,
                 impute_max_iter: int = 50, seed: int = 2025):
        self.features = features
        self.p_univariate = p_univariate
        self.p_multivariate = p_multivariate
        self.impute_max_iter = impute_max_iter
        self.seed = seed

    def fit(self, X: pd.DataFrame, y):
        from sklearn.preprocessing import StandardScaler

        from nbrisk_core.prognosis.estimators import check_survival_data
        from nbrisk_core.prognosis.impute import MICEPMMImputer
        from nbrisk_core.prognosis.screening import cox_screening
        from nbrisk_core.prognosis.validation import categorical_groups

        _, event, time = check_survival_data(np.zeros((len(X), 0)), y)
        notes: list[str] = []
        self.ct_columns_ = [c for c in X.columns if c in CT_COLUMNS or c in RADIOMICS_COLUMNS]
        clinical = X.drop(columns=self.ct_columns_)
        # a variable no training patient has (a cohort without histology, INSS stage only...) cannot
        # be imputed or modelled: it is left out, and said so
        empty = [c for c in clinical.columns if clinical[c].isna().all()]
        if empty:
            notes.append(f"left out (no value in the training cohort): {', '.join(empty)}")
            clinical = clinical.drop(columns=empty)
        self.clinical_columns_ = list(clinical.columns)
        t0 = _time.perf_counter()
        self.imputer_ = MICEPMMImputer(max_iter=self.impute_max_iter, seed=self.seed,
                                       groups=categorical_groups(clinical.columns)).fit(clinical)
        if not self.imputer_.converged_:
            notes.append(f"MICE-PMM chains were still moving after {self.imputer_.n_iter_} cycles")
        self.impute_seconds_ = _time.perf_counter() - t0
        candidates = pd.concat([X[self.ct_columns_], self.imputer_.completed_], axis=1)
        self.candidate_columns_ = list(candidates.columns)
        self.scaler_ = StandardScaler().fit(candidates.to_numpy(dtype=float))
        self.training_standard_ = self._scale(candidates)
        screened = self.ct_columns_ if self.features == "ct" else self.candidate_columns_
        self.screening_ = cox_screening(self.training_standard_[screened], time, event,
                                        p_univariate=self.p_univariate, p_multivariate=self.p_multivariate)
        notes += self.screening_.attrs.get("notes", [])
        kept = set(self.screening_.loc[self.screening_["kept"], "feature"])
        # keep candidate order (CT first, then clinical) so designs are reproducible
        self.features_ = [c for c in self.candidate_columns_ if c in kept]
        self.training_design_ = self.training_standard_[self.features_].to_numpy()
        self.notes_ = notes
        return self

    def _scale(self, candidates: pd.DataFrame) -> pd.DataFrame:
        values = self.scaler_.transform(candidates[self.candidate_columns_].to_numpy(dtype=float))
        return pd.DataFrame(values, columns=self.candidate_columns_, index=candidates.index)

    def standardise(self, X: pd.DataFrame, *, with_imputed: bool = False):
        """All candidate columns of new rows, imputed (frozen training models) and standardised
        (``(standard, imputed clinical)`` with ``with_imputed=True``)."""
        check_is_fitted(self, "scaler_")
        completed = self.imputer_.transform(X.reindex(columns=self.clinical_columns_))
        ct = X[self.ct_columns_]
        standard = self._scale(pd.concat([ct.set_axis(completed.index), completed], axis=1))
        return (standard, completed) if with_imputed else standard

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Screened, standardised design of new rows (columns ``features_``)."""
        return self.standardise(X)[self.features_].to_numpy()


# --------------------------------------------------------------------------------------------
# 4. the combination grid
# --------------------------------------------------------------------------------------------


def search_combinations(X_train, y_train, X_test, y_test, feature_names, *, grid: str = "full",
                        selected: str | None = None, selection_rule: str = "mean", backend: str = "loky",
                        n_jobs: int = 2, seed: int = 2025, progress: bool = False,
                        scheduler: str | None = None) -> tuple[pd.DataFrame, str, str, list[str]]:
    """Run the grid on a preprocessed design and pick a combination.

    ``grid="app"`` fits only ``selected`` (default :data:`APP_DEFAULT_COMBINATION`) with the full profile,
    falling back to :data:`APP_FALLBACK_COMBINATION` when it cannot be fitted. Returns
    ``(combinations table, selected name, profile, notes)``.
    """
    from nbrisk_core.prognosis import grid as grid_module

    notes: list[str] = []
    if grid == "app":
        profile = "full"
        backend = "sequential"  # one combination: a worker pool would only add start-up time
        pairs = [grid_module.parse_combination(selected or APP_DEFAULT_COMBINATION)]
    else:
        profile = grid
        pairs = None
    scheduler = None if backend == "sequential" else scheduler
    combinations = grid_module.run_grid(X_train, y_train, X_test, y_test, feature_names, pairs=pairs,
                                        profile=profile, backend=backend, n_jobs=n_jobs, seed=seed,
                                        progress=progress, scheduler=scheduler)
    if grid == "app" and (combinations["status"] != "fitted").all():
        reason = combinations["reason"].iloc[0]
        notes.append(f"{pairs[0][0]} + {pairs[0][1]} could not be used on this cohort ({reason}); "
                     f"fitted {APP_FALLBACK_COMBINATION} instead")
        fallback = grid_module.run_grid(X_train, y_train, X_test, y_test, feature_names,
                                        pairs=[grid_module.parse_combination(APP_FALLBACK_COMBINATION)],
                                        profile=profile, backend="sequential", seed=seed)
        combinations = pd.concat([combinations, fallback], ignore_index=True)
    return combinations, grid_module.select_best(combinations, selection_rule), profile, notes


# --------------------------------------------------------------------------------------------
# 5. the fitted pipeline
# --------------------------------------------------------------------------------------------


class PrognosisPipeline(BaseEstimator):
    """Preprocessing + one combination of the grid, fitted on training rows: the MLRS and S(t).

    ``fit(X, y)`` only fits (no split, no grid, no evaluation: :func:`fit_prognosis` does those and
    records their results here as ``split_``, ``combinations_``, ``patients_``, ``baseline_``,
    ``summary_``, ``config_``, ``notes_``).

    Parameters
    ----------
    combination : str
        A combination of the grid (e.g. ``"StepCox[backward] + RSF"``).
    profile : {"full", "quick", "test"}
        Its hyperparameters (:data:`~nbrisk_core.prognosis.grid.PROFILES`).
    features : {"both", "clinical", "ct", "radiomics"}
        Candidate features of the screening (:data:`FEATURE_SETS`).
    p_univariate, p_multivariate : float
        Screening thresholds (paper: 0.05, 0.2).
    impute_max_iter, seed : int
        MICE-PMM cycles; seed of every random step (imputation chains, CV folds, forests).

    Attributes
    ----------
    preprocessor_ : CohortPreprocessor
        (its ``imputer_``, ``scaler_``, ``screening_``, ``features_`` and column lists are copied here).
    model_ : sklearn.pipeline.Pipeline
        ``Pipeline([("select", ...), ("model", ...)])`` on the screened design.
    selected_ : str
    cutoff_ : float
        Training median of the MLRS (high = above).
    train_mlrs_ : ndarray
        Sorted training MLRS (percentiles).
    breslow_ : BreslowEstimator
        Baseline hazard on the MLRS, for S(t) of models without their own survival function.
    """

    def __init__(self, *, combination: str = APP_DEFAULT_COMBINATION, profile: str = "full",
                 features: str = "both", p_univariate: float = 0.05, p_multivariate: float = 0.2,
                 impute_max_iter: int = 50, seed: int = 2025):
        self.combination = combination
        self.profile = profile
        self.features = features
        self.p_univariate = p_univariate
        self.p_multivariate = p_multivariate
        self.impute_max_iter = impute_max_iter
        self.seed = seed

    def fit(self, X: pd.DataFrame, y, *, preprocessor: CohortPreprocessor | None = None):
        """Fit on training rows (:func:`cohort_design`'s ``X`` and ``y``).

        ``preprocessor``: a :class:`CohortPreprocessor` already fitted on this same ``X`` and ``y`` (the
        grid search's), used as is instead of being fitted again.
        """
        from sksurv.linear_model.coxph import BreslowEstimator

        from nbrisk_core.prognosis import grid as grid_module
        from nbrisk_core.prognosis.estimators import event_time_arrays

        if preprocessor is None:
            preprocessor = CohortPreprocessor(features=self.features, p_univariate=self.p_univariate,
                                              p_multivariate=self.p_multivariate,
                                              impute_max_iter=self.impute_max_iter, seed=self.seed).fit(X, y)
        else:
            check_is_fitted(preprocessor, "training_design_")
            if len(preprocessor.training_design_) != len(X):
                raise ValueError(f"preprocessor was fitted on {len(preprocessor.training_design_)} rows, "
                                 f"X has {len(X)}")
        self.preprocessor_ = preprocessor
        for name in ("ct_columns_", "clinical_columns_", "candidate_columns_", "features_", "imputer_",
                     "scaler_", "screening_"):
            setattr(self, name, getattr(preprocessor, name))
        design = preprocessor.training_design_
        self.model_ = grid_module.fit_combination(self.combination, design, y, self.features_,
                                                  profile=self.profile, seed=self.seed)
        self.selected_ = self.combination
        mlrs = np.asarray(self.model_.predict(design), dtype=float)
        event, time = event_time_arrays(y)
        self.cutoff_ = float(np.median(mlrs))
        self.train_mlrs_ = np.sort(mlrs)
        self.breslow_ = BreslowEstimator().fit(mlrs, event, time)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Screened, standardised design of new rows."""
        check_is_fitted(self, "model_")
        return self.preprocessor_.transform(X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """MLRS (higher = worse) of new rows of :func:`cohort_design`'s ``X``."""
        design = self.transform(X)  # NotFittedError before fit
        return np.asarray(self.model_.predict(design), dtype=float)

    def percentile(self, mlrs: float) -> float:
        """Percent of training patients with an MLRS at or below ``mlrs``."""
        return 100.0 * np.searchsorted(self.train_mlrs_, mlrs, side="right") / len(self.train_mlrs_)

    def fit_sha256(self) -> str:
        """SHA-256 that identifies this fitted pipeline: its configuration and the MLRS of every patient.

        The MLRS column depends on the data, the split, the imputation, the screening and the fitted
        model, so two fits share the value only if they score the cohort identically. Computed on
        demand (a shared, cached pipeline is never written to).
        """
        import hashlib

        check_is_fitted(self, "model_")
        if not hasattr(self, "patients_"):  # fitted outside fit_prognosis: its parameters and training MLRS
            digest = hashlib.sha256(json.dumps(self.get_params(), sort_keys=True, default=str).encode())
            digest.update(np.ascontiguousarray(self.train_mlrs_).tobytes())
            return digest.hexdigest()
        digest = hashlib.sha256(json.dumps(self.config_, sort_keys=True, default=str).encode())
        digest.update("\n".join(self.patients_["patient_id"].astype(str)).encode())
        digest.update(np.ascontiguousarray(self.patients_[["time", "event", "mlrs"]].to_numpy(dtype=float))
                      .tobytes())
        return digest.hexdigest()

    def predict_patient(self, embedding, clinical_values) -> IndividualPrognosis:
        """Prognosis of one new patient.

        Parameters
        ----------
        embedding : array-like of 16 floats (or dict/Series with ct01..ct16)
            The patient's CT features.
        clinical_values : dict or one-row DataFrame
            Entered clinical values (validated here, unit-aware); missing ones are imputed from the
            training cohort and listed in ``imputed`` and ``notes``.
        """
        from nbrisk_core.prognosis.validation import decode_clinical, encode_clinical, validate_clinical

        vector = read_embedding_vector(embedding, self.ct_columns_) if self.ct_columns_ else np.empty(0)
        clinical = validate_clinical(clinical_values, require=False)
        if len(clinical) != 1:
            raise InputError(f"clinical values: expected one patient, got {len(clinical)} rows")
        missing_vars = [v.name for v in CLINICAL_VARIABLES
                        if pd.isna(clinical[v.name].iloc[0])]
        encoded = encode_clinical(clinical).reindex(columns=self.clinical_columns_)
        ct = pd.DataFrame(vector[None, :], columns=self.ct_columns_, index=encoded.index)
        standard, completed = self.preprocessor_.standardise(pd.concat([ct, encoded], axis=1),
                                                             with_imputed=True)
        imputed_values = decode_clinical(completed.iloc[0], missing_vars)
        X = standard[self.features_].to_numpy()
        risk, band = predict_with_band(self.model_, X)
        mlrs = float(risk[0])
        notes = []
        if missing_vars:
            filled = ", ".join(describe_imputed(name, imputed_values.get(name)) for name in missing_vars)
            notes.append(f"imputed from the training cohort (MICE predictive mean matching): {filled}")
        low = high = None
        if band is not None:
            times, mean, band_low, band_high = band
            survival, low, high = mean[0], band_low[0], band_high[0]
            notes.append("band: 2.5th-97.5th percentile of the forest's trees (spread, not a confidence "
                         "interval)")
        elif has_survival_function(self.model_):
            function = self.model_.predict_survival_function(X)[0]
            times, survival = np.asarray(function.x, dtype=float), np.asarray(function.y, dtype=float)
        else:
            function = self.breslow_.get_survival_function(np.array([mlrs]))[0]
            times, survival = np.asarray(function.x, dtype=float), np.asarray(function.y, dtype=float)
            notes.append(f"{self.selected_} gives no survival function: S(t) from a Breslow baseline "
                         "on the training MLRS")
        survival = np.minimum.accumulate(np.clip(survival, 0.0, 1.0))  # guard float noise: S is non-increasing
        return IndividualPrognosis(times=times, survival=survival, low=low, high=high, mlrs=mlrs,
                                   percentile=float(self.percentile(mlrs)),
                                   group="high" if mlrs > self.cutoff_ else "low", cutoff=self.cutoff_,
                                   model=self.selected_, imputed=missing_vars, notes=notes,
                                   imputed_values=imputed_values, pipeline_sha256=self.fit_sha256())

    def hazard_table(self) -> pd.DataFrame:
        """Univariate hazard ratios for the forest plot: ``feature, hr, low, high, p``."""
        table = self.screening_[["feature", "hr", "low", "high", "p_univariate", "kept"]]
        return table.rename(columns={"p_univariate": "p"})

    def ct_signal_note(self) -> str | None:
        """A warning to show next to the MLRS when the CT features carry little survival signal here.

        None when at least one CT feature passed screening and is used by the selected model.
        """
        kept = [c for c in self.features_ if c in self.ct_columns_]
        if kept or not self.ct_columns_:
            return None
        p_best = float(self.screening_.loc[self.screening_["feature"].isin(self.ct_columns_),
                                           "p_univariate"].min())
        return (f"None of the {len(self.ct_columns_)} CT features passed Cox screening in this training cohort "
                f"(smallest univariate p = {p_best:.2g}, threshold {self.p_univariate:g}): the MLRS here rests "
                "on the clinical variables alone, and the classifier that produced the CT features should be "
                "checked (its model card gives its AUC on the demo cohort).")


# --------------------------------------------------------------------------------------------
# 6-7. baseline, patients, oracle
# --------------------------------------------------------------------------------------------


def patients_table(ids, cohort, time, event, mlrs, cutoff) -> pd.DataFrame:
    """``patient_id, cohort, time, event, mlrs, mlrs_group`` (high = above ``cutoff``)."""
    return pd.DataFrame({"patient_id": ids, "cohort": cohort, "time": time,
                         "event": np.asarray(event).astype(int), "mlrs": mlrs, "mlrs_group": np.where(mlrs > cutoff, "high", "low")})


class BaselineLassoCox:
    """The paper's benchmark: LASSO-Cox (10-fold CV, lambda.min) on the clinical variables only.

    Made by :func:`fit_baseline`. Attributes: ``model_``
    (:class:`~nbrisk_core.prognosis.estimators.CoxnetCV`),
    ``features_``, ``coefficients_`` (Series), ``cutoff_`` (training median), ``patients_`` (same
    columns as the pipeline's), ``summary_``, ``c_index_train_``, ``c_index_test_``.
    """


def fit_baseline(standard_clinical: pd.DataFrame, y, cohort, *, cv: int = 10,
                 seed: int = 2025) -> BaselineLassoCox:
    """Fit the clinical-only LASSO-Cox on the training rows of a standardised clinical table and score
    every row (the table's index holds the patient ids; ``cohort`` is train/test per row)."""
    import warnings

    from nbrisk_core.prognosis.estimators import CoxnetCV, event_time_arrays

    cohort = np.asarray(cohort)
    train = cohort == "train"
    event, time = event_time_arrays(y)
    baseline = BaselineLassoCox()
    X = standard_clinical.to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        baseline.model_ = CoxnetCV(l1_ratio=1.0, cv=cv, seed=seed).fit(X[train], y[train])
    baseline.features_ = list(standard_clinical.columns)
    baseline.coefficients_ = pd.Series(baseline.model_.coef_, index=baseline.features_, name="coefficient")
    risk = baseline.model_.predict(X)
    baseline.cutoff_ = float(np.median(risk[train]))
    baseline.patients_ = patients_table(list(standard_clinical.index), cohort, time, event, risk,
                                        baseline.cutoff_)
    baseline.summary_ = summary_of(evaluate_by_cohort(baseline.patients_, horizon_days=None, c_index_ci=None),
                                   baseline.cutoff_)
    baseline.c_index_train_ = baseline.summary_["c_index"].get("train")
    baseline.c_index_test_ = baseline.summary_["c_index"].get("test")
    return baseline


def oracle_c_index(truth: pd.DataFrame | None, patients: pd.DataFrame) -> float | None:
    """C-index of the generator's true linear predictor in the testing cohort (synthetic cohorts only)."""
    from nbrisk_core.prognosis.metrics import concordance_index

    if truth is None or "true_linear_predictor" not in truth.columns:
        return None
    lp = truth.set_index(truth["patient_id"].astype(str))["true_linear_predictor"]
    ids = patients["patient_id"].astype(str).to_numpy()
    if not set(ids) <= set(lp.index):
        return None
    test = patients["cohort"].to_numpy() == "test"
    return concordance_index(patients["event"].to_numpy()[test], patients["time"].to_numpy()[test],
                             lp.loc[ids[test]].to_numpy(dtype=float))


# --------------------------------------------------------------------------------------------
# the whole chain on a cohort
# --------------------------------------------------------------------------------------------


def fit_prognosis(clinical: pd.DataFrame, embeddings: pd.DataFrame | None, *,
                  truth: pd.DataFrame | None = None, meta: dict | None = None, grid: str = "full", selected: str | None = None,
                  selection_rule: str = "mean", features: str = "both", p_univariate: float = 0.05,
                  p_multivariate: float = 0.2, backend: str = "loky", n_jobs: int = 2, seed: int = 2025,
                  split_seed: int = 2025, impute_max_iter: int = 50, progress: bool = False,
                  scheduler: str | None = None) -> PrognosisPipeline:
    """Split, preprocess, search the grid, fit the selected pipeline, the baseline, and evaluate.

    ``clinical``: validated (:func:`read_cohort`), with patient_id, os_days, os_event; ``embeddings``: the
    caller's CT feature table (None with ``features="clinical"``). Returns the fitted
    :class:`PrognosisPipeline` with the cohort's results recorded on it.
    """
    if grid not in GRIDS:
        raise InputError(f"grid {grid!r} is not known (expected one of {', '.join(GRIDS)})")
    start = _time.perf_counter()
    timings: dict[str, float] = {}
    ids, X, y = cohort_design(clinical, embeddings, features)
    split = split_cohort(clinical, seed=split_seed)
    cohort = split["cohort"].to_numpy()
    train = cohort == "train"
    event, time = y["event"], y["time"]

    t0 = _time.perf_counter()
    preprocessor = CohortPreprocessor(features=features, p_univariate=p_univariate,
                                      p_multivariate=p_multivariate, impute_max_iter=impute_max_iter, seed=seed).fit(X[train], y[train])
    timings["impute"] = preprocessor.impute_seconds_
    standard = pd.concat([preprocessor.training_standard_, preprocessor.standardise(X[~train])]).loc[ids]
    timings["screening"] = _time.perf_counter() - t0 - timings["impute"]
    notes = list(preprocessor.notes_)
    design = standard[preprocessor.features_].to_numpy()

    t0 = _time.perf_counter()
    combinations, chosen, profile, grid_notes = search_combinations(
        design[train], y[train], design[~train], y[~train], preprocessor.features_, grid=grid,
        selected=selected, selection_rule=selection_rule, backend=backend, n_jobs=n_jobs, seed=seed, progress=progress,
        scheduler=scheduler)
    notes += grid_notes
    timings["grid_cpu"] = float(combinations.attrs.get("cpu_seconds", float("nan")))
    timings["grid"] = _time.perf_counter() - t0

    t0 = _time.perf_counter()
    pipeline = PrognosisPipeline(combination=chosen, profile=profile, features=features,
                                 p_univariate=p_univariate, p_multivariate=p_multivariate, impute_max_iter=impute_max_iter, seed=seed)
    pipeline.fit(X[train], y[train], preprocessor=preprocessor)
    timings["refit_selected"] = _time.perf_counter() - t0
    if getattr(pipeline.model_[-1], "low_memory", False):
        from nbrisk_core.prognosis.grid import FOREST_CURVE_BUDGET_BYTES

        notes.append(f"{chosen}: the forest is too large to keep its trees' survival curves "
                     f"(> {FOREST_CURVE_BUDGET_BYTES / 1e9:.1f} GB); individual S(t) comes from a "
                     "Breslow baseline on the MLRS, without a tree band")
    mlrs = np.asarray(pipeline.model_.predict(design), dtype=float)
    row = combinations.set_index("combination").loc[chosen]
    from nbrisk_core.prognosis.metrics import concordance_index

    refit_c = concordance_index(event[train], time[train], mlrs[train])
    if not np.isclose(refit_c, row["c_index_train"], atol=1e-9):
        notes.append(f"refitted {chosen} has training C-index {refit_c:.4f}, grid had "
                     f"{row['c_index_train']:.4f}")
    # the cut-off and percentiles of the cohort's fit come from the same scoring as its patients table
    pipeline.cutoff_ = float(np.median(mlrs[train]))
    pipeline.train_mlrs_ = np.sort(mlrs[train])
    patients = patients_table(ids, cohort, time, event, mlrs, pipeline.cutoff_)

    t0 = _time.perf_counter()
    baseline = fit_baseline(standard[preprocessor.clinical_columns_], y, cohort, seed=seed)
    timings["baseline"] = _time.perf_counter() - t0

    evaluation = summary_of(evaluate_by_cohort(patients, horizon_days=None, c_index_ci=None),
                            pipeline.cutoff_)
    pipeline.split_ = split
    pipeline.combinations_ = combinations
    pipeline.patients_ = patients
    pipeline.baseline_ = baseline
    pipeline.notes_ = notes
    pipeline.config_ = {
        "grid": grid, "profile": profile, "selected": chosen, "selection_rule": selection_rule, "seed": seed,
        "split_seed": split_seed, "p_univariate": p_univariate, "p_multivariate": p_multivariate,
        "impute_max_iter": impute_max_iter, "features": pipeline.features_, "feature_set": features,
        "candidate_columns": pipeline.candidate_columns_, "n_patients": int(len(ids)),
        "n_train": int(train.sum()), "n_test": int((~train).sum()),
        "synthetic": bool((meta or {}).get("synthetic", False)), "cohort_name": (meta or {}).get("name"),
        "software": _software_versions(),
    }
    imputer = pipeline.imputer_
    summary = {
        "selected": chosen, "selection_rule": selection_rule,
        "c_index_train": evaluation["c_index"].get("train"),
        "c_index_test": evaluation["c_index"].get("test"),
        "cutoff": pipeline.cutoff_, "logrank_p": evaluation["logrank_p"], "td_auc": evaluation["td_auc"],
        "features": pipeline.features_, "feature_set": features,
        "n_combinations": int(len(combinations)),
        "n_fitted": int((combinations["status"] == "fitted").sum()),
        "baseline_lasso_cox": {
            "c_index_train": baseline.c_index_train_, "c_index_test": baseline.c_index_test_,
            "cutoff": baseline.cutoff_, "logrank_p": baseline.summary_["logrank_p"],
            "td_auc": baseline.summary_["td_auc"],
            "features": [f for f, c in baseline.coefficients_.items() if c != 0],
        },
        "imputation": {"n_iter": imputer.n_iter_, "converged": bool(imputer.converged_),
                       "max_ks_d": float(imputer.ks_["d_statistic"].max()) if len(imputer.ks_) else None},
        "notes": notes,
    }
    oracle = oracle_c_index(truth, patients)
    if oracle is not None:
        summary["oracle_c_index_test"] = oracle
    timings["total"] = _time.perf_counter() - start
    summary["seconds"] = timings
    pipeline.summary_ = summary
    return pipeline


def fit_cohort_pipeline(cohort_dir, embeddings: pd.DataFrame | None = None, *, grid: str = "full",
                        backend: str = "loky", n_jobs: int = 2, seed: int = 2025, selected: str | None = None,
                        selection_rule: str = "mean", progress: bool = False,
                        features: str = "both", scheduler: str | None = None) -> PrognosisPipeline:
    """:func:`fit_prognosis` on a cohort directory (clinical.csv [+ truth.csv, cohort.json]).

    Parameters
    ----------
    cohort_dir : path
        Cohort directory (layout in docs/architecture.md).
    embeddings : DataFrame
        CT features indexed by patient_id (ct01..ct16), made by the caller (e.g.
        :func:`nbrisk_core.features.cohort_ct_features`); not needed with ``features="clinical"``.
    grid : {"full", "quick", "test", "app"}
        ``full``/``quick``/``test``: all 117 combinations with that hyperparameter profile; ``app``: only
        ``selected`` (default :data:`APP_DEFAULT_COMBINATION`) with the full profile.
    """
    clinical, truth, meta = read_cohort(cohort_dir)
    if embeddings is None and features != "clinical":
        raise InputError(missing_embeddings_message(cohort_dir))
    return fit_prognosis(clinical, embeddings, truth=truth, meta=meta, grid=grid, backend=backend,
                         n_jobs=n_jobs, seed=seed, selected=selected, selection_rule=selection_rule, progress=progress,
                         features=features, scheduler=scheduler)


#: CT feature tables handed to :func:`predict_from_labs`, by content hash (the cache key of the fit)
_FEATURE_TABLES: dict[str, pd.DataFrame] = {}


def _table_key(table: pd.DataFrame) -> str:
    import hashlib

    table = check_embeddings(table)
    digest = hashlib.sha256("\n".join(table.index).encode())
    digest.update(np.ascontiguousarray(table.to_numpy(dtype=float)).tobytes())
    key = digest.hexdigest()
    _FEATURE_TABLES.setdefault(key, table)
    return key


@functools.lru_cache(maxsize=4)
def _cached_pipeline(cohort_dir: str, embeddings_key: str | None):
    if embeddings_key is None:
        embeddings = None
    elif embeddings_key in _FEATURE_TABLES:
        embeddings = _FEATURE_TABLES[embeddings_key]
    else:
        embeddings = read_embeddings(embeddings_key)
    return fit_cohort_pipeline(cohort_dir, embeddings, grid="app")


def predict_from_labs(embedding, labs_path, cohort_dir=None, *, embeddings: pd.DataFrame | None = None,
                      embeddings_file=None) -> dict:
    """Individual prognosis from a CT embedding and a lab file, as a JSON-able dict.

    Parameters
    ----------
    embedding : sequence of 16 floats, dict with ct01..ct16, or path (JSON/one-row CSV)
        The patient's CT features (hidden layer of Swin-ART).
    labs_path : str or Path
        JSON object ``{variable: value or {"value": v, "unit": u}}`` or a one-row CSV
        (headers may carry units: ``"nse [ug/L]"``). Missing labs are imputed and listed.
    cohort_dir : str or Path, optional
        Cohort the pipeline is fitted on (default: the demo cohort). The fit uses ``grid="app"``
        and is cached per process.
    embeddings : DataFrame, optional
        The cohort's CT feature table, made by the caller (:func:`nbrisk_core.features.cohort_ct_features`).
    embeddings_file : str or Path, optional
        The same table as a parquet/CSV file (``nbrisk embed``). One of the two is needed.
    """
    from nbrisk_core.config import demo_cohort_dir
    from nbrisk_core.prognosis.validation import validate_clinical

    labs = validate_clinical(labs_path, require=False)
    if len(labs) != 1:
        raise InputError(f"{Path(labs_path).name}: expected the values of one patient, got {len(labs)} rows")
    vector = read_embedding_vector(embedding)
    cohort = Path(cohort_dir) if cohort_dir is not None else demo_cohort_dir()
    if embeddings is not None:
        key = _table_key(embeddings)
    else:
        key = str(Path(embeddings_file).resolve()) if embeddings_file else None
    pipeline = _cached_pipeline(str(Path(cohort).resolve()), key)
    result = pipeline.predict_patient(vector, labs).to_dict()
    result["cohort"] = str(cohort)
    result["synthetic"] = bool(pipeline.config_.get("synthetic", False))
    return result
