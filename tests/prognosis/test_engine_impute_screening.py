"""MICE-PMM imputation and Cox screening."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.prognosis.impute import MICEPMMImputer
from nbrisk_core.prognosis.screening import cox_screening


def _table(n=150, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = 0.8 * a + 0.6 * rng.normal(size=n)
    c = np.round(rng.normal(size=n) - a, 1)
    frame = pd.DataFrame({"a": a, "b": b, "c": c, "d": rng.integers(0, 2, n).astype(float)})
    truth = frame.copy()
    frame.loc[rng.random(n) < 0.25, "b"] = np.nan
    frame.loc[rng.random(n) < 0.2, "c"] = np.nan
    return frame, truth


def test_pmm_imputes_only_observed_values_and_converges():
    frame, _ = _table()
    imputer = MICEPMMImputer(seed=1).fit(frame)
    assert imputer.imputed_variables_ == ["b", "c"]
    assert imputer.n_iter_ <= 50 and imputer.converged_
    assert not imputer.completed_.isna().any().any()
    for column in ("b", "c"):
        observed = set(frame[column].dropna())
        imputed = imputer.completed_.loc[frame[column].isna(), column]
        assert set(imputed) <= observed
        # observed cells untouched
        kept = frame[column].notna()
        assert np.array_equal(imputer.completed_.loc[kept, column], frame.loc[kept, column])
    # the chains are stationary: the last block of cycles does not drift from the one before
    history = imputer.history_.to_numpy()
    assert np.all(np.abs(history[-10:].mean(0) - history[-20:-10].mean(0)) < 3 * history.std(0) + 1e-12)
    assert list(imputer.ks_.columns) == ["variable", "d_statistic", "p_value", "n_imputed", "d_critical_05"]
    assert imputer.ks_.set_index("variable").loc["b", "n_imputed"] == frame["b"].isna().sum()


def test_pmm_uses_the_other_variables():
    """b is strongly correlated with a: PMM should impute it far better than a random draw."""
    frame, truth = _table(n=300, seed=3)
    imputer = MICEPMMImputer(seed=2).fit(frame)
    missing = frame["b"].isna()
    error = np.abs(imputer.completed_.loc[missing, "b"] - truth.loc[missing, "b"]).mean()
    random_error = np.abs(truth.loc[missing, "b"].to_numpy()[:, None] - truth["b"].to_numpy()[None, :]).mean()
    assert error < 0.7 * random_error


def test_transform_new_patients_deterministic_donor_values():
    frame, _ = _table()
    imputer = MICEPMMImputer(seed=1).fit(frame)
    new = pd.DataFrame({"a": [2.0, -2.0], "b": [np.nan, 0.1], "c": [np.nan, np.nan], "d": [1.0, 0.0]})
    first, second = imputer.transform(new), imputer.transform(new)
    assert first.equals(second)
    assert first.loc[1, "b"] == 0.1
    assert set(first["c"]) <= set(frame["c"].dropna())
    assert first.loc[0, "b"] > first.loc[1, "b"]  # follows a (b ~ 0.8 a)
    assert first.loc[0, "b"] in set(frame["b"].dropna())


def test_max_iter_is_respected():
    frame, _ = _table()
    imputer = MICEPMMImputer(max_iter=3, min_iter=20, seed=0).fit(frame)
    assert imputer.n_iter_ == 3 and not imputer.converged_


def _survival(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 5)), columns=[f"x{i}" for i in range(5)])
    hazard = np.exp(1.0 * X["x0"] - 0.7 * X["x1"] + 0.25 * X["x2"])
    time = rng.exponential(1 / hazard) * 500
    censor = rng.uniform(0, 1500, n)
    return X, np.minimum(time, censor), (time <= censor).astype(int)


def test_screening_keeps_prognostic_features_with_hazard_ratios():
    X, time, event = _survival()
    table = cox_screening(X, time, event)
    assert list(table.columns) == ["feature", "hr", "low", "high", "p_univariate", "hr_multivariate",
                                   "p_multivariate", "kept"]
    row = table.set_index("feature")
    assert row.loc["x0", "kept"] and row.loc["x1", "kept"]
    assert row.loc["x0", "hr"] > 1 > row.loc["x1", "hr"]
    assert (table["low"] <= table["hr"]).all() and (table["hr"] <= table["high"]).all()
    # multivariate p only for features that passed the univariate stage
    assert table.loc[table["p_univariate"] >= 0.05, "p_multivariate"].isna().all()
    assert not table.loc[table["p_univariate"] >= 0.05, "kept"].any()


def test_screening_thresholds_are_parameters():
    X, time, event = _survival()
    strict = cox_screening(X, time, event, p_univariate=1e-6, p_multivariate=1e-6, min_features=0)
    loose = cox_screening(X, time, event, p_univariate=1.0, p_multivariate=1.0)
    assert strict["kept"].sum() <= 2 and loose["kept"].all()
    p = strict.set_index("feature")["p_univariate"]
    assert set(strict.loc[strict["kept"], "feature"]) <= set(p[p < 1e-6].index)


def test_screening_fallback_is_reported():
    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(80, 3)), columns=["n0", "n1", "n2"])
    time, event = rng.exponential(500, 80), rng.integers(0, 2, 80)
    table = cox_screening(X, time, event, p_univariate=1e-9)
    assert table["kept"].sum() == 2
    assert any("kept the 2 with the smallest univariate p" in note for note in table.attrs["notes"])


def test_screening_statistics_equal_lifelines_without_ties():
    """Without tied times Breslow = Efron: HR, CI and Wald p equal lifelines' CoxPHFitter."""
    from lifelines import CoxPHFitter

    X, time, event = _survival(n=150, seed=8)
    time = time + np.random.default_rng(0).uniform(0, 1e-3, len(time))  # no ties
    table = cox_screening(X, time, event, p_univariate=1.0, p_multivariate=1.0).set_index("feature")
    for feature in ("x0", "x3"):
        reference = CoxPHFitter().fit(pd.DataFrame({feature: X[feature], "t": time, "e": event}), "t", "e")
        row = reference.summary.loc[feature]
        assert table.loc[feature, "hr"] == pytest.approx(row["exp(coef)"], rel=1e-6)
        assert table.loc[feature, "low"] == pytest.approx(row["exp(coef) lower 95%"], rel=1e-5)
        assert table.loc[feature, "p_univariate"] == pytest.approx(row["p"], rel=1e-4, abs=1e-12)
    multi = CoxPHFitter().fit(X.assign(t=time, e=event), "t", "e").summary
    np.testing.assert_allclose(table.loc[multi.index, "p_multivariate"], multi["p"], rtol=1e-3, atol=1e-12)


def test_ks_critical_d_is_the_five_percent_point_of_the_asymptotic_distribution():
    from scipy.stats import kstwobign

    from nbrisk_core.prognosis.impute import ks_critical_d

    for n, m in [(180, 20), (150, 50), (1000, 1000)]:
        d = ks_critical_d(n, m)
        # P(sqrt(nm/(n+m)) D > c) = 0.05 under the null
        assert abs(kstwobign.sf(d * np.sqrt(n * m / (n + m))) - 0.05) < 1e-3
    assert ks_critical_d(180, 20) > ks_critical_d(1000, 1000)
