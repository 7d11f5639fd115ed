"""The radiomics model frozen as a linear rad-score (JSON), and the cohort paths that use it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.errors import InputError
from nbrisk_core.radiomics import model as rmodel
from nbrisk_core.radiomics import score as rscore
from nbrisk_core.radiomics.cohort import SLICE_SETTINGS
from tests.classifier.conftest import make_cohort


def _fitted(seed=0, n=120, p=12):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"art_f{j}" for j in range(p)])
    y = (X["art_f0"] - 0.7 * X["art_f3"] + rng.normal(scale=0.8, size=n) > 0).astype(int).to_numpy()
    X["art_f5"] = X["art_f0"] * 2 + 0.01 * rng.normal(size=n)  # redundant with f0
    icc = pd.Series(1.0, index=X.columns)
    icc["art_f7"] = 0.2  # not robust
    return X, y, rmodel.fit(X, y, icc, seed=0, head="logistic")


def test_frozen_rad_score_equals_the_fitted_pipeline():
    X, _, fitted = _fitted()
    frozen = rscore.freeze(fitted, "art", SLICE_SETTINGS)
    lp = frozen.linear_predictor(X)
    np.testing.assert_allclose(lp, fitted.search.decision_function(X[fitted.robust_features].to_numpy()),
                               atol=1e-9)
    np.testing.assert_allclose(frozen.probability(X), fitted.predict_score(X), atol=1e-9)
    assert set(frozen.features) == set(fitted.selected_features)
    assert "art_f7" not in frozen.features  # ICC < 0.75 never reaches the rad-score
    assert not {"art_f0", "art_f5"} <= set(frozen.features)  # redundancy removal kept one of the pair


def test_save_and_load_round_trip_and_refuse_an_altered_file(tmp_path):
    X, _, fitted = _fitted()
    frozen = rscore.freeze(fitted, "art", SLICE_SETTINGS, fitted_on={"n_train": 120})
    path = tmp_path / "m.json"
    rscore.save(frozen, path, evaluation={"test_auc": {"value": 0.8}})
    loaded, evaluation = rscore.load(path)
    assert loaded == frozen and evaluation == {"test_auc": {"value": 0.8}}
    np.testing.assert_allclose(loaded.linear_predictor(X), frozen.linear_predictor(X))
    document = json.loads(path.read_text())
    document["coef"][0] += 1.0
    path.write_text(json.dumps(document))
    with pytest.raises(InputError, match="SHA-256"):
        rscore.load(path)
    with pytest.raises(InputError, match="nbrisk radiomics"):
        rscore.load(tmp_path / "absent.json")
    with pytest.raises(InputError, match="missing"):
        frozen.linear_predictor(X.drop(columns=frozen.features[0]))


@pytest.fixture
def cohort(tmp_path, monkeypatch):
    monkeypatch.setenv("NBRISK_HOME", str(tmp_path / "home"))
    path = make_cohort(tmp_path / "c", n=40)
    meta = json.loads((path / "cohort.json").read_text())
    (path / "cohort.json").write_text(json.dumps({**meta, "pixel_spacing_mm": [0.8, 0.8]}))
    return path


def test_missing_cache_names_the_command_then_scores_cohort_and_patient_alike(cohort):
    ids = pd.read_csv(cohort / "clinical.csv", dtype={"patient_id": str})["patient_id"].tolist()
    with pytest.raises(InputError, match=f"nbrisk radiomics --cohort {cohort}"):
        rmodel.fit_rad_score(cohort, ids[:32])
    from nbrisk_core.radiomics.cohort import cohort_radiomics

    cohort_radiomics(cohort, ("art",))  # what `nbrisk radiomics` caches
    frozen = rmodel.fit_rad_score(cohort, ids[:32])
    assert frozen.fitted_on["n_train"] == 32 and frozen.features
    table = rscore.cohort_rad_scores(cohort, frozen)
    assert list(table.columns) == [rscore.RAD_SCORE_COLUMN] and len(table) == 40
    # the slice path (Risk page) gives the probability of the cached table's row
    p = rscore.patient_probability(frozen, cohort, ids[35])
    assert p == pytest.approx(1 / (1 + np.exp(-table.loc[ids[35], "rad_score"])), abs=1e-9)
    # the tiny cohort's HR tumours are larger and brighter: the held-out patients are ranked well
    groups = pd.read_csv(cohort / "clinical.csv").set_index("patient_id")["risk_group"]
    held = ids[32:]
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(groups[held] == "HR", table.loc[held, "rad_score"]) > 0.8
