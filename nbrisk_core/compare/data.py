"""What every candidate of ``nbrisk compare`` reads: one cohort as arrays, in one patient order.

:func:`load_compare_data` reads a cohort folder (``docs/cohort-format.md``) with the existing loaders:
:func:`nbrisk_core.cohort.load_cohort` for the tables, the clinical schema for the predictor columns and
:func:`nbrisk_core.classifier.embeddings.cohort_embeddings` for Swin-ART's 16 hidden-layer outputs (cached
by model and cohort SHA-256, so the network runs at most once per cohort). Swin-ART's p(high risk) is the
model's own output layer applied to those cached outputs (the class logits are ``head.out(embedding)``,
:class:`nbrisk_core.classifier.architectures.RiskClassifier`), the same softmax the Risk page shows.

A cohort without images, or without the classifier, loads with ``ct_features`` and ``swin_prob`` None
and the reason in ``missing``: the candidates that need them are then reported as "not run".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nbrisk_core.errors import InputError

#: the label of every candidate; never a predictor
LABEL_COLUMN = "risk_group"


def clinical_predictors(columns) -> list[str]:
    """The schema's clinical variables a model may use, in schema order: every baseline profile, tumour
    and inflammatory marker, MYCN, and the cohort-only variables present (INSS stage), without the risk
    group (the label)."""
    from nbrisk_core.clinical.schema import CLINICAL_VARIABLES, COHORT_VARIABLES

    present = set(columns)
    names = [v.name for v in CLINICAL_VARIABLES if v.name != LABEL_COLUMN]
    return names + [v.name for v in COHORT_VARIABLES if v.name in present]


@dataclass(frozen=True)
class CompareData:
    """One cohort for the comparison, every array in ``patient_id`` order.

    Attributes
    ----------
    cohort_dir : Path or None
    patient_id : ndarray (n,) of str
    high_risk : ndarray (n,) of int, 1 = high risk (HR)
    time : ndarray (n,) of float, overall survival in the cohort's unit (days in format v1)
    event : ndarray (n,) of bool, death
    clinical : DataFrame, the schema-named clinical columns (the risk group excluded), NaN = missing
    ct_features : DataFrame or None, Swin-ART's 16 hidden-layer outputs ``ct01..ct16``
    swin_prob : ndarray or None, Swin-ART's p(high risk)
    name, synthetic : the cohort's ``cohort.json`` name and flag
    truth : DataFrame or None, ``truth.csv`` rows in patient order (synthetic cohorts only)
    missing : dict, what could not be loaded -> why (``{"images": "..."}``)
    classifier_sha256 : str or None, the SHA-256 of the Swin-ART weights that gave ``ct_features``
    """

    cohort_dir: Path | None
    patient_id: np.ndarray
    high_risk: np.ndarray
    time: np.ndarray
    event: np.ndarray
    clinical: pd.DataFrame
    ct_features: pd.DataFrame | None = None
    swin_prob: np.ndarray | None = None
    name: str = ""
    synthetic: bool = False
    truth: pd.DataFrame | None = None
    missing: dict = field(default_factory=dict)
    classifier_sha256: str | None = None

    def __post_init__(self):
        n = len(self.patient_id)
        for label, value in (("high_risk", self.high_risk), ("time", self.time), ("event", self.event),
                             ("clinical", self.clinical), ("ct_features", self.ct_features),
                             ("swin_prob", self.swin_prob), ("truth", self.truth)):
            if value is not None and len(value) != n:
                raise InputError(f"CompareData: {label} has {len(value)} rows for {n} patients")

    @property
    def n(self) -> int:
        return len(self.patient_id)


def _swin_probability(loaded, ct_features: pd.DataFrame) -> np.ndarray:
    """p(HR) = softmax(head.out(embedding))[HR]: the model's output layer on its cached hidden outputs."""
    import torch

    out = loaded.model.head.out
    with torch.no_grad():
        logits = out(torch.as_tensor(ct_features.to_numpy(dtype=np.float32)))
        proba = torch.softmax(logits.float(), 1).numpy()
    return proba[:, list(loaded.model_card.class_order).index("HR")].astype(float)


def _image_features(cohort_dir: Path, ids: list[str], classifier) -> tuple:
    """``(ct_features, swin_prob, sha256, reason)``; the reason is None when both loaded."""
    from nbrisk_core.classifier.embeddings import EMBEDDING_COLUMNS, cohort_embeddings
    from nbrisk_core.classifier.model_io import load_model, shipped_model_path

    path = Path(classifier) if classifier is not None else shipped_model_path("art", cohort_dir)
    if not path.exists():
        return None, None, None, f"no Swin-ART classifier at {path} (make it with 'nbrisk train')"
    loaded = load_model(path)
    try:
        table = cohort_embeddings(cohort_dir, model=loaded)
    except InputError as error:
        return None, None, loaded.sha256, f"no CT features for {cohort_dir}: {error}"
    table = table.reindex(ids)[list(EMBEDDING_COLUMNS)]
    lacking = table.index[table.isna().any(axis=1)].tolist()
    if lacking:
        return None, None, loaded.sha256, (f"{len(lacking)} patient(s) without a chosen ART slice "
                                           f"(first {lacking[0]}); image models need every patient")
    return table, _swin_probability(loaded, table), loaded.sha256, None


def load_compare_data(cohort_dir, *, classifier=None, images: bool = True) -> CompareData:
    """Read a cohort folder for ``nbrisk compare``.

    Patients without a risk group (an imported cohort may lack it) or without overall survival are left
    out: they have no label. The clinical columns are the schema's (:func:`clinical_predictors`) as
    stored; a schema variable the cohort does not record is an all-NaN column (the models impute it or
    drop it inside their fit).

    Parameters
    ----------
    cohort_dir : path
    classifier : path, optional
        Swin-ART ``.safetensors`` (default: the cohort's shipped one, ``shipped_model_path("art")``).
    images : bool
        False skips the CT features (clinical-only comparison).
    """
    from nbrisk_core.clinical.schema import OUTCOME_COLUMNS
    from nbrisk_core.cohort import load_cohort

    cohort_dir = Path(cohort_dir)
    cohort = load_cohort(cohort_dir)
    table = cohort.clinical
    if LABEL_COLUMN not in table.columns:
        raise InputError(f"{cohort_dir / 'clinical.csv'}: no {LABEL_COLUMN} column; the comparison needs "
                         "the HR/NHR label of every patient", source=str(cohort_dir / "clinical.csv"))
    time_column, event_column = OUTCOME_COLUMNS
    keep = table[LABEL_COLUMN].isin(("HR", "NHR")) & table[time_column].notna() & table[event_column].notna()
    table = table.loc[keep].reset_index(drop=True)
    if len(table) < 10 or table[LABEL_COLUMN].nunique() < 2:
        raise InputError(f"{cohort_dir / 'clinical.csv'}: {len(table)} patient(s) with a risk group and "
                         "survival, not both classes; the comparison needs both HR and NHR patients",
                         source=str(cohort_dir / "clinical.csv"))
    ids = table["patient_id"].astype(str).tolist()
    predictors = clinical_predictors(table.columns)
    clinical = pd.DataFrame({name: table[name] if name in table.columns else np.nan for name in predictors})
    clinical.index = pd.Index(ids, name="patient_id")
    missing: dict = {}
    if len(table) < len(cohort.clinical):
        missing["patients"] = (f"{len(cohort.clinical) - len(table)} patient(s) without a risk group or "
                               "overall survival left out")
    ct = prob = sha = None
    if images:
        ct, prob, sha, reason = _image_features(cohort_dir, ids, classifier)
        if reason:
            missing["images"] = reason
    else:
        missing["images"] = "image features not requested"
    truth = None
    if cohort.truth is not None:
        truth = cohort.truth.set_index(cohort.truth["patient_id"].astype(str)).reindex(ids).reset_index(drop=True)
    return CompareData(
        cohort_dir=cohort_dir, patient_id=np.asarray(ids, dtype=str),
        high_risk=(table[LABEL_COLUMN] == "HR").to_numpy(dtype=int),
        time=table[time_column].to_numpy(dtype=float), event=table[event_column].to_numpy(dtype=int).astype(bool),
        clinical=clinical, ct_features=ct, swin_prob=prob, name=cohort.name, synthetic=cohort.synthetic,
        truth=truth, missing=missing, classifier_sha256=sha)
