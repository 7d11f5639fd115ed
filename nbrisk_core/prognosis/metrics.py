"""Evaluation metrics of a survival risk score (``../shared/spec/method.md`` sections 6-7).

Plain functions ``(event, time, estimate) -> result``; results are small frozen dataclasses with
the value, the confidence interval and a readable repr (like lifelines' ``StatisticalResult``).
Every metric delegates to the library of the field that implements it:

=============================  ==============================================================
metric                         implementation
=============================  ==============================================================
Kaplan-Meier                   ``sksurv.nonparametric.kaplan_meier_estimator`` (log-log CI)
Harrell's C-index              ``sksurv.metrics.concordance_index_censored``
log-rank test                  ``lifelines.statistics.multivariate_logrank_test``
time-dependent AUC             ``sksurv.metrics.cumulative_dynamic_auc`` (Uno's IPCW
                               cumulative/dynamic AUC), one call per time point
integrated Brier score         ``sksurv.metrics.integrated_brier_score``
decision curve                 Vickers' ``stdca`` (KM-based net benefit), written here on top
                               of :func:`kaplan_meier`
calibration at a horizon       predicted risk vs ``1 - KM`` per bin of predicted risk
associations                   ``scipy.stats.mannwhitneyu`` (= R ``wilcox.test``), ``pearsonr``
=============================  ==============================================================

Conventions: ``event`` is 1 for death and 0 for censoring, ``time`` is in days, and a risk score
is "higher = worse" (shorter survival).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nbrisk_core.errors import InputError

#: Two-sided level of every confidence interval in this module.
CONFIDENCE_LEVEL = 0.95


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------
def _survival_arrays(event, time, *, what: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Check and convert an (event, time) pair; :class:`InputError` naming the problem."""
    prefix = f"{what}: " if what else ""
    try:
        time = np.asarray(time, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise InputError(f"{prefix}time must be numeric (days); got {exc}", source="time") from None
    event_raw = np.asarray(event).ravel()
    if event_raw.dtype == bool:
        event_arr = event_raw.astype(int)
    else:
        try:
            event_arr = event_raw.astype(float)
        except (TypeError, ValueError):
            raise InputError(f"{prefix}event must be 0 (censored) or 1 (death); got values such as "
                             f"{event_raw[:3].tolist()}", source="event") from None
        bad = ~np.isin(event_arr, (0.0, 1.0))
        if bad.any():
            raise InputError(f"{prefix}event must be 0 (censored) or 1 (death); got {event_raw[bad][0]!r}",
                             source="event")
        event_arr = event_arr.astype(int)
    if len(time) != len(event_arr):
        raise InputError(f"{prefix}{len(event_arr)} event values but {len(time)} times", source="time")
    if len(time) == 0:
        raise InputError(f"{prefix}no patients (empty time and event)", source="time")
    if not np.all(np.isfinite(time)):
        raise InputError(f"{prefix}time has a missing or infinite value at position "
                         f"{int(np.flatnonzero(~np.isfinite(time))[0])}; expected days >= 0", source="time")
    if (time < 0).any():
        raise InputError(f"{prefix}time = {time[time < 0][0]:g} is negative; expected days >= 0",
                         source="time")
    return event_arr, time


def _score_array(values, n: int, *, name: str) -> np.ndarray:
    """A 1-D float array of length ``n`` without missing values."""
    try:
        arr = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        raise InputError(f"{name} must be numeric", source=name) from None
    if len(arr) != n:
        raise InputError(f"{name} has {len(arr)} values but there are {n} patients", source=name)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} has a missing or infinite value at position "
                         f"{int(np.flatnonzero(~np.isfinite(arr))[0])}", source=name)
    return arr


def _surv(event: np.ndarray, time: np.ndarray):
    from sksurv.util import Surv

    return Surv.from_arrays(event=event.astype(bool), time=time)


# --------------------------------------------------------------------------------------------
# Kaplan-Meier
# --------------------------------------------------------------------------------------------
def kaplan_meier(event, time, *, times=None, ci: bool = True) -> pd.DataFrame:
    """Kaplan-Meier estimate of overall survival with its 95 % pointwise CI: the one KM of NBRisk.

    Every survival curve, decision curve and calibration of the product goes through this function
    (``sksurv.nonparametric.kaplan_meier_estimator``, ``conf_type="log-log"``: R's
    ``survfit(conf.type="log-log")``, equal to lifelines' exponential Greenwood interval to 1e-6).

    Parameters
    ----------
    event, time : array-like
        Event indicator (1 = death, 0 = censored) and follow-up time (days).
    times : array-like, optional
        Evaluate the step function at these times (default: at 0 and every distinct observed time).
    ci : bool
        Compute the interval (``low``/``high`` are NaN otherwise; faster).

    Returns
    -------
    DataFrame
        Columns ``time, survival, low, high``; with ``times=None`` also ``at_risk`` and ``events``.
        The first row is ``t = 0`` (S = 1 unless deaths at time 0), as R's ``survfit`` and lifelines.

    Examples
    --------
    >>> kaplan_meier([1, 0, 1], [1, 2, 3])["survival"].round(3).tolist()
    [1.0, 0.667, 0.667, 0.0]
    """
    from sksurv.nonparametric import kaplan_meier_estimator

    event, time = _survival_arrays(event, time, what="Kaplan-Meier")
    if ci:
        with np.errstate(divide="ignore", invalid="ignore"):
            steps, survival, (low, high) = kaplan_meier_estimator(event.astype(bool), time,
                                                                  conf_type="log-log")
    else:
        steps, survival = kaplan_meier_estimator(event.astype(bool), time)
        low = high = np.full(len(steps), np.nan)
    if steps[0] != 0:
        steps, survival = np.r_[0.0, steps], np.r_[1.0, survival]
        low, high = np.r_[1.0 if ci else np.nan, low], np.r_[1.0 if ci else np.nan, high]
    if times is None:
        return pd.DataFrame({
            "time": steps.astype(float), "survival": survival, "low": low, "high": high,
            "at_risk": (time[None, :] >= steps[:, None]).sum(axis=1),
            "events": ((time[None, :] == steps[:, None]) & (event[None, :] == 1)).sum(axis=1),
        })
    times = np.atleast_1d(np.asarray(times, dtype=float))
    # step functions: the value at t is the last step at or before t
    idx = np.clip(np.searchsorted(steps, times, side="right") - 1, 0, None)
    return pd.DataFrame({"time": times, "survival": survival[idx], "low": low[idx], "high": high[idx]})


def _km_survival_at(time: np.ndarray, event: np.ndarray, horizon: float) -> float:
    """KM survival at ``horizon``; NaN when the follow-up stops before the horizon with S > 0."""
    if len(time) == 0:
        return float("nan")
    s = float(kaplan_meier(event, time, times=[horizon], ci=False)["survival"].iloc[0])
    if horizon > time.max() and s > 0:
        # nobody is followed up to the horizon: the KM is undefined there (R's
        # summary(survfit, times=) refuses too) and carrying the last value forward would be a guess
        return float("nan")
    return s


# --------------------------------------------------------------------------------------------
# C-index and log-rank
# --------------------------------------------------------------------------------------------
def concordance_index(event, time, risk) -> float:
    """Harrell's concordance index of a risk score (higher risk = shorter survival).

    Pairs with tied risk count 1/2; a pair is comparable when the shorter time is a death
    (``sksurv.metrics.concordance_index_censored``, the same definition as R ``survival``'s
    ``concordance`` and as the Mime1 grid's C-index).

    Examples
    --------
    >>> concordance_index([1, 1, 0], [1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    1.0
    """
    from sksurv.exceptions import NoComparablePairException
    from sksurv.metrics import concordance_index_censored

    event, time = _survival_arrays(event, time, what="C-index")
    risk = _score_array(risk, len(time), name="risk")
    if event.sum() == 0:
        raise InputError("C-index: no deaths among the patients, so no pair is comparable", source="event")
    try:
        return float(concordance_index_censored(event.astype(bool), time, risk)[0])
    except NoComparablePairException:
        raise InputError("C-index: no comparable pair (every death comes after all other follow-up)",
                         source="time") from None


@dataclass(frozen=True)
class LogRankResult:
    """Log-rank test of equal survival across groups (chi-square with ``degrees_of_freedom``)."""

    statistic: float
    p_value: float
    degrees_of_freedom: int
    groups: tuple = ()

    def __repr__(self) -> str:
        return (f"LogRankResult(chi2={self.statistic:.4g}, df={self.degrees_of_freedom}, "
                f"p={self.p_value:.3g}, groups={list(self.groups)})")


def logrank_test(event, time, groups) -> LogRankResult:
    """Log-rank test across two or more groups (R ``survdiff`` with ``rho = 0``).

    Examples
    --------
    >>> logrank_test([1, 1, 1, 1], [1, 2, 3, 4], ["a", "b", "a", "b"]).degrees_of_freedom
    1
    """
    from lifelines.statistics import multivariate_logrank_test

    event, time = _survival_arrays(event, time, what="log-rank test")
    groups = np.asarray(groups).ravel()
    if len(groups) != len(time):
        raise InputError(f"log-rank test: {len(groups)} group labels but {len(time)} patients",
                         source="groups")
    if pd.isna(groups).any():
        raise InputError("log-rank test: a group label is missing", source="groups")
    labels = sorted(set(groups.tolist()), key=str)
    if len(labels) < 2:
        raise InputError(f"log-rank test: needs at least two groups; got only {labels}", source="groups")
    result = multivariate_logrank_test(time, groups, event)
    return LogRankResult(statistic=float(result.test_statistic), p_value=float(result.p_value),
                         degrees_of_freedom=int(result.degrees_of_freedom), groups=tuple(labels))


# --------------------------------------------------------------------------------------------
# time-dependent AUC
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimeAUC:
    """Cumulative/dynamic AUC of a risk score at one time point, with its 95 % CI.

    ``n_cases`` are deaths at or before ``time``, ``n_controls`` patients still followed after it.
    ``auc`` is NaN when there are no cases or no controls, and ``reason`` says why.
    """

    time: float
    auc: float
    low: float
    high: float
    n_cases: int
    n_controls: int
    ci_method: str = "clopper-pearson"
    reason: str = ""

    def __repr__(self) -> str:
        if math.isnan(self.auc):
            return f"TimeAUC(t={self.time:g} d: not estimable, {self.reason})"
        return (f"TimeAUC(t={self.time:g} d: AUC={self.auc:.3f} (95% CI {self.low:.3f}-{self.high:.3f}, "
                f"{self.ci_method}), cases={self.n_cases}, controls={self.n_controls})")


def clopper_pearson_interval(successes: float, trials: float, level: float = CONFIDENCE_LEVEL):
    """Exact binomial (Clopper-Pearson) interval of a proportion ``successes / trials``.

    ``successes`` may be non-integer (a weighted count); the beta-quantile formula is then its
    continuous extension, and equals the exact interval whenever ``successes`` is an integer.
    """
    from scipy.stats import beta

    alpha = 1 - level
    x, n = float(successes), float(trials)
    low = 0.0 if x <= 0 else float(beta.ppf(alpha / 2, x, n - x + 1))
    high = 1.0 if x >= n else float(beta.ppf(1 - alpha / 2, x + 1, n - x))
    return low, high


def _auc_at(event, time, risk, t, train_y):
    from sksurv.metrics import cumulative_dynamic_auc

    scores, _ = cumulative_dynamic_auc(train_y, _surv(event, time), risk, [t])
    return float(scores[0])


def time_dependent_auc(event, time, risk, times, *, train_event=None, train_time=None,
                       ci: str | None = "clopper-pearson", n_bootstrap: int = 500,
                       seed: int = 2025) -> list[TimeAUC]:
    """Cumulative/dynamic time-dependent AUC of a risk score at given times, with 95 % CI.

    At time ``t`` the cases are the patients who died at or before ``t`` and the controls those
    still followed after ``t``; the AUC is the (inverse-probability-of-censoring weighted)
    proportion of case-control pairs in which the case has the higher risk, ties counting 1/2
    (Uno et al. 2007, ``sksurv.metrics.cumulative_dynamic_auc``; the paper's R ``timeROC``
    estimator is the same IPCW cumulative/dynamic AUC).

    Parameters
    ----------
    event, time, risk : array-like
        The cohort being evaluated (e.g. the testing cohort) and its risk score (higher = worse).
    times : array-like
        Time points in days (e.g. 365.25 * [1, 3, 5, 7]).
    train_event, train_time : array-like, optional
        The cohort the censoring distribution is estimated from (for the IPC weights); by default
        the evaluated cohort itself.
    ci : {"clopper-pearson", "bootstrap", None}
        ``"clopper-pearson"`` (the paper's choice, section 7): the AUC is treated as a binomial
        proportion of concordant case-control pairs, ``x = AUC * n`` successes out of
        ``n = n_cases * n_controls`` pairs, and the exact beta-quantile interval is taken (with
        IPC weights ``x`` may be non-integer; the same formula is used). This reproduces the
        narrow intervals of the paper (e.g. 0.93, 95 % CI 0.927-0.942 with 161 patients) but it
        treats pairs as independent although every patient is in many pairs, so it is too narrow;
        it is kept because it is what the paper reports.
        ``"bootstrap"``: percentile interval over ``n_bootstrap`` resamples of patients (with
        replacement; the censoring distribution is re-estimated from each resample unless a
        training cohort is given) — the honest choice for small cohorts. Resamples without cases
        or controls at ``t`` are skipped.
    n_bootstrap, seed : int
        Bootstrap resamples and their random seed.

    Returns
    -------
    list of TimeAUC
        One per time; NaN (with ``reason``) where there are no cases or no controls, or the IPC
        weights cannot be formed (the censoring survival reaches 0 before a case's death).
    """
    event, time = _survival_arrays(event, time, what="time-dependent AUC")
    risk = _score_array(risk, len(time), name="risk")
    if ci not in ("clopper-pearson", "bootstrap", None):
        raise InputError(f"time-dependent AUC: ci = {ci!r}; expected 'clopper-pearson', 'bootstrap' or None",
                         source="ci")
    if (train_event is None) != (train_time is None):
        raise InputError("time-dependent AUC: give both train_event and train_time, or neither",
                         source="train_time")
    if train_event is not None:
        train_event, train_time = _survival_arrays(train_event, train_time,
                                                   what="time-dependent AUC (training)")
    times = np.atleast_1d(np.asarray(times, dtype=float))
    rng = np.random.default_rng(seed)
    results = []
    for t in times:
        n_cases = int(((time <= t) & (event == 1)).sum())
        n_controls = int((time > t).sum())
        nan = float("nan")
        reason = ""
        if n_cases == 0:
            reason = f"no deaths at or before {t:g} days (no cases)"
        elif n_controls == 0:
            reason = f"nobody followed beyond {t:g} days (no controls)"
        if reason:
            results.append(TimeAUC(float(t), nan, nan, nan, n_cases, n_controls, ci or "none", reason))
            continue
        train_y = _surv(train_event, train_time) if train_event is not None else _surv(event, time)
        try:
            auc = _auc_at(event, time, risk, t, train_y)
        except ValueError as exc:  # sksurv: censoring survival is zero at a case's time
            results.append(TimeAUC(float(t), nan, nan, nan, n_cases, n_controls, ci or "none",
                                   f"IPC weights not defined: {exc}"))
            continue
        low = high = nan
        if ci == "clopper-pearson":
            low, high = clopper_pearson_interval(auc * n_cases * n_controls, n_cases * n_controls)
        elif ci == "bootstrap":
            low, high = _bootstrap_auc_ci(event, time, risk, t, train_event, train_time, n_bootstrap, rng)
        results.append(TimeAUC(float(t), auc, low, high, n_cases, n_controls, ci or "none"))
    return results


def time_dependent_roc(event, time, risk, t, *, train_event=None, train_time=None) -> pd.DataFrame:
    """Cumulative/dynamic ROC curve of a risk score at time ``t`` (the curve behind
    :func:`time_dependent_auc`).

    Sensitivity at threshold ``c`` is the IPC-weighted share of cases (death at or before ``t``)
    with risk ``>= c``; 1 - specificity the share of controls (followed beyond ``t``) with risk
    ``>= c``. The weights are ``1 / G(t_i)`` with ``G`` the Kaplan-Meier of censoring (sksurv's
    ``CensoringDistributionEstimator``), so the trapezoidal area equals the AUC of
    :func:`time_dependent_auc`.

    Returns
    -------
    DataFrame
        Columns ``threshold, fpr, tpr`` from (0, 0) to (1, 1); empty when ``t`` has no cases
        or no controls.
    """
    from sksurv.nonparametric import CensoringDistributionEstimator

    event, time = _survival_arrays(event, time, what="time-dependent ROC")
    risk = _score_array(risk, len(time), name="risk")
    is_case = (time <= t) & (event == 1)
    is_control = time > t
    if not is_case.any() or not is_control.any():
        return pd.DataFrame(columns=["threshold", "fpr", "tpr"], dtype=float)
    cens = CensoringDistributionEstimator()
    if train_event is not None:
        train_event, train_time = _survival_arrays(train_event, train_time,
                                                   what="time-dependent ROC (training)")
        cens.fit(_surv(train_event, train_time))
    else:
        cens.fit(_surv(event, time))
    weight = cens.predict_ipcw(_surv(event, time))
    thresholds = np.r_[np.inf, np.unique(risk)[::-1]]
    case_w = np.where(is_case, weight, 0.0)
    tpr = np.array([case_w[risk >= c].sum() for c in thresholds[1:]]) / case_w.sum()
    fpr = np.array([is_control[risk >= c].sum() for c in thresholds[1:]]) / is_control.sum()
    return pd.DataFrame({"threshold": thresholds, "fpr": np.r_[0.0, fpr], "tpr": np.r_[0.0, tpr]})


def _bootstrap_auc_ci(event, time, risk, t, train_event, train_time, n_bootstrap, rng):
    values = []
    n = len(time)
    train_y = _surv(train_event, train_time) if train_event is not None else None
    for _ in range(n_bootstrap):
        idx = rng.integers(0, n, n)
        e, tt, r = event[idx], time[idx], risk[idx]
        if not (((tt <= t) & (e == 1)).any() and (tt > t).any()):
            continue
        try:
            values.append(_auc_at(e, tt, r, t, train_y if train_y is not None else _surv(e, tt)))
        except ValueError:
            continue
    if len(values) < 20:
        return float("nan"), float("nan")
    alpha = 1 - CONFIDENCE_LEVEL
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


# --------------------------------------------------------------------------------------------
# decision curve, calibration, Brier
# --------------------------------------------------------------------------------------------
def decision_curve(event, time, risk_probability, horizon, thresholds=None) -> pd.DataFrame:
    """Decision curve for survival at a horizon (Vickers et al. 2008, the ``stdca`` method).

    "Event" is death at or before ``horizon``. For a threshold probability ``pt`` the patients
    with ``risk_probability > pt`` are treated (a fraction ``px`` of the cohort); their risk of
    death by the horizon is ``1 - KM(horizon)`` within that group, so

        net benefit = px * (1 - S) - px * S * pt / (1 - pt),   S = KM survival of the treated.

    Treat-all uses the KM of the whole cohort; treat-none is 0. When nobody is above the
    threshold the net benefit is 0 (nobody treated); when the treated group's follow-up ends
    before the horizon the KM is undefined there and the net benefit is NaN.

    Parameters
    ----------
    event, time : array-like
        Outcome (1 = death, days).
    risk_probability : array-like
        Predicted probability of death by ``horizon`` (0-1), e.g. ``1 - S_i(horizon)``.
    horizon : float
        Days.
    thresholds : array-like, optional
        Threshold probabilities in [0, 1) (default 0.01, 0.02, ..., 0.99).

    Returns
    -------
    DataFrame
        Columns ``threshold, net_benefit, treat_all, treat_none, n_treated``.
    """
    event, time = _survival_arrays(event, time, what="decision curve")
    prob = _score_array(risk_probability, len(time), name="risk_probability")
    if (prob < 0).any() or (prob > 1).any():
        bad = prob[(prob < 0) | (prob > 1)][0]
        raise InputError(f"decision curve: risk_probability = {bad:g} is outside 0-1 (a probability of "
                         f"death by the horizon is expected, not a raw risk score)",
                         source="risk_probability")
    if not np.isfinite(horizon) or horizon <= 0:
        raise InputError(f"decision curve: horizon = {horizon!r}; expected a positive number of days",
                         source="horizon")
    thresholds = (np.round(np.arange(1, 100) / 100, 2) if thresholds is None
                  else np.atleast_1d(np.asarray(thresholds, dtype=float)))
    if (thresholds < 0).any() or (thresholds >= 1).any():
        raise InputError("decision curve: thresholds must lie in [0, 1)", source="thresholds")
    s_all = _km_survival_at(time, event, horizon)
    rows = []
    for pt in thresholds:
        odds = pt / (1 - pt)
        treated = prob > pt
        px = treated.mean()
        if px == 0:
            nb = 0.0
        else:
            s = _km_survival_at(time[treated], event[treated], horizon)
            nb = px * (1 - s) - px * s * odds
        treat_all = (1 - s_all) - s_all * odds
        rows.append((float(pt), float(nb), float(treat_all), 0.0, int(treated.sum())))
    return pd.DataFrame(rows, columns=["threshold", "net_benefit", "treat_all", "treat_none", "n_treated"])


def risk_probability_from_score(train_event, train_time, train_score, score, horizon) -> np.ndarray:
    """Probability of death by ``horizon`` for a risk score, via a one-covariate Cox model.

    A risk score (such as the MLRS) is on its own scale; decision curves and calibration need a
    probability. As in Vickers' ``stdca`` examples, a Cox model with the score as its only
    covariate is fitted on the training cohort (``lifelines.CoxPHFitter``, Breslow baseline) and
    ``1 - S(horizon | score)`` is returned for ``score``. The model is fitted on training data only,
    so applying it to the testing cohort does not peek at the testing outcomes.
    """
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError

    train_event, train_time = _survival_arrays(train_event, train_time, what="score calibration (training)")
    train_score = _score_array(train_score, len(train_time), name="train_score")
    score = np.atleast_1d(np.asarray(score, dtype=float))
    if not np.isfinite(score).all():
        raise InputError("score calibration: score has a missing or infinite value", source="score")
    if train_event.sum() == 0:
        raise InputError("score calibration: no deaths in the training cohort", source="train_event")
    if np.ptp(train_score) == 0:
        # a constant score (e.g. a model that ranks no one) carries no information: every patient
        # gets the cohort's Kaplan-Meier risk at the horizon
        at_horizon = kaplan_meier(train_event, train_time, times=[horizon], ci=False)["survival"].iloc[0]
        return np.full(score.shape, 1.0 - float(at_horizon))
    # centre and scale for a well-conditioned fit; the prediction undoes nothing (same transform)
    centre, spread = train_score.mean(), train_score.std() or 1.0
    frame = pd.DataFrame({"time": train_time, "event": train_event, "score": (train_score - centre) / spread})
    try:
        cox = CoxPHFitter().fit(frame, "time", "event")
    except ConvergenceError:
        # a score that separates deaths perfectly (small cohorts) has no finite MLE; a light ridge
        # penalty keeps the calibration finite instead of stopping the whole evaluation
        cox = CoxPHFitter(penalizer=0.1).fit(frame, "time", "event")
    surv = cox.predict_survival_function(pd.DataFrame({"score": (score - centre) / spread}), times=[horizon])
    return 1.0 - surv.to_numpy().ravel()


def calibration_at(event, time, predicted_risk_at_horizon, horizon, bins: int = 5) -> pd.DataFrame:
    """Predicted vs observed risk of death by ``horizon``, per quantile bin of predicted risk.

    Observed risk in a bin is ``1 - KM(horizon)`` of the patients in the bin (censoring handled
    by Kaplan-Meier), with the KM's 95 % CI turned into a risk interval.

    Returns
    -------
    DataFrame
        Columns ``bin, n, n_events, predicted, observed, observed_low, observed_high``
        (``observed`` NaN where the bin's follow-up ends before the horizon).
    """
    event, time = _survival_arrays(event, time, what="calibration")
    pred = _score_array(predicted_risk_at_horizon, len(time), name="predicted_risk_at_horizon")
    if (pred < 0).any() or (pred > 1).any():
        raise InputError("calibration: predicted_risk_at_horizon must be probabilities in 0-1",
                         source="predicted_risk_at_horizon")
    if int(bins) < 1 or int(bins) > len(time):
        raise InputError(f"calibration: bins = {bins}; expected 1 to the number of patients ({len(time)})",
                         source="bins")
    # quantile bins of equal size; ranks break ties so every bin is filled
    order = np.argsort(pred, kind="stable")
    bin_of = np.empty(len(pred), dtype=int)
    bin_of[order] = np.arange(len(pred)) * int(bins) // len(pred)
    rows = []
    for b in range(int(bins)):
        sel = bin_of == b
        km = kaplan_meier(event[sel], time[sel])
        if horizon > time[sel].max() and km["survival"].iloc[-1] > 0:
            obs = lo = hi = float("nan")
        else:
            k = max(int(np.searchsorted(km["time"].to_numpy(), horizon, side="right")) - 1, 0)
            obs = 1 - float(km["survival"].iloc[k])
            lo, hi = 1 - float(km["high"].iloc[k]), 1 - float(km["low"].iloc[k])
        rows.append((b + 1, int(sel.sum()), int(event[sel & (time <= horizon)].sum()),
                     float(pred[sel].mean()), obs, lo, hi))
    return pd.DataFrame(rows, columns=["bin", "n", "n_events", "predicted", "observed",
                                       "observed_low", "observed_high"])


def integrated_brier_score(train_event, train_time, test_event, test_time, survival_matrix, times) -> float:
    """Integrated Brier score (IPCW, Graf et al. 1999) over ``times``; lower is better.

    ``survival_matrix`` has one row per test patient and one column per time: the predicted
    probability of surviving beyond that time (``sksurv.metrics.integrated_brier_score``; the
    times must lie inside the test follow-up).
    """
    from sksurv.metrics import integrated_brier_score as _ibs

    train_event, train_time = _survival_arrays(train_event, train_time, what="Brier score (training)")
    test_event, test_time = _survival_arrays(test_event, test_time, what="Brier score (testing)")
    times = np.atleast_1d(np.asarray(times, dtype=float))
    surv = np.asarray(survival_matrix, dtype=float)
    if surv.shape != (len(test_time), len(times)):
        raise InputError(f"Brier score: survival_matrix has shape {surv.shape}; expected "
                         f"({len(test_time)} patients, {len(times)} times)", source="survival_matrix")
    if len(times) < 2:
        raise InputError("Brier score: the integrated score needs at least two time points", source="times")
    try:
        return float(_ibs(_surv(train_event, train_time), _surv(test_event, test_time), surv, times))
    except ValueError as exc:
        raise InputError(f"Brier score: {exc}", source="times") from None


# --------------------------------------------------------------------------------------------
# associations of MLRS with known prognostic markers
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupComparison:
    """Wilcoxon rank-sum (Mann-Whitney U) test of a score between two groups (two-sided)."""

    variable: str
    groups: tuple[str, str]
    n: tuple[int, int]
    medians: tuple[float, float]
    statistic: float
    p_value: float

    def __repr__(self) -> str:
        return (f"GroupComparison({self.variable}: median {self.groups[0]}={self.medians[0]:.3g} "
                f"(n={self.n[0]}) vs {self.groups[1]}={self.medians[1]:.3g} (n={self.n[1]}), "
                f"W={self.statistic:.4g}, p={self.p_value:.3g})")


@dataclass(frozen=True)
class Correlation:
    """Pearson correlation with its Fisher-z 95 % CI, over patients with an observed value."""

    variable: str
    r: float
    low: float
    high: float
    p_value: float
    n: int
    note: str = field(default="")

    def __repr__(self) -> str:
        return (f"Correlation({self.variable}: r={self.r:.3f} (95% CI {self.low:.3f}-{self.high:.3f}), "
                f"p={self.p_value:.3g}, n={self.n})")


#: The group comparisons of section 7: column, (reference label, comparison label) and how the
#: column's values map to them.
_GROUP_TESTS = (
    ("risk_group", {"NHR": "NHR", "HR": "HR"}),
    ("mycn_amplified", {0: "not amplified", 1: "amplified"}),
)
_CORRELATIONS = ("ferritin", "nse")


def mlrs_associations(mlrs, clinical_df: pd.DataFrame) -> dict:
    """Associations of the MLRS with known prognostic markers (method.md section 7).

    Wilcoxon rank-sum test (``scipy.stats.mannwhitneyu``, two-sided; R ``wilcox.test``) of the
    MLRS between HR and NHR patients and between MYCN-amplified and non-amplified patients;
    Pearson correlation of the MLRS with ferritin and NSE over the patients whose lab value was
    observed (imputed values are not evidence, so rows with a blank lab are left out).

    Parameters
    ----------
    mlrs : array-like or Series
        One score per patient; a Series indexed by ``patient_id`` is aligned with the table's
        ``patient_id`` column (or index), an array must be in the table's row order.
    clinical_df : DataFrame
        With columns ``risk_group`` (HR/NHR), ``mycn_amplified`` (0/1), ``ferritin``, ``nse``.

    Returns
    -------
    dict
        ``{"risk_group": GroupComparison, "mycn_amplified": GroupComparison,
        "ferritin": Correlation, "nse": Correlation}``.
    """
    from scipy.stats import mannwhitneyu, pearsonr

    table = clinical_df
    if isinstance(mlrs, pd.Series) and "patient_id" in table.columns:
        missing = set(table["patient_id"]) - set(mlrs.index)
        if missing:
            raise InputError(f"MLRS associations: no MLRS for patient(s) {sorted(missing)[:3]}",
                             source="mlrs")
        score = mlrs.reindex(table["patient_id"]).to_numpy(dtype=float)
    elif isinstance(mlrs, pd.Series) and mlrs.index.equals(table.index):
        score = mlrs.to_numpy(dtype=float)
    else:
        score = np.asarray(mlrs, dtype=float).ravel()
    score = _score_array(score, len(table), name="mlrs")
    needed = [c for c, _ in _GROUP_TESTS] + list(_CORRELATIONS)
    absent = [c for c in needed if c not in table.columns]
    if absent:
        raise InputError(f"MLRS associations: the clinical table lacks column(s) {absent}", source="clinical")
    out: dict = {}
    for column, mapping in _GROUP_TESTS:
        values = table[column].to_numpy()
        (ref_value, ref_label), (cmp_value, cmp_label) = mapping.items()
        in_ref = values == ref_value
        in_cmp = values == cmp_value
        if in_ref.sum() == 0 or in_cmp.sum() == 0:
            raise InputError(f"MLRS associations: column {column} needs both {ref_value!r} and "
                             f"{cmp_value!r}; "
                             f"got {sorted(set(map(str, values)))}", source=column)
        test = mannwhitneyu(score[in_cmp], score[in_ref], alternative="two-sided")
        out[column] = GroupComparison(column, (cmp_label, ref_label), (int(in_cmp.sum()), int(in_ref.sum())),
                                      (float(np.median(score[in_cmp])), float(np.median(score[in_ref]))),
                                      float(test.statistic), float(test.pvalue))
    for column in _CORRELATIONS:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(values)
        n_ok = int(ok.sum())
        note = (f"{len(values) - n_ok} patient(s) without an observed {column} left out"
                if n_ok < len(values) else "")
        if n_ok < 3:
            nan = float("nan")
            out[column] = Correlation(column, nan, nan, nan, nan, n_ok, "fewer than 3 observed values")
            continue
        res = pearsonr(score[ok], values[ok])
        ci = res.confidence_interval(CONFIDENCE_LEVEL)
        out[column] = Correlation(column, float(res.statistic), float(ci.low), float(ci.high),
                                  float(res.pvalue), n_ok, note)
    return out
