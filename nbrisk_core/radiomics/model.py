"""A radiomics model as the field builds them (issue 22 item 3), on a cohort's chosen slices.

1. **Robustness**: every feature is extracted with the tumour mask and two perturbed contours (eroded
   and dilated by one pixel, a contour-perturbation scheme after Zwanenburg et al., Sci Rep 2019); a
   feature is kept when its ICC(2,1) (two-way random, absolute agreement, single rater; Shrout &
   Fleiss 1979) over the three contours is >= 0.75. Computed on the training patients only.
2. Inside cross-validation (the whole chain is one scikit-learn pipeline refitted in every fold):
   standardisation, **redundancy removal** (of any pair with |Spearman rho| > 0.9 the later one goes),
   **LASSO selection** (L1 logistic regression, its C tuned by the outer grid) and a **logistic model**
   (L2) for high risk on the selected features; LDA (shrinkage) and a linear SVM are fitted the same
   way and reported beside it (the logistic head is the one compared with other scores).
3. Test AUC with DeLong 95 % CI on the held-out split, and a paired DeLong test against another score
   on the same patients (Swin-ART's p(HR), the oracle's).
4. The rad-score (the logistic head's linear predictor) as a survival score: Harrell's C on the test split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, TransformerMixin

from nbrisk_core.errors import InputError

ICC_MIN = 0.75
REDUNDANCY_RHO = 0.9


def icc_2_1(ratings: np.ndarray) -> float:
    """ICC(2,1) of an ``(n subjects, k raters)`` array (Shrout & Fleiss 1979, absolute agreement)."""
    x = np.asarray(ratings, dtype=np.float64)
    n, k = x.shape
    grand = x.mean()
    ms_r = k * ((x.mean(1) - grand) ** 2).sum() / (n - 1)
    ms_c = n * ((x.mean(0) - grand) ** 2).sum() / (k - 1)
    ss_e = ((x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + grand) ** 2).sum()
    ms_e = ss_e / ((n - 1) * (k - 1))
    den = ms_r + (k - 1) * ms_e + k * (ms_c - ms_e) / n
    return float((ms_r - ms_e) / den) if den > 0 else float("nan")


def perturbed_masks(mask: np.ndarray) -> dict[str, np.ndarray]:
    """The mask, eroded by one pixel and dilated by one pixel (4-connected); erosion falls back to
    the mask itself when it would empty it."""
    from scipy import ndimage

    m = np.asarray(mask).astype(bool)
    eroded = ndimage.binary_erosion(m)
    return {"mask": m, "eroded": eroded if eroded.any() else m, "dilated": ndimage.binary_dilation(m)}


class RedundancyFilter(BaseEstimator, TransformerMixin):
    """Drop the later feature of every pair with |Spearman rho| > ``threshold`` (fitted on the fold)."""

    def __init__(self, threshold: float = REDUNDANCY_RHO):
        self.threshold = threshold

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = np.atleast_2d(np.corrcoef(stats.rankdata(X, axis=0), rowvar=False))  # Spearman
        rho = np.abs(np.nan_to_num(rho, nan=0.0))
        keep: list[int] = []
        for j in range(X.shape[1]):
            if all(rho[j, i] <= self.threshold for i in keep):
                keep.append(j)
        self.keep_ = np.array(keep, dtype=int)
        return self

    def transform(self, X):
        return np.asarray(X, dtype=np.float64)[:, self.keep_]


class LassoSelector(BaseEstimator, TransformerMixin):
    """Keep the features with a non-zero coefficient in an L1 logistic regression (at least one)."""

    def __init__(self, C: float = 0.1, seed: int = 0):
        self.C = C
        self.seed = seed

    def fit(self, X, y):
        from sklearn.linear_model import LogisticRegression

        lasso = LogisticRegression(l1_ratio=1.0, C=self.C, solver="liblinear", random_state=self.seed,
                                   max_iter=2000)
        lasso.fit(X, y)
        coef = np.abs(lasso.coef_.ravel())
        self.keep_ = np.flatnonzero(coef > 1e-8)
        if self.keep_.size == 0:
            self.keep_ = np.array([int(np.argmax(coef))])
        return self

    def transform(self, X):
        return np.asarray(X)[:, self.keep_]


def _head(name: str, seed: int):
    """The classifier heads the radiomics literature uses, with their tuning grids (data, not ifs)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    heads = {
        "logistic": (LogisticRegression(C=1.0, max_iter=2000), {"head__C": [0.1, 1.0]}),
        "lda": (LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"), {}),
        "svm": (SVC(kernel="linear", C=1.0, random_state=seed), {"head__C": [0.01, 0.1, 1.0]}),
    }
    if name not in heads:
        raise InputError(f"head {name!r}: expected one of {', '.join(heads)}")
    return heads[name]


HEADS = ("logistic", "lda", "svm")


def make_pipeline(seed: int = 0, head: str = "logistic"):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("redundancy", RedundancyFilter()),
                     ("lasso", LassoSelector(seed=seed)), ("head", _head(head, seed)[0])])


@dataclass
class RadiomicsModel:
    """The fitted model and what it was built from."""

    search: object
    robust_features: list[str]
    icc: pd.Series
    selected_features: list[str] = field(default_factory=list)

    def predict_score(self, features: pd.DataFrame) -> np.ndarray:
        """p(HR) for logistic and LDA heads; the SVM's decision value (AUC needs a ranking only)."""
        X = features[self.robust_features].to_numpy()
        if hasattr(self.search.best_estimator_, "predict_proba"):
            return self.search.predict_proba(X)[:, 1]
        return self.search.decision_function(X)


def fit(features: pd.DataFrame, y: np.ndarray, icc: pd.Series, seed: int = 0,
        folds: int = 5, head: str = "logistic") -> RadiomicsModel:
    """Fit on the training patients: robust features (ICC >= 0.75) -> CV-tuned pipeline."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    robust = [c for c in features.columns if icc.get(c, np.nan) >= ICC_MIN and features[c].std() > 0]
    if not robust:
        raise InputError(f"no feature reaches ICC >= {ICC_MIN} between the perturbed contours")
    grid = {"lasso__C": [0.01, 0.03, 0.1, 0.3, 1.0], **_head(head, seed)[1]}
    search = GridSearchCV(make_pipeline(seed, head), grid, scoring="roc_auc",
                          cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    search.fit(features[robust].to_numpy(), y)
    pipe = search.best_estimator_
    kept = np.asarray(robust)[pipe.named_steps["redundancy"].keep_][pipe.named_steps["lasso"].keep_]
    return RadiomicsModel(search, robust, icc, list(kept))


def delong_paired(y, score_a, score_b) -> dict:
    """Paired DeLong test of two AUCs on the same patients: ``{auc_a, auc_b, diff, z, p}``."""
    from nbrisk_core.classifier.metrics import _delong_components

    y = np.asarray(y).astype(int)
    a, v01a, v10a = _delong_components(y, np.asarray(score_a, dtype=np.float64))
    b, v01b, v10b = _delong_components(y, np.asarray(score_b, dtype=np.float64))
    s01 = np.cov(np.vstack([v01a, v01b]))
    s10 = np.cov(np.vstack([v10a, v10b]))
    cov = s01 / len(v01a) + s10 / len(v10a)
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    z = (a - b) / np.sqrt(var) if var > 0 else 0.0
    return {"auc_a": float(a), "auc_b": float(b), "diff": float(a - b), "z": float(z),
            "p": float(2 * stats.norm.sf(abs(z)))}


def contour_features(cohort_dir, patient_ids, phase: str = "art", settings=None,
                     progress: bool = False) -> dict[str, pd.DataFrame]:
    """Features of ``patient_ids`` with the mask and its two perturbations: ``{"mask", "eroded", "dilated"}``
    -> DataFrame indexed by ``patient_id`` (no fitting: the input of :func:`icc_of_contours`)."""
    from pathlib import Path

    from nbrisk_core.radiomics.cohort import SLICE_SETTINGS, slice_features, slice_spacing

    settings = settings or SLICE_SETTINGS
    cohort_dir = Path(cohort_dir)
    slices_csv = cohort_dir / "slices.csv"
    slices = pd.read_csv(slices_csv, dtype={"patient_id": str}) if slices_csv.is_file() else None
    per_contour: dict[str, list[dict]] = {"mask": [], "eroded": [], "dilated": []}
    ids = list(patient_ids)
    iterator = ids
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="contour robustness", unit="patient")
    for pid in iterator:
        with np.load(cohort_dir / "slices" / pid / "hu.npz", allow_pickle=False) as arrays:
            image, mask = arrays[phase], arrays[f"mask_{phase}"]
        spacing = slice_spacing(cohort_dir, slices, pid, phase, mask)
        for name, m in perturbed_masks(mask).items():
            feats = slice_features(image, m, spacing, settings)
            per_contour[name].append({f"{phase}_{k}": v for k, v in feats.items()})
    return {k: pd.DataFrame(v, index=pd.Index(ids, name="patient_id")) for k, v in per_contour.items()}


def icc_of_contours(frames: dict[str, pd.DataFrame], patient_ids=None) -> pd.Series:
    """ICC(2,1) of every feature over the contours of :func:`contour_features`, on ``patient_ids`` (all)."""
    if patient_ids is not None:
        frames = {k: v.loc[list(patient_ids)] for k, v in frames.items()}
    return pd.Series({c: icc_2_1(np.column_stack([frames[k][c].to_numpy() for k in frames]))
                      for c in frames["mask"].columns}, name="icc")


def contour_icc(cohort_dir, patient_ids, phase: str = "art", settings=None,
                progress: bool = False) -> pd.Series:
    """ICC(2,1) of every feature over the mask and its two perturbations, on ``patient_ids``."""
    return icc_of_contours(contour_features(cohort_dir, patient_ids, phase, settings, progress))


def run_baseline(cohort_dir=None, phase: str = "art", comparators: dict[str, pd.Series] | None = None,
                 split_seed: int | None = None, seed: int = 0, progress: bool = False) -> dict:
    """The radiomics model on a cohort's stratified 8:2 split (the split of nbrisk_core.split), its test
    AUC (DeLong CI) and paired DeLong tests against ``comparators`` (name -> p(HR) by patient)."""
    from nbrisk_core.classifier.metrics import auc_ci
    from nbrisk_core.config import demo_cohort_dir
    from nbrisk_core.radiomics.cohort import cohort_radiomics
    from nbrisk_core.split import DEFAULT_SPLIT_SEED, stratified_split
    from pathlib import Path

    cohort_dir = Path(cohort_dir) if cohort_dir is not None else demo_cohort_dir()
    features = cohort_radiomics(cohort_dir, (phase,), progress=progress)
    clinical = pd.read_csv(cohort_dir / "clinical.csv", dtype={"patient_id": str}).set_index("patient_id")
    ids = [p for p in features.index if pd.notna(clinical.loc[p, "risk_group"])]
    y = (clinical.loc[ids, "risk_group"] == "HR").astype(int).to_numpy()
    # stratified by the risk-group labels themselves (HR / NHR), as the classifier's evaluation and the
    # prognosis grid split (prognosis.pipeline.split_cohort): the same 41 test patients everywhere
    split = stratified_split(ids, clinical.loc[ids, "risk_group"].astype(str).to_numpy(),
                             seed=DEFAULT_SPLIT_SEED if split_seed is None else split_seed)
    train = split.loc[split["cohort"] == "train", "patient_id"].tolist()
    test = split.loc[split["cohort"] == "test", "patient_id"].tolist()
    icc = contour_icc(cohort_dir, train, phase, progress=progress)
    X = features.loc[ids].replace([np.inf, -np.inf], np.nan)
    X = X.loc[:, X.notna().all()]
    y_of = pd.Series(y, index=ids)
    heads = {}
    for head in HEADS:
        fitted = fit(X.loc[train], y_of[train].to_numpy(), icc, seed=seed, head=head)
        score = fitted.predict_score(X.loc[test])
        c = auc_ci(y_of[test].to_numpy(), score)
        heads[head] = {"model": fitted, "score": score, "summary": {
            "test_auc": {"value": c.value, "ci_low": c.ci_low, "ci_high": c.ci_high, "method": c.method},
            "cv_auc": float(fitted.search.best_score_), "best_params": fitted.search.best_params_,
            "selected_features": fitted.selected_features}}
    model, p_test = heads["logistic"]["model"], heads["logistic"]["score"]
    ci = auc_ci(y_of[test].to_numpy(), p_test)
    result = {
        "cohort": str(cohort_dir), "phase": phase, "n_train": len(train), "n_test": len(test),
        "n_features": int(X.shape[1]), "n_robust": len(model.robust_features),
        "selected_features": model.selected_features, "cv_auc": float(model.search.best_score_),
        "best_params": model.search.best_params_,
        "test_auc": {"value": ci.value, "ci_low": ci.ci_low, "ci_high": ci.ci_high, "method": ci.method},
        "heads": {name: h["summary"] for name, h in heads.items()},
        "comparisons": {},
    }
    from nbrisk_core.classifier.pipeline import cohort_hash
    from nbrisk_core.radiomics.cohort import SLICE_SETTINGS
    from nbrisk_core.radiomics.score import freeze

    result["cohort_sha256"] = cohort_hash(cohort_dir)
    # the logistic head as a frozen linear rad-score (JSON): what --save-model writes and the pages load
    result["rad_score"] = freeze(model, phase, SLICE_SETTINGS, fitted_on={
        "cohort": str(cohort_dir), "cohort_sha256": result["cohort_sha256"], "n_train": len(train),
        "seed": seed, "n_robust": len(model.robust_features), "cv_auc": float(model.search.best_score_),
        "best_params": {k: float(v) for k, v in model.search.best_params_.items()}}).to_dict()
    if {"os_days", "os_event"} <= set(clinical.columns):
        result["rad_score_survival"] = rad_score_c_index(model, X.loc[test], clinical.loc[test])
    for name, scores in (comparators or {}).items():
        s = scores.reindex(test)
        if s.isna().any():
            continue
        c = auc_ci(y_of[test].to_numpy(), s.to_numpy())
        result["comparisons"][name] = {
            "test_auc": {"value": c.value, "ci_low": c.ci_low, "ci_high": c.ci_high, "method": c.method},
            "delong_vs_radiomics": delong_paired(y_of[test].to_numpy(), p_test, s.to_numpy()),
        }
    return result


def fit_rad_score(cohort_dir, train_ids, phase: str = "art", seed: int = 0,
                  progress: bool = False) -> "RadScore":
    """Fit the radiomics model on ``train_ids`` only (contour ICC, CV-tuned redundancy / LASSO / logistic,
    all on those patients) and freeze its rad-score. The cohort's radiomics must be cached."""
    import hashlib
    from pathlib import Path

    from nbrisk_core.radiomics.cohort import SLICE_SETTINGS
    from nbrisk_core.radiomics.score import cached_radiomics, freeze

    cohort_dir = Path(cohort_dir)
    features = cached_radiomics(cohort_dir, phase)
    clinical = pd.read_csv(cohort_dir / "clinical.csv", dtype={"patient_id": str}).set_index("patient_id")
    train = [p for p in map(str, train_ids) if p in features.index
             and "risk_group" in clinical.columns and pd.notna(clinical.loc[p, "risk_group"])]
    y = (clinical.loc[train, "risk_group"] == "HR").astype(int).to_numpy()
    if len(train) < 20 or y.sum() < 5 or (len(y) - y.sum()) < 5:
        raise InputError(f"{cohort_dir}: the rad-score needs >= 20 training patients with slices and a known "
                         f"risk group, >= 5 HR and >= 5 NHR; found {len(train)} ({int(y.sum())} HR)")
    X = features.loc[train]
    X = X.loc[:, X.notna().all()]
    icc = contour_icc(cohort_dir, train, phase, progress=progress)
    model = fit(X, y, icc, seed=seed, head="logistic")
    digest = hashlib.sha256("\n".join(sorted(train)).encode()).hexdigest()
    return freeze(model, phase, SLICE_SETTINGS, fitted_on={
        "cohort": str(cohort_dir), "n_train": len(train), "train_ids_sha256": digest, "seed": seed,
        "n_robust": len(model.robust_features), "cv_auc": float(model.search.best_score_),
        "best_params": {k: float(v) for k, v in model.search.best_params_.items()}})


def rad_score_c_index(model: RadiomicsModel, features: pd.DataFrame, clinical: pd.DataFrame) -> dict:
    """Harrell's C of the rad-score (the logistic head's linear predictor: higher = higher risk) for
    overall survival (``os_days``, ``os_event``) on the given patients."""
    from lifelines.utils import concordance_index

    score = model.search.decision_function(features[model.robust_features].to_numpy())
    known = clinical["os_days"].notna() & clinical["os_event"].notna()
    c = concordance_index(clinical.loc[known, "os_days"].astype(float), -score[known.to_numpy()],
                          clinical.loc[known, "os_event"].astype(int))
    return {"c_index": float(c), "n": int(known.sum()), "events": int(clinical.loc[known, "os_event"].sum())}
