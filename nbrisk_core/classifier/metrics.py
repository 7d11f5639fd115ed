"""Classifier metrics as plain functions ``(y_true, score) -> result``.

``y_true`` is 1 for the positive class (high risk), ``score`` the predicted p(HR). Results are
small frozen objects with the value, the 95 % CI where one exists and a readable repr (in the
manner of lifelines' ``StatisticalResult``). The AUC CI is DeLong's (DeLong, DeLong &
Clarke-Pearson 1988, fast algorithm of Sun & Xu 2014, as pROC's default), optionally a
stratified percentile bootstrap (pROC's ``ci.auc(method="bootstrap")``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from nbrisk_core.errors import InputError


@dataclass(frozen=True)
class MetricResult:
    """A metric value with an optional confidence interval."""

    name: str
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    method: str | None = None

    def __repr__(self) -> str:
        if self.ci_low is None:
            return f"{self.name} = {self.value:.3f}"
        return f"{self.name} = {self.value:.3f} (95% CI {self.ci_low:.3f}-{self.ci_high:.3f}, {self.method})"

    def to_dict(self) -> dict:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "method": self.method}


def _check(y_true, score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(score, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise InputError(f"y_true has shape {y.shape} and score {s.shape}; expected two 1-D arrays of one length")
    if not np.isin(y, (0, 1)).all():
        raise InputError(f"y_true has values {sorted(set(y.tolist()))[:5]}; expected 0/1 (1 = high risk)")
    if not np.isfinite(s).all():
        raise InputError("score has non-finite values")
    return y.astype(int), s


def _midrank(x: np.ndarray) -> np.ndarray:
    return stats.rankdata(x, method="average")


def _delong_components(y: np.ndarray, s: np.ndarray):
    pos, neg = s[y == 1], s[y == 0]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        raise InputError(f"AUC needs both classes; got {m} positive and {n} negative cases")
    tx, ty, tz = _midrank(pos), _midrank(neg), _midrank(np.concatenate([pos, neg]))
    auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    v01 = (tz[:m] - tx) / n          # structural components of the positives
    v10 = 1.0 - (tz[m:] - ty) / m    # ... and of the negatives
    return auc, v01, v10


def roc_auc(y_true, score) -> float:
    """Area under the ROC curve (ties count one half), equal to scikit-learn's ``roc_auc_score``."""
    y, s = _check(y_true, score)
    return float(_delong_components(y, s)[0])


def delong_auc_variance(y_true, score) -> tuple[float, float]:
    """``(auc, variance)`` by DeLong's method."""
    y, s = _check(y_true, score)
    auc, v01, v10 = _delong_components(y, s)
    return float(auc), float(np.var(v01, ddof=1) / len(v01) + np.var(v10, ddof=1) / len(v10))


def auc_ci(y_true, score, method: str = "delong", level: float = 0.95, n_bootstrap: int = 2000,
           seed: int = 2025) -> MetricResult:
    """AUC with a confidence interval, ``method`` ``"delong"`` (default, as pROC) or ``"bootstrap"``.

    Examples
    --------
    >>> auc_ci([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    AUC = 0.750 (95% CI 0.057-1.000, DeLong)
    """
    y, s = _check(y_true, score)
    if method == "delong":
        auc, var = delong_auc_variance(y, s)
        half = stats.norm.ppf(0.5 + level / 2) * np.sqrt(var)
        return MetricResult("AUC", auc, max(0.0, auc - half), min(1.0, auc + half), "DeLong")
    if method == "bootstrap":
        rng = np.random.default_rng(seed)
        pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        aucs = np.empty(n_bootstrap)
        for b in range(n_bootstrap):  # stratified, as pROC's default bootstrap
            index = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
            aucs[b] = _delong_components(y[index], s[index])[0]
        low, high = np.quantile(aucs, [(1 - level) / 2, (1 + level) / 2])
        return MetricResult("AUC", roc_auc(y, s), float(low), float(high), f"bootstrap n={n_bootstrap}")
    raise InputError(f"AUC CI method {method!r}; expected 'delong' or 'bootstrap'")


def roc_curve_points(y_true, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` of the ROC curve (scikit-learn's, kept whole)."""
    from sklearn.metrics import roc_curve

    y, s = _check(y_true, score)
    return roc_curve(y, s, drop_intermediate=False)


@dataclass(frozen=True)
class ConfusionMatrix:
    """2x2 confusion matrix at a threshold on p(HR); HR is the positive class."""

    tp: int
    fn: int
    fp: int
    tn: int
    threshold: float

    def __repr__(self) -> str:
        return (f"ConfusionMatrix(threshold {self.threshold:g}: TP {self.tp}, FN {self.fn}, "
                f"FP {self.fp}, TN {self.tn})")

    def as_array(self) -> np.ndarray:
        """Rows = true (HR, NHR), columns = predicted (HR, NHR)."""
        return np.array([[self.tp, self.fn], [self.fp, self.tn]])


def confusion(y_true, score, threshold: float = 0.5) -> ConfusionMatrix:
    y, s = _check(y_true, score)
    pred = s >= threshold
    return ConfusionMatrix(int((pred & (y == 1)).sum()), int((~pred & (y == 1)).sum()),
                           int((pred & (y == 0)).sum()), int((~pred & (y == 0)).sum()), threshold)


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def sensitivity(y_true, score, threshold: float = 0.5) -> MetricResult:
    c = confusion(y_true, score, threshold)
    return MetricResult("sensitivity", _ratio(c.tp, c.tp + c.fn))


def specificity(y_true, score, threshold: float = 0.5) -> MetricResult:
    c = confusion(y_true, score, threshold)
    return MetricResult("specificity", _ratio(c.tn, c.tn + c.fp))


def precision(y_true, score, threshold: float = 0.5) -> MetricResult:
    c = confusion(y_true, score, threshold)
    return MetricResult("precision", _ratio(c.tp, c.tp + c.fp))


def recall(y_true, score, threshold: float = 0.5) -> MetricResult:
    return MetricResult("recall", sensitivity(y_true, score, threshold).value)


def accuracy(y_true, score, threshold: float = 0.5) -> MetricResult:
    c = confusion(y_true, score, threshold)
    return MetricResult("accuracy", _ratio(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn))


def f1(y_true, score, threshold: float = 0.5) -> MetricResult:
    c = confusion(y_true, score, threshold)
    return MetricResult("F1", _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn))


def cohen_kappa(y_true, score, threshold: float = 0.5) -> MetricResult:
    c = confusion(y_true, score, threshold)
    n = c.tp + c.tn + c.fp + c.fn
    observed = (c.tp + c.tn) / n
    expected = ((c.tp + c.fn) * (c.tp + c.fp) + (c.tn + c.fp) * (c.tn + c.fn)) / n**2
    return MetricResult("Cohen's kappa", _ratio(observed - expected, 1 - expected))


THRESHOLD_METRICS = (sensitivity, specificity, precision, recall, accuracy, cohen_kappa, f1)


def evaluate_scores(y_true, score, threshold: float = 0.5, ci_method: str = "delong") -> dict:
    """Every metric of the paper for one cohort, as a JSON-ready dict."""
    y, s = _check(y_true, score)
    auc = auc_ci(y, s, method=ci_method)
    c = confusion(y, s, threshold)
    out = {"n": int(len(y)), "n_hr": int(y.sum()), "threshold": threshold, "auc": auc.to_dict(),
           "confusion": {"tp": c.tp, "fn": c.fn, "fp": c.fp, "tn": c.tn}}
    for metric in THRESHOLD_METRICS:
        out[metric.__name__] = metric(y, s, threshold).value
    return out


def comparison_table(results: dict[str, dict[str, dict]]):
    """The paper's table: rows = models, columns = AUC (CI) and accuracy per cohort.

    ``results[model][cohort]`` is an :func:`evaluate_scores` dict (cohort e.g. ``"train"``, ``"test"``).
    """
    import pandas as pd

    rows = {}
    for model, by_cohort in results.items():
        row = {}
        for cohort, r in by_cohort.items():
            a = r["auc"]
            row[f"{cohort} AUC (95% CI)"] = f"{a['value']:.3f} ({a['ci_low']:.3f}-{a['ci_high']:.3f})"
            for key in ("accuracy", "sensitivity", "specificity", "precision", "f1", "cohen_kappa"):
                row[f"{cohort} {key}"] = round(r[key], 3)
        rows[model] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def roc_figure(curves: dict[str, tuple]):
    """ROC curves ``{label: (y_true, score)}`` as a plotly Figure (AUC with CI in the legend)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, (y, s) in curves.items():
        fpr, tpr, _ = roc_curve_points(y, s)
        a = auc_ci(y, s)
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines",
                                 name=f"{label}: AUC {a.value:.3f} ({a.ci_low:.3f}-{a.ci_high:.3f})"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"},
                             showlegend=False))
    fig.update_layout(xaxis_title="1 - specificity", yaxis_title="sensitivity", title="ROC")
    return fig


def confusion_figure(matrix: ConfusionMatrix, title: str = "Confusion matrix"):
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=matrix.as_array(), x=["pred HR", "pred NHR"], y=["true HR", "true NHR"],
                               text=matrix.as_array(), texttemplate="%{text}", colorscale="Blues",
                               showscale=False))
    fig.update_layout(title=title, yaxis={"autorange": "reversed"})
    return fig
