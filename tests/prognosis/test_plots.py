"""Plot functions: each returns a plotly Figure with the expected traces on tiny data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from nbrisk_core.prognosis import plots


@pytest.fixture(scope="module")
def tiny():
    """40 synthetic patients: exponential survival driven by a stand-in risk score."""
    rng = np.random.default_rng(7)
    n = 40
    risk = rng.normal(size=n)
    death = rng.exponential(900 * np.exp(-risk))
    censor = rng.uniform(200, 3000, n)
    time = np.minimum(death, censor).round() + 1
    event = (death <= censor).astype(int)
    clinical = pd.DataFrame({
        "patient_id": [f"P{i:04d}" for i in range(n)],
        "risk_group": np.where(risk + rng.normal(0, 0.5, n) > 0, "HR", "NHR"),
        "mycn_amplified": (risk > 0.8).astype(int),
        "ferritin": np.where(np.arange(n) % 7 == 0, np.nan, 150 + 60 * risk + rng.normal(0, 20, n)),
        "nse": 40 + 10 * risk + rng.normal(0, 5, n),
    })
    return risk, time, event, clinical


def _names(fig):
    return [t.name for t in fig.data if t.name]


def test_kaplan_meier_figure_has_one_curve_per_group(tiny):
    risk, time, event, _ = tiny
    fig = plots.kaplan_meier_figure(time, event, np.where(risk > 0, "high", "low"))
    names = _names(fig)
    assert any(n.startswith("high (n=") for n in names) and any(n.startswith("low (n=") for n in names)


def test_c_index_heatmap_sorts_by_mean_and_leaves_out_skipped():
    combos = pd.DataFrame({
        "combination": ["RSF", "StepCox[backward] + RSF", "LASSO + GBM", "CoxBoost + Ridge"],
        "status": ["fitted", "fitted", "fitted", "skipped"],
        "c_index_train": [0.80, 0.87, 0.70, np.nan],
        "c_index_test": [0.78, 0.81, 0.72, np.nan],
    })
    fig = plots.c_index_heatmap(combos)
    (heat,) = fig.data
    assert isinstance(heat, go.Heatmap)
    # best on top = last row drawn
    assert list(heat.y) == ["LASSO + GBM", "RSF", "StepCox[backward] + RSF"]
    assert list(heat.x) == ["Training", "Testing", "Mean"]
    assert heat.z[-1][2] == pytest.approx(0.84)
    assert "1 skipped" in fig.layout.title.text


def test_forest_plot_has_points_and_error_bars():
    table = pd.DataFrame({"feature": ["ct03", "nse", "mycn_amplified"], "hr": [1.8, 1.2, 2.5],
                          "low": [1.2, 0.9, 1.4], "high": [2.7, 1.6, 4.4], "p": [0.004, 0.2, 0.001],
                          "kept": [True, False, True]})
    fig = plots.forest_plot(table)
    assert _names(fig) == ["kept", "not kept"]
    kept = fig.data[0]
    assert list(kept.y) == ["ct03", "mycn_amplified"]
    np.testing.assert_allclose(kept.error_x.array, [0.9, 1.9])
    assert fig.layout.xaxis.type == "log"
    assert len(fig.layout.annotations) == 3


def test_td_roc_figure_curves_and_legend(tiny):
    risk, time, event, _ = tiny
    fig = plots.td_roc_figure(event, time, risk, [365.25, 3 * 365.25, 50 * 365.25])
    curves = [t for t in fig.data if t.name and "AUC" in t.name]
    assert len(curves) == 2
    assert curves[0].name.startswith("1 y: AUC ")
    assert curves[0].x[0] == 0 and curves[0].x[-1] == 1 and curves[0].y[-1] == 1
    assert "not estimable: 50 y" in fig.layout.title.text


def test_decision_curve_figure(tiny):
    from nbrisk_core.prognosis.metrics import decision_curve

    risk, time, event, _ = tiny
    prob = 1 / (1 + np.exp(-risk))
    dca = decision_curve(event, time, prob, 365.25)
    fig = plots.decision_curve_figure(dca, 365.25)
    assert _names(fig) == ["Model (MLRS)", "Treat all", "Treat none"]
    assert len(fig.data[0].x) == 99
    assert "1 years" in fig.layout.title.text


def test_risk_factor_figure(tiny):
    risk, time, event, _ = tiny
    cutoff = float(np.median(risk))
    fig = plots.risk_factor_figure(risk, time, event, cutoff)
    names = _names(fig)
    assert names == ["Low MLRS", "High MLRS", "Alive / censored", "Dead"]
    assert len(fig.data[0].x) + len(fig.data[1].x) == len(risk)
    assert len(fig.data[1].x) == int((risk > cutoff).sum())
    assert len(fig.data[3].x) == int(event.sum())
    # ranked: the MLRS values drawn rise with rank
    ys = np.r_[fig.data[0].y, fig.data[1].y]
    assert (np.diff(ys) >= 0).all()


def test_association_figures(tiny):
    risk, _, _, clinical = tiny
    figs = plots.association_figures(pd.Series(risk, index=clinical["patient_id"]), clinical)
    assert set(figs) == {"risk_group", "mycn_amplified", "ferritin", "nse"}
    assert all(isinstance(t, go.Box) for t in figs["risk_group"].data)
    assert len(figs["mycn_amplified"].data) == 2
    assert "Wilcoxon p = " in figs["risk_group"].layout.title.text
    scatter = figs["ferritin"].data[0]
    assert len(scatter.x) == int(clinical["ferritin"].notna().sum())
    assert "Pearson r = " in figs["ferritin"].layout.title.text


@dataclass(frozen=True)
class _Prognosis:  # duck-typed stand-in for the engine's IndividualPrognosis
    times: np.ndarray
    survival: np.ndarray
    low: np.ndarray | None
    high: np.ndarray | None
    mlrs: float
    percentile: float
    group: str


def test_individual_survival_figure_and_png(tiny):
    risk, time, event, _ = tiny
    t = np.linspace(0, 2000, 30)
    s = np.exp(-t / 1500)
    prognosis = _Prognosis(t, s, s * 0.9, np.minimum(s * 1.1, 1), 0.42, 63.0, "high")
    groups = np.where(risk > np.median(risk), "high", "low")
    fig = plots.individual_survival_figure(prognosis, time, event, groups)
    names = _names(fig)
    assert names[-1].startswith("This patient (MLRS 0.42, high)")
    assert any(n.startswith("high (n=") for n in names)
    assert any(n == "patient band" for n in names)
    png = plots.individual_survival_png(prognosis, time, event, groups)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    # no band when the engine gives none
    bare = plots.individual_survival_figure(_Prognosis(t, s, None, None, 0.1, 10.0, "low"), time, event,
                                            groups)
    assert "patient band" not in _names(bare)


def test_imputation_density_figure():
    rng = np.random.default_rng(0)
    observed = np.r_[rng.lognormal(3, 0.5, 80), np.nan]
    imputed = rng.choice(observed[:-1], 12)
    fig = plots.imputation_density_figure(observed, imputed, "nse")
    assert _names(fig) == ["observed (n=80)", "imputed (n=12)"]
    density = fig.data[0]
    area = np.trapezoid(density.y, density.x)
    assert 0.9 < area <= 1.0001
    # a single imputed value: rug only, no density
    assert _names(plots.imputation_density_figure(observed, [20.0], "nse")) == ["observed (n=80)"]


def test_mlrs_distribution_and_calibration_figures(tiny):
    risk, time, event, _ = tiny
    from nbrisk_core.prognosis.metrics import calibration_at

    fig = plots.mlrs_distribution_figure(risk, np.where(np.arange(40) < 32, "train", "test"), 0.0,
                                         patient_mlrs=1.2)
    assert sorted(_names(fig)) == ["test (n=8)", "train (n=32)"]
    assert any(s.x0 == 1.2 for s in fig.layout.shapes)
    cal = calibration_at(event, time, 1 / (1 + np.exp(-risk)), 365.25, bins=4)
    cfig = plots.calibration_figure(cal, 365.25)
    assert len(cfig.data[1].x) == 4


def test_high_risk_group_is_drawn_red(tiny):
    risk, time, event, _ = tiny
    groups = np.where(risk > 0, "high MLRS", "low MLRS")
    colours = plots.risk_group_colours(groups)
    assert colours == {"high MLRS": plots.GROUP_COLOURS[1], "low MLRS": plots.GROUP_COLOURS[0]}
    fig = plots.kaplan_meier_figure(time, event, groups, colours=colours)
    curve = next(t for t in fig.data if t.name and t.name.startswith("high MLRS"))
    assert curve.line.color == plots.GROUP_COLOURS[1]
    assert plots.risk_group_colours(["a", "b", "c"]) is None
