"""Prognosis of one patient: survival curve, MLRS, its percentile and group.

:class:`IndividualPrognosis` is what :meth:`PrognosisPipeline.predict_patient` returns (its JSON-able
form, :meth:`IndividualPrognosis.to_dict`, is what ``nbrisk predict --labs FILE`` prints through
:func:`nbrisk_core.prognosis.pipeline.predict_from_labs`). This module imports nothing of the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
