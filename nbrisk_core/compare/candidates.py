"""The models ``nbrisk compare`` puts side by side, behind one small protocol.

A candidate is fitted on row indices of a :class:`~nbrisk_core.compare.data.CompareData` and predicts
p(high risk) (and, where it applies, a survival risk score) for other rows. Every fitted step
(imputation, scaling, the model) happens inside :meth:`Candidate.fit`, so the comparison protocol can
refit a fresh instance in every cross-validation fold without leaking the held-out rows.

==================  ==================================================================================
``clinical_lr``     003's clinical-factor model: logistic regression (L2, its penalty chosen by an inner
                    stratified 5-fold CV of the training rows, log-loss) on the schema's clinical
                    variables (risk group excluded: it is the label), categories as indicators,
                    markers ``log1p`` (:func:`nbrisk_core.prognosis.validation.encode_clinical`), median
                    imputation with missing-indicators, standardisation; survival: ridge Cox on the same
                    design (:func:`nbrisk_core.prognosis.estimators.cox.cox_newton`)
``clinical_lgbm``   002's clinical model: LightGBM on the same encoded variables (its own handling of
                    missing values; no scaling needed); no survival score
``swin_art``        image only: the frozen Swin-ART p(high risk); nothing is fitted; survival score = p
``combined``        003's combined DL: logistic regression on logit(Swin-ART p) + the clinical design;
                    survival: ridge Cox on the same inputs (MLRS-free)
``combined_emb``    the same on Swin-ART's 16 hidden-layer outputs + the clinical design
``radiomics``       the radiomics model of ``nbrisk radiomics`` (ART chosen slice), refitted per fold
``oracle``          the synthetic demo's known truth (``truth.csv``: p_high_risk, true linear predictor);
                    the ceiling, never a model
==================  ==================================================================================

Adding a candidate is one entry in :data:`CANDIDATES` (a factory), e.g. a class in another module
registered lazily so that a missing module is reported as "not run" rather than breaking the import::

    CANDIDATES["fusion"] = lazy_candidate("nbrisk_core.classifier.fusion_compare", "FusionCandidate")

A candidate whose inputs are missing (no images, no model file) raises :class:`CandidateUnavailable`
(an :class:`~nbrisk_core.errors.InputError`) from ``fit`` or from its factory; the protocol reports it
as "not run: <reason>".
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import pandas as pd

from nbrisk_core.compare.data import CompareData
from nbrisk_core.errors import InputError

#: ridge penalty of the Cox fits on standardised inputs (-ridge/2 ||beta||^2): keeps ~20 coefficients
#: finite on a 130-patient fold without tuning (ours)
COX_RIDGE = 1.0
#: the inverse L2 penalties the logistic models choose from by inner CV (sklearn's C)
LOGISTIC_CS = np.logspace(-3, 2, 11)
#: logit of p is taken on [EPS, 1 - EPS]
EPS = 1e-6


class CandidateUnavailable(InputError):
    """A candidate cannot run on this cohort (missing images, model file, known truth or package)."""


class Candidate(Protocol):
    name: str            # short key, e.g. "clinical_lr"
    label: str           # human label

    def fit(self, data: CompareData, idx: np.ndarray) -> "Candidate": ...

    def predict_proba(self, data: CompareData, idx: np.ndarray) -> np.ndarray: ...

    def predict_risk(self, data: CompareData, idx: np.ndarray) -> np.ndarray | None: ...


def logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def clinical_design(data: CompareData, idx: np.ndarray) -> pd.DataFrame:
    """The encoded clinical columns of rows ``idx`` (indicators, ``log1p`` markers, NaN kept).

    Deterministic and row-wise (nothing is fitted here), so it may be computed outside a fold."""
    from nbrisk_core.prognosis.validation import encode_clinical

    encoded = encode_clinical(data.clinical.iloc[np.asarray(idx)])
    return encoded.loc[:, [c for c in encoded.columns if not c.startswith("risk_group")]]


def _require_images(data: CompareData, what: str) -> None:
    if data.swin_prob is None or data.ct_features is None:
        reason = data.missing.get("images", "no CT features")
        raise CandidateUnavailable(f"{what} needs Swin-ART's outputs: {reason}")


class _DesignModel:
    """Impute (median + missing indicators) -> standardise -> logistic regression, and a ridge Cox on
    the same standardised design; ``design(data, idx)`` gives the raw columns."""

    name = ""
    label = ""
    survival = True

    def __init__(self, seed: int = 0, penalty: str | float = "tuned"):
        self.seed = seed
        self.penalty = penalty

    def design(self, data: CompareData, idx: np.ndarray) -> pd.DataFrame:
        raise NotImplementedError

    def fit(self, data: CompareData, idx: np.ndarray):
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
        from sklearn.model_selection import StratifiedKFold
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from nbrisk_core.prognosis.estimators.cox import cox_newton

        idx = np.asarray(idx)
        X = self.design(data, idx)
        X = X.loc[:, X.notna().any()]   # a variable no training patient has is left out
        self.columns_ = list(X.columns)
        self.preprocess_ = make_pipeline(SimpleImputer(strategy="median", add_indicator=True),
                                         StandardScaler()).fit(X)
        Z = self.preprocess_.transform(X)
        y = data.high_risk[idx]
        if self.penalty == "tuned":
            # the L2 penalty chosen by an inner stratified CV of the training rows only (log-loss)
            inner = StratifiedKFold(n_splits=min(5, int(np.bincount(y, minlength=2).min())), shuffle=True,
                                    random_state=self.seed)
            self.logistic_ = LogisticRegressionCV(Cs=LOGISTIC_CS, cv=inner, scoring="neg_log_loss",
                                                  l1_ratios=(0.0,), use_legacy_attributes=False,
                                                  max_iter=5000).fit(Z, y)
        else:
            self.logistic_ = LogisticRegression(C=float(self.penalty), max_iter=5000).fit(Z, y)
        self.cox_beta_ = None
        if self.survival and data.event[idx].any():
            self.cox_beta_ = cox_newton(Z, data.time[idx], data.event[idx], ridge=COX_RIDGE)[0]
        return self

    def _z(self, data, idx):
        return self.preprocess_.transform(self.design(data, np.asarray(idx))[self.columns_])

    def predict_proba(self, data: CompareData, idx: np.ndarray) -> np.ndarray:
        return self.logistic_.predict_proba(self._z(data, idx))[:, 1]

    def predict_risk(self, data: CompareData, idx: np.ndarray) -> np.ndarray | None:
        if self.cox_beta_ is None:
            return None
        return self._z(data, idx) @ self.cox_beta_


class ClinicalLogistic(_DesignModel):
    name = "clinical_lr"
    label = "Clinical factors (logistic)"

    def design(self, data, idx):
        return clinical_design(data, idx)


class _CombinedModel(_DesignModel):
    """Swin-ART's image columns (:meth:`image_design`) first, then the clinical design."""

    def image_design(self, data: CompareData, idx: np.ndarray) -> pd.DataFrame:
        raise NotImplementedError

    def design(self, data, idx):
        _require_images(data, self.name)
        X = clinical_design(data, idx)
        return pd.concat([self.image_design(data, np.asarray(idx)).set_axis(X.index), X], axis=1)


class CombinedLogistic(_CombinedModel):
    name = "combined"
    label = "Combined: Swin-ART p + clinical (logistic)"

    def image_design(self, data, idx):
        return pd.DataFrame({"logit_swin_art": logit(data.swin_prob[idx])})


class CombinedEmbedding(_CombinedModel):
    name = "combined_emb"
    label = "Combined: Swin-ART 16 features + clinical (logistic)"

    def image_design(self, data, idx):
        return data.ct_features.iloc[idx]


class ClinicalLightGBM:
    """LightGBM on the encoded clinical variables (002's clinical model); missing values go to the side
    of each split that lowers the loss (LightGBM's own rule), so no imputation is fitted."""

    name = "clinical_lgbm"
    label = "Clinical factors (LightGBM)"
    params = dict(n_estimators=200, learning_rate=0.05, num_leaves=7, min_child_samples=10,
                  subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0,
                  n_jobs=1, deterministic=True, force_row_wise=True, verbose=-1)

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, data, idx):
        try:
            from lightgbm import LGBMClassifier
        except ImportError as error:
            raise CandidateUnavailable(f"clinical_lgbm needs the lightgbm package ({error})") from None
        X = clinical_design(data, idx)
        self.columns_ = list(X.columns)
        self.model_ = LGBMClassifier(random_state=self.seed, **self.params).fit(
            X.to_numpy(dtype=float), data.high_risk[np.asarray(idx)])
        return self

    def predict_proba(self, data, idx):
        X = clinical_design(data, idx)[self.columns_]
        return self.model_.predict_proba(X.to_numpy(dtype=float))[:, 1]

    def predict_risk(self, data, idx):
        return None


class SwinART:
    """The frozen Swin-ART probability: nothing is fitted, in any fold."""

    name = "swin_art"
    label = "Swin-ART (image only)"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, data, idx):
        _require_images(data, self.name)
        return self

    def predict_proba(self, data, idx):
        _require_images(data, self.name)
        return np.asarray(data.swin_prob, dtype=float)[np.asarray(idx)]

    def predict_risk(self, data, idx):
        return self.predict_proba(data, idx)


class Oracle:
    """The synthetic cohort's truth: ``p_high_risk`` and the true linear predictor of survival."""

    name = "oracle"
    label = "Oracle (known truth)"

    def __init__(self, seed: int = 0):
        self.seed = seed

    @staticmethod
    def _truth(data):
        if data.truth is None or "p_high_risk" not in data.truth.columns:
            raise CandidateUnavailable(f"oracle needs a synthetic cohort's truth.csv; {data.name or 'this cohort'} "
                                       "has none")
        return data.truth

    def fit(self, data, idx):
        self._truth(data)
        return self

    def predict_proba(self, data, idx):
        return self._truth(data)["p_high_risk"].to_numpy(dtype=float)[np.asarray(idx)]

    def predict_risk(self, data, idx):
        truth = self._truth(data)
        if "true_linear_predictor" not in truth.columns:
            return None
        return truth["true_linear_predictor"].to_numpy(dtype=float)[np.asarray(idx)]


@functools.lru_cache(maxsize=4)
def _radiomics_tables(cohort_dir: str, cohort_sha256: str, contours: bool):
    """A cohort's radiomics features (disk-cached by ``cohort_radiomics``) and, with ``contours``, the
    per-contour tables of the robustness step (cached in this process)."""
    from nbrisk_core.radiomics.cohort import cohort_radiomics
    from nbrisk_core.radiomics.model import contour_features

    features = cohort_radiomics(Path(cohort_dir), ("art",))
    frames = contour_features(cohort_dir, list(features.index), "art") if contours else None
    return features, frames


class Radiomics:
    """The radiomics model of ``nbrisk radiomics`` (``radiomics.model.fit``: robust features by contour ICC on
    the training rows, then standardisation, redundancy filter, LASSO and a logistic head tuned by CV), refitted
    in every fold on the arterial phase's chosen slice. No survival score."""

    name = "radiomics"
    label = "Radiomics (logistic)"

    def __init__(self, seed: int = 0):
        self.seed = seed

    @staticmethod
    def _tables(data, contours: bool):
        from nbrisk_core.cohort.format import cohort_hash

        if data.cohort_dir is None or not (Path(data.cohort_dir) / "slices").is_dir():
            raise CandidateUnavailable(f"radiomics needs the cohort's chosen slices; {data.name or 'this cohort'} "
                                       "has no slices/ folder")
        features, frames = _radiomics_tables(str(Path(data.cohort_dir).resolve()), cohort_hash(data.cohort_dir),
                                             contours)
        lacking = [p for p in data.patient_id if p not in features.index]
        if lacking:
            raise CandidateUnavailable(f"radiomics: {len(lacking)} patient(s) without a chosen slice and mask "
                                       f"(first {lacking[0]})")
        return features.replace([np.inf, -np.inf], np.nan), frames

    def fit(self, data, idx):
        from nbrisk_core.radiomics.model import fit, icc_of_contours

        features, frames = self._tables(data, contours=True)
        ids = list(data.patient_id[np.asarray(idx)])
        train = features.loc[ids]
        train = train.loc[:, train.notna().all()]
        self.medians_ = train.median()
        self.model_ = fit(train, data.high_risk[np.asarray(idx)], icc_of_contours(frames, ids), seed=self.seed)
        return self

    def predict_proba(self, data, idx):
        features, _ = self._tables(data, contours=False)
        X = features.loc[list(data.patient_id[np.asarray(idx)]), list(self.medians_.index)].fillna(self.medians_)
        return self.model_.predict_score(X)

    def predict_risk(self, data, idx):
        return None


def lazy_candidate(module: str, attribute: str) -> Callable[[], Candidate]:
    """A factory that imports ``module.attribute`` when called: a missing module or class makes the
    candidate "not run" instead of breaking ``import nbrisk_core.compare``."""

    def factory() -> Candidate:
        try:
            return getattr(importlib.import_module(module), attribute)()
        except (ImportError, AttributeError) as error:
            raise CandidateUnavailable(f"{module}.{attribute} is not available ({error})") from None

    factory.__name__ = f"lazy_{attribute}"
    return factory


#: name -> factory; the protocol makes a fresh instance per fold (order = order in the report)
CANDIDATES: dict[str, Callable[[], Candidate]] = {
    "clinical_lr": ClinicalLogistic,
    "clinical_lgbm": ClinicalLightGBM,
    "swin_art": SwinART,
    "combined": CombinedLogistic,
    "combined_emb": CombinedEmbedding,
    "radiomics": Radiomics,
    # the end-to-end image + clinical network (issue 26 item 1): heads refitted per fold on its frozen image vectors
    "fusion": lazy_candidate("nbrisk_core.classifier.fusion_compare", "FusionCandidate"),
    # the same network as shipped, nothing refitted (its fair figure is the test split: trained on development)
    "fusion_frozen": lazy_candidate("nbrisk_core.classifier.fusion_compare", "FrozenFusionCandidate"),
    "oracle": Oracle,
}

#: the reference models of the paired comparisons
REFERENCE_IMAGE = "swin_art"
REFERENCE_CLINICAL = "clinical_lr"


def parse_models(text: str | None, registry: dict | None = None) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``, every name checked against the registry (all of it when None)."""
    registry = CANDIDATES if registry is None else registry
    if text is None:
        return list(registry)
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    if not names:
        raise InputError(f"--models {text!r}: expected a comma-separated list of {', '.join(registry)}",
                         source="--models")
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise InputError(f"--models: unknown model {unknown[0]!r}; expected some of {', '.join(registry)}",
                         source="--models")
    return list(dict.fromkeys(names))
