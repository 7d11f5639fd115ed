"""The cohort's own AUC and Harrell's C agree with scikit-learn and scikit-survival."""

from __future__ import annotations

import numpy as np
import pytest

from nbrisk_core.demo import auc, harrell_c_index


def test_auc_matches_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    label = rng.random(300) < 0.4
    score = np.round(label * 0.7 + rng.normal(size=300), 1)   # rounding makes ties
    assert auc(label, score) == pytest.approx(roc_auc_score(label, score), abs=1e-12)


def test_harrell_c_matches_scikit_survival():
    from sksurv.metrics import concordance_index_censored

    rng = np.random.default_rng(1)
    n = 700   # more than one chunk
    risk = rng.normal(size=n)
    time = np.ceil(rng.exponential(np.exp(-risk)) * 50)   # integer days: tied times
    event = rng.random(n) < 0.6
    risk_rounded = np.round(risk, 1)   # tied risks
    expected = concordance_index_censored(event, time, risk_rounded)[0]
    assert harrell_c_index(time, event, risk_rounded) == pytest.approx(expected, abs=1e-12)
    assert harrell_c_index(time, event, -risk) < 0.5 < harrell_c_index(time, event, risk)
