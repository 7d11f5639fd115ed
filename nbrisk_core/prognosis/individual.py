"""Prognosis of one patient: survival curve, MLRS, its percentile and group.

:class:`IndividualPrognosis` is what :meth:`PrognosisPipeline.predict_patient` returns;
:func:`predict_from_labs` is the JSON-able form used by ``nbrisk predict --labs FILE``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nbrisk_core.errors import InputError


@dataclass(frozen=True)
class IndividualPrognosis:
    """Predicted overall survival of one patient.

    Attributes
    ----------
    times : ndarray
        Days at which the survival curve is given (the training cohort's event times).
    survival : ndarray
        S(t), non-increasing, from the selected model.
    low, high : ndarray or None
        A band around S(t) where the model gives one (random survival forest: 2.5th-97.5th
        percentile of its trees' curves), else None.
    mlrs : float
        Machine-learning risk score (the selected model's risk; higher = worse).
    percentile : float
        Percent of training patients with an MLRS at or below this one (0-100).
    group : {"high", "low"}
        Above the frozen training-median cut-off = "high".
    cutoff : float
        The frozen MLRS cut-off (training median) that ``group`` is read against.
    model : str
        The selected combination of the grid (e.g. ``"StepCox[backward] + RSF"``).
    imputed : list of str
        Clinical variables that were missing and imputed (MICE-PMM from the training cohort).
    notes : list of str
        Everything the user should see next to the result (imputations, how the curve was made).
    imputed_values : dict
        What MICE-PMM filled in for each name of ``imputed``, in the schema's canonical unit
        (``nbrisk_core.clinical.schema``): a float for a measurement, 0/1 for a binary variable, the
        category for a categorical one. Each is an observed value of a training patient (PMM donor).
    pipeline_sha256 : str or None
        SHA-256 of the fitted pipeline that made this prediction (its configuration and the MLRS it
        gives every cohort patient): two predictions with the same value come from the same fit.
    """

    times: np.ndarray
    survival: np.ndarray
    low: np.ndarray | None
    high: np.ndarray | None
    mlrs: float
    percentile: float
    group: str
    cutoff: float
    model: str
    imputed: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    imputed_values: dict = field(default_factory=dict)
    pipeline_sha256: str | None = None

    def survival_at(self, days) -> np.ndarray:
        """S(t) at given days (step function, right-continuous; 1 before the first time)."""
        days = np.atleast_1d(np.asarray(days, dtype=float))
        index = np.searchsorted(self.times, days, side="right") - 1
        return np.where(index < 0, 1.0, self.survival[np.clip(index, 0, None)])

    def to_dict(self) -> dict:
        """JSON-able dict (arrays as lists; survival at 1, 3, 5 and 7 years added)."""
        years = (1, 3, 5, 7)
        at_years = self.survival_at([365.25 * y for y in years])
        return {
            "model": self.model,
            "mlrs": float(self.mlrs),
            "percentile": float(self.percentile),
            "group": self.group,
            "cutoff": float(self.cutoff),
            "survival_at_years": {str(y): float(s) for y, s in zip(years, at_years)},
            "times_days": [float(t) for t in self.times],
            "survival": [float(s) for s in self.survival],
            "low": None if self.low is None else [float(s) for s in self.low],
            "high": None if self.high is None else [float(s) for s in self.high],
            "imputed": list(self.imputed),
            "imputed_values": dict(self.imputed_values),
            "pipeline_sha256": self.pipeline_sha256,
            "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        return (f"IndividualPrognosis(model={self.model!r}, mlrs={self.mlrs:.3f}, group={self.group!r}, "
                f"percentile={self.percentile:.0f}, imputed={self.imputed_values or self.imputed})")


def describe_imputed(name: str, value, *, label: bool = False) -> str:
    """An imputed value with the schema's unit: ``"ldh = 667.5 U/L"`` (the label instead of the name
    with ``label=True``; the bare name when the value is not known).

    Examples
    --------
    >>> describe_imputed("ldh", 667.54)
    'ldh = 667.5 U/L'
    >>> describe_imputed("mycn_amplified", 0, label=True)
    'MYCN amplification = no'
    """
    from nbrisk_core.clinical.schema import variable

    spec = variable(name)
    title = spec.label if label else name
    if value is None:
        return title
    if spec.kind == "binary":
        shown = "yes" if int(value) == 1 else "no"
    elif isinstance(value, (float, np.floating)):
        shown = f"{float(value):.4g}"
    else:
        shown = str(value)
    return f"{title} = {shown}" + (f" {spec.unit}" if spec.unit and spec.kind == "numeric" else "")


@functools.lru_cache(maxsize=4)
def _cached_pipeline(cohort_dir: str, embeddings_key: str | None):
    from nbrisk_core.prognosis.pipeline import fit_cohort_pipeline, read_embeddings

    embeddings = read_embeddings(embeddings_key) if embeddings_key else None
    return fit_cohort_pipeline(cohort_dir, embeddings, grid="app")


def read_embedding_vector(embedding) -> np.ndarray:
    """A patient's 16 CT features from a sequence, a dict/Series with ct01..ct16, or a JSON/CSV file."""
    from nbrisk_core.prognosis.pipeline import CT_COLUMNS

    if isinstance(embedding, (str, Path)):
        path = Path(embedding)
        if not path.exists():
            raise InputError(f"{path}: embedding file not found (expected 16 CT features ct01..ct16)")
        if path.suffix.lower() == ".json":
            import json

            embedding = json.loads(path.read_text())
        else:
            import pandas as pd

            table = pd.read_csv(path)
            if len(table) != 1:
                raise InputError(f"{path.name}: expected one row of CT features, got {len(table)} rows")
            embedding = table.iloc[0].to_dict()
    if isinstance(embedding, dict) or hasattr(embedding, "to_dict"):
        values = dict(embedding.to_dict() if hasattr(embedding, "to_dict") else embedding)
        missing = [c for c in CT_COLUMNS if c not in values]
        if missing:
            raise InputError(f"CT embedding: missing {', '.join(missing)} (expected the 16 features ct01..ct16)")
        embedding = [values[c] for c in CT_COLUMNS]
    try:
        vector = np.asarray(embedding, dtype=float).ravel()
    except (TypeError, ValueError) as error:
        raise InputError(f"CT embedding: not numeric ({error}); expected 16 numbers") from error
    if vector.size != len(CT_COLUMNS):
        raise InputError(f"CT embedding has {vector.size} values; expected {len(CT_COLUMNS)} (ct01..ct16)")
    if not np.all(np.isfinite(vector)):
        raise InputError("CT embedding contains a missing or infinite value; expected 16 finite numbers")
    return vector


def predict_from_labs(embedding, labs_path, cohort_dir=None, *, embeddings_file=None) -> dict:
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
    embeddings_file : str or Path, optional
        Embedding table of the cohort (else the classifier's ``cohort_embeddings``).
    """
    from nbrisk_core.config import demo_cohort_dir
    from nbrisk_core.prognosis.validation import validate_clinical

    labs = validate_clinical(labs_path, require=False)
    if len(labs) != 1:
        raise InputError(f"{Path(labs_path).name}: expected the values of one patient, got {len(labs)} rows")
    vector = read_embedding_vector(embedding)
    cohort = Path(cohort_dir) if cohort_dir is not None else demo_cohort_dir()
    pipeline = _cached_pipeline(str(Path(cohort).resolve()),
                                str(Path(embeddings_file).resolve()) if embeddings_file else None)
    result = pipeline.predict_patient(vector, labs).to_dict()
    result["cohort"] = str(cohort)
    result["synthetic"] = bool(pipeline.config_.get("synthetic", False))
    return result
