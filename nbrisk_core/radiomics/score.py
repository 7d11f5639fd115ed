"""The radiomics model frozen as a linear rad-score, saved as JSON (nothing is pickled).

The model of :mod:`nbrisk_core.radiomics.model` (robust features, standardisation, redundancy removal,
LASSO, logistic head) is linear in the features it keeps, so after fitting it is exactly

    rad_score = intercept + sum_j coef_j * (x_j - mean_j) / scale_j,   p(HR) = 1 / (1 + exp(-rad_score))

over the LASSO-selected features ``x_j`` (columns ``<phase>_<feature>`` of
:func:`~nbrisk_core.radiomics.cohort.cohort_radiomics`). :class:`RadScore` holds those numbers and the
settings hash of the features they apply to; ``to_dict`` / ``from_dict`` and ``save`` / ``load`` are plain
JSON. It serves two callers:

* the survival grid's ``--features radiomics`` (``nbrisk prognosis fit``, ``nbrisk benchmark``): fitted on
  the grid's **training patients only** (:func:`~nbrisk_core.radiomics.model.fit_rad_score`), its rad-score is the CT feature block
  (one column, :data:`RAD_SCORE_COLUMN`) beside the clinical variables, and the prognosis bundle records
  it (``embeddings["rad_score"]``) so that a cohort can be scored later (:func:`cohort_rad_scores`);
* the Risk and Cohort pages: ``models/radiomics_demo.json`` (``nbrisk radiomics ... --save-model``), the
  model fitted on the demo's training split with its saved test evaluation beside Swin-ART's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nbrisk_core.errors import InputError

RAD_SCORE_COLUMN = "rad_score"
KIND = "nbrisk-rad-score"
FORMAT = 1


@dataclass(frozen=True)
class RadScore:
    """A frozen linear radiomics model (see the module docstring)."""

    phase: str
    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    settings: dict
    settings_sha256: str
    fitted_on: dict = field(default_factory=dict)

    def linear_predictor(self, table: pd.DataFrame) -> pd.Series:
        """The rad-score of every row of a radiomics table (higher = higher risk)."""
        missing = [f for f in self.features if f not in table.columns]
        if missing:
            raise InputError(f"radiomics table: missing {len(missing)} feature(s) the rad-score uses "
                             f"(e.g. {', '.join(missing[:3])}); expected the columns of 'nbrisk radiomics' "
                             f"with phase {self.phase}")
        X = table[self.features].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(X).all(axis=1)
        if bad.any():
            raise InputError(f"radiomics table: non-finite features for {int(bad.sum())} patient(s) "
                             f"(e.g. {', '.join(map(str, table.index[bad][:3]))})")
        z = (X - np.asarray(self.mean)) / np.asarray(self.scale)
        return pd.Series(self.intercept + z @ np.asarray(self.coef), index=table.index, name=RAD_SCORE_COLUMN)

    def probability(self, table: pd.DataFrame) -> pd.Series:
        """p(HR) of the logistic head."""
        return (1.0 / (1.0 + np.exp(-self.linear_predictor(table)))).rename("p_high_risk")

    def to_dict(self) -> dict:
        return {"kind": KIND, "format": FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict, source: str = "rad-score") -> "RadScore":
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise InputError(f"{source}: not a rad-score (expected kind {KIND!r})")
        if data.get("format") != FORMAT:
            raise InputError(f"{source}: rad-score format {data.get('format')!r}; expected {FORMAT}")
        names = ("phase", "features", "mean", "scale", "coef", "intercept", "settings", "settings_sha256")
        absent = [n for n in names if n not in data]
        if absent:
            raise InputError(f"{source}: missing {', '.join(absent)}")
        n = len(data["features"])
        if not n or any(len(data[k]) != n for k in ("mean", "scale", "coef")):
            raise InputError(f"{source}: features, mean, scale and coef must have the same length (>= 1)")
        if not all(np.isfinite(data[k]).all() for k in ("mean", "scale", "coef")) or \
                not np.all(np.asarray(data["scale"], dtype=float) > 0):
            raise InputError(f"{source}: non-finite coefficients or non-positive scales")
        return cls(phase=str(data["phase"]), features=[str(f) for f in data["features"]],
                   mean=[float(v) for v in data["mean"]], scale=[float(v) for v in data["scale"]],
                   coef=[float(v) for v in data["coef"]], intercept=float(data["intercept"]),
                   settings=dict(data["settings"]), settings_sha256=str(data["settings_sha256"]),
                   fitted_on=dict(data.get("fitted_on") or {}))

    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def freeze(model, phase: str, settings, fitted_on: dict | None = None) -> RadScore:
    """The linear rad-score of a fitted logistic-head :class:`~nbrisk_core.radiomics.model.RadiomicsModel`."""
    from nbrisk_core.radiomics.cohort import settings_hash

    pipe = model.search.best_estimator_
    head = pipe.named_steps["head"]
    if not hasattr(head, "coef_") or not hasattr(head, "intercept_"):
        raise InputError("only a linear head (logistic) can be frozen as a rad-score")
    scaler = pipe.named_steps["scale"]
    keep = np.arange(len(model.robust_features))[pipe.named_steps["redundancy"].keep_][
        pipe.named_steps["lasso"].keep_]
    features = [model.robust_features[i] for i in keep]
    return RadScore(phase=phase, features=features, mean=scaler.mean_[keep].tolist(),
                    scale=scaler.scale_[keep].tolist(), coef=np.ravel(head.coef_).tolist(),
                    intercept=float(np.ravel(head.intercept_)[0]),
                    settings=json.loads(json.dumps(settings.as_dict(), default=list)),
                    settings_sha256=settings_hash(settings, (phase,)), fitted_on=dict(fitted_on or {}))


def missing_cache_message(cohort_dir) -> str:
    return (f"the radiomics features of cohort {cohort_dir} are not cached: make them with "
            f"'nbrisk radiomics --cohort {cohort_dir} --out {Path(cohort_dir) / 'radiomics.parquet'}'")


def cached_radiomics(cohort_dir, phase: str = "art", settings=None) -> pd.DataFrame:
    """The cohort's cached radiomics table (what ``nbrisk radiomics`` writes); InputError with the
    command that makes it when the cache is missing or stale. Nothing is computed here."""
    from nbrisk_core.classifier.pipeline import cohort_hash
    from nbrisk_core.radiomics.cohort import SLICE_SETTINGS, cache_path, cohort_radiomics

    settings = settings or SLICE_SETTINGS
    cohort_dir = Path(cohort_dir)
    if not (cohort_dir / "clinical.csv").is_file():
        raise InputError(f"{cohort_dir}: not a cohort directory (no clinical.csv)")
    if not cache_path(cohort_dir, settings, (phase,), cohort_hash(cohort_dir)).is_file():
        raise InputError(missing_cache_message(cohort_dir))
    table = cohort_radiomics(cohort_dir, (phase,), settings)
    return table.replace([np.inf, -np.inf], np.nan)


def cohort_rad_scores(cohort_dir, rad_score: RadScore) -> pd.DataFrame:
    """``patient_id`` x ``rad_score`` of a cohort's cached radiomics (InputError when not cached)."""
    from nbrisk_core.radiomics.cohort import SLICE_SETTINGS, settings_hash

    if rad_score.settings_sha256 != settings_hash(SLICE_SETTINGS, (rad_score.phase,)):
        raise InputError("rad-score: fitted on radiomics settings other than this version's "
                         f"(settings {rad_score.settings_sha256[:12]}); refit it")
    features = cached_radiomics(cohort_dir, rad_score.phase)
    return rad_score.linear_predictor(features).to_frame()


def save(rad_score: RadScore, path, evaluation: dict | None = None) -> dict:
    """Write ``path`` (JSON): the rad-score, its SHA-256 and an optional saved evaluation."""
    path = Path(path)
    document = {**rad_score.to_dict(), "sha256": rad_score.sha256()}
    if evaluation is not None:
        document["evaluation"] = evaluation
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, sort_keys=True, allow_nan=False))
    return document


def load(path) -> tuple[RadScore, dict]:
    """``(rad-score, saved evaluation or {})`` of a file written by :func:`save`; InputError if it was altered."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: radiomics model not found (make it with 'nbrisk radiomics --cohort data/demo "
                         f"--out runs/radiomics.parquet --baseline runs/radiomics.json --save-model {path}')")
    try:
        document = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not JSON ({error})") from None
    model = RadScore.from_dict(document, source=str(path))
    if document.get("sha256") != model.sha256():
        raise InputError(f"{path}: SHA-256 does not match its content (file altered)")
    return model, dict(document.get("evaluation") or {})


def slice_probability(rad_score: RadScore, hu: np.ndarray, mask: np.ndarray, spacing) -> float:
    """p(HR) of one chosen slice (HU and tumour mask, in-plane spacing in mm) with the frozen model."""
    from nbrisk_core.radiomics.cohort import SLICE_SETTINGS, settings_hash, slice_features

    if rad_score.settings_sha256 != settings_hash(SLICE_SETTINGS, (rad_score.phase,)):
        raise InputError("rad-score: fitted on radiomics settings other than this version's; refit it")
    feats = slice_features(hu, mask, spacing, SLICE_SETTINGS)
    row = pd.DataFrame([{f"{rad_score.phase}_{k}": v for k, v in feats.items()}])
    return float(rad_score.probability(row).iloc[0])


def patient_probability(rad_score: RadScore, cohort_dir, patient_id: str) -> float:
    """p(HR) of a cohort patient's chosen slice (``slices/<pid>/hu.npz`` with its mask)."""
    from nbrisk_core.radiomics.cohort import slice_spacing

    cohort_dir = Path(cohort_dir)
    path = cohort_dir / "slices" / str(patient_id) / "hu.npz"
    if not path.is_file():
        raise InputError(f"{path}: not found (the patient's chosen slices)")
    phase = rad_score.phase
    with np.load(path, allow_pickle=False) as arrays:
        if phase not in arrays.files or f"mask_{phase}" not in arrays.files:
            raise InputError(f"{path}: no {phase} slice with its tumour mask (arrays {phase}, mask_{phase})")
        hu, mask = arrays[phase], arrays[f"mask_{phase}"]
    slices_csv = cohort_dir / "slices.csv"
    slices = pd.read_csv(slices_csv, dtype={"patient_id": str}) if slices_csv.is_file() else None
    return slice_probability(rad_score, hu, mask, slice_spacing(cohort_dir, slices, str(patient_id), phase, mask))


def grid_record(card_path) -> dict:
    """The survival grid's result recorded from a prognosis bundle's ``card.json`` (``nbrisk prognosis
    fit``): feature set, CT feature source, grid, selected combination, C-index per cohort [value, low, high]."""
    path = Path(card_path)
    if path.is_dir():
        path = path / "card.json"
    if not path.is_file():
        raise InputError(f"{path}: not found (expected the card.json of 'nbrisk prognosis fit --out DIR')")
    card = json.loads(path.read_text())
    if "feature_set" not in card or "metrics" not in card:
        raise InputError(f"{path}: not a prognosis bundle card (no feature_set / metrics)")
    return {"feature_set": card["feature_set"], "ct_source": (card.get("embeddings") or {}).get("source"),
            "grid": card.get("grid"), "selected": card.get("selected"),
            "c_index": {k: v.get("c_index") for k, v in card["metrics"].items()},
            "n": {k: v.get("n") for k, v in card["metrics"].items()},
            "bundle_sha256": card.get("sha256")}
