"""The Cox kernel: partial likelihood (Breslow ties), Newton-Raphson fit, Wald statistics, CV.

Every sum over risk sets is computed in one place, :func:`risk_set_sums` (reverse cumulative sums
over the distinct times); the log-likelihood, the score, the information and the univariate score
statistics are read from it. The fit is checked against scikit-survival's
``CoxPHSurvivalAnalysis(ties="breslow")`` to 1e-6 (``tests/prognosis/test_engine_estimators.py``).

Cross-validation picks tuning parameters by the cross-validated partial log-likelihood of Verweij and
Van Houwelingen (1993), which is what ``cv.glmnet(family="cox")`` minimises (as deviance).
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import KFold
from sksurv.util import check_array_survival


def event_time_arrays(y) -> tuple[np.ndarray, np.ndarray]:
    """Split a scikit-survival structured ``y`` into ``(event bool, time float)``."""
    names = y.dtype.names
    return np.asarray(y[names[0]], dtype=bool), np.asarray(y[names[1]], dtype=float)


def check_survival_data(X, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X float 2-D, event, time)`` of a training set (``sksurv.util.check_array_survival``).

    ValueError when the shapes disagree or no event is observed (no Cox model can be fitted).
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X has shape {X.shape}; expected a 2-D array (patients x features)")
    try:
        event, time = check_array_survival(X, y)
    except ValueError as error:
        if "censored" in str(error):
            raise ValueError("no events in y: a survival model cannot be fitted") from error
        raise
    return X, np.asarray(event, dtype=bool), np.asarray(time, dtype=float)


def risk_set_index(time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique times (ascending) and, per subject, the index of its time among them."""
    unique, inverse = np.unique(time, return_inverse=True)
    return unique, inverse


def risk_set_sums(X, weights, inverse, n_times: int, order: str = "full"):
    """Sums over the risk set ``{j : t_j >= t}`` of each distinct time ``t``.

    Parameters
    ----------
    X : ndarray (n, p) or None
        Covariates (None: only the zeroth-order sum).
    weights : ndarray (n,)
        ``exp(eta)`` (or ones for unweighted sums).
    inverse : ndarray (n,)
        Index of each subject's time among the distinct times (:func:`risk_set_index`).
    order : {"zero", "first", "diagonal", "full"}
        Which sums: ``s0 = sum w``; ``s1 = sum w x``; ``s2 = sum w x x'`` (``diagonal``: only
        ``sum w x^2`` per column).

    Returns
    -------
    tuple
        ``(s0,)``, ``(s0, s1)`` or ``(s0, s1, s2)``, each with one row per distinct time.
    """
    s0 = np.cumsum(np.bincount(inverse, weights=weights, minlength=n_times)[::-1])[::-1]
    if order == "zero":
        return (s0,)
    p = X.shape[1]
    s1 = np.zeros((n_times, p))
    np.add.at(s1, inverse, weights[:, None] * X)
    s1 = np.cumsum(s1[::-1], axis=0)[::-1]
    if order == "first":
        return s0, s1
    if order == "diagonal":
        s2 = np.zeros((n_times, p))
        np.add.at(s2, inverse, weights[:, None] * X ** 2)
    else:
        s2 = np.zeros((n_times, p, p))
        np.add.at(s2, inverse, weights[:, None, None] * X[:, :, None] * X[:, None, :])
    s2 = np.cumsum(s2[::-1], axis=0)[::-1]
    return s0, s1, s2


def cox_partial_loglik(linear_predictor, time, event) -> float:
    """Cox partial log-likelihood with Breslow's handling of ties.

    Parameters
    ----------
    linear_predictor : array of shape (n,)
        ``X @ beta``.
    time, event : array of shape (n,)
        Follow-up time and event indicator.
    """
    eta = np.asarray(linear_predictor, dtype=float)
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    if not event.any():
        return 0.0
    shift = eta.max()  # numerical safety; cancels in the likelihood
    _, inverse = risk_set_index(time)
    (at_risk,) = risk_set_sums(None, np.exp(eta - shift), inverse, inverse.max() + 1, order="zero")
    return float(np.sum(eta[event] - shift - np.log(at_risk[inverse[event]])))


def _score_information(X, event, inverse, n_times, beta):
    """Unpenalised score vector and observed information of the Breslow partial likelihood."""
    eta = X @ beta
    s0, s1, s2 = risk_set_sums(X, np.exp(eta - eta.max()), inverse, n_times)
    deaths = np.bincount(inverse[event], minlength=n_times).astype(float)
    keep = deaths > 0
    mean = s1[keep] / s0[keep, None]
    d = deaths[keep]
    score = X[event].sum(axis=0) - (d[:, None] * mean).sum(axis=0)
    information = (d[:, None, None] * (s2[keep] / s0[keep, None, None]
                                       - mean[:, :, None] * mean[:, None, :])).sum(axis=0)
    return score, information


def cox_newton(X, time, event, *, ridge: float = 0.0, max_iter: int = 50, tol: float = 1e-10,
               beta0=None) -> tuple[np.ndarray, float]:
    """Maximum (optionally ridge-penalised) partial likelihood Cox fit, Breslow ties.

    Newton-Raphson with step halving, as R's ``coxph`` does; ``ridge`` adds ``-ridge/2 * ||beta||^2``
    to the log-likelihood. Returns ``(beta, loglik)`` with the *unpenalised* log-likelihood.
    Under separation the coefficients grow without bound; the iteration cap stops them, like
    ``coxph``'s ``iter.max``.
    """
    X = np.asarray(X, dtype=float)
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    n, p = X.shape
    beta = np.zeros(p) if beta0 is None else np.asarray(beta0, dtype=float).copy()
    if p == 0:
        return beta, cox_partial_loglik(np.zeros(n), time, event)
    _, inverse = risk_set_index(time)
    n_times = inverse.max() + 1

    def penalised(b):
        return cox_partial_loglik(X @ b, time, event) - 0.5 * ridge * float(b @ b)

    current = penalised(beta)
    for _ in range(max_iter):
        score, information = _score_information(X, event, inverse, n_times, beta)
        gradient = score - ridge * beta
        information += ridge * np.eye(p)
        try:
            step = np.linalg.solve(information, gradient)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(information, gradient, rcond=None)[0]
        scale = 1.0
        for _halving in range(30):
            candidate = beta + scale * step
            value = penalised(candidate)
            if np.isfinite(value) and value >= current - 1e-12:
                break
            scale *= 0.5
        else:
            break
        beta, previous, current = candidate, current, value
        if abs(current - previous) < tol * (abs(current) + tol):
            break
    return beta, cox_partial_loglik(X @ beta, time, event)


def cox_information(X, time, event, beta) -> np.ndarray:
    """Observed information (minus the Hessian of the Breslow partial log-likelihood) at ``beta``."""
    X = np.asarray(X, dtype=float)
    event = np.asarray(event, dtype=bool)
    _, inverse = risk_set_index(np.asarray(time, dtype=float))
    return _score_information(X, event, inverse, inverse.max() + 1, np.asarray(beta, dtype=float))[1]


def cox_wald(X, time, event, *, ridge: float = 0.0) -> dict:
    """Cox fit with Wald statistics: ``coef, se, z, p, hr, low, high`` (95 %) and ``loglik``.

    Breslow ties (R ``coxph(ties="breslow")``); with ``ridge`` > 0 the standard errors are those of the
    penalised fit (inverse of the penalised information), as R's ``coxph`` with a ridge term reports.
    """
    from scipy.stats import norm

    beta, loglik = cox_newton(X, time, event, ridge=ridge)
    information = cox_information(X, time, event, beta) + ridge * np.eye(len(beta))
    try:
        covariance = np.linalg.inv(information)
        se = np.sqrt(np.clip(np.diag(covariance), 0, None))
    except np.linalg.LinAlgError:
        se = np.full(len(beta), np.inf)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z = np.where(se > 0, beta / se, 0.0)
        quantile = norm.ppf(0.975)
        low, high = np.exp(beta - quantile * se), np.exp(beta + quantile * se)
    return {"coef": beta, "se": se, "z": z, "p": 2 * norm.sf(np.abs(z)), "hr": np.exp(beta),
            "low": low, "high": high, "loglik": loglik,
            "converged": bool(np.all(np.isfinite(se)) and np.all(np.abs(beta) < 20))}


def univariate_cox_scores(X, time, event) -> np.ndarray:
    """Standardised Cox score statistic of each column at beta = 0 (R superpc's ``coxscor`` /
    ``sqrt(coxvar)``): the unweighted risk-set sums of :func:`risk_set_sums`."""
    X = np.asarray(X, dtype=float)
    event = np.asarray(event, dtype=bool)
    _, inverse = risk_set_index(time)
    n_times = inverse.max() + 1
    at_risk, s1, s2 = risk_set_sums(X, np.ones(len(X)), inverse, n_times, order="diagonal")
    d = np.bincount(inverse[event], minlength=n_times).astype(float)
    mean = s1 / at_risk[:, None]
    score = X[event].sum(axis=0) - (d[:, None] * mean).sum(axis=0)
    variance = (d[:, None] * (s2 / at_risk[:, None] - mean ** 2)).sum(axis=0)
    return score / np.sqrt(np.maximum(variance, 1e-12))


def cv_partial_loglik(fit_predict, X, time, event, *, cv: int = 10, seed: int = 0) -> np.ndarray:
    """Cross-validated partial log-likelihood (Verweij & Van Houwelingen) for several settings.

    ``fit_predict(X_train, time_train, event_train, X_all)`` returns an array of shape
    ``(n_settings, n)`` of linear predictors on all rows. The contribution of fold ``k`` is
    ``l(beta_{-k}) - l_{-k}(beta_{-k})``: full-data log-likelihood minus the training-fold one.
    Returns the sum over folds per setting (higher is better).
    """
    folds = KFold(n_splits=min(cv, max(2, int(event.sum()))), shuffle=True, random_state=seed)
    total = None
    for train, _ in folds.split(X):
        eta_all = np.atleast_2d(fit_predict(X[train], time[train], event[train], X))
        contribution = np.array([
            cox_partial_loglik(e, time, event) - cox_partial_loglik(e[train], time[train], event[train])
            for e in eta_all])
        total = contribution if total is None else total + contribution
    return total
