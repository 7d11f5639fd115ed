"""Feature selection by a survival estimator, as the first step of a combination ``Pipeline``.

A combination of the grid (``../shared/spec/survival-combos.md``) is
``Pipeline([("select", SelectedFeatures(estimator=selector)), ("model", predictor)])``, or
``Pipeline([("select", "passthrough"), ("model", predictor)])`` for a predictor used alone.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_is_fitted

from nbrisk_core.prognosis.estimators.cox import check_survival_data


class SelectedFeatures(SelectorMixin, BaseEstimator):
    """Keep the features that a fitted survival estimator selects (its ``selected_features_``).

    Parameters
    ----------
    estimator : estimator with ``selected_features_`` after ``fit``
        Stepwise Cox, LASSO, CoxBoost or the minimal-depth random survival forest.
    min_features : int
        ``fit`` raises ValueError when fewer features are kept (the grid skips such a pair).

    Attributes
    ----------
    estimator_ : the fitted clone of ``estimator``.
    support_ : ndarray of bool
        Which input columns are kept.
    n_features_in_ : int
    """

    def __init__(self, *, estimator, min_features: int = 2):
        self.estimator = estimator
        self.min_features = min_features

    def fit(self, X, y):
        X, _, _ = check_survival_data(X, y)
        self.estimator_ = clone(self.estimator).fit(X, y)
        columns = np.asarray(self.estimator_.selected_features_, dtype=int)
        if len(columns) < self.min_features:
            raise ValueError(f"selector {type(self.estimator).__name__} kept {len(columns)} feature(s), "
                             f"fewer than {self.min_features}")
        self.n_features_in_ = X.shape[1]
        self.support_ = np.zeros(X.shape[1], dtype=bool)
        self.support_[columns] = True
        return self

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return self.support_


__all__ = ["SelectedFeatures"]
