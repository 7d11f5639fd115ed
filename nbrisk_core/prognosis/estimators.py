"""Survival estimators of the combination grid, all with the scikit-survival contract.

Every estimator here follows scikit-survival: ``fit(X, y)`` with ``y = Surv.from_arrays(event, time)``
returns ``self``, fitted attributes end in ``_``, ``predict`` returns a risk score (higher = worse
prognosis), ``score`` is Harrell's C-index, and ``predict_survival_function`` returns step functions
where the model defines them. Estimators that can act as feature *selectors* in the grid
(``../shared/spec/survival-combos.md``) expose ``selected_features_`` (column indices) after fit.

Where scikit-survival has the algorithm it is used (random survival forest, Coxnet for LASSO /
elastic net, componentwise boosting for CoxBoost, gradient boosting, fast survival SVM); written here
are only what no well-kept Python library offers: a small Newton-Raphson Cox fit with Breslow ties
(used by stepwise Cox, ridge, plsRcox and SuperPC, and checked against scikit-survival to 1e-6),
stepwise Cox by AIC, PLS-Cox and supervised principal components, plus the cross-validation that R's
glmnet / CoxBoost / gbm do internally.

Cross-validation picks tuning parameters by the cross-validated partial log-likelihood of Verweij and
Van Houwelingen (1993), which is what ``cv.glmnet(family="cox")`` minimises (as deviance).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import KFold
from sksurv.base import SurvivalAnalysisMixin
from sksurv.ensemble import (
    ComponentwiseGradientBoostingSurvivalAnalysis,
    GradientBoostingSurvivalAnalysis,
    RandomSurvivalForest,
)
from sksurv.functions import StepFunction
from sksurv.linear_model import CoxnetSurvivalAnalysis
from sksurv.linear_model.coxph import BreslowEstimator
from sksurv.svm import FastSurvivalSVM

# --------------------------------------------------------------------------------------------
# Cox partial likelihood (Breslow ties) and a Newton-Raphson fit
# --------------------------------------------------------------------------------------------


def event_time_arrays(y) -> tuple[np.ndarray, np.ndarray]:
    """Split a scikit-survival structured ``y`` into ``(event bool, time float)``."""
    names = y.dtype.names
    return np.asarray(y[names[0]], dtype=bool), np.asarray(y[names[1]], dtype=float)


def _risk_set_index(time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique times (ascending) and, per subject, the index of its time among them."""
    unique, inverse = np.unique(time, return_inverse=True)
    return unique, inverse


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
    w = np.exp(eta - shift)
    _, inv = _risk_set_index(time)
    per_time = np.bincount(inv, weights=w)
    at_risk = np.cumsum(per_time[::-1])[::-1]  # sum over subjects with time >= t
    return float(np.sum(eta[event] - shift - np.log(at_risk[inv[event]])))


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
    _, inv = _risk_set_index(time)
    n_times = inv.max() + 1
    event_counts = np.bincount(inv[event], minlength=n_times).astype(float)

    def penalised(b):
        return cox_partial_loglik(X @ b, time, event) - 0.5 * ridge * float(b @ b)

    current = penalised(beta)
    for _ in range(max_iter):
        eta = X @ beta
        w = np.exp(eta - eta.max())
        s0 = np.cumsum(np.bincount(inv, weights=w, minlength=n_times)[::-1])[::-1]
        s1 = np.zeros((n_times, p))
        np.add.at(s1, inv, w[:, None] * X)
        s1 = np.cumsum(s1[::-1], axis=0)[::-1]
        s2 = np.zeros((n_times, p, p))
        np.add.at(s2, inv, w[:, None, None] * X[:, :, None] * X[:, None, :])
        s2 = np.cumsum(s2[::-1], axis=0)[::-1]
        keep = event_counts > 0
        mean = s1[keep] / s0[keep, None]
        d = event_counts[keep]
        gradient = X[event].sum(axis=0) - (d[:, None] * mean).sum(axis=0) - ridge * beta
        information = (d[:, None, None] * (s2[keep] / s0[keep, None, None]
                                           - mean[:, :, None] * mean[:, None, :])).sum(axis=0)
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
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    _, inv = _risk_set_index(time)
    n_times = inv.max() + 1
    p = X.shape[1]
    eta = X @ np.asarray(beta, dtype=float)
    w = np.exp(eta - eta.max())
    s0 = np.cumsum(np.bincount(inv, weights=w, minlength=n_times)[::-1])[::-1]
    s1 = np.zeros((n_times, p))
    np.add.at(s1, inv, w[:, None] * X)
    s1 = np.cumsum(s1[::-1], axis=0)[::-1]
    s2 = np.zeros((n_times, p, p))
    np.add.at(s2, inv, w[:, None, None] * X[:, :, None] * X[:, None, :])
    s2 = np.cumsum(s2[::-1], axis=0)[::-1]
    d = np.bincount(inv[event], minlength=n_times).astype(float)
    keep = d > 0
    mean = s1[keep] / s0[keep, None]
    return (d[keep, None, None] * (s2[keep] / s0[keep, None, None]
                                   - mean[:, :, None] * mean[:, None, :])).sum(axis=0)


def cox_wald(X, time, event, *, ridge: float = 0.0) -> dict:
    """Cox fit with Wald statistics: ``coef``, ``se``, ``z``, ``p``, ``hr``, ``low``, ``high`` (95 %), ``loglik``.

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
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, beta / se, 0.0)
    quantile = norm.ppf(0.975)
    return {"coef": beta, "se": se, "z": z, "p": 2 * norm.sf(np.abs(z)), "hr": np.exp(beta),
            "low": np.exp(beta - quantile * se), "high": np.exp(beta + quantile * se), "loglik": loglik,
            "converged": bool(np.all(np.isfinite(se)) and np.all(np.abs(beta) < 20))}


def cv_partial_loglik(fit_predict, X, time, event, *, cv: int = 10, seed: int = 0) -> np.ndarray:
    """Cross-validated partial log-likelihood (Verweij & Van Houwelingen) for several settings.

    ``fit_predict(X_train, time_train, event_train, X_all)`` returns an array of shape
    ``(n_settings, n)`` of linear predictors on all rows. The contribution of fold ``k`` is
    ``l(beta_{-k}) - l_{-k}(beta_{-k})``: full-data log-likelihood minus the training-fold one.
    Returns the sum over folds per setting (higher is better).
    """
    n = len(time)
    folds = KFold(n_splits=min(cv, max(2, int(event.sum()))), shuffle=True, random_state=seed)
    total = None
    for train, _ in folds.split(X):
        eta_all = np.atleast_2d(fit_predict(X[train], time[train], event[train], X))
        contribution = np.array([
            cox_partial_loglik(e, time, event) - cox_partial_loglik(e[train], time[train], event[train])
            for e in eta_all])
        total = contribution if total is None else total + contribution
    return total


# --------------------------------------------------------------------------------------------
# shared behaviour of linear-predictor models
# --------------------------------------------------------------------------------------------


class _LinearCoxModel(SurvivalAnalysisMixin, BaseEstimator):
    """Risk = ``X @ coef_``; survival from Breslow's baseline hazard fitted on the training data."""

    def _set_baseline(self, X, event, time):
        self.baseline_ = BreslowEstimator().fit(np.asarray(X, dtype=float) @ self.coef_, event, time)
        self.unique_times_ = self.baseline_.unique_times_

    def predict(self, X):
        X = np.asarray(X, dtype=float)
        return X @ self.coef_

    def predict_survival_function(self, X, return_array=False):
        functions = self.baseline_.get_survival_function(self.predict(X))
        if return_array:
            return np.vstack([f(self.unique_times_) for f in functions])
        return functions

    def predict_cumulative_hazard_function(self, X, return_array=False):
        functions = self.baseline_.get_cumulative_hazard_function(self.predict(X))
        if return_array:
            return np.vstack([f(self.unique_times_) for f in functions])
        return functions


def _check_xy(X, y):
    X = np.asarray(X, dtype=float)
    event, time = event_time_arrays(y)
    if X.ndim != 2 or X.shape[0] != len(time):
        raise ValueError(f"X has shape {X.shape} but y has {len(time)} rows")
    if not event.any():
        raise ValueError("no events in y: a survival model cannot be fitted")
    return X, event, time


# --------------------------------------------------------------------------------------------
# stepwise Cox by AIC (R step() on coxph, as Mime1's StepCox)
# --------------------------------------------------------------------------------------------


class StepwiseCox(_LinearCoxModel):
    """Cox model with features chosen by stepwise AIC (R ``step(coxph(...), direction=...)``).

    Parameters
    ----------
    direction : {"backward", "forward", "both"}
        Search direction.
    start : {"full", "empty"}
        Starting model. Mime1 calls ``step()`` on the *full* model for every direction, so its
        "forward" search cannot add anything and returns the full model; ``start="full"`` (default)
        reproduces that. ``start="empty"`` gives a textbook forward search.
    k : float
        Penalty per parameter (2 = AIC).

    Attributes
    ----------
    selected_features_ : ndarray of int
        Columns in the final model.
    coef_ : ndarray of shape (n_features,)
        Coefficients (zero for dropped columns).
    aic_ : float
        AIC of the final model.
    """

    def __init__(self, direction: str = "backward", start: str = "full", k: float = 2.0):
        self.direction = direction
        self.start = start
        self.k = k

    def fit(self, X, y):
        X, event, time = _check_xy(X, y)
        if self.direction not in ("backward", "forward", "both"):
            raise ValueError(f"direction={self.direction!r}; expected backward, forward or both")
        p = X.shape[1]
        cache: dict[frozenset, tuple[float, np.ndarray]] = {}

        def aic(subset: frozenset):
            if subset not in cache:
                cols = sorted(subset)
                beta, loglik = cox_newton(X[:, cols], time, event)
                cache[subset] = (-2.0 * loglik + self.k * len(cols), beta)
            return cache[subset][0]

        current = frozenset(range(p)) if self.start == "full" else frozenset()
        while True:
            moves = []
            if self.direction in ("backward", "both"):
                moves += [current - {j} for j in current]
            if self.direction in ("forward", "both"):
                moves += [current | {j} for j in range(p) if j not in current]
            if not moves:
                break
            best = min(moves, key=lambda s: (aic(s), sorted(s)))
            if aic(best) < aic(current) - 1e-10:
                current = best
            else:
                break
        cols = sorted(current)
        self.aic_ = aic(current)
        self.selected_features_ = np.array(cols, dtype=int)
        self.coef_ = np.zeros(p)
        self.coef_[cols] = cache[current][1]
        self._set_baseline(X, event, time)
        return self


# --------------------------------------------------------------------------------------------
# penalised Cox: LASSO / elastic net (Coxnet) and ridge, with glmnet-style CV
# --------------------------------------------------------------------------------------------


class CoxnetCV(_LinearCoxModel):
    """Elastic-net Cox (scikit-survival's Coxnet) with ``lambda.min`` chosen by k-fold CV.

    ``l1_ratio`` is glmnet's ``alpha``: 1 = LASSO, 0.1 ... 0.9 = Mime1's Enet. The penalty path is
    Coxnet's own; the CV criterion is the cross-validated partial likelihood (glmnet's default).

    Attributes
    ----------
    alpha_ : float
        The chosen penalty (``lambda.min``).
    coef_ : ndarray
        Coefficients at ``alpha_``; ``selected_features_`` are the non-zero ones.
    """

    def __init__(self, l1_ratio: float = 1.0, cv: int = 10, n_alphas: int = 50, seed: int = 0):
        self.l1_ratio = l1_ratio
        self.cv = cv
        self.n_alphas = n_alphas
        self.seed = seed

    def _path(self, X, event, time, alphas=None):
        from sksurv.util import Surv

        model = CoxnetSurvivalAnalysis(l1_ratio=self.l1_ratio, n_alphas=self.n_alphas, alphas=alphas,
                                       max_iter=100_000, alpha_min_ratio=0.01)
        return model.fit(X, Surv.from_arrays(event, time))

    def fit(self, X, y):
        import warnings

        X, event, time = _check_xy(X, y)
        with warnings.catch_warnings():
            # Coxnet warns when the smallest penalties do not converge within max_iter; CV then
            # scores those settings as they are, as glmnet would.
            warnings.simplefilter("ignore")
            full = self._path(X, event, time)
            alphas = full.alphas_

            def fit_predict(Xt, tt, et, X_all):
                path = self._path(Xt, et, tt, alphas=alphas)
                coef = path.coef_
                if coef.shape[1] < len(alphas):  # Coxnet stops the path early when it saturates
                    coef = np.column_stack([coef] + [coef[:, -1:]] * (len(alphas) - coef.shape[1]))
                return (X_all @ coef).T

            scores = cv_partial_loglik(fit_predict, X, time, event, cv=self.cv, seed=self.seed)
        best = int(np.nanargmax(scores))
        self.alphas_ = alphas
        self.cv_loglik_ = scores
        self.alpha_ = float(alphas[best])
        self.coef_ = np.asarray(full.coef_[:, best], dtype=float)
        self.selected_features_ = np.flatnonzero(np.abs(self.coef_) > 0)
        self._set_baseline(X, event, time)
        return self


class RidgeCoxCV(_LinearCoxModel):
    """Ridge Cox (glmnet ``alpha = 0``) with the penalty chosen by k-fold CV partial likelihood.

    scikit-survival's Coxnet requires ``l1_ratio > 0``, so the pure L2 fit uses :func:`cox_newton`
    with a ridge term over a log-spaced grid of penalties.
    """

    def __init__(self, cv: int = 10, n_alphas: int = 20, seed: int = 0):
        self.cv = cv
        self.n_alphas = n_alphas
        self.seed = seed

    def fit(self, X, y):
        X, event, time = _check_xy(X, y)
        alphas = np.logspace(3, -2, self.n_alphas) * max(1, int(event.sum())) / 10.0

        def fit_predict(Xt, tt, et, X_all):
            out, beta = [], None
            for a in alphas:  # warm starts along the path, largest penalty first
                beta, _ = cox_newton(Xt, tt, et, ridge=a, beta0=beta, max_iter=30)
                out.append(X_all @ beta)
            return np.array(out)

        scores = cv_partial_loglik(fit_predict, X, time, event, cv=self.cv, seed=self.seed)
        best = int(np.nanargmax(scores))
        self.alphas_ = alphas
        self.cv_loglik_ = scores
        self.alpha_ = float(alphas[best])
        self.coef_, _ = cox_newton(X, time, event, ridge=self.alpha_)
        self._set_baseline(X, event, time)
        return self


# --------------------------------------------------------------------------------------------
# boosting: CoxBoost (componentwise) and GBM (trees), number of steps by CV
# --------------------------------------------------------------------------------------------


class CoxBoostCV(_LinearCoxModel):
    """Likelihood-based componentwise boosting of the Cox model (R CoxBoost), steps by CV.

    scikit-survival's :class:`ComponentwiseGradientBoostingSurvivalAnalysis` with the Cox loss is
    the fitter; the number of boosting steps (up to ``max_steps``, CoxBoost's ``cv.CoxBoost``
    default range) is chosen by k-fold CV partial likelihood evaluated at every step.
    """

    def __init__(self, max_steps: int = 500, learning_rate: float = 0.1, cv: int = 10, seed: int = 0):
        self.max_steps = max_steps
        self.learning_rate = learning_rate
        self.cv = cv
        self.seed = seed

    def _fit_model(self, X, event, time, n_steps):
        from sksurv.util import Surv

        model = ComponentwiseGradientBoostingSurvivalAnalysis(
            loss="coxph", learning_rate=self.learning_rate, n_estimators=n_steps, random_state=self.seed)
        return model.fit(X, Surv.from_arrays(event, time))

    def fit(self, X, y):
        X, event, time = _check_xy(X, y)
        checkpoints = np.unique(np.linspace(1, self.max_steps, min(self.max_steps, 50)).astype(int))

        def fit_predict(Xt, tt, et, X_all):
            model = self._fit_model(Xt, et, tt, self.max_steps)
            Xi = np.column_stack((np.ones(len(X_all)), X_all))
            staged = np.cumsum([self.learning_rate * e.predict(Xi) for e in model.estimators_], axis=0)
            return staged[np.minimum(checkpoints, len(staged)) - 1]

        scores = cv_partial_loglik(fit_predict, X, time, event, cv=self.cv, seed=self.seed)
        self.n_steps_ = int(checkpoints[int(np.nanargmax(scores))])
        self.cv_loglik_ = scores
        self.model_ = self._fit_model(X, event, time, self.n_steps_)
        # coef_ of the componentwise model includes the intercept column first
        self.coef_ = np.asarray(self.model_.coef_[1:], dtype=float)
        self.selected_features_ = np.flatnonzero(np.abs(self.coef_) > 0)
        self._set_baseline(X, event, time)
        return self


class GBMCoxCV(SurvivalAnalysisMixin, BaseEstimator):
    """Gradient-boosted trees with the Cox loss (R gbm ``distribution="coxph"``), trees by CV.

    Mime1 runs 10,000 trees of depth 3 at shrinkage 0.001 with 10-fold CV. We keep depth 3 and at
    least 10 observations per node but use shrinkage 0.05 with at most ``max_trees`` trees and k-fold
    CV over every stage (``staged_predict``): with a 50x larger step the same path is covered in
    about 50x fewer trees (see docs/prognosis.md).
    """

    def __init__(self, max_trees: int = 300, learning_rate: float = 0.05, max_depth: int = 3,
                 min_samples_leaf: int = 10, subsample: float = 0.5, cv: int = 5, seed: int = 0):
        self.max_trees = max_trees
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.subsample = subsample
        self.cv = cv
        self.seed = seed

    def _fit_model(self, X, event, time, n_trees):
        from sksurv.util import Surv

        model = GradientBoostingSurvivalAnalysis(
            loss="coxph", n_estimators=n_trees, learning_rate=self.learning_rate, max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf, subsample=self.subsample, random_state=self.seed)
        return model.fit(X, Surv.from_arrays(event, time))

    def fit(self, X, y):
        X, event, time = _check_xy(X, y)

        def fit_predict(Xt, tt, et, X_all):
            return np.array(list(self._fit_model(Xt, et, tt, self.max_trees).staged_predict(X_all)))

        scores = cv_partial_loglik(fit_predict, X, time, event, cv=self.cv, seed=self.seed)
        self.n_trees_ = int(np.nanargmax(scores)) + 1
        self.cv_loglik_ = scores
        self.model_ = self._fit_model(X, event, time, self.n_trees_)
        self.unique_times_ = self.model_.unique_times_
        return self

    def predict(self, X):
        return self.model_.predict(np.asarray(X, dtype=float))

    def predict_survival_function(self, X, return_array=False):
        return self.model_.predict_survival_function(np.asarray(X, dtype=float), return_array=return_array)


# --------------------------------------------------------------------------------------------
# random survival forest with minimal-depth variable selection
# --------------------------------------------------------------------------------------------


def _tree_minimal_depth(tree, n_features: int) -> tuple[np.ndarray, float]:
    """Minimal depth of each feature in one tree and the mean of its null distribution.

    Returns ``(depth per feature, NaN where unused; null mean)``. The null distribution is Ishwaran
    et al. (2010), eq. 3, with ``pi = 1/p`` for every node: the depth at which a noise variable first
    splits, given the number of nodes at each depth of this tree.
    """
    t = tree.tree_
    left, right, feature = t.children_left, t.children_right, t.feature
    depth = np.zeros(t.node_count, dtype=int)
    first = np.full(n_features, np.nan)
    for node in range(t.node_count):  # nodes are numbered in depth-first order: parents first
        if left[node] != -1:
            depth[left[node]] = depth[right[node]] = depth[node] + 1
            f = feature[node]
            if np.isnan(first[f]) or depth[node] < first[f]:
                first[f] = depth[node]
    internal = left != -1
    max_depth = int(depth[internal].max()) if internal.any() else 0
    nodes_at = np.bincount(depth[internal], minlength=max_depth + 1).astype(float)
    q = 1.0 - 1.0 / n_features
    survive = 1.0  # P(not split on before depth d)
    mean = 0.0
    for d in range(max_depth + 1):
        p_here = survive * (1.0 - q ** nodes_at[d])
        mean += d * p_here
        survive *= q ** nodes_at[d]
    mean += (max_depth + 1) * survive  # never used: counted at the tree's depth, as randomForestSRC
    return first, mean


class MinimalDepthRSF(RandomSurvivalForest):
    """Random survival forest (log-rank splitting) that also selects features by minimal depth.

    After ``fit``, ``minimal_depth_`` (forest mean; unused features count at the tree's depth + 1)
    and ``minimal_depth_threshold_`` (forest mean of the null means) give ``selected_features_``:
    the features whose minimal depth is below the threshold, as randomForestSRC's
    ``var.select(method="md", conservative="high")`` used by Mime1.
    """

    def fit(self, X, y, sample_weight=None):
        super().fit(X, y, sample_weight=sample_weight)
        p = self.n_features_in_
        depths, nulls = [], []
        for tree in self.estimators_:
            first, null_mean = _tree_minimal_depth(tree, p)
            tree_depth = tree.tree_.max_depth
            depths.append(np.where(np.isnan(first), tree_depth, first))
            nulls.append(null_mean)
        self.minimal_depth_ = np.mean(depths, axis=0)
        self.minimal_depth_threshold_ = float(np.mean(nulls))
        self.selected_features_ = np.flatnonzero(self.minimal_depth_ < self.minimal_depth_threshold_)
        return self

    def predict_survival_band(self, X, quantiles=(0.025, 0.975)):
        """Survival of each row with a band from the individual trees: ``(times, mean, low, high)``.

        ``mean`` is the forest's own prediction (scikit-survival averages the trees' survival
        functions); ``low``/``high`` are quantiles of the trees' curves: a spread, not a confidence
        interval. One pass over the trees' leaf tables (no per-tree input validation), so it is cheap
        enough for interactive use.
        """
        times, mean, low, high, _ = self._survival_band_and_risk(X, quantiles)
        return times, mean, low, high

    def _survival_band_and_risk(self, X, quantiles=(0.025, 0.975)):
        """As :meth:`predict_survival_band`, plus the forest's risk score (``predict``) from the same pass."""
        X32 = np.ascontiguousarray(np.asarray(X, dtype=float), dtype=np.float32)
        leaf_tables = np.stack([tree.tree_.predict(X32) for tree in self.estimators_])  # (trees, n, times, 2)
        curves = leaf_tables[..., 1]
        # scikit-survival's risk: the trees' cumulative hazard summed over event times, averaged
        risk = leaf_tables[..., 0][:, :, self.is_event_time_].sum(axis=2).mean(axis=0)
        low, high = np.quantile(curves, quantiles, axis=0)
        mean = curves.mean(axis=0)
        # where most trees agree and a few do not, the mean can fall outside the quantiles; the band
        # is widened to contain the curve it is drawn around
        return self.unique_times_, mean, np.minimum(low, mean), np.maximum(high, mean), risk


# --------------------------------------------------------------------------------------------
# survival SVM (ranking objective)
# --------------------------------------------------------------------------------------------


class RankingSurvivalSVM(FastSurvivalSVM):
    """scikit-survival's fast survival SVM with the pure ranking objective (``rank_ratio=1``).

    Mime1 calls R ``survivalsvm(type="regression", gamma.mu=1)``; regularisation 1 is kept. With the
    ranking objective ``predict`` is already a risk score (higher = worse).
    """

    def __init__(self, alpha=1.0, *, rank_ratio=1.0, fit_intercept=False, max_iter=50, verbose=False,
                 tol=None, optimizer=None, random_state=None, timeit=False):
        super().__init__(alpha=alpha, rank_ratio=rank_ratio, fit_intercept=fit_intercept, max_iter=max_iter,
                         verbose=verbose, tol=tol, optimizer=optimizer, random_state=random_state,
                         timeit=timeit)

    def fit(self, X, y):
        from sksurv.util import Surv

        event, time = event_time_arrays(y)
        if self.rank_ratio == 1 and (time <= 0).any():
            # the ranking objective uses only the order of times, but scikit-survival rejects
            # times <= 0 (needed for its regression objective): move them just above zero, order kept
            positive = time[time > 0]
            floor = positive.min() if positive.size else 1.0
            low = time <= 0
            spread = time[low].max() - time[low].min() + 1.0
            time = time.copy()
            time[low] = floor * (0.5 + 0.4 * (time[low] - time[low].min()) / spread)
            y = Surv.from_arrays(event, time)
        return super().fit(X, y)


# --------------------------------------------------------------------------------------------
# plsRcox and SuperPC
# --------------------------------------------------------------------------------------------


def _pls_cox_weights(X, time, event, n_components):
    """Bastien's PLS-Cox: weights of each component from Cox fits adjusted for earlier components.

    Returns ``W_star`` of shape (p, h) with scores ``T = X @ W_star`` (X centred by the caller).
    """
    n, p = X.shape
    residual = X.copy()
    scores, w_star_cols = [], []
    weights_list, loadings_list = [], []
    for _h in range(n_components):
        previous = np.column_stack(scores) if scores else np.empty((n, 0))
        coefs = np.empty(p)
        for j in range(p):
            design = np.column_stack((previous, residual[:, j]))
            # a few Newton steps suffice: only the direction of the weight vector is used
            beta, _ = cox_newton(design, time, event, max_iter=4, tol=1e-6)
            coefs[j] = beta[-1]
        norm = np.linalg.norm(coefs)
        if not np.isfinite(norm) or norm == 0:
            break
        w = coefs / norm
        t = residual @ w
        loading = residual.T @ t / float(t @ t)
        residual = residual - np.outer(t, loading)
        weights_list.append(w)
        loadings_list.append(loading)
        scores.append(t)
        W = np.column_stack(weights_list)
        P = np.column_stack(loadings_list)
        w_star_cols = W @ np.linalg.pinv(P.T @ W)  # scores directly from X: T = X W (P'W)^-1
    return np.asarray(w_star_cols) if len(scores) else np.empty((p, 0))


class PLSCox(_LinearCoxModel):
    """Partial least squares Cox regression (Bastien, Esposito Vinzi & Tenenhaus 2005; R plsRcox).

    Components are built from Cox coefficients of each (deflated) feature adjusted for the earlier
    components; a Cox model is then fitted on the components. The number of components (up to
    ``max_components``) is chosen by k-fold CV partial likelihood.
    """

    def __init__(self, max_components: int = 10, cv: int = 10, seed: int = 0):
        self.max_components = max_components
        self.cv = cv
        self.seed = seed

    @staticmethod
    def _coef(X, time, event, h):
        mean = X.mean(axis=0)
        W = _pls_cox_weights(X - mean, time, event, h)
        out = []
        for k in range(1, W.shape[1] + 1):
            gamma, _ = cox_newton((X - mean) @ W[:, :k], time, event)
            out.append(W[:, :k] @ gamma)
        return out  # coefficient vectors for 1..h components (on X; centring cancels in Cox)

    def fit(self, X, y):
        X, event, time = _check_xy(X, y)
        h_max = max(1, min(self.max_components, X.shape[1]))

        def fit_predict(Xt, tt, et, X_all):
            coefs = self._coef(Xt, tt, et, h_max)
            coefs += [coefs[-1]] * (h_max - len(coefs))  # a fold that stopped early keeps its last
            return np.array([X_all @ c for c in coefs])

        scores = cv_partial_loglik(fit_predict, X, time, event, cv=self.cv, seed=self.seed)
        self.n_components_ = int(np.nanargmax(scores)) + 1
        self.cv_loglik_ = scores
        coefs = self._coef(X, time, event, self.n_components_)
        self.coef_ = coefs[min(self.n_components_, len(coefs)) - 1]
        self._set_baseline(X, event, time)
        return self


def univariate_cox_scores(X, time, event) -> np.ndarray:
    """Standardised Cox score statistic of each column (R superpc's ``coxscor`` / ``sqrt(coxvar)``)."""
    X = np.asarray(X, dtype=float)
    event = np.asarray(event, dtype=bool)
    _, inv = _risk_set_index(time)
    n_times = inv.max() + 1
    at_risk = np.cumsum(np.bincount(inv, minlength=n_times)[::-1])[::-1].astype(float)
    d = np.bincount(inv[event], minlength=n_times).astype(float)
    s1 = np.zeros((n_times, X.shape[1]))
    np.add.at(s1, inv, X)
    s1 = np.cumsum(s1[::-1], axis=0)[::-1]
    s2 = np.zeros((n_times, X.shape[1]))
    np.add.at(s2, inv, X ** 2)
    s2 = np.cumsum(s2[::-1], axis=0)[::-1]
    mean = s1 / at_risk[:, None]
    score = X[event].sum(axis=0) - (d[:, None] * mean).sum(axis=0)
    variance = (d[:, None] * (s2 / at_risk[:, None] - mean ** 2)).sum(axis=0)
    return score / np.sqrt(np.maximum(variance, 1e-12))


class SuperPC(_LinearCoxModel):
    """Supervised principal components for survival (Bair & Tibshirani 2004; R superpc).

    Features whose absolute standardised univariate Cox score exceeds a threshold are reduced to
    their first principal components, which enter a Cox model. The threshold (``n_thresholds``
    values between 0 and the largest score) and the number of components (1 ... ``max_components``)
    are chosen by k-fold CV partial likelihood.
    """

    def __init__(self, n_thresholds: int = 20, max_components: int = 3, cv: int = 10, seed: int = 0):
        self.n_thresholds = n_thresholds
        self.max_components = max_components
        self.cv = cv
        self.seed = seed

    def _coef(self, X, time, event, threshold, k):
        scores = np.abs(univariate_cox_scores(X, time, event))
        keep = np.flatnonzero(scores >= threshold)
        if keep.size == 0:
            keep = np.array([int(np.argmax(scores))])
        mean = X[:, keep].mean(axis=0)
        _, _, vt = np.linalg.svd(X[:, keep] - mean, full_matrices=False)
        k = min(k, vt.shape[0])
        V = vt[:k].T
        gamma, _ = cox_newton((X[:, keep] - mean) @ V, time, event)
        coef = np.zeros(X.shape[1])
        coef[keep] = V @ gamma
        return coef

    def fit(self, X, y):
        X, event, time = _check_xy(X, y)
        top = np.abs(univariate_cox_scores(X, time, event)).max()
        thresholds = np.linspace(0, top, self.n_thresholds + 1)[:-1]
        settings = [(t, k) for t in thresholds for k in range(1, self.max_components + 1)]

        def fit_predict(Xt, tt, et, X_all):
            return np.array([X_all @ self._coef(Xt, tt, et, t, k) for t, k in settings])

        scores = cv_partial_loglik(fit_predict, X, time, event, cv=self.cv, seed=self.seed)
        best = int(np.nanargmax(scores))
        self.threshold_, self.n_components_ = float(settings[best][0]), int(settings[best][1])
        self.cv_loglik_ = scores
        self.coef_ = self._coef(X, time, event, self.threshold_, self.n_components_)
        self._set_baseline(X, event, time)
        return self


__all__ = [
    "CoxBoostCV", "CoxnetCV", "GBMCoxCV", "MinimalDepthRSF", "PLSCox", "RankingSurvivalSVM", "RidgeCoxCV",
    "StepFunction", "StepwiseCox", "SuperPC", "cox_information", "cox_newton", "cox_partial_loglik", "cox_wald",
    "cv_partial_loglik",
    "event_time_arrays", "univariate_cox_scores",
]
