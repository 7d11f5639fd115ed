"""Missing clinical values: chained equations with predictive mean matching (MICE-PMM).

The paper imputed with R ``mice`` (PMM, at most 50 iterations) and checked each imputed variable with
the Kolmogorov-Smirnov D between observed and imputed values (``../shared/spec/method.md`` section 5).

:class:`MICEPMMImputer` fits on the training cohort with statsmodels' :class:`MICEData` (chained
linear models with parameter perturbation and PMM over ``k_pmm`` donors, as ``mice``), running until
the chains are stable or ``max_iter`` cycles. One completed data set is kept (the modelling uses one
completed table, as the paper's pipeline did). New patients are imputed with the models frozen at
the end of fitting: for each missing value the linear prediction from the patient's other values is
matched to the closest predicted value among the training patients who had that variable observed,
and that donor's *observed* value is used (PMM with one donor: deterministic, so a patient gets the
same imputed value on every run). Imputed values are therefore always values seen in training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp
from sklearn.base import BaseEstimator, TransformerMixin


class MICEPMMImputer(TransformerMixin, BaseEstimator):
    """Multiple imputation by chained equations with predictive mean matching.

    Parameters
    ----------
    max_iter : int
        At most this many cycles over the variables (paper: 50).
    min_iter : int
        At least this many cycles before the convergence check.
    k_pmm : int
        Donors per imputed value while fitting (R ``mice`` default 5).
    tol : float
        Convergence: the mean of each variable's imputed values over the last ``window`` cycles
        differs from the ``window`` cycles before by less than ``tol`` observed standard deviations.
    window : int
        Cycles per block in the convergence check.
    seed : int
        Seed of the chains.

    Attributes
    ----------
    columns_ : list of str
    imputed_variables_ : list of str
        Training columns that had missing values.
    completed_ : pandas.DataFrame
        The training table with its missing values imputed.
    missing_mask_ : pandas.DataFrame of bool
        Where the training table was missing.
    n_iter_ : int
        Cycles run. ``converged_`` says whether the stability check passed before ``max_iter``.
    history_ : pandas.DataFrame
        Mean of the imputed values per variable (columns) after each cycle (rows).
    ks_ : pandas.DataFrame
        ``variable, d_statistic, p_value, n_imputed``: two-sample Kolmogorov-Smirnov test of observed
        vs imputed training values per imputed variable.
    """

    def __init__(self, max_iter: int = 50, min_iter: int = 10, k_pmm: int = 5, tol: float = 0.05,
                 window: int = 5, seed: int = 2025):
        self.max_iter = max_iter
        self.min_iter = min_iter
        self.k_pmm = k_pmm
        self.tol = tol
        self.window = window
        self.seed = seed

    def fit(self, X: pd.DataFrame, y=None):
        from statsmodels.imputation.mice import MICEData

        X = pd.DataFrame(X).astype(float)
        self.columns_ = list(X.columns)
        self.missing_mask_ = X.isna()
        empty = [c for c in X.columns if X[c].isna().all()]
        if empty:
            raise ValueError(f"columns with no observed value cannot be imputed: {', '.join(empty)}")
        self.imputed_variables_ = [c for c in X.columns if X[c].isna().any()]
        history = []
        self.converged_ = True
        self.n_iter_ = 0
        if self.imputed_variables_:
            # MICEData needs formula-safe names; map to x0, x1, ... and back
            safe = {c: f"x{i}" for i, c in enumerate(X.columns)}
            data = X.rename(columns=safe).reset_index(drop=True)
            mice = MICEData(data, k_pmm=self.k_pmm, rng=np.random.default_rng(self.seed))
            scale = X[self.imputed_variables_].std().replace(0, 1.0).to_numpy()
            self.converged_ = False
            for cycle in range(1, self.max_iter + 1):
                mice.update_all(1)
                completed = mice.data
                history.append([completed.loc[self.missing_mask_[c].to_numpy(), safe[c]].mean()
                                for c in self.imputed_variables_])
                self.n_iter_ = cycle
                w = self.window
                if cycle >= max(self.min_iter, 2 * w):
                    recent = np.mean(history[-w:], axis=0)
                    before = np.mean(history[-2 * w:-w], axis=0)
                    if np.all(np.abs(recent - before) / scale < self.tol):
                        self.converged_ = True
                        break
            completed = mice.data.rename(columns={v: k for k, v in safe.items()})
            completed.index = X.index
        else:
            completed = X.copy()
        self.completed_ = completed[self.columns_]
        self.history_ = pd.DataFrame(history, columns=self.imputed_variables_)
        self.history_.index = pd.RangeIndex(1, len(history) + 1, name="cycle")
        self._fit_frozen_models()
        rows = []
        for c in self.imputed_variables_:
            observed, imputed = self.observed_and_imputed(c)
            result = ks_2samp(observed, imputed)
            rows.append((c, float(result.statistic), float(result.pvalue), int(len(imputed))))
        self.ks_ = pd.DataFrame(rows, columns=["variable", "d_statistic", "p_value", "n_imputed"])
        return self

    def _fit_frozen_models(self):
        """Least-squares model of every column on all others, fitted on the completed training data."""
        data = self.completed_.to_numpy(dtype=float)
        self.medians_ = np.nanmedian(np.where(self.missing_mask_.to_numpy(), np.nan, data), axis=0)
        self.models_ = {}
        for j, c in enumerate(self.columns_):
            others = [k for k in range(len(self.columns_)) if k != j]
            design = np.column_stack((np.ones(len(data)), data[:, others]))
            coef = np.linalg.lstsq(design, data[:, j], rcond=None)[0]
            observed = ~self.missing_mask_[c].to_numpy()
            donors_predicted = design[observed] @ coef
            order = np.argsort(donors_predicted, kind="stable")
            self.models_[c] = (others, coef, donors_predicted[order], data[observed, j][order])

    def observed_and_imputed(self, variable: str) -> tuple[np.ndarray, np.ndarray]:
        """Observed and imputed training values of one variable (for density plots and KS)."""
        mask = self.missing_mask_[variable].to_numpy()
        values = self.completed_[variable].to_numpy()
        return values[~mask], values[mask]

    def transform(self, X: pd.DataFrame, max_cycles: int = 10) -> pd.DataFrame:
        """Impute new patients with the frozen models (PMM, nearest training donor).

        Rows keep their index; only missing cells change, and each imputed value is an observed
        training value of that variable.
        """
        X = pd.DataFrame(X).astype(float)
        missing_columns = [c for c in self.columns_ if c not in X.columns]
        if missing_columns:
            raise ValueError(f"columns missing from the table to impute: {', '.join(missing_columns)}")
        X = X[self.columns_]
        mask = X.isna().to_numpy()
        if not mask.any():
            return X.copy()
        data = X.to_numpy(dtype=float).copy()
        data[mask] = np.take(self.medians_, np.nonzero(mask)[1])
        for _ in range(max_cycles):
            changed = False
            for j, c in enumerate(self.columns_):
                rows = mask[:, j]
                if not rows.any():
                    continue
                others, coef, donor_predicted, donor_values = self.models_[c]
                predicted = coef[0] + data[np.ix_(rows, others)] @ coef[1:]
                position = np.clip(np.searchsorted(donor_predicted, predicted), 1, len(donor_predicted) - 1)
                left_closer = (predicted - donor_predicted[position - 1]) <= (donor_predicted[position] - predicted)
                donor = np.where(left_closer, position - 1, position)
                new = donor_values[donor]
                if not np.array_equal(new, data[rows, j]):
                    changed = True
                data[rows, j] = new
            if not changed:
                break
        return pd.DataFrame(data, index=X.index, columns=self.columns_)
