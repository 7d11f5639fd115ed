"""The radiomics model's parts: ICC, contour perturbation, redundancy and LASSO steps, paired DeLong."""

from __future__ import annotations

import numpy as np
import pytest

from nbrisk_core.classifier.metrics import roc_auc
from nbrisk_core.radiomics.model import (RedundancyFilter, delong_paired, fit, icc_2_1, make_pipeline,
                                         perturbed_masks)

# Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges; ICC(2,1) = 0.29
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9],
                          [6, 2, 4, 7]])


def test_icc_2_1_matches_shrout_and_fleiss():
    assert icc_2_1(SHROUT_FLEISS) == pytest.approx(0.29, abs=0.005)
    assert icc_2_1(np.column_stack([np.arange(10.0)] * 3)) == pytest.approx(1.0)


def test_perturbed_masks_shrink_and_grow():
    mask = np.zeros((9, 9), dtype=np.uint8)
    mask[2:7, 2:7] = 1
    m = perturbed_masks(mask)
    assert m["eroded"].sum() == 9 and m["mask"].sum() == 25 and m["dilated"].sum() == 25 + 20
    single = np.zeros((5, 5), dtype=bool)
    single[2, 2] = True
    assert perturbed_masks(single)["eroded"].sum() == 1  # never empty


def test_redundancy_filter_keeps_the_first_of_a_correlated_pair():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=100), rng.normal(size=100)
    X = np.column_stack([a, 2 * a + 1, b, np.exp(a)])  # columns 1 and 3 are monotone in column 0
    assert RedundancyFilter(0.9).fit(X).keep_.tolist() == [0, 2]


def test_paired_delong_of_a_score_with_itself_and_against_noise():
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(40), np.zeros(40)].astype(int)
    good = y + rng.normal(0, 0.5, 80)
    noise = rng.normal(0, 1, 80)
    same = delong_paired(y, good, good)
    assert same["diff"] == 0 and same["p"] == 1.0
    res = delong_paired(y, good, noise)
    assert res["auc_a"] == pytest.approx(roc_auc(y, good))
    assert res["auc_b"] == pytest.approx(roc_auc(y, noise))
    assert res["p"] < 0.01 and res["z"] > 0


def test_fit_uses_only_robust_features_and_finds_the_signal():
    import pandas as pd

    rng = np.random.default_rng(2)
    n = 120
    y = rng.integers(0, 2, n)
    X = pd.DataFrame({"signal": y * 1.5 + rng.normal(0, 1, n), "noise": rng.normal(0, 1, n),
                      "fragile": y * 3.0 + rng.normal(0, 1, n)})
    icc = pd.Series({"signal": 0.9, "noise": 0.95, "fragile": 0.3})
    model = fit(X, y, icc, folds=3)
    assert model.robust_features == ["signal", "noise"]
    assert "signal" in model.selected_features
    assert roc_auc(y, model.predict_score(X)) > 0.75
    assert make_pipeline().named_steps["lasso"].C > 0


@pytest.mark.parametrize("head", ["lda", "svm"])
def test_other_heads_rank_the_signal_too(head):
    import pandas as pd

    rng = np.random.default_rng(4)
    n = 100
    y = rng.integers(0, 2, n)
    X = pd.DataFrame({"signal": y * 1.5 + rng.normal(0, 1, n), "noise": rng.normal(0, 1, n)})
    model = fit(X, y, pd.Series({"signal": 0.9, "noise": 0.9}), folds=3, head=head)
    assert roc_auc(y, model.predict_score(X)) > 0.75


def test_rad_score_c_index_follows_the_risk():
    import pandas as pd

    from nbrisk_core.radiomics.model import rad_score_c_index

    rng = np.random.default_rng(5)
    n = 80
    y = rng.integers(0, 2, n)
    X = pd.DataFrame({"signal": y * 2.0 + rng.normal(0, 0.5, n), "noise": rng.normal(0, 1, n)})
    model = fit(X, y, pd.Series({"signal": 0.9, "noise": 0.9}), folds=3)
    # high risk dies early, with a few censored
    clinical = pd.DataFrame({"os_days": np.where(y == 1, 100, 1000) + rng.integers(0, 50, n),
                             "os_event": (rng.uniform(size=n) < 0.8).astype(int)})
    result = rad_score_c_index(model, X, clinical)
    assert result["c_index"] > 0.65 and result["n"] == n  # within-class pairs are ties in truth
    flipped = clinical.assign(os_days=np.where(y == 1, 1000, 100))
    assert rad_score_c_index(model, X, flipped)["c_index"] < 0.35
