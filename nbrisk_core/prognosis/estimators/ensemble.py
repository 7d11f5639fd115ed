"""Tree ensembles: gradient-boosted Cox trees (R gbm) and a random survival forest that also
selects features by minimal depth (randomForestSRC ``var.select``), both from scikit-survival.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from sksurv.base import SurvivalAnalysisMixin
from sksurv.ensemble import GradientBoostingSurvivalAnalysis, RandomSurvivalForest

from nbrisk_core.prognosis.estimators.cox import check_survival_data, cv_partial_loglik


# --------------------------------------------------------------------------------------------
# gradient boosting (R gbm), number of trees by CV
# --------------------------------------------------------------------------------------------


class GBMCoxCV(SurvivalAnalysisMixin, BaseEstimator):
    """Gradient-boosted trees with the Cox loss (R gbm ``distribution="coxph"``), trees by CV.

    Mime1 runs 10,000 trees of depth 3 at shrinkage 0.001 with 10-fold CV. We keep depth 3 and at
    least 10 observations per node but use shrinkage 0.05 with at most ``max_trees`` trees and k-fold
    CV over every stage (``staged_predict``): with a 50x larger step the same path is covered in
    about 50x fewer trees (see docs/prognosis.md).
    """

    def __init__(self, *, max_trees: int = 300, learning_rate: float = 0.05, max_depth: int = 3,
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
        X, event, time = check_survival_data(X, y)

        def fit_predict(Xt, tt, et, X_all):
            return np.array(list(self._fit_model(Xt, et, tt, self.max_trees).staged_predict(X_all)))

        scores = cv_partial_loglik(fit_predict, X, time, event, cv=self.cv, seed=self.seed)
        self.n_trees_ = int(np.nanargmax(scores)) + 1
        self.cv_loglik_ = scores
        self.model_ = self._fit_model(X, event, time, self.n_trees_)
        self.unique_times_ = self.model_.unique_times_
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        check_is_fitted(self, "model_")
        return self.model_.predict(np.asarray(X, dtype=float))

    def predict_survival_function(self, X, return_array=False):
        check_is_fitted(self, "model_")
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
        times, mean, low, high, _ = self.predict_band_and_risk(X, quantiles)
        return times, mean, low, high

    def predict_band_and_risk(self, X, quantiles=(0.025, 0.975)):
        """As :meth:`predict_survival_band`, plus the forest's risk score (``predict``) from the same pass."""
        check_is_fitted(self, "estimators_")
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


__all__ = ["GBMCoxCV", "MinimalDepthRSF"]
