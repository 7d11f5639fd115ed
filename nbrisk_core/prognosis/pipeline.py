"""The fitted prognosis pipeline: clinical data + CT features -> MLRS and survival.

Steps (``../shared/spec/method.md`` sections 4-7), all fitted on the training cohort only:

1. validate the clinical table against the schema (:mod:`~nbrisk_core.prognosis.validation`);
2. split 8:2 stratified by risk group with :func:`nbrisk_core.split.stratified_split` (seed 2025),
   the same split as the classifier;
3. encode the clinical variables, impute missing ones by MICE-PMM (:mod:`~nbrisk_core.prognosis.impute`);
4. standardise CT features + clinical features (mean 0, variance 1);
5. screen features by univariate then multivariate Cox (:mod:`~nbrisk_core.prognosis.screening`);
6. fit the combination grid and select a combination (:mod:`~nbrisk_core.prognosis.grid`);
7. MLRS = the selected model's risk; high/low cut-off = training median, frozen;
8. baseline: LASSO-Cox on clinical variables only, evaluated the same way.

Nothing is unpickled: a pipeline is rebuilt from the data plus :attr:`PrognosisPipeline.config_`
(seed, grid, selection and the software versions) with :func:`fit_cohort_pipeline`.
"""

from __future__ import annotations

import csv
import json
import time as _time
from pathlib import Path

import numpy as np
import pandas as pd

from nbrisk_core.clinical.schema import CLINICAL_VARIABLES, OUTCOME_COLUMNS
from nbrisk_core.cohort.format import read_meta_if_any, table_dtypes
from nbrisk_core.errors import InputError
from nbrisk_core.prognosis.individual import IndividualPrognosis, describe_imputed

CT_COLUMNS: list[str] = [f"ct{i:02d}" for i in range(1, 17)]
DAYS_PER_YEAR = 365.25
TD_AUC_YEARS = (1, 3, 5, 7)
GRIDS = ("full", "quick", "test", "app")
#: Which candidate features the grid sees: ``both`` (the paper: CT features + clinical variables),
#: ``clinical`` (clinical variables alone: a cohort without images) or ``ct`` (CT features alone).
FEATURE_SETS = ("both", "clinical", "ct")

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
# inputs: cohort tables and embeddings
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


def check_embeddings(embeddings: pd.DataFrame, source: str = "embeddings") -> pd.DataFrame:
    """Embedding table indexed by patient_id with finite ct01..ct16 (InputError otherwise)."""
    if not isinstance(embeddings, pd.DataFrame):
        raise InputError(f"{source}: expected a table indexed by patient_id with columns ct01..ct16, "
                         f"got {type(embeddings).__name__}")
    table = embeddings
    if "patient_id" in table.columns:
        table = table.set_index("patient_id")
    missing = [c for c in CT_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{source}: columns {', '.join(missing)} are missing (expected ct01..ct16)",
                         source=source)
    table = table[CT_COLUMNS].apply(pd.to_numeric, errors="coerce")
    table.index = table.index.astype(str)
    bad = table.index[~np.isfinite(table.to_numpy()).all(axis=1)]
    if len(bad):
        raise InputError(f"{source}: patient {bad[0]} has a missing or non-numeric CT feature "
                         f"({len(bad)} patient(s) in all); expected 16 finite numbers", source=source)
    if table.index.duplicated().any():
        raise InputError(f"{source}: patient {table.index[table.index.duplicated()][0]} appears twice",
                         source=source)
    return table


def read_embeddings(path) -> pd.DataFrame:
    """Embedding table from a parquet or CSV file (``patient_id`` + ct01..ct16)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: embedding file not found (expected parquet or CSV with patient_id and "
                         "ct01..ct16)", source=str(path))
    if path.suffix.lower() == ".parquet":
        table = pd.read_parquet(path)
        if table.index.name == "patient_id":
            table = table.reset_index()
    elif path.suffix.lower() == ".csv":
        table = pd.read_csv(path, dtype={"patient_id": str})
    else:
        raise InputError(f"{path.name}: unsupported embedding file type {path.suffix!r} "
                         "(expected .parquet or .csv)", source=path.name)
    if "patient_id" not in table.columns:
        raise InputError(f"{path.name}: column 'patient_id' is missing", source=path.name)
    return check_embeddings(table, source=path.name)


def load_cohort_embeddings(cohort_dir) -> pd.DataFrame:
    """CT embeddings of a cohort from the classifier (InputError saying how to make them if absent).

    Uses :func:`nbrisk_core.classifier.embeddings.cohort_embeddings` (cached by model SHA-256) when the
    shipped Swin-ART model exists.
    """
    from nbrisk_core.classifier.model_io import shipped_model_path

    model_path = shipped_model_path("art", cohort_dir)   # the cohort's own models/ first
    how = (f"the CT embeddings of cohort {cohort_dir} are missing: make them with "
           f"'nbrisk embed --cohort {cohort_dir} --out FILE.parquet' (needs the shipped classifier "
           f"{model_path}, made by 'nbrisk train') and pass --embeddings "
           "FILE.parquet (patient_id, ct01..ct16)")
    try:
        from nbrisk_core.classifier.embeddings import cohort_embeddings
    except ImportError as error:
        raise InputError(how) from error
    if not model_path.exists():
        raise InputError(how)
    return check_embeddings(cohort_embeddings(Path(cohort_dir)), source="classifier embeddings")


def stand_in_embeddings(truth: pd.DataFrame, seed: int = 2025, signal: float = 0.6) -> pd.DataFrame:
    """STAND-IN CT features for tests and benchmarks only -- NOT the classifier's embeddings.

    Sixteen columns shaped like the Swin-ART hidden layer: six carry a noisy copy of the cohort's
    ``latent_score`` (weight ``signal``), ten are noise. They let the prognosis engine be tested and
    timed before (and independently of) the trained classifier; every caller labels results made
    with them as stand-in.
    """
    rng = np.random.default_rng(seed)
    latent = truth["latent_score"].to_numpy(dtype=float)
    latent = (latent - latent.mean()) / (latent.std() or 1.0)
    values = rng.normal(size=(len(truth), len(CT_COLUMNS)))
    for k, column in enumerate((2, 5, 6, 9, 12, 14)):  # cf. the paper's features 3, 6, 7, 10, 13, 15
        values[:, column] = signal * (1 if k % 2 == 0 else -1) * latent + np.sqrt(1 - signal ** 2) * values[:, column]
    return pd.DataFrame(values, index=pd.Index(truth["patient_id"].astype(str), name="patient_id"),
                        columns=CT_COLUMNS)


# --------------------------------------------------------------------------------------------
# evaluation shared by the MLRS and the baseline
# --------------------------------------------------------------------------------------------


def _evaluate(patients: pd.DataFrame, cutoff: float) -> dict:
    """C-index, log-rank p of high vs low and td-AUC at 1/3/5/7 years, per cohort."""
    from nbrisk_core.prognosis import metrics

    out: dict = {"c_index": {}, "logrank_p": {}, "td_auc": {}}
    train = patients[patients["cohort"] == "train"]
    for cohort, part in patients.groupby("cohort"):
        event, time, risk = part["event"].to_numpy(), part["time"].to_numpy(), part["mlrs"].to_numpy()
        try:
            out["c_index"][cohort] = metrics.concordance_index(event, time, risk)
        except InputError:
            out["c_index"][cohort] = None
        groups = part["mlrs_group"].to_numpy()
        out["logrank_p"][cohort] = (metrics.logrank_test(time, event, groups).p_value
                                    if len(set(groups.tolist())) > 1 else None)
        aucs = metrics.time_dependent_auc(event, time, risk, [DAYS_PER_YEAR * y for y in TD_AUC_YEARS],
                                          train_event=train["event"].to_numpy(), train_time=train["time"].to_numpy())
        out["td_auc"][cohort] = {str(y): ([None, None, None] if np.isnan(a.auc) else [a.auc, a.low, a.high])
                                 for y, a in zip(TD_AUC_YEARS, aucs)}
    out["cutoff"] = float(cutoff)
    return out


def _patients_table(ids, cohort, time, event, mlrs, cutoff) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": ids, "cohort": cohort, "time": time, "event": event.astype(int),
                         "mlrs": mlrs, "mlrs_group": np.where(mlrs > cutoff, "high", "low")})


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


class BaselineLassoCox:
    """The paper's benchmark: LASSO-Cox (10-fold CV, lambda.min) on the clinical variables only.

    Attributes after :meth:`fit`: ``model_`` (:class:`~nbrisk_core.prognosis.estimators.CoxnetCV`),
    ``features_``, ``coefficients_`` (Series), ``cutoff_`` (training median), ``patients_``
    (same columns as the pipeline's), ``c_index_train_``, ``c_index_test_``, ``summary_``.
    """

    def __init__(self, cv: int = 10, seed: int = 2025):
        self.cv = cv
        self.seed = seed

    def fit(self, X: pd.DataFrame, time, event, cohort, patient_ids):
        import warnings

        from sksurv.util import Surv

        from nbrisk_core.prognosis.estimators import CoxnetCV

        cohort = np.asarray(cohort)
        train = cohort == "train"
        time = np.asarray(time, dtype=float)
        event = np.asarray(event, dtype=int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model_ = CoxnetCV(l1_ratio=1.0, cv=self.cv, seed=self.seed).fit(
                X.to_numpy()[train], Surv.from_arrays(event[train].astype(bool), time[train]))
        self.features_ = list(X.columns)
        self.coefficients_ = pd.Series(self.model_.coef_, index=self.features_, name="coefficient")
        risk = self.model_.predict(X.to_numpy())
        self.cutoff_ = float(np.median(risk[train]))
        self.patients_ = _patients_table(list(patient_ids), cohort, time, event, risk, self.cutoff_)
        self.summary_ = _evaluate(self.patients_, self.cutoff_)
        self.c_index_train_ = self.summary_["c_index"].get("train")
        self.c_index_test_ = self.summary_["c_index"].get("test")
        return self


# --------------------------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------------------------


class PrognosisPipeline:
    """Prognosis engine fitted on one cohort (see the module docstring for the steps).

    Parameters
    ----------
    grid : {"full", "quick", "test", "app"}
        ``full``/``quick``/``test``: all 117 combinations with that hyperparameter profile;
        ``app``: only ``selected`` (default :data:`APP_DEFAULT_COMBINATION`) with the full profile,
        fast enough to fit when the dashboard starts.
    selected : str, optional
        With ``grid="app"``: the combination to fit (e.g. the ``selected`` of a full run's summary.json).
    selection_rule : {"mean", "test", "train"}
        How the grid's best combination is chosen (paper: mean of training and testing C-index).
    p_univariate, p_multivariate : float
        Screening thresholds (paper: 0.05, 0.2).
    backend, n_jobs : str, int
        joblib backend (or ``dask``) and workers for the grid.
    scheduler : str, optional
        With ``backend="dask"``: the address of a running Dask scheduler (default: a LocalCluster).
    seed : int
        Seed of every random step (imputation chains, CV folds, forests).
    split_seed : int
        Seed of the train/test split (shared with the classifier).
    features : {"both", "clinical", "ct"}
        Candidate features of the screening and the grid (:data:`FEATURE_SETS`); with ``clinical`` no
        embeddings are needed. The clinical-only LASSO-Cox baseline is fitted in every case.
    """

    def __init__(self, *, grid: str = "full", selected: str | None = None, selection_rule: str = "mean",
                 p_univariate: float = 0.05, p_multivariate: float = 0.2, backend: str = "loky",
                 n_jobs: int = 2, seed: int = 2025, split_seed: int = 2025, impute_max_iter: int = 50,
                 progress: bool = False, features: str = "both", scheduler: str | None = None):
        if grid not in GRIDS:
            raise InputError(f"grid {grid!r} is not known (expected one of {', '.join(GRIDS)})")
        if features not in FEATURE_SETS:
            raise InputError(f"features {features!r} is not known "
                             f"(expected one of {', '.join(FEATURE_SETS)})")
        self.features = features
        self.grid = grid
        self.selected = selected
        self.selection_rule = selection_rule
        self.p_univariate = p_univariate
        self.p_multivariate = p_multivariate
        self.backend = backend
        self.n_jobs = n_jobs
        self.scheduler = scheduler
        self.seed = seed
        self.split_seed = split_seed
        self.impute_max_iter = impute_max_iter
        self.progress = progress

    # -- design ------------------------------------------------------------------------------

    def _candidates(self, clinical_encoded: pd.DataFrame, ct: np.ndarray) -> pd.DataFrame:
        frame = pd.DataFrame(ct, columns=self.ct_columns_, index=clinical_encoded.index)
        return pd.concat([frame, clinical_encoded], axis=1)

    def _standardise(self, candidates: pd.DataFrame) -> pd.DataFrame:
        values = self.scaler_.transform(candidates[self.candidate_columns_].to_numpy(dtype=float))
        return pd.DataFrame(values, columns=self.candidate_columns_, index=candidates.index)

    # -- fit ---------------------------------------------------------------------------------

    def fit(self, clinical: pd.DataFrame, embeddings: pd.DataFrame, truth: pd.DataFrame | None = None,
            meta: dict | None = None):
        """Fit on a validated clinical table (with patient_id, os_days, os_event) and CT embeddings."""
        from sklearn.preprocessing import StandardScaler
        from sksurv.util import Surv

        from nbrisk_core.prognosis import grid as grid_module
        from nbrisk_core.prognosis.impute import MICEPMMImputer
        from nbrisk_core.prognosis.screening import cox_screening
        from nbrisk_core.prognosis.validation import categorical_groups, encode_clinical
        from nbrisk_core.split import stratified_split

        start = _time.perf_counter()
        timings: dict[str, float] = {}
        notes: list[str] = []
        ids = clinical["patient_id"].astype(str).to_numpy()
        if self.features == "clinical":
            self.ct_columns_ = []
            ct = np.empty((len(ids), 0))
        else:
            embeddings = check_embeddings(embeddings)
            absent = [i for i in ids if i not in embeddings.index]
            if absent:
                raise InputError(f"embeddings: no CT features for {len(absent)} of {len(ids)} patients "
                                 f"(e.g. {', '.join(absent[:3])}); expected one row per patient of "
                                 "clinical.csv")
            self.ct_columns_ = list(CT_COLUMNS)
            ct = embeddings.loc[ids, CT_COLUMNS].to_numpy(dtype=float)
        time = clinical[OUTCOME_COLUMNS[0]].to_numpy(dtype=float)
        event = clinical[OUTCOME_COLUMNS[1]].to_numpy(dtype=int)

        self.split_ = stratified_split(ids, split_strata(clinical), seed=self.split_seed)
        cohort = self.split_["cohort"].to_numpy()
        train = cohort == "train"
        if event[train].sum() < 5 or event[~train].sum() < 1:
            raise InputError(f"cohort has {int(event[train].sum())} deaths in training and "
                             f"{int(event[~train].sum())} in testing; at least 5 and 1 are needed")

        # 3. encode + impute (training only; testing patients imputed with the frozen models)
        t0 = _time.perf_counter()
        encoded = encode_clinical(clinical)
        encoded.index = ids
        # a variable no training patient has (a cohort without histology, INSS stage only...) cannot
        # be imputed or modelled: it is left out, and said so
        empty = [c for c in encoded.columns if encoded.loc[train, c].isna().all()]
        if empty:
            notes.append(f"left out (no value in the training cohort): {', '.join(empty)}")
            encoded = encoded.drop(columns=empty)
        self.clinical_columns_ = list(encoded.columns)
        self.imputer_ = MICEPMMImputer(max_iter=self.impute_max_iter, seed=self.seed,
                                       groups=categorical_groups(encoded.columns)).fit(encoded[train])
        imputed = pd.concat([self.imputer_.completed_, self.imputer_.transform(encoded[~train])]).loc[ids]
        if not self.imputer_.converged_:
            notes.append(f"MICE-PMM chains were still moving after {self.imputer_.n_iter_} cycles")
        timings["impute"] = _time.perf_counter() - t0

        # 4. standardise on training
        candidates = self._candidates(imputed, ct)
        self.candidate_columns_ = list(candidates.columns)
        self.scaler_ = StandardScaler().fit(candidates[train].to_numpy(dtype=float))
        standard = self._standardise(candidates)

        # 5. screening
        t0 = _time.perf_counter()
        screened = self.ct_columns_ if self.features == "ct" else self.candidate_columns_
        self.screening_ = cox_screening(standard.loc[train, screened], time[train], event[train],
                                        p_univariate=self.p_univariate, p_multivariate=self.p_multivariate)
        notes += self.screening_.attrs.get("notes", [])
        self.features_ = self.screening_.loc[self.screening_["kept"], "feature"].tolist()
        # keep candidate order (CT first, then clinical) so designs are reproducible
        self.features_ = [c for c in self.candidate_columns_ if c in self.features_]
        timings["screening"] = _time.perf_counter() - t0

        # 6. grid + selection
        t0 = _time.perf_counter()
        X = standard[self.features_].to_numpy()
        y = Surv.from_arrays(event.astype(bool), time)
        backend = self.backend
        if self.grid == "app":
            profile = "full"
            backend = "sequential"  # one combination: a worker pool would only add start-up time
            name = self.selected or APP_DEFAULT_COMBINATION
            pairs = [grid_module.parse_combination(name)]
        else:
            profile = self.grid
            pairs = None
        scheduler = None if backend == "sequential" else self.scheduler
        self.combinations_ = grid_module.run_grid(X[train], y[train], X[~train], y[~train], self.features_,
                                                  pairs=pairs, profile=profile, backend=backend,
                                                  n_jobs=self.n_jobs, seed=self.seed, progress=self.progress,
                                                  scheduler=scheduler)
        if self.grid == "app" and (self.combinations_["status"] != "fitted").all():
            reason = self.combinations_["reason"].iloc[0]
            notes.append(f"{pairs[0][0]} + {pairs[0][1]} could not be used on this cohort ({reason}); "
                         f"fitted {APP_FALLBACK_COMBINATION} instead")
            fallback = grid_module.run_grid(X[train], y[train], X[~train], y[~train], self.features_,
                                            pairs=[grid_module.parse_combination(APP_FALLBACK_COMBINATION)],
                                            profile=profile, backend="sequential", seed=self.seed)
            self.combinations_ = pd.concat([self.combinations_, fallback], ignore_index=True)
        timings["grid_cpu"] = float(self.combinations_.attrs.get("cpu_seconds", float("nan")))
        self.selected_ = grid_module.select_best(self.combinations_, self.selection_rule)
        timings["grid"] = _time.perf_counter() - t0

        # rebuild the selected model in this process (same data, settings and seed as in the grid)
        t0 = _time.perf_counter()
        self.model_ = grid_module.fit_combination(self.selected_, X[train], y[train], self.features_,
                                                  profile=profile, seed=self.seed)
        timings["refit_selected"] = _time.perf_counter() - t0
        if getattr(self.model_.predictor_, "low_memory", False):
            notes.append(f"{self.selected_}: the forest is too large to keep its trees' survival curves "
                         f"(> {grid_module.FOREST_CURVE_BUDGET_BYTES / 1e9:.1f} GB); individual S(t) comes from a "
                         "Breslow baseline on the MLRS, without a tree band")
        mlrs = self.model_.predict(X)
        row = self.combinations_.set_index("combination").loc[self.selected_]
        from nbrisk_core.prognosis.metrics import concordance_index

        refit_c = concordance_index(event[train], time[train], mlrs[train])
        if not np.isclose(refit_c, row["c_index_train"], atol=1e-9):
            notes.append(f"refitted {self.selected_} has training C-index {refit_c:.4f}, grid had "
                         f"{row['c_index_train']:.4f}")

        # 7. MLRS and frozen cut-off
        self.cutoff_ = float(np.median(mlrs[train]))
        self.train_mlrs_ = np.sort(mlrs[train])
        self.patients_ = _patients_table(ids, cohort, time, event, mlrs, self.cutoff_)
        # a Breslow baseline on the MLRS gives S(t) for models without their own survival function
        from sksurv.linear_model.coxph import BreslowEstimator

        self._breslow_on_mlrs = BreslowEstimator().fit(mlrs[train], event[train], time[train])

        # 8. baseline LASSO-Cox on clinical variables only
        t0 = _time.perf_counter()
        self.baseline_ = BaselineLassoCox(seed=self.seed).fit(standard[self.clinical_columns_], time, event,
                                                               cohort, ids)
        timings["baseline"] = _time.perf_counter() - t0

        evaluation = _evaluate(self.patients_, self.cutoff_)
        self.notes_ = notes
        self.config_ = {
            "grid": self.grid, "profile": profile, "selected": self.selected_,
            "selection_rule": self.selection_rule, "seed": self.seed, "split_seed": self.split_seed,
            "p_univariate": self.p_univariate, "p_multivariate": self.p_multivariate,
            "impute_max_iter": self.impute_max_iter, "features": self.features_,
            "feature_set": self.features,
            "candidate_columns": self.candidate_columns_, "n_patients": int(len(ids)),
            "n_train": int(train.sum()), "n_test": int((~train).sum()),
            "synthetic": bool((meta or {}).get("synthetic", False)), "cohort_name": (meta or {}).get("name"),
            "software": _software_versions(),
        }
        summary = {
            "selected": self.selected_, "selection_rule": self.selection_rule,
            "c_index_train": evaluation["c_index"].get("train"), "c_index_test": evaluation["c_index"].get("test"),
            "cutoff": self.cutoff_, "logrank_p": evaluation["logrank_p"], "td_auc": evaluation["td_auc"],
            "features": self.features_, "feature_set": self.features,
            "n_combinations": int(len(self.combinations_)),
            "n_fitted": int((self.combinations_["status"] == "fitted").sum()),
            "baseline_lasso_cox": {
                "c_index_train": self.baseline_.c_index_train_, "c_index_test": self.baseline_.c_index_test_,
                "cutoff": self.baseline_.cutoff_, "logrank_p": self.baseline_.summary_["logrank_p"],
                "td_auc": self.baseline_.summary_["td_auc"],
                "features": [f for f, c in self.baseline_.coefficients_.items() if c != 0],
            },
            "imputation": {"n_iter": self.imputer_.n_iter_, "converged": bool(self.imputer_.converged_),
                           "max_ks_d": float(self.imputer_.ks_["d_statistic"].max())
                           if len(self.imputer_.ks_) else None},
            "notes": notes,
        }
        if truth is not None and "true_linear_predictor" in truth.columns:
            lp = truth.set_index(truth["patient_id"].astype(str))["true_linear_predictor"]
            test = ~train
            if lp.index.isin(ids).all() or set(ids) <= set(lp.index):
                summary["oracle_c_index_test"] = concordance_index(event[test], time[test],
                                                                   lp.loc[ids[test]].to_numpy(dtype=float))
        timings["total"] = _time.perf_counter() - start
        summary["seconds"] = timings
        self.summary_ = summary
        return self

    # -- use ---------------------------------------------------------------------------------

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
        from nbrisk_core.prognosis.individual import read_embedding_vector
        from nbrisk_core.prognosis.validation import decode_clinical, encode_clinical, validate_clinical

        vector = read_embedding_vector(embedding) if self.ct_columns_ else np.empty(0)
        clinical = validate_clinical(clinical_values, require=False)
        if len(clinical) != 1:
            raise InputError(f"clinical values: expected one patient, got {len(clinical)} rows")
        missing_vars = [v.name for v in CLINICAL_VARIABLES
                        if pd.isna(clinical[v.name].iloc[0])]
        encoded = encode_clinical(clinical).reindex(columns=self.clinical_columns_)
        completed = self.imputer_.transform(encoded)
        imputed_values = decode_clinical(completed.iloc[0], missing_vars)
        standard = self._standardise(self._candidates(completed, vector[None, :]))
        X = standard[self.features_].to_numpy()
        risk, band = self.model_.predict_with_band(X)
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
        elif self.model_.has_survival_function:
            function = self.model_.predict_survival_function(X)[0]
            times, survival = np.asarray(function.x, dtype=float), np.asarray(function.y, dtype=float)
        else:
            function = self._breslow_on_mlrs.get_survival_function(np.array([mlrs]))[0]
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
        kept = [c for c in self.features_ if c in CT_COLUMNS]
        if kept or not self.ct_columns_:
            return None
        p_best = float(self.screening_.loc[self.screening_["feature"].isin(CT_COLUMNS), "p_univariate"].min())
        return (f"None of the {len(CT_COLUMNS)} CT features passed Cox screening in this training cohort "
                f"(smallest univariate p = {p_best:.2g}, threshold {self.p_univariate:g}): the MLRS here rests "
                "on the clinical variables alone, and the classifier that produced the CT features should be "
                "checked (its model card gives its AUC on the demo cohort).")


def fit_cohort_pipeline(cohort_dir, embeddings: pd.DataFrame | None = None, *, grid: str = "full",
                        backend: str = "loky", n_jobs: int = 2, seed: int = 2025, selected: str | None = None,
                        selection_rule: str = "mean", progress: bool = False,
                        features: str = "both", scheduler: str | None = None) -> PrognosisPipeline:
    """Fit the prognosis pipeline on a cohort directory (clinical.csv [+ truth.csv, cohort.json]).

    Parameters
    ----------
    cohort_dir : path
        Cohort directory (layout in docs/architecture.md).
    embeddings : DataFrame, optional
        CT features indexed by patient_id (ct01..ct16). Default: the classifier's
        ``cohort_embeddings(cohort_dir)`` when the shipped model exists; otherwise an InputError
        says how to make them.
    grid : {"full", "quick", "test", "app"}
        See :class:`PrognosisPipeline`.
    features : {"both", "clinical", "ct"}
        See :class:`PrognosisPipeline`; ``clinical`` needs no embeddings.
    """
    clinical, truth, meta = read_cohort(cohort_dir)
    if embeddings is None and features != "clinical":
        embeddings = load_cohort_embeddings(cohort_dir)
    pipeline = PrognosisPipeline(grid=grid, backend=backend, n_jobs=n_jobs, seed=seed, selected=selected,
                                 selection_rule=selection_rule, progress=progress, features=features,
                                 scheduler=scheduler)
    return pipeline.fit(clinical, embeddings, truth=truth, meta=meta)
