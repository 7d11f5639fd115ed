"""The combination grid: its 117 combinations, skip logic, selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sksurv.util import Surv

from nbrisk_core.errors import InputError
from nbrisk_core.prognosis import grid


def test_grid_has_the_117_combinations_of_the_spec():
    pairs = grid.combinations()
    names = [grid.combination_name(*p) for p in pairs]
    assert len(pairs) == 117 and len(set(names)) == 117
    assert "StepCox[backward] + RSF" in names and "RSF + StepCox[backward]" in names
    counts = pd.Series([s or p for s, p in pairs]).value_counts()
    assert counts["RSF"] == 20 and counts["CoxBoost"] == 19 and counts["LASSO"] == 10
    assert sum(counts[f"StepCox[{d}]"] for d in grid.STEP_DIRECTIONS) == 54
    assert all(grid.ALGORITHMS[s].selector for s, _ in pairs if s is not None)
    assert grid.parse_combination("LASSO + GBM") == ("LASSO", "GBM")
    with pytest.raises(InputError, match="not in the grid"):
        grid.parse_combination("Enet[alpha=0.1] + RSF")


def _data(n=100, p=4, seed=0, signal=(1.0, -0.8)):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    lp = sum(b * X[:, i] for i, b in enumerate(signal))
    time = np.round(rng.exponential(np.exp(-lp)) * 800) + 1
    censor = rng.uniform(200, 2500, n)
    return X, Surv.from_arrays(time <= censor, np.minimum(time, censor))


def test_full_grid_code_path_on_a_small_cohort():
    X, y = _data(n=110, p=4)
    train = np.arange(len(X)) < 80
    table = grid.run_grid(X[train], y[train], X[~train], y[~train], ["a", "b", "c", "d"], profile="test",
                          backend="loky", n_jobs=2, seed=3)
    assert list(table.columns) == ["combination", "selector", "predictor", "status", "reason", "n_features",
                                   "features", "c_index_train", "c_index_test", "c_index_mean", "seconds"]
    assert len(table) == 117 and set(table["status"]) <= {"fitted", "skipped"}
    fitted = table[table["status"] == "fitted"]
    assert len(fitted) >= 60
    assert fitted[["c_index_train", "c_index_test"]].notna().all().all()
    assert np.allclose(fitted["c_index_mean"], (fitted["c_index_train"] + fitted["c_index_test"]) / 2)
    assert (table.loc[table["status"] == "skipped", "reason"] != "").all()
    # same predictor on the same features -> same scores (fits are deduplicated and deterministic)
    rows = table.set_index("combination")
    assert rows.loc["RSF", "c_index_test"] == rows.loc["StepCox[forward] + RSF", "c_index_test"]
    best = grid.select_best(table)
    assert rows.loc[best, "c_index_mean"] == fitted["c_index_mean"].max()
    assert grid.select_best(table, "test") in set(fitted.loc[fitted["c_index_test"] == fitted["c_index_test"].max(),
                                                             "combination"])


def test_selector_keeping_fewer_than_two_features_is_skipped_with_reason():
    # one strong feature, three pure-noise ones: LASSO / stepwise keep (at most) one
    X, y = _data(n=150, p=4, seed=1, signal=(2.0,))
    rng = np.random.default_rng(9)
    X[:, 1:] = rng.normal(size=(150, 3))
    pairs = [("StepCox[backward]", "GBM"), ("LASSO", "Ridge"), (None, "Ridge")]
    table = grid.run_grid(X[:120], y[:120], X[120:], y[120:], list("abcd"), pairs=pairs, profile="test",
                          backend="sequential", seed=0, min_selected=4)
    skipped = table[table["status"] == "skipped"]
    assert len(skipped) >= 1
    assert skipped["reason"].str.contains(r"kept \d feature\(s\), fewer than 4").all()
    assert table.set_index("combination").loc["Ridge", "status"] == "fitted"


def test_fit_combination_rebuilds_the_grid_model():
    X, y = _data(n=120, p=4, seed=2)
    train = np.arange(120) < 90
    table = grid.run_grid(X[train], y[train], X[~train], y[~train], list("abcd"),
                          pairs=[("StepCox[backward]", "RSF")], profile="test", backend="sequential", seed=5)
    model = grid.fit_combination("StepCox[backward] + RSF", X[train], y[train], list("abcd"), profile="test", seed=5)
    from nbrisk_core.prognosis.metrics import concordance_index

    c_test = concordance_index(y["event"][~train], y["time"][~train], model.predict(X[~train]))
    assert c_test == pytest.approx(table.loc[0, "c_index_test"], abs=1e-12)
    assert set(grid.used_features(model, "abcd")) <= set("abcd")
    # a combination is a fitted scikit-learn Pipeline(select, model): the predictor sees the kept columns
    from sklearn.pipeline import Pipeline

    assert isinstance(model, Pipeline) and list(model.named_steps) == ["select", "model"]
    assert model[-1].n_features_in_ == len(grid.used_features(model, "abcd")) >= 2
    assert model.score(X[~train], y[~train]) == pytest.approx(c_test, abs=1e-12)


def test_predictor_alone_is_a_passthrough_pipeline_and_a_weak_selector_is_refused():
    X, y = _data(n=100, p=4, seed=3)
    alone = grid.fit_combination("Ridge", X, y, list("abcd"), profile="test", seed=1)
    assert alone.named_steps["select"] == "passthrough" and grid.used_features(alone, "abcd") == list("abcd")
    curves = alone.predict_survival_function(X[:2], return_array=True)  # scikit-survival's Pipeline method
    assert curves.shape[0] == 2 and np.all(np.diff(curves, axis=1) <= 1e-12)
    noise = np.random.default_rng(0).normal(size=(100, 4))
    with pytest.raises(InputError, match="kept . feature.*fewer than 2"):
        grid.fit_combination("LASSO + plsRcox", noise, y, list("abcd"), profile="test", seed=1)


def test_unknown_backend_and_missing_package_are_input_errors():
    X, y = _data(n=60)
    with pytest.raises(InputError, match="backend 'spark' is not known"):
        grid.run_grid(X[:40], y[:40], X[40:], y[40:], list("abcd"), pairs=[(None, "Ridge")], backend="spark")
    try:
        import ray  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="needs the package ray"):
            grid.run_grid(X[:40], y[:40], X[40:], y[40:], list("abcd"), pairs=[(None, "Ridge")], backend="ray")


def test_large_selected_forest_keeps_its_risk_but_not_its_curves(monkeypatch):
    X, y = _data(n=100, p=4, seed=6)
    full = grid.fit_combination("RSF", X, y, list("abcd"), profile="test", seed=1)
    assert grid.has_survival_function(full) and grid.predict_with_band(full, X[:2])[1] is not None
    monkeypatch.setattr(grid, "FOREST_CURVE_BUDGET_BYTES", 0)
    small = grid.fit_combination("RSF", X, y, list("abcd"), profile="test", seed=1)
    assert small[-1].low_memory and not grid.has_survival_function(small)
    np.testing.assert_allclose(small.predict(X), full.predict(X))
    risk, band = grid.predict_with_band(small, X[:2])
    assert band is None and np.allclose(risk, full.predict(X[:2]))
