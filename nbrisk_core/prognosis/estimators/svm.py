"""Survival support vector machine (ranking objective), from scikit-survival."""

from __future__ import annotations

from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from sksurv.svm import FastSurvivalSVM
from sksurv.util import check_array_survival


class RankingSurvivalSVM(FastSurvivalSVM):
    """scikit-survival's fast survival SVM with the pure ranking objective (``rank_ratio=1``).

    Mime1 calls R ``survivalsvm(type="regression", gamma.mu=1)``; regularisation 1 is kept. With the
    ranking objective ``predict`` is already a risk score (higher = worse).
    """

    def __init__(self, *, alpha=1.0, rank_ratio=1.0, fit_intercept=False, max_iter=50, verbose=False,
                 tol=None, optimizer=None, random_state=None, timeit=False):
        super().__init__(alpha=alpha, rank_ratio=rank_ratio, fit_intercept=fit_intercept, max_iter=max_iter,
                         verbose=verbose, tol=tol, optimizer=optimizer, random_state=random_state,
                         timeit=timeit)

    def fit(self, X, y):
        from sksurv.util import Surv

        event, time = check_array_survival(X, y)
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

    def predict(self, X):
        # scikit-survival sets coef_ = None in __init__, so sklearn's check_is_fitted alone would pass
        check_is_fitted(self, "coef_")
        if self.coef_ is None:
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet; call fit first")
        return super().predict(X)


__all__ = ["RankingSurvivalSVM"]
