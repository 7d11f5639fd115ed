"""Survival metrics: agreement between lifelines and scikit-survival, published values on
scikit-survival's bundled datasets, and small examples computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.errors import InputError
from nbrisk_core.prognosis import metrics


@pytest.fixture(scope="module")
def veterans():
    """Veterans' Administration lung cancer trial (Kalbfleisch & Prentice), 137 patients."""
    from sksurv.datasets import load_veterans_lung_cancer

    x, y = load_veterans_lung_cancer()
    return x, y["Status"].astype(int), y["Survival_in_days"].astype(float)


# ------------------------------------------------------------------ Kaplan-Meier
def test_kaplan_meier_freireich_6mp_by_hand():
    # Freireich et al. (1963) 6-MP arm, weeks; "+" = censored:
    # 6 6 6 6+ 7 9+ 10 10+ 11+ 13 16 17+ 19+ 20+ 22 23 25+ 32+ 32+ 34+ 35+  (21 patients)
    # KM by hand: t=6: 18/21 = .857; t=7: x16/17 = .807; t=10: x14/15 = .753; t=13: x11/12 = .690;
    # t=16: x10/11 = .627; t=22: x6/7 = .538; t=23: x5/6 = .448 (textbook values, e.g. Kleinbaum & Klein)
    time = [6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35]
    event = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
    km = metrics.kaplan_meier(event, time, times=[6, 7, 10, 13, 16, 22, 23, 35])
    expected = [18 / 21]
    for at_risk in (17, 15, 12, 11, 7, 6):
        expected.append(expected[-1] * (at_risk - 1) / at_risk)
    expected.append(expected[-1])
    np.testing.assert_allclose(km["survival"], expected, atol=1e-12)
    np.testing.assert_allclose(km["survival"].round(3), [.857, .807, .753, .690, .627, .538, .448, .448])
    assert (km["low"] <= km["survival"]).all() and (km["survival"] <= km["high"]).all()


def test_kaplan_meier_agrees_with_scikit_survival(veterans):
    from sksurv.nonparametric import kaplan_meier_estimator

    _, event, time = veterans
    km = metrics.kaplan_meier(event, time)
    t, s, ci = kaplan_meier_estimator(event.astype(bool), time, conf_type="log-log")
    # the row t = 0, S = 1 first (as R's survfit and lifelines)
    assert km["time"].iloc[0] == 0 and km["survival"].iloc[0] == 1
    np.testing.assert_allclose(km["time"].to_numpy()[1:], t, atol=1e-6)
    np.testing.assert_allclose(km["survival"].to_numpy()[1:], s, atol=1e-6)
    np.testing.assert_allclose(km["low"].to_numpy()[1:], ci[0], atol=1e-6)
    np.testing.assert_allclose(km["high"].to_numpy()[1:], ci[1], atol=1e-6)
    assert int(km["events"].sum()) == 128


# ------------------------------------------------------------------ log-rank
def test_logrank_veterans_treatment_matches_r_survdiff(veterans):
    # R: survdiff(Surv(time, status) ~ trt, data = survival::veteran) prints
    #   trt=1 N=69 O=64 E=64.5 ; trt=2 N=68 O=64 E=63.5 ; Chisq = 0.00823 on 1 df, p = 0.928
    x, event, time = veterans
    result = metrics.logrank_test(event, time, x["Treatment"].astype(str))
    assert result.degrees_of_freedom == 1
    assert result.statistic == pytest.approx(0.00823, abs=5e-6)
    assert result.p_value == pytest.approx(0.928, abs=5e-4)
    assert "chi2=0.008227" in repr(result)


def test_logrank_veterans_celltype_matches_r_and_sksurv(veterans):
    from sksurv.compare import compare_survival
    from sksurv.util import Surv

    # R: survdiff(Surv(time, status) ~ celltype, data = veteran): Chisq = 25.4 on 3 df, p = 1.27e-05
    x, event, time = veterans
    groups = x["Celltype"].astype(str).to_numpy()
    result = metrics.logrank_test(event, time, groups)
    chi2, p = compare_survival(Surv.from_arrays(event.astype(bool), time), groups)
    assert result.degrees_of_freedom == 3
    assert result.statistic == pytest.approx(chi2, abs=1e-6)
    assert result.p_value == pytest.approx(p, abs=1e-6)
    assert round(result.statistic, 1) == 25.4
    assert result.p_value == pytest.approx(1.27e-5, rel=0.01)


def test_logrank_separated_groups_is_significant_and_identical_groups_are_not():
    time = np.r_[np.arange(1, 21), np.arange(1, 21) * 10.0]
    event = np.ones(40, dtype=int)
    groups = ["short"] * 20 + ["long"] * 20
    assert metrics.logrank_test(event, time, groups).p_value < 1e-4
    same = metrics.logrank_test(event, np.r_[time[:20], time[:20]], groups)
    assert same.statistic == pytest.approx(0, abs=1e-12)


def test_logrank_rejects_a_single_group():
    with pytest.raises(InputError, match="at least two groups"):
        metrics.logrank_test([1, 0, 1], [1, 2, 3], ["a", "a", "a"])


# ------------------------------------------------------------------ C-index
def test_c_index_by_hand():
    # times 1 2 3+ 4 ; risk 4 2 3 1. Comparable pairs (shorter time is a death):
    # (1,2) (1,3) (1,4) (2,3) (2,4); (3,4) is not (3 censored first).
    # Concordant (shorter time has higher risk): (1,2) 4>2, (1,3) 4>3, (1,4) 4>1, (2,4) 2>1; (2,3) 2<3 no.
    assert metrics.concordance_index([1, 1, 0, 1], [1, 2, 3, 4], [4, 2, 3, 1]) == pytest.approx(4 / 5)
    # a tie in risk counts 1/2: risk of patient 3 set to 2 -> (2,3) tied -> 4.5 / 5
    assert metrics.concordance_index([1, 1, 0, 1], [1, 2, 3, 4], [4, 2, 2, 1]) == pytest.approx(4.5 / 5)


def test_c_index_agrees_with_lifelines(veterans):
    from lifelines.utils import concordance_index as lifelines_c

    x, event, time = veterans
    for column in ("Karnofsky_score", "Age_in_years", "Months_from_Diagnosis"):
        risk = -x[column].to_numpy(dtype=float)  # lifelines wants "higher = longer survival"
        ours = metrics.concordance_index(event, time, risk)
        assert ours == pytest.approx(lifelines_c(time, -risk, event), abs=1e-6)
    # Karnofsky performance score is a strong prognostic factor in this trial
    assert metrics.concordance_index(event, time, -x["Karnofsky_score"].to_numpy(float)) > 0.65


def test_c_index_input_errors():
    with pytest.raises(InputError, match="event must be 0"):
        metrics.concordance_index([1, 2, 0], [1, 2, 3], [1, 2, 3])
    with pytest.raises(InputError, match="risk has 2 values but there are 3"):
        metrics.concordance_index([1, 1, 0], [1, 2, 3], [1, 2])
    with pytest.raises(InputError, match="time = -1 is negative"):
        metrics.concordance_index([1, 1, 0], [1, -1, 3], [1, 2, 3])
    with pytest.raises(InputError, match="no deaths"):
        metrics.concordance_index([0, 0, 0], [1, 2, 3], [1, 2, 3])


# ------------------------------------------------------------------ time-dependent AUC
def test_td_auc_by_hand_without_censoring_before_t():
    # t = 350 d. Cases (death <= 350): risk .9 .4 .7 ; controls (time > 350): .5 .2 .3.
    # The only censoring (500 d) is after every case, so all IPC weights are 1.
    # Pairs won by the case: .9 -> 3, .4 -> 2 (loses to .5), .7 -> 3  => AUC = 8/9.
    # Clopper-Pearson for 8 of 9: [Beta(.025; 8, 2), Beta(.975; 9, 1)] = [0.5175, 0.9972].
    (res,) = metrics.time_dependent_auc([1, 1, 1, 1, 0, 1], [100, 200, 300, 400, 500, 600],
                                        [0.9, 0.4, 0.7, 0.5, 0.2, 0.3], [350])
    assert res.auc == pytest.approx(8 / 9)
    assert (res.n_cases, res.n_controls) == (3, 3)
    assert res.low == pytest.approx(0.5175, abs=1e-4)
    assert res.high == pytest.approx(0.9972, abs=1e-4)
    assert res.reason == ""


def test_td_auc_by_hand_with_ipc_weights():
    # times 100 150+ 200 300 400 500, risk .8 .1 .3 .6 .5 .2, t = 350.
    # Censoring KM: G = 1 before 150, 4/5 from 150 (one of 5 at risk censored).
    # Cases and weights 1/G: 100 (.8, w=1), 200 (.3, w=1.25), 300 (.6, w=1.25); controls .5, .2.
    # Weighted wins: 1*2 + 1.25*1 + 1.25*2 = 5.75 of (1 + 1.25 + 1.25) * 2 = 7  => AUC = 0.821429
    # (unweighted it would be 5/6 = 0.8333).
    (res,) = metrics.time_dependent_auc([1, 0, 1, 1, 1, 1], [100, 150, 200, 300, 400, 500],
                                        [0.8, 0.1, 0.3, 0.6, 0.5, 0.2], [350])
    assert res.auc == pytest.approx(5.75 / 7)
    assert (res.n_cases, res.n_controls) == (3, 2)


def test_td_auc_ties_count_half():
    # as the first example but the control .5 becomes .4, tied with the case .4, which now
    # wins 2 pairs and ties 1: (3 + 2.5 + 3) / 9 = 8.5 / 9
    (res,) = metrics.time_dependent_auc([1, 1, 1, 1, 0, 1], [100, 200, 300, 400, 500, 600],
                                        [0.9, 0.4, 0.7, 0.4, 0.2, 0.3], [350])
    assert res.auc == pytest.approx(8.5 / 9)


def test_td_auc_not_estimable_times_have_nan_and_reason():
    res = metrics.time_dependent_auc([1, 1, 1, 1, 0, 1], [100, 200, 300, 400, 500, 600],
                                     [0.9, 0.4, 0.7, 0.5, 0.2, 0.3], [50, 350, 700])
    assert math.isnan(res[0].auc) and "no cases" in res[0].reason
    assert not math.isnan(res[1].auc)
    assert math.isnan(res[2].auc) and "no controls" in res[2].reason
    assert "not estimable" in repr(res[0])


def test_td_auc_bootstrap_ci_brackets_estimate_and_is_wider_than_pairs_ci():
    rng = np.random.default_rng(0)
    n = 80
    risk = rng.normal(size=n)
    time = rng.exponential(1000 * np.exp(-risk))
    event = (rng.uniform(size=n) < 0.8).astype(int)
    (cp,) = metrics.time_dependent_auc(event, time, risk, [365])
    (boot,) = metrics.time_dependent_auc(event, time, risk, [365], ci="bootstrap", n_bootstrap=200, seed=1)
    assert cp.auc == pytest.approx(boot.auc)
    assert boot.low < boot.auc < boot.high
    assert cp.low < cp.auc < cp.high
    # pairs are not independent, so the pair-count interval is the narrower one
    assert (boot.high - boot.low) > (cp.high - cp.low)


def test_td_auc_agrees_with_sksurv_directly(veterans):
    from sksurv.metrics import cumulative_dynamic_auc
    from sksurv.util import Surv

    x, event, time = veterans
    risk = -x["Karnofsky_score"].to_numpy(float) + 0.01 * x["Age_in_years"].to_numpy(float)
    times = [30, 90, 180]
    y = Surv.from_arrays(event.astype(bool), time)
    expected, _ = cumulative_dynamic_auc(y, y, risk, times)
    got = [r.auc for r in metrics.time_dependent_auc(event, time, risk, times)]
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_clopper_pearson_edges():
    assert metrics.clopper_pearson_interval(0, 10)[0] == 0.0
    assert metrics.clopper_pearson_interval(10, 10)[1] == 1.0
    # 0 of 10: upper limit 1 - 0.025**(1/10) = 0.3085
    assert metrics.clopper_pearson_interval(0, 10)[1] == pytest.approx(1 - 0.025 ** 0.1)


# ------------------------------------------------------------------ decision curve
def test_decision_curve_by_hand_without_censoring():
    # 8 patients, horizon 365 d; deaths before the horizon: the patients at 100, 200, 300 d.
    # prob .9 .6 .3 .5 .2 .1 .4 .05 ; treat-all risk = 3/8.
    # pt = .25: treated (> .25) = .9 .6 .3 .5 .4 -> 5 patients, 3 die -> TP 3, FP 2:
    #   NB = 3/8 - 2/8 * (.25/.75) = 0.291667 ; treat all = 3/8 - 5/8 * 1/3 = 0.166667
    # pt = .55: treated .9 .6, both die: NB = 2/8 = 0.25 ; treat all = 3/8 - 5/8 * .55/.45 = -0.388889
    # pt = .95: nobody treated: NB = 0
    dca = metrics.decision_curve([1] * 8, [100, 200, 300, 400, 500, 600, 700, 800],
                                 [0.9, 0.6, 0.3, 0.5, 0.2, 0.1, 0.4, 0.05], 365, [0.25, 0.55, 0.95])
    assert list(dca.columns[:4]) == ["threshold", "net_benefit", "treat_all", "treat_none"]
    np.testing.assert_allclose(dca["net_benefit"], [0.291667, 0.25, 0.0], atol=1e-6)
    np.testing.assert_allclose(dca["treat_all"], [0.166667, -0.388889, 3 / 8 - 5 / 8 * 19], atol=1e-6)
    assert (dca["treat_none"] == 0).all()
    assert dca["n_treated"].tolist() == [5, 2, 0]


def test_decision_curve_by_hand_with_censoring():
    # times 100 200+ 300 400+ 500 600+, prob .8 .7 .6 .5 .2 .1, horizon 365, pt = .4.
    # Treated: first four (px = 4/6). Their KM: 100: 3/4; 200 censored; 300: x 1/2 -> S = 3/8.
    #   NB = 4/6 * 5/8 - 4/6 * 3/8 * (.4/.6) = 0.416667 - 0.166667 = 0.25
    # All: KM 100: 5/6; 300: x 3/4 -> S = 0.625: treat all = .375 - .625 * 2/3 = -0.041667
    dca = metrics.decision_curve([1, 0, 1, 0, 1, 0], [100, 200, 300, 400, 500, 600],
                                 [0.8, 0.7, 0.6, 0.5, 0.2, 0.1], 365, [0.4])
    assert dca["net_benefit"].iloc[0] == pytest.approx(0.25)
    assert dca["treat_all"].iloc[0] == pytest.approx(-0.041667, abs=1e-6)


def test_decision_curve_rejects_raw_scores():
    with pytest.raises(InputError, match="outside 0-1"):
        metrics.decision_curve([1, 0], [10, 20], [2.5, -1.0], 365)


# ------------------------------------------------------------------ calibration and Brier
def _exponential_cohort(n, seed=0):
    rng = np.random.default_rng(seed)
    linear = rng.normal(size=n)
    hazard = np.exp(linear) / 1000.0  # per day
    death = rng.exponential(1 / hazard)
    censor = rng.uniform(0, 3000, size=n)
    time = np.minimum(death, censor)
    event = (death <= censor).astype(int)
    return event, time, hazard


def test_calibration_perfectly_calibrated_model():
    event, time, hazard = _exponential_cohort(3000)
    horizon = 365.0
    predicted = 1 - np.exp(-hazard * horizon)  # the true risk of death by the horizon
    cal = metrics.calibration_at(event, time, predicted, horizon, bins=5)
    assert list(cal["n"]) == [600] * 5
    assert (cal["predicted"].diff().dropna() > 0).all()
    np.testing.assert_allclose(cal["observed"], cal["predicted"], atol=0.04)
    inside = (cal["observed_low"] <= cal["predicted"]) & (cal["predicted"] <= cal["observed_high"])
    assert inside.sum() >= 4
    # a model that halves the risk is visibly off in the highest bin
    off = metrics.calibration_at(event, time, predicted / 2, horizon, bins=5)
    assert off["observed"].iloc[-1] - off["predicted"].iloc[-1] > 0.1


def test_integrated_brier_score_true_model_beats_uninformative():
    event, time, hazard = _exponential_cohort(400, seed=1)
    train, test = slice(0, 200), slice(200, 400)
    times = np.linspace(60, 900, 15)
    truth = np.exp(-np.outer(hazard[test], times))
    flat = np.exp(-np.outer(np.full(200, hazard.mean()), times))
    good = metrics.integrated_brier_score(event[train], time[train], event[test], time[test], truth, times)
    poor = metrics.integrated_brier_score(event[train], time[train], event[test], time[test], flat, times)
    assert 0 < good < poor < 0.25
    with pytest.raises(InputError, match="shape"):
        metrics.integrated_brier_score(event[train], time[train], event[test], time[test], truth[:, :3],
                                       times)


# ------------------------------------------------------------------ associations
def test_mlrs_associations():
    rng = np.random.default_rng(3)
    n = 60
    risk_group = np.where(np.arange(n) < 30, "HR", "NHR")
    mycn = (np.arange(n) % 3 == 0).astype(int)
    mlrs = np.where(risk_group == "HR", 1.0, 0.0) + rng.normal(0, 0.3, n)
    ferritin = 200 + 100 * mlrs + rng.normal(0, 10, n)
    nse = rng.normal(50, 5, n)  # unrelated
    ferritin[:5] = np.nan  # blank labs are left out, not imputed
    table = pd.DataFrame({"patient_id": [f"P{i:04d}" for i in range(n)], "risk_group": risk_group,
                          "mycn_amplified": mycn, "ferritin": ferritin, "nse": nse})
    out = metrics.mlrs_associations(pd.Series(mlrs[::-1], index=table["patient_id"][::-1]), table)
    assert out["risk_group"].p_value < 1e-6
    assert out["risk_group"].medians[0] > out["risk_group"].medians[1]
    assert out["risk_group"].groups == ("HR", "NHR")
    assert out["mycn_amplified"].n == (20, 40)
    assert out["ferritin"].r > 0.9 and out["ferritin"].n == 55 and "5 patient" in out["ferritin"].note
    assert out["ferritin"].low < out["ferritin"].r < out["ferritin"].high
    assert abs(out["nse"].r) < 0.4
    # agrees with scipy's rank-sum on the same split
    from scipy.stats import mannwhitneyu

    ref = mannwhitneyu(mlrs[risk_group == "HR"], mlrs[risk_group == "NHR"])
    assert out["risk_group"].p_value == pytest.approx(ref.pvalue)
    with pytest.raises(InputError, match="lacks column"):
        metrics.mlrs_associations(mlrs, table.drop(columns="nse"))


def test_risk_probability_from_score_is_monotone_and_close_to_truth():
    event, time, hazard = _exponential_cohort(1500, seed=4)
    score = np.log(hazard)  # the true linear predictor
    prob = metrics.risk_probability_from_score(event[:1000], time[:1000], score[:1000], score[1000:], 365.0)
    truth = 1 - np.exp(-hazard[1000:] * 365.0)
    assert np.all(np.diff(prob[np.argsort(score[1000:])]) >= 0)
    np.testing.assert_allclose(prob, truth, atol=0.05)


def test_km_survival_at_horizon_agrees_with_lifelines(veterans):
    from lifelines import KaplanMeierFitter

    _, event, time = veterans
    km = KaplanMeierFitter().fit(time, event)
    for horizon in (0.5, 30, 100, 365, 587.5):
        ours = metrics._km_survival_at(time, event, horizon)
        assert ours == pytest.approx(float(km.survival_function_at_times(horizon).iloc[0]), abs=1e-9)
    # beyond the last follow-up with survivors left: undefined, not carried forward
    assert math.isnan(metrics._km_survival_at(np.array([10.0, 20.0]), np.array([1, 0]), 30.0))
    assert metrics._km_survival_at(np.array([10.0, 20.0]), np.array([1, 1]), 30.0) == 0.0
