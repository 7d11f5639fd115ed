"""Cox screening of candidate features (``../shared/spec/method.md`` section 6).

Univariate Cox regression per feature keeps ``p < p_univariate`` (paper 0.05); a multivariate Cox
regression on those keeps ``p < p_multivariate`` (paper 0.2). Hazard ratios are per unit of the
(standardised) feature, with 95 % Wald confidence intervals, for the forest plot.

lifelines' :class:`~lifelines.CoxPHFitter` (Efron ties, Wald tests, as R ``coxph``) does the fits.
The multivariate fit is first run without penalty; if it fails to converge (separation, collinear
features on a small cohort), it is refitted with a small ridge penalty (``fallback_penalizer``) and
the table records that, rather than failing.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

SCREENING_COLUMNS = ["feature", "hr", "low", "high", "p_univariate", "hr_multivariate",
                     "p_multivariate", "kept"]


def _cox_fit(frame: pd.DataFrame, penalizer: float):
    from lifelines import CoxPHFitter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines' convergence hints; failures raise below
        return CoxPHFitter(penalizer=penalizer).fit(frame, duration_col="_time", event_col="_event")


def cox_screening(X: pd.DataFrame, time, event, *, p_univariate: float = 0.05, p_multivariate: float = 0.2,
                  min_features: int = 2, fallback_penalizer: float = 0.01) -> pd.DataFrame:
    """Two-stage Cox screening.

    Parameters
    ----------
    X : pandas.DataFrame
        Candidate features (already standardised), one column each.
    time, event : array-like
        Overall survival in days and death indicator.
    p_univariate, p_multivariate : float
        Thresholds of the two stages (paper: 0.05 then 0.2).
    min_features : int
        If fewer features pass both stages, the ``min_features`` with the smallest univariate p are
        kept instead, and ``table.attrs["notes"]`` says so (a model needs features; the user sees it).
    fallback_penalizer : float
        Ridge penalty of the multivariate refit when the unpenalised fit does not converge.

    Returns
    -------
    pandas.DataFrame
        One row per feature: ``feature, hr, low, high`` (univariate hazard ratio and 95 % CI),
        ``p_univariate, hr_multivariate, p_multivariate`` (NaN when not in the multivariate model) and
        ``kept``; sorted by univariate p. ``attrs["notes"]`` lists any fallback taken.
    """
    from lifelines.exceptions import ConvergenceError

    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    notes: list[str] = []
    rows = []
    for feature in X.columns:
        frame = pd.DataFrame({feature: X[feature].to_numpy(dtype=float), "_time": time, "_event": event})
        if frame[feature].std() == 0:
            rows.append(dict(feature=feature, hr=np.nan, low=np.nan, high=np.nan, p_univariate=1.0))
            notes.append(f"{feature} is constant in the training cohort: not screened in")
            continue
        try:
            fit = _cox_fit(frame, 0.0)
        except ConvergenceError:
            fit = _cox_fit(frame, fallback_penalizer)
            notes.append(f"{feature}: univariate Cox refitted with penalizer {fallback_penalizer}")
        summary = fit.summary.loc[feature]
        rows.append(dict(feature=feature, hr=float(summary["exp(coef)"]),
                         low=float(summary["exp(coef) lower 95%"]), high=float(summary["exp(coef) upper 95%"]),
                         p_univariate=float(summary["p"])))
    table = pd.DataFrame(rows)
    table["hr_multivariate"] = np.nan
    table["p_multivariate"] = np.nan
    table["kept"] = False
    stage1 = table.loc[table["p_univariate"] < p_univariate, "feature"].tolist()
    if stage1:
        frame = X[stage1].astype(float).assign(_time=time, _event=event)
        try:
            fit = _cox_fit(frame, 0.0)
        except ConvergenceError:
            fit = _cox_fit(frame, fallback_penalizer)
            notes.append(f"multivariate Cox did not converge unpenalised; refitted with penalizer "
                         f"{fallback_penalizer}")
        summary = fit.summary
        index = table.set_index("feature").index
        for feature in stage1:
            i = index.get_loc(feature)
            table.loc[i, "hr_multivariate"] = float(summary.loc[feature, "exp(coef)"])
            table.loc[i, "p_multivariate"] = float(summary.loc[feature, "p"])
        table["kept"] = table["p_multivariate"] < p_multivariate
    if int(table["kept"].sum()) < min_features:
        best = table.sort_values("p_univariate").head(min_features)["feature"].tolist()
        notes.append(f"only {int(table['kept'].sum())} feature(s) passed screening "
                     f"(univariate p < {p_univariate}, multivariate p < {p_multivariate}); "
                     f"kept the {min_features} with the smallest univariate p instead: {', '.join(best)}")
        table["kept"] = table["feature"].isin(best)
    table = table.sort_values("p_univariate", kind="stable").reset_index(drop=True)[SCREENING_COLUMNS]
    table.attrs["notes"] = notes
    return table
