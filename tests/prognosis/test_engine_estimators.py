"""Survival estimators: one contract test over every algorithm of the grid, and Cox agreement."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.util import Surv

from nbrisk_core.prognosis import estimators as est
from nbrisk_core.prognosis.grid import ALGORITHMS, make_estimator


def _cohort(n=120, p=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    hazard = np.exp(1.0 * X[:, 0] - 0.8 * X[:, 1] + 0.4 * X[:, 2])
    time = np.round(rng.exponential(1 / hazard) * 700) + 1
    censor = rng.uniform(100, 2500, n)
    event = time <= censor
    return X, Surv.from_arrays(event, np.minimum(time, censor))


@pytest.fixture(scope="module")
def cohort():
    return _cohort()


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_estimator_contract(name, cohort):
    """fit returns self, fitted attrs end in _, predict = risk (higher worse), score = C-index."""
    from sklearn.base import clone

    from nbrisk_core.prognosis.metrics import concordance_index

    X, y = cohort
    estimator = make_estimator(name, profile="test", seed=1)
    assert clone(estimator).get_params() == estimator.get_params()
    fitted_before = {k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")}
    assert estimator.fit(X, y) is estimator
    fitted = {k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")} - fitted_before
    assert fitted, f"{name} has no fitted attributes ending in _"
    assert getattr(estimator, "n_features_in_", None) == X.shape[1], f"{name} does not record n_features_in_"
    risk = estimator.predict(X)
    assert risk.shape == (len(X),) and np.all(np.isfinite(risk))
    c = estimator.score(X, y)
    assert c == pytest.approx(concordance_index(y["event"], y["time"], risk))
    assert c > 0.65, f"{name}: training C-index {c:.3f} on a strong signal"
    if ALGORITHMS[name].selector:
        selected = np.asarray(estimator.selected_features_)
        assert selected.ndim == 1 and set(selected.tolist()) <= set(range(X.shape[1]))
    if hasattr(estimator, "predict_survival_function") and name != "survival-SVM":
        curves = estimator.predict_survival_function(X[:3], return_array=True)
        assert curves.shape[0] == 3
        assert np.all(np.diff(curves, axis=1) <= 1e-12) and np.all((curves >= 0) & (curves <= 1))
        # higher risk -> lower survival at the median time
        order = np.argsort(risk[:3])
        assert curves[order[-1], curves.shape[1] // 2] <= curves[order[0], curves.shape[1] // 2] + 1e-9


def test_cox_newton_matches_scikit_survival_breslow(cohort):
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    X, y = cohort
    beta, loglik = est.cox_newton(X, y["time"], y["event"])
    reference = CoxPHSurvivalAnalysis(ties="breslow").fit(X, y).coef_
    np.testing.assert_allclose(beta, reference, atol=1e-6)
    assert loglik == pytest.approx(est.cox_partial_loglik(X @ reference, y["time"], y["event"]), abs=1e-8)


def test_stepwise_directions():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 6))
    hazard = np.exp(1.2 * X[:, 0] - 1.0 * X[:, 1])
    time = rng.exponential(1 / hazard) * 300 + 1
    y = Surv.from_arrays(np.ones(200, bool), time)
    backward = est.StepwiseCox(direction="backward").fit(X, y)
    assert {0, 1} <= set(backward.selected_features_.tolist())
    assert len(backward.selected_features_) < 6
    # Mime1's "forward" starts from the full model, so it keeps every feature
    assert est.StepwiseCox(direction="forward").fit(X, y).selected_features_.tolist() == list(range(6))
    textbook = est.StepwiseCox(direction="forward", start="empty").fit(X, y)
    assert {0, 1} <= set(textbook.selected_features_.tolist())
    both = est.StepwiseCox(direction="both").fit(X, y)
    assert both.aic_ <= est.StepwiseCox(direction="forward").fit(X, y).aic_


def test_lasso_drops_noise_and_rsf_minimal_depth_selects_signal():
    X, y = _cohort(n=200, p=8, seed=2)
    lasso = est.CoxnetCV(l1_ratio=1.0, cv=5, seed=0).fit(X, y)
    assert {0, 1} <= set(lasso.selected_features_.tolist())
    rsf = est.MinimalDepthRSF(n_estimators=100, min_samples_leaf=5, random_state=0).fit(X, y)
    assert 0 in rsf.selected_features_ and rsf.minimal_depth_[0] < rsf.minimal_depth_[5:].min()
    times, mean, low, high = rsf.predict_survival_band(X[:2])
    assert low.shape == (2, len(times)) and np.all(low <= mean + 1e-12) and np.all(mean <= high + 1e-12)
    np.testing.assert_allclose(mean, rsf.predict_survival_function(X[:2], return_array=True), atol=1e-12)
    risk = rsf.predict_band_and_risk(X[:5])[-1]
    np.testing.assert_allclose(risk, rsf.predict(X[:5]), rtol=1e-10)


def test_plsrcox_and_superpc_recover_the_signal_direction():
    X, y = _cohort(n=200, p=8, seed=3)
    for model in (est.PLSCox(max_components=3, cv=5), est.SuperPC(n_thresholds=8, cv=5)):
        model.fit(X, y)
        assert model.coef_[0] > 0 > model.coef_[1], type(model).__name__
        assert model.score(X, y) > 0.7


def test_survival_svm_accepts_zero_times():
    X, y = _cohort(n=80, p=4, seed=5)
    time = y["time"].copy()
    time[:3] = 0
    y0 = Surv.from_arrays(y["event"], time)
    model = est.RankingSurvivalSVM(random_state=0).fit(X, y0)
    assert model.score(X, y0) > 0.6


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_estimator_refuses_use_before_fit_and_positional_parameters(name, cohort):
    """sklearn's check_is_fitted guards predict; parameters are keyword-only (sklearn's convention)."""
    import inspect

    from sklearn.exceptions import NotFittedError

    X, _ = cohort
    estimator = make_estimator(name, profile="test", seed=1)
    with pytest.raises(NotFittedError):
        estimator.predict(X)
    own = type(estimator).__init__
    if own is not object.__init__ and "nbrisk_core" in own.__module__:
        kinds = {p.kind for n, p in inspect.signature(own).parameters.items() if n != "self"}
        assert kinds <= {inspect.Parameter.KEYWORD_ONLY}, f"{name}: {kinds}"


def test_fit_checks_y_with_scikit_survival(cohort):
    X, y = cohort
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        est.StepwiseCox().fit(X[:-1], y)
    with pytest.raises(ValueError, match="no events in y"):
        est.RidgeCoxCV(cv=2).fit(X, Surv.from_arrays(np.zeros(len(X), bool), y["time"]))


def test_risk_set_sums_equal_brute_force_sums(cohort):
    """The one place that sums over risk sets: s0, s1, s2 at each distinct time, by brute force."""
    X, y = cohort
    X = X[:30, :3]
    time = y["time"][:30]
    weights = np.exp(X @ np.array([0.3, -0.2, 0.1]))
    unique, inverse = est.risk_set_index(time)
    s0, s1, s2 = est.risk_set_sums(X, weights, inverse, len(unique))
    for k, t in enumerate(unique):
        at_risk = time >= t
        assert s0[k] == pytest.approx(weights[at_risk].sum(), rel=1e-12)
        np.testing.assert_allclose(s1[k], (weights[at_risk, None] * X[at_risk]).sum(axis=0), rtol=1e-12)
        np.testing.assert_allclose(s2[k], np.einsum("i,ij,ik->jk", weights[at_risk], X[at_risk], X[at_risk]),
                                   rtol=1e-10, atol=1e-12)
    _, _, diagonal = est.risk_set_sums(X, weights, inverse, len(unique), order="diagonal")
    np.testing.assert_allclose(diagonal, np.diagonal(s2, axis1=1, axis2=2), rtol=1e-12)


def test_information_is_minus_the_numerical_hessian(cohort):
    X, y = cohort
    X = X[:, :3]
    beta = np.array([0.4, -0.3, 0.2])
    step = 1e-4
    hessian = np.empty((3, 3))
    for j in range(3):
        e = np.zeros(3)
        e[j] = step

        def grad(b):
            return np.array([(est.cox_partial_loglik(X @ (b + d), y["time"], y["event"])
                              - est.cox_partial_loglik(X @ (b - d), y["time"], y["event"])) / (2 * step)
                             for d in np.eye(3) * step])

        hessian[:, j] = (grad(beta + e) - grad(beta - e)) / (2 * step)
    np.testing.assert_allclose(est.cox_information(X, y["time"], y["event"], beta), -hessian, rtol=1e-4)
