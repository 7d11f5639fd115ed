"""Missing clinical values: chained equations with predictive mean matching (MICE-PMM).

The paper imputed with R ``mice`` (PMM, at most 50 iterations) and checked each imputed variable with
the Kolmogorov-Smirnov D between observed and imputed values (``../shared/spec/method.md`` section 5).

:class:`MICEPMMImputer` runs the chained equations of ``mice.impute.pmm`` (van Buuren 2018, section
3.4; the same algorithm as statsmodels' ``MICEData.impute_pmm``): for each incomplete variable in turn,
an ordinary least-squares model on all other (currently completed) columns is fitted on the rows
where the variable is observed; its coefficients are drawn from their Bayesian posterior (the
"perturbation" that makes the imputations proper); each missing value's prediction under the drawn
coefficients is matched to the ``k_pmm`` closest fitted values of the observed rows, and one of those
donors' *observed* values is taken at random. Imputed values are therefore always values seen in
the data. It is written with numpy rather than calling ``MICEData`` because ``MICEData`` re-parses a
patsy formula on every update: 50 cycles over 11 labs took 95 s on the shared 2-core machine, against
well under a second here (docs/prognosis.md).

Cycles stop at ``max_iter`` (paper: 50) or earlier once the chains are stationary. One completed data
set (the last cycle's) is kept: the modelling uses one completed table, as the paper's pipeline did.

Categorical and binary variables (given as ``groups``: the 0/1 indicator columns of one variable) are
not imputed column by column: PMM on each indicator alone could give a patient two stages or none. A
group is imputed as one variable by the methods R ``mice`` uses for categorical data: a logistic
(binary, ``logreg``) or multinomial logistic (several categories, ``polyreg``; coded against the
first category, L2 penalty 1 on standardised columns, fitted by Newton's method) regression on all
other columns, fitted on a bootstrap sample of the rows where the variable is observed (the draw that
makes the imputation proper, as ``logreg.boot``), and each missing category drawn from the predicted
probabilities. New patients get the most probable category under a model frozen at the end of
fitting. Without ``groups`` (or when no categorical value is missing) nothing of this runs, and the
chains are exactly those of plain MICE-PMM.

New patients are imputed with models frozen at the end of fitting: for each missing value the linear
prediction from the patient's other values is matched to the closest fitted value among the
training patients who had that variable observed, and that donor's observed value is used (PMM with
one donor: deterministic, so a patient gets the same imputed value on every run).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp
from sklearn.base import BaseEstimator, TransformerMixin


def _pmm_draw(design_obs, y_obs, design_mis, k_pmm, rng):
    """One PMM imputation of the missing rows (mice's ``.norm.draw`` + type-1 matching)."""
    n, p = design_obs.shape
    xtx = design_obs.T @ design_obs + 1e-5 * np.diag(np.diag(design_obs.T @ design_obs) + 1e-8)  # mice's ridge
    xtx_inv = np.linalg.inv(xtx)
    beta_hat = xtx_inv @ design_obs.T @ y_obs
    residual = y_obs - design_obs @ beta_hat
    sigma_star = np.sqrt(float(residual @ residual) / rng.chisquare(max(n - p, 1)))
    beta_star = beta_hat + sigma_star * (np.linalg.cholesky((xtx_inv + xtx_inv.T) / 2) @ rng.standard_normal(p))
    fitted_obs = design_obs @ beta_hat
    predicted_mis = design_mis @ beta_star
    k = min(k_pmm, n)
    distance = np.abs(predicted_mis[:, None] - fitted_obs[None, :])
    donors = np.argpartition(distance, k - 1, axis=1)[:, :k]
    chosen = donors[np.arange(len(predicted_mis)), rng.integers(0, k, len(predicted_mis))]
    return y_obs[chosen]


def _classes(block: np.ndarray) -> np.ndarray:
    """Category index of each row of a 0/1 indicator block: 0 = reference (all 0), k = column k-1 is 1."""
    return np.where(block.max(axis=1) > 0.5, block.argmax(axis=1) + 1, 0)


def _indicators(classes: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((len(classes), width))
    rows = np.nonzero(classes > 0)[0]
    out[rows, classes[rows] - 1] = 1.0
    return out


#: L2 penalty of the (multinomial) logistic models on standardised columns (sklearn's default C = 1)
LOGISTIC_L2 = 1.0


def _softmax_rest(eta: np.ndarray) -> np.ndarray:
    """Class probabilities from the linear predictors of classes 1..K-1 (class 0 = reference, eta 0)."""
    full = np.column_stack((np.zeros(len(eta)), eta))
    full -= full.max(axis=1, keepdims=True)
    exp = np.exp(full)
    return exp / exp.sum(axis=1, keepdims=True)


def _fit_logit(z: np.ndarray, classes: np.ndarray, n_classes: int, max_iter: int = 50) -> np.ndarray:
    """Penalised (multinomial) logistic regression by Newton's method with step halving.

    ``z`` has the intercept in column 0 (not penalised beyond 1e-6). Returns the coefficients,
    shape ``(n_columns, n_classes - 1)``, against class 0. Written with numpy: a few dozen small
    Newton steps cost far less than scipy's L-BFGS per fit, and the chains fit one per cycle.
    """
    n, p = z.shape
    k = n_classes - 1
    target = _indicators(classes, k)
    penalty = np.full(p, LOGISTIC_L2)
    penalty[0] = 1e-6

    def loss(w):
        prob = _softmax_rest(z @ w)
        fit = -np.log(np.clip(prob[np.arange(n), classes], 1e-300, None)).sum()
        return fit + 0.5 * (penalty @ (w * w)).sum()

    w = np.zeros((p, k))
    current = loss(w)
    for _ in range(max_iter):
        prob = _softmax_rest(z @ w)[:, 1:]
        gradient = z.T @ (prob - target) + penalty[:, None] * w
        hessian = np.zeros((p * k, p * k))
        for a in range(k):
            for b in range(a, k):
                weight = prob[:, a] * ((a == b) - prob[:, b])
                block = (z * weight[:, None]).T @ z
                hessian[a * p:(a + 1) * p, b * p:(b + 1) * p] = block
                hessian[b * p:(b + 1) * p, a * p:(a + 1) * p] = block
        hessian += np.diag(np.tile(penalty, k))
        step = np.linalg.solve(hessian, gradient.T.reshape(-1)).reshape(k, p).T
        size = 1.0
        while size > 1e-4:
            candidate = w - size * step
            new = loss(candidate)
            if new <= current:
                break
            size /= 2
        else:
            break
        w, change, current = candidate, current - new, new
        if change < 1e-10 * max(1.0, abs(current)):
            break
    return w


def _logistic(design: np.ndarray, classes: np.ndarray, n_classes: int):
    """A (multinomial) logistic model ``(coef, mean, scale)`` on standardised columns; None for one class."""
    if len(np.unique(classes)) < 2:
        return None
    mean, scale = design.mean(axis=0), design.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = np.column_stack((np.ones(len(design)), (design - mean) / scale))
    return _fit_logit(z, classes, n_classes), mean, scale


def _class_probabilities(fitted, design: np.ndarray, classes_obs: np.ndarray, n_classes: int) -> np.ndarray:
    if fitted is None:
        counts = np.bincount(classes_obs, minlength=n_classes).astype(float)
        return np.tile(counts / counts.sum(), (len(design), 1))
    coef, mean, scale = fitted
    z = np.column_stack((np.ones(len(design)), (design - mean) / scale))
    return _softmax_rest(z @ coef)


def _categorical_draw(design_obs, classes_obs, design_mis, n_classes, rng):
    """One proper draw of missing categories: bootstrap logistic / multinomial logistic regression."""
    boot = rng.integers(0, len(classes_obs), len(classes_obs))
    fitted = _logistic(design_obs[boot], classes_obs[boot], n_classes)
    probabilities = _class_probabilities(fitted, design_mis, classes_obs[boot], n_classes)
    cumulative = np.cumsum(probabilities, axis=1)
    u = rng.random(len(design_mis))[:, None] * cumulative[:, -1:]
    return np.minimum((u > cumulative).sum(axis=1), n_classes - 1)


def ks_critical_d(n: int, m: int, alpha: float = 0.05) -> float:
    """Large-sample critical D of the two-sample Kolmogorov-Smirnov test (Smirnov's asymptotic form).

    ``c(alpha) * sqrt((n + m) / (n * m))`` with ``c(alpha) = sqrt(-log(alpha / 2) / 2)``, 1.358 at 5 %.

    Examples
    --------
    >>> round(ks_critical_d(180, 20), 3)
    0.32
    """
    c = np.sqrt(-np.log(alpha / 2) / 2)
    return float(c * np.sqrt((n + m) / (n * m)))


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
    z_max : float
        Convergence (stationarity, a Geweke-type check): for every imputed variable, the mean of its
        imputed values over the last ``window`` cycles and over the ``window`` cycles before differ
        by less than ``z_max`` standard errors. PMM chains are random walks around a stationary
        distribution, so "converged" means no drift, not a fixed point.
    window : int
        Cycles per block in the convergence check.
    seed : int
        Seed of the chains.
    groups : dict, optional
        ``{variable: [indicator columns]}`` of categorical and binary variables (see
        :func:`nbrisk_core.prognosis.validation.categorical_groups`): each is imputed as one variable by
        (multinomial) logistic regression, not by PMM per column.

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
        ``variable, d_statistic, p_value, n_imputed, d_critical_05``: two-sample Kolmogorov-Smirnov
        test of observed vs imputed training values per imputed variable. ``d_critical_05`` is the D
        above which the two samples differ at the 5 % level (:func:`ks_critical_d`): with a few dozen
        imputed values, D of 0.2-0.3 is still sampling noise, so read D against it, not against 0.1.
    """

    def __init__(self, max_iter: int = 50, min_iter: int = 20, k_pmm: int = 5, z_max: float = 3.0,
                 window: int = 10, seed: int = 2025, groups: dict | None = None):
        self.max_iter = max_iter
        self.min_iter = min_iter
        self.k_pmm = k_pmm
        self.z_max = z_max
        self.window = window
        self.seed = seed
        self.groups = groups

    def _group_indices(self) -> dict[str, list[int]]:
        return {name: [self.columns_.index(c) for c in cols]
                for name, cols in (self.groups or {}).items()
                if cols and all(c in self.columns_ for c in cols)}

    def fit(self, X: pd.DataFrame, y=None):
        X = pd.DataFrame(X).astype(float)
        self.columns_ = list(X.columns)
        self.missing_mask_ = X.isna()
        empty = [c for c in X.columns if X[c].isna().all()]
        if empty:
            raise ValueError(f"columns with no observed value cannot be imputed: {', '.join(empty)}")
        group_index = self._group_indices()
        in_group = {j for idx in group_index.values() for j in idx}
        mask = self.missing_mask_.to_numpy().copy()
        active = {}
        for name, idx in group_index.items():
            rows = mask[:, idx].any(axis=1)   # a row missing any indicator misses the variable
            if rows.any():
                mask[np.ix_(rows, idx)] = True
                active[name] = (idx, rows)
        self.missing_mask_ = pd.DataFrame(mask, index=X.index, columns=self.columns_)
        self.imputed_variables_ = [c for c in X.columns if self.missing_mask_[c].any()]
        rng = np.random.default_rng(self.seed)
        data = X.to_numpy(dtype=float).copy()
        # start from random draws of the observed values (mice's initialisation)
        for j in range(data.shape[1]):
            if mask[:, j].any() and j not in in_group:
                data[mask[:, j], j] = rng.choice(data[~mask[:, j], j], size=int(mask[:, j].sum()))
        for idx, rows in active.values():
            donors = rng.choice(np.nonzero(~rows)[0], size=int(rows.sum()))
            data[np.ix_(rows, idx)] = data[np.ix_(donors, idx)]
        targets = [self.columns_.index(c) for c in self.imputed_variables_]
        pmm_targets = [j for j in targets if j not in in_group]
        history = []
        self.converged_ = not targets
        self.n_iter_ = 0
        for cycle in range(1, (self.max_iter if targets else 0) + 1):
            for j in pmm_targets:
                rows = mask[:, j]
                design = np.column_stack((np.ones(len(data)), np.delete(data, j, axis=1)))
                data[rows, j] = _pmm_draw(design[~rows], data[~rows, j], design[rows], self.k_pmm, rng)
            for idx, rows in active.values():
                design = np.delete(data, idx, axis=1)
                classes = _classes(data[np.ix_(~rows, idx)])
                drawn = _categorical_draw(design[~rows], classes, design[rows], len(idx) + 1, rng)
                data[np.ix_(rows, idx)] = _indicators(drawn, len(idx))
            history.append([data[mask[:, j], j].mean() for j in targets])
            self.n_iter_ = cycle
            if cycle >= max(self.min_iter, 2 * self.window) and self._stationary(np.asarray(history)):
                self.converged_ = True
                break
        self.completed_ = pd.DataFrame(data, index=X.index, columns=self.columns_)
        self.history_ = pd.DataFrame(history, columns=self.imputed_variables_)
        self.history_.index = pd.RangeIndex(1, len(history) + 1, name="cycle")
        self._fit_frozen_models()
        rows = []
        for c in self.imputed_variables_:
            observed, imputed = self.observed_and_imputed(c)
            result = ks_2samp(observed, imputed)
            rows.append((c, float(result.statistic), float(result.pvalue), int(len(imputed)),
                         ks_critical_d(len(observed), len(imputed))))
        self.ks_ = pd.DataFrame(rows, columns=["variable", "d_statistic", "p_value", "n_imputed", "d_critical_05"])
        return self

    def _stationary(self, history: np.ndarray) -> bool:
        """No drift: the last two blocks of ``window`` cycles have the same mean (|z| < ``z_max``)."""
        w = self.window
        recent, before = history[-w:], history[-2 * w:-w]
        spread = np.sqrt(recent.var(axis=0, ddof=1) / w + before.var(axis=0, ddof=1) / w)
        z = np.abs(recent.mean(axis=0) - before.mean(axis=0)) / np.where(spread > 0, spread, np.inf)
        return bool(np.all(z < self.z_max))

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
        self.group_models_ = {}
        for name, idx in self._group_indices().items():
            classes = _classes(data[:, idx])
            others = [k for k in range(len(self.columns_)) if k not in idx]
            fitted = _logistic(data[:, others], classes, len(idx) + 1)
            most_frequent = int(np.bincount(classes, minlength=len(idx) + 1).argmax())
            self.group_models_[name] = (idx, others, fitted, most_frequent)

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
        group_models = self.group_models_
        group_rows = {}
        for name, (idx, _, _, most_frequent) in group_models.items():
            rows = mask[:, idx].any(axis=1)
            if rows.any():
                group_rows[name] = rows
                data[np.ix_(rows, idx)] = _indicators(np.full(int(rows.sum()), most_frequent), len(idx))
        in_group = {j for idx, *_ in group_models.values() for j in idx}
        for _ in range(max_cycles):
            changed = False
            for name, rows in group_rows.items():
                idx, others, fitted, most_frequent = group_models[name]
                if fitted is None:
                    continue
                predicted = _class_probabilities(fitted, data[np.ix_(rows, others)], None,
                                                 len(idx) + 1).argmax(axis=1)
                new = _indicators(predicted, len(idx))
                if not np.array_equal(new, data[np.ix_(rows, idx)]):
                    changed = True
                data[np.ix_(rows, idx)] = new
            for j, c in enumerate(self.columns_):
                rows = mask[:, j]
                if not rows.any() or j in in_group:
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
