"""Metrics against scikit-learn and DeLong against a hand-checked case and the O(mn) definition."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from nbrisk_core.classifier import metrics as m
from nbrisk_core.errors import InputError


@pytest.fixture()
def scores():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    s = np.clip(rng.normal(0.4 + 0.25 * y, 0.2), 0, 1).round(2)  # rounding makes ties
    return y, s


def test_auc_equals_sklearn(scores):
    y, s = scores
    assert m.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_threshold_metrics_equal_sklearn(scores, threshold):
    y, s = scores
    pred = (s >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    c = m.confusion(y, s, threshold)
    assert (c.tp, c.fn, c.fp, c.tn) == (tp, fn, fp, tn)
    assert m.sensitivity(y, s, threshold).value == pytest.approx(skm.recall_score(y, pred))
    assert m.recall(y, s, threshold).value == pytest.approx(skm.recall_score(y, pred))
    assert m.specificity(y, s, threshold).value == pytest.approx(skm.recall_score(1 - y, 1 - pred))
    assert m.precision(y, s, threshold).value == pytest.approx(skm.precision_score(y, pred))
    assert m.accuracy(y, s, threshold).value == pytest.approx(skm.accuracy_score(y, pred))
    assert m.f1(y, s, threshold).value == pytest.approx(skm.f1_score(y, pred))
    assert m.cohen_kappa(y, s, threshold).value == pytest.approx(skm.cohen_kappa_score(y, pred))


def test_delong_hand_checked_case():
    # positives 0.35, 0.8; negatives 0.1, 0.4: AUC 3/4; placement values (0.5, 1) and (1, 0.5)
    # give variance 0.125/2 + 0.125/2 = 0.125, so the CI is 0.75 -/+ 1.96 * 0.354 clipped to [0, 1]
    result = m.auc_ci([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert result.value == pytest.approx(0.75)
    assert result.ci_low == pytest.approx(0.75 - 1.959964 * np.sqrt(0.125), abs=1e-5)
    assert result.ci_high == 1.0
    assert "DeLong" in repr(result)


def test_delong_variance_equals_the_definition(scores):
    y, s = scores
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(1), psi.mean(0)
    expected = v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)
    auc, var = m.delong_auc_variance(y, s)
    assert auc == pytest.approx(psi.mean()) and var == pytest.approx(expected, rel=1e-10)


def test_bootstrap_ci_brackets_the_auc(scores):
    y, s = scores
    result = m.auc_ci(y, s, method="bootstrap", n_bootstrap=300)
    assert result.ci_low < result.value < result.ci_high
    delong = m.auc_ci(y, s)
    assert abs(result.ci_low - delong.ci_low) < 0.08  # two estimates of one interval


def test_one_class_is_an_input_error():
    with pytest.raises(InputError, match="both classes"):
        m.roc_auc([1, 1, 1], [0.2, 0.3, 0.4])


def test_comparison_table_and_figures(scores):
    y, s = scores
    results = {"Swin-ART": {"train": m.evaluate_scores(y, s), "test": m.evaluate_scores(y, 1 - s)}}
    table = m.comparison_table(results)
    assert list(table.index) == ["Swin-ART"] and "test AUC (95% CI)" in table.columns
    assert len(m.roc_figure({"a": (y, s)}).data) == 2
    assert m.confusion_figure(m.confusion(y, s)).data[0].z.shape == (2, 2)
