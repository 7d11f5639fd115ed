"""Linear-predictor survival models: risk = ``X @ coef_``, S(t) from a Breslow baseline hazard.

Stepwise Cox by AIC, Coxnet (LASSO / elastic net) and ridge with glmnet-style CV, componentwise
likelihood boosting (CoxBoost), PLS-Cox (plsRcox) and supervised principal components (SuperPC).
Every Cox fit written here goes through the kernel of :mod:`~nbrisk_core.prognosis.estimators.cox`.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from sksurv.base import SurvivalAnalysisMixin
from sksurv.ensemble import ComponentwiseGradientBoostingSurvivalAnalysis
from sksurv.linear_model import CoxnetSurvivalAnalysis
from sksurv.linear_model.coxph import BreslowEstimator

from nbrisk_core.prognosis.estimators.cox import (
    check_survival_data,
    cox_newton,
    cv_partial_loglik,
    univariate_cox_scores,
)


class LinearCoxModel(SurvivalAnalysisMixin, BaseEstimator):
    """Risk = ``X @ coef_``; survival from Breslow's baseline hazard fitted on the training data.

    Subclasses set ``coef_`` in ``fit`` and call :meth:`_set_baseline`. Fitted attributes common to
    all: ``coef_``, ``baseline_`` (:class:`~sksurv.linear_model.coxph.BreslowEstimator`),
    ``unique_times_``, ``n_features_in_``.
    """

    def _set_baseline(self, X, event, time):
        self.baseline_ = BreslowEstimator().fit(np.asarray(X, dtype=float) @ self.coef_, event, time)
        self.unique_times_ = self.baseline_.unique_times_
        self.n_features_in_ = np.asarray(X).shape[1]

    def predict(self, X):
        check_is_fitted(self, "coef_")
        X = np.asarray(X, dtype=float)
        return X @ self.coef_

    def predict_survival_function(self, X, return_array=False):
        check_is_fitted(self, "baseline_")
        functions = self.baseline_.get_survival_function(self.predict(X))
        if return_array:
            return np.vstack([f(self.unique_times_) for f in functions])
        return functions

    def predict_cumulative_hazard_function(self, X, return_array=False):
        check_is_fitted(self, "baseline_")
        functions = self.baseline_.get_cumulative_hazard_function(self.predict(X))
        if return_array:
            return np.vstack([f(self.unique_times_) for f in functions])
        return functions


# --------------------------------------------------------------------------------------------
# stepwise Cox by AIC (R step() on coxph, as Mime1's StepCox)
# --------------------------------------------------------------------------------------------


class StepwiseCox(LinearCoxModel):
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

    def __init__(self, *, direction: str = "backward", start: str = "full", k: float = 2.0):
        self.direction = direction
        self.start = start
        self.k = k

    def fit(self, X, y):
        X, event, time = check_survival_data(X, y)
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


class CoxnetCV(LinearCoxModel):
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

    def __init__(self, *, l1_ratio: float = 1.0, cv: int = 10, n_alphas: int = 50, seed: int = 0):
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

        X, event, time = check_survival_data(X, y)
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


class RidgeCoxCV(LinearCoxModel):
    """Ridge Cox (glmnet ``alpha = 0``) with the penalty chosen by k-fold CV partial likelihood.

    scikit-survival's Coxnet requires ``l1_ratio > 0``, so the pure L2 fit uses :func:`cox_newton`
    with a ridge term over a log-spaced grid of penalties.
    """

    def __init__(self, *, cv: int = 10, n_alphas: int = 20, seed: int = 0):
        self.cv = cv
        self.n_alphas = n_alphas
        self.seed = seed

    def fit(self, X, y):
        X, event, time = check_survival_data(X, y)
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
# componentwise likelihood boosting (CoxBoost), number of steps by CV
# --------------------------------------------------------------------------------------------


class CoxBoostCV(LinearCoxModel):
    """Likelihood-based componentwise boosting of the Cox model (R CoxBoost), steps by CV.

    scikit-survival's :class:`ComponentwiseGradientBoostingSurvivalAnalysis` with the Cox loss is
    the fitter; the number of boosting steps (up to ``max_steps``, CoxBoost's ``cv.CoxBoost``
    default range) is chosen by k-fold CV partial likelihood evaluated at every step.
    """

    def __init__(self, *, max_steps: int = 500, learning_rate: float = 0.1, cv: int = 10, seed: int = 0):
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
        X, event, time = check_survival_data(X, y)
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


class PLSCox(LinearCoxModel):
    """Partial least squares Cox regression (Bastien, Esposito Vinzi & Tenenhaus 2005; R plsRcox).

    Components are built from Cox coefficients of each (deflated) feature adjusted for the earlier
    components; a Cox model is then fitted on the components. The number of components (up to
    ``max_components``) is chosen by k-fold CV partial likelihood.
    """

    def __init__(self, *, max_components: int = 10, cv: int = 10, seed: int = 0):
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
        X, event, time = check_survival_data(X, y)
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


class SuperPC(LinearCoxModel):
    """Supervised principal components for survival (Bair & Tibshirani 2004; R superpc).

    Features whose absolute standardised univariate Cox score exceeds a threshold are reduced to
    their first principal components, which enter a Cox model. The threshold (``n_thresholds``
    values between 0 and the largest score) and the number of components (1 ... ``max_components``)
    are chosen by k-fold CV partial likelihood.
    """

    def __init__(self, *, n_thresholds: int = 20, max_components: int = 3, cv: int = 10, seed: int = 0):
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
        X, event, time = check_survival_data(X, y)
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


__all__ = ["CoxBoostCV", "CoxnetCV", "LinearCoxModel", "PLSCox", "RidgeCoxCV", "StepwiseCox", "SuperPC"]
