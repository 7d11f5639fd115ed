"""Reference checks of the survival libraries NBRisk builds on (no NBRisk code is called here).

scikit-survival's Cox model against lifelines (same method, Efron ties) and against R's published
``coxph`` output: if an upgrade of either library changed these numbers, the engine's results built on
them would move too. Moved out of ``tests/prognosis`` because they test the libraries, not NBRisk.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def _dataset(name):
    from sksurv import datasets
    from sksurv.column import encode_categorical

    X, y = {"gbsg2": datasets.load_gbsg2, "veterans": datasets.load_veterans_lung_cancer,
            "whas500": datasets.load_whas500}[name]()
    X = encode_categorical(X).astype(float)
    return X, y


@pytest.mark.parametrize("name", ["gbsg2", "veterans", "whas500"])
def test_cox_coefficients_agree_between_lifelines_and_scikit_survival(name):
    """Same method (Efron ties, no penalty): the coefficients agree to 1e-6."""
    from lifelines import CoxPHFitter
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    X, y = _dataset(name)
    event_name, time_name = y.dtype.names
    sk = CoxPHSurvivalAnalysis(ties="efron", tol=1e-12, n_iter=200).fit(X, y)
    frame = X.assign(_time=y[time_name], _event=y[event_name].astype(int))
    ll = CoxPHFitter().fit(frame, "_time", "_event", fit_options={"precision": 1e-12, "max_steps": 200})
    np.testing.assert_allclose(ll.params_[X.columns].to_numpy(), sk.coef_, atol=1e-6, rtol=0)


def test_veterans_cox_matches_published_r_coxph():
    """R survival's coxph(Surv(time, status) ~ trt + celltype + karno + diagtime + age + prior, veteran),
    Efron ties: coefficients as printed by R (4 significant digits). R codes prior as 0/10, so the
    yes-vs-no coefficient is 10x R's per-unit one."""
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    X, y = _dataset("veterans")
    coef = pd.Series(CoxPHSurvivalAnalysis(ties="efron").fit(X, y).coef_, index=X.columns)
    published = {"Treatment=test": 2.946e-01, "Celltype=smallcell": 8.616e-01, "Celltype=large": 4.013e-01,
                 "Karnofsky_score": -3.282e-02, "Months_from_Diagnosis": 8.132e-05, "Age_in_years": -8.706e-03,
                 "Prior_therapy=yes": 10 * 7.159e-03}
    # celltype reference in R is squamous; here it is adeno (first level): re-express against squamous
    squamous = coef["Celltype=squamous"]
    ours = {"Treatment=test": coef["Treatment=test"], "Celltype=smallcell": coef["Celltype=smallcell"] - squamous,
            "Celltype=large": coef["Celltype=large"] - squamous, "Karnofsky_score": coef["Karnofsky_score"],
            "Months_from_Diagnosis": coef["Months_from_Diagnosis"], "Age_in_years": coef["Age_in_years"],
            "Prior_therapy=yes": coef["Prior_therapy=yes"]}
    assert -squamous == pytest.approx(1.196, abs=6e-4)  # R: celltypeadeno 1.196
    for key, value in published.items():
        assert ours[key] == pytest.approx(value, rel=6e-4, abs=1e-7), key
