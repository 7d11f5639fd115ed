"""One evaluation of a risk score on a cohort: :func:`evaluate` -> :class:`CohortEvaluation`.

The Cohort page, ``nbrisk benchmark``, the pipeline's summary (and ``nbrisk reproduce`` and the
report) read the same numbers from here: Harrell's C-index with a bootstrap 95 % CI, the log-rank
test of the high/low MLRS groups, the time-dependent AUC, the decision curve and the calibration at
a horizon, and the associations of the score with known markers. Every number comes from
:mod:`nbrisk_core.prognosis.metrics` (one C-index, one Kaplan-Meier, one AUC).

Examples
--------
>>> import pandas as pd
>>> train = pd.DataFrame({"event": [1, 0, 1, 1, 0, 1], "time": [100., 900, 300, 50, 700, 400],
...                       "mlrs": [2.0, -1.0, 1.0, 3.0, -2.0, 0.5]})
>>> result = evaluate(None, train, cutoff=0.0, times_days=[200.0], horizon_days=None, c_index_ci=None)
>>> round(result.c_index.value, 3), result.logrank.degrees_of_freedom
(1.0, 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nbrisk_core.errors import InputError
from nbrisk_core.prognosis import metrics

DAYS_PER_YEAR = 365.25
#: td-AUC time points of the paper (method.md section 7), in years.
TD_AUC_YEARS = (1, 3, 5, 7)
#: Horizon of the decision curve and calibration by default (3 years, the paper's figure).
DEFAULT_HORIZON_DAYS = 3 * DAYS_PER_YEAR


@dataclass(frozen=True)
class ConcordanceResult:
    """Harrell's C-index with a percentile bootstrap 95 % CI over patients (NaN CI when not computed)."""

    value: float
    low: float
    high: float
    n: int
    n_events: int
    ci_method: str = "bootstrap"

    def __repr__(self) -> str:
        ci = "" if math.isnan(self.low) else f" (95% CI {self.low:.3f}-{self.high:.3f}, {self.ci_method})"
        return f"ConcordanceResult(C={self.value:.3f}{ci}, n={self.n}, events={self.n_events})"


@dataclass(frozen=True)
class CohortEvaluation:
    """Everything the product reports about a risk score on one cohort (or subgroup).

    ``c_index`` / ``logrank`` are None where they cannot be computed (no death; one group only);
    ``decision_curve`` / ``calibration`` None without a horizon or without a training reference;
    ``associations`` None unless a clinical table was given. ``notes`` say why something is missing.
    """

    n: int
    n_events: int
    c_index: ConcordanceResult | None
    logrank: metrics.LogRankResult | None
    td_auc: tuple = ()
    horizon_days: float | None = None
    decision_curve: pd.DataFrame | None = field(default=None, repr=False)
    calibration: pd.DataFrame | None = field(default=None, repr=False)
    associations: dict | None = None
    notes: tuple = ()

    def td_auc_by_year(self) -> dict:
        """``{"1": [auc, low, high] or [None]*3, ...}``: the summary.json form."""
        return {f"{round(a.time / DAYS_PER_YEAR, 6):g}":
                ([None, None, None] if np.isnan(a.auc) else [a.auc, a.low, a.high]) for a in self.td_auc}


def concordance_with_ci(event, time, risk, *, n_bootstrap: int = 200, seed: int = 2025) -> ConcordanceResult:
    """C-index (:func:`~nbrisk_core.prognosis.metrics.concordance_index`) with a percentile bootstrap CI.

    Resamples without a death are skipped; fewer than 20 usable resamples give a NaN interval.
    ``n_bootstrap=0`` skips the interval.
    """
    event = np.asarray(event, dtype=int)
    time = np.asarray(time, dtype=float)
    risk = np.asarray(risk, dtype=float)
    value = metrics.concordance_index(event, time, risk)
    low = high = float("nan")
    if n_bootstrap:
        rng = np.random.default_rng(seed)
        values = []
        for _ in range(n_bootstrap):
            idx = rng.integers(0, len(time), len(time))
            if event[idx].sum() == 0:
                continue
            try:
                values.append(metrics.concordance_index(event[idx], time[idx], risk[idx]))
            except InputError:  # a resample whose deaths are all after everyone else: no comparable pair
                continue
        if len(values) >= 20:
            low, high = (float(q) for q in np.quantile(values, [0.025, 0.975]))
    return ConcordanceResult(value, low, high, int(len(time)), int(event.sum()))


def _scored(model, cohort) -> pd.DataFrame:
    """``event, time, mlrs`` (+ ``mlrs_group``/``patient_id`` where given) of a cohort."""
    if isinstance(cohort, tuple):
        X, y = cohort
        from nbrisk_core.prognosis.estimators import event_time_arrays

        event, time = event_time_arrays(y)
        if model is None:
            raise InputError("evaluate: a model is needed to score (X, y)")
        return pd.DataFrame({"event": event.astype(int), "time": time,
                             "mlrs": np.asarray(model.predict(X), dtype=float)})
    if not isinstance(cohort, pd.DataFrame):
        raise InputError(f"evaluate: cohort must be a table (event, time, mlrs) or (X, y); "
                         f"got {type(cohort).__name__}")
    missing = [c for c in ("event", "time", "mlrs") if c not in cohort.columns]
    if missing:
        raise InputError(f"evaluate: the cohort table lacks column(s) {', '.join(missing)} "
                         "(expected patient_id, time, event, mlrs as in PrognosisPipeline.patients_)")
    return cohort


def evaluate(model, cohort, *, reference: pd.DataFrame | None = None, cutoff: float | None = None,
             times_days=None, horizon_days: float | None = DEFAULT_HORIZON_DAYS,
             calibration_bins: int | None = None, associations_with: pd.DataFrame | None = None,
             c_index_ci: str | None = "bootstrap", n_bootstrap: int = 200,
             seed: int = 2025) -> CohortEvaluation:
    """Evaluate a risk score (higher = worse) on a cohort.

    Parameters
    ----------
    model : fitted PrognosisPipeline, estimator with ``predict``, or None
        Scores ``(X, y)``; gives the default ``cutoff`` (``cutoff_``) and ``reference``
        (its training rows of ``patients_``). None when ``cohort`` is already scored.
    cohort : DataFrame or (X, y)
        A scored table with ``event``, ``time`` and ``mlrs`` (e.g. ``pipeline.patients_`` or a subgroup
        of it), or a design ``X`` with ``y = Surv.from_arrays(event, time)``.
    reference : DataFrame, optional
        The training cohort (``event``, ``time``, ``mlrs``): censoring distribution of the td-AUC's IPC
        weights and the one-covariate Cox model turning the score into a probability of death by the
        horizon (so the testing curve never uses testing outcomes).
    cutoff : float, optional
        High/low split of the log-rank test (``mlrs > cutoff`` is high).
    times_days : sequence of float, optional
        td-AUC time points (default 1, 3, 5 and 7 years).
    horizon_days : float or None
        Horizon of the decision curve and calibration (None: neither).
    calibration_bins : int, optional
        Default ``min(5, max(1, n // 10))``.
    associations_with : DataFrame, optional
        Clinical table aligned with ``cohort`` rows (risk_group, mycn_amplified, ferritin, nse):
        adds :func:`~nbrisk_core.prognosis.metrics.mlrs_associations`.
    c_index_ci : {"bootstrap", None}
        Percentile bootstrap over patients (``n_bootstrap`` resamples, ``seed``), or no interval.
    """
    table = _scored(model, cohort)
    if reference is None and model is not None and hasattr(model, "patients_"):
        reference = model.patients_[model.patients_["cohort"] == "train"]
    if cutoff is None and model is not None:
        cutoff = getattr(model, "cutoff_", None)
    event = table["event"].to_numpy(dtype=int)
    time = table["time"].to_numpy(dtype=float)
    risk = table["mlrs"].to_numpy(dtype=float)
    notes: list[str] = []
    try:
        c_index = concordance_with_ci(event, time, risk, n_bootstrap=n_bootstrap if c_index_ci else 0,
                                      seed=seed)
    except InputError as error:
        c_index = None
        notes.append(f"C-index: {error}")
    if "mlrs_group" in table.columns:
        groups = table["mlrs_group"].to_numpy()
    elif cutoff is not None:
        groups = np.where(risk > cutoff, "high", "low")
    else:
        groups = None
    logrank = None
    if groups is not None and len(set(groups.tolist())) > 1:
        logrank = metrics.logrank_test(event, time, groups)
    elif groups is not None:
        notes.append("log-rank test: all patients are in one MLRS group")
    times = [DAYS_PER_YEAR * y for y in TD_AUC_YEARS] if times_days is None else list(times_days)
    train = {} if reference is None else dict(train_event=reference["event"].to_numpy(),
                                              train_time=reference["time"].to_numpy())
    td_auc = tuple(metrics.time_dependent_auc(event, time, risk, times, **train)) if times else ()
    dca = calibration = None
    if horizon_days is not None and reference is not None:
        probability = metrics.risk_probability_from_score(reference["event"], reference["time"],
                                                          reference["mlrs"], risk, horizon_days)
        dca = metrics.decision_curve(event, time, probability, horizon_days)
        bins = calibration_bins or min(5, max(1, len(table) // 10))
        calibration = metrics.calibration_at(event, time, probability, horizon_days, bins=bins)
    elif horizon_days is not None:
        notes.append("decision curve and calibration need the training cohort (reference)")
    associations = None
    if associations_with is not None:
        associations = metrics.mlrs_associations(risk, associations_with.reset_index(drop=True))
    return CohortEvaluation(n=int(len(table)), n_events=int(event.sum()), c_index=c_index, logrank=logrank,
                            td_auc=td_auc, horizon_days=horizon_days, decision_curve=dca,
                            calibration=calibration, associations=associations, notes=tuple(notes))


def evaluate_by_cohort(patients: pd.DataFrame, **options) -> dict[str, CohortEvaluation]:
    """:func:`evaluate` of each cohort (``train``/``test``) of a patients table, reference = training."""
    reference = patients[patients["cohort"] == "train"]
    return {cohort: evaluate(None, part, reference=reference, **options)
            for cohort, part in patients.groupby("cohort")}


def summary_of(evaluations: dict[str, CohortEvaluation], cutoff: float) -> dict:
    """The ``c_index`` / ``logrank_p`` / ``td_auc`` / ``cutoff`` part of summary.json."""
    return {
        "c_index": {k: (None if e.c_index is None else e.c_index.value) for k, e in evaluations.items()},
        "logrank_p": {k: (None if e.logrank is None else e.logrank.p_value) for k, e in evaluations.items()},
        "td_auc": {k: e.td_auc_by_year() for k, e in evaluations.items()},
        "cutoff": float(cutoff),
    }
