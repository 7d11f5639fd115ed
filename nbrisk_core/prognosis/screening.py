"""Cox screening of candidate features (``../shared/spec/method.md`` section 6).

Univariate Cox regression per feature keeps ``p < p_univariate`` (paper 0.05); a multivariate Cox
regression on those keeps ``p < p_multivariate`` (paper 0.2). Hazard ratios are per unit of the
(standardised) feature, with 95 % Wald confidence intervals and Wald p-values, for the forest plot.

The fits use :func:`nbrisk_core.prognosis.estimators.cox_wald` (Newton-Raphson, Breslow ties; the
coefficients equal scikit-survival's ``CoxPHSurvivalAnalysis(ties="breslow")`` to 1e-6, and the
p-values and intervals equal lifelines' ``CoxPHFitter`` on data without tied times, where Breslow and
Efron coincide: ``tests/prognosis/test_engine_impute_screening.py``). lifelines was the first choice,
but its per-fit overhead (baseline hazard, concordance, pandas summaries) made the ~35 univariate fits
of a cohort cost several seconds; the numpy fit costs milliseconds. If a fit does not converge
(separation, collinear features on a small cohort), it is refitted with a small ridge penalty
(``fallback_penalizer``) and the table's notes say so, rather than failing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nbrisk_core.prognosis.estimators import cox_wald

SCREENING_COLUMNS = ["feature", "hr", "low", "high", "p_univariate", "hr_multivariate",
                     "p_multivariate", "kept"]


def _fit(X: np.ndarray, time, event, penalizer: float, what: str, notes: list[str]) -> dict:
    result = cox_wald(X, time, event)
    if not result["converged"]:
        result = cox_wald(X, time, event, ridge=penalizer)
        notes.append(f"{what}: Cox fit did not converge unpenalised; refitted with ridge penalty {penalizer}")
    return result


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
        Ridge penalty of a refit when the unpenalised fit does not converge.

    Returns
    -------
    pandas.DataFrame
        One row per feature: ``feature, hr, low, high`` (univariate hazard ratio and 95 % CI),
        ``p_univariate, hr_multivariate, p_multivariate`` (NaN when not in the multivariate model) and
        ``kept``; sorted by univariate p. ``attrs["notes"]`` lists any fallback taken.
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    notes: list[str] = []
    rows = []
    for feature in X.columns:
        column = X[[feature]].to_numpy(dtype=float)
        if np.nanstd(column) == 0:
            rows.append(dict(feature=feature, hr=np.nan, low=np.nan, high=np.nan, p_univariate=1.0))
            notes.append(f"{feature} is constant in the training cohort: not screened in")
            continue
        fit = _fit(column, time, event, fallback_penalizer, feature, notes)
        rows.append(dict(feature=feature, hr=float(fit["hr"][0]), low=float(fit["low"][0]),
                         high=float(fit["high"][0]), p_univariate=float(fit["p"][0])))
    table = pd.DataFrame(rows)
    table["hr_multivariate"] = np.nan
    table["p_multivariate"] = np.nan
    table["kept"] = False
    stage1 = table.index[table["p_univariate"] < p_univariate].tolist()
    if stage1:
        names = table.loc[stage1, "feature"].tolist()
        fit = _fit(X[names].to_numpy(dtype=float), time, event, fallback_penalizer, "multivariate", notes)
        table.loc[stage1, "hr_multivariate"] = fit["hr"]
        table.loc[stage1, "p_multivariate"] = fit["p"]
        table["kept"] = table["p_multivariate"] < p_multivariate
    if int(table["kept"].sum()) < min_features:
        best = table.sort_values("p_univariate", kind="stable").head(min_features)["feature"].tolist()
        notes.append(f"only {int(table['kept'].sum())} feature(s) passed screening "
                     f"(univariate p < {p_univariate}, multivariate p < {p_multivariate}); "
                     f"kept the {min_features} with the smallest univariate p instead: {', '.join(best)}")
        table["kept"] = table["feature"].isin(best)
    table = table.sort_values("p_univariate", kind="stable").reset_index(drop=True)[SCREENING_COLUMNS]
    table.attrs["notes"] = notes
    return table
