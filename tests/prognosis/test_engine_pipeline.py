"""The fitted prognosis pipeline, individual prediction and `nbrisk benchmark` on a small cohort.

CT features here are STAND-INS (a noisy copy of the generator's latent score,
``stand_in_embeddings``), not the classifier's embeddings.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.bench.prognosis import write_synthetic_cohort
from nbrisk_core.errors import InputError
from nbrisk_core.prognosis.pipeline import (
    CT_COLUMNS,
    PrognosisPipeline,
    cohort_design,
    fit_cohort_pipeline,
    read_cohort,
)


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    return write_synthetic_cohort(tmp_path_factory.mktemp("cohort"), n_patients=120, seed=11)


@pytest.fixture(scope="module")
def embeddings(cohort_dir):
    return pd.read_parquet(cohort_dir / "embeddings_standin.parquet")


@pytest.fixture(scope="module")
def pipeline(cohort_dir, embeddings):
    return fit_cohort_pipeline(cohort_dir, embeddings, grid="test", backend="sequential", seed=7)


def test_fitted_attributes(pipeline):
    p = pipeline
    assert list(p.split_.columns) == ["patient_id", "cohort"] and (p.split_["cohort"] == "test").sum() == 24
    assert list(p.patients_.columns) == ["patient_id", "cohort", "time", "event", "mlrs", "mlrs_group"]
    assert set(p.patients_["mlrs_group"]) == {"high", "low"}
    assert list(p.combinations_.columns[:5]) == ["combination", "selector", "predictor", "status", "reason"]
    assert len(p.combinations_) == 117
    assert p.selected_ in set(p.combinations_.loc[p.combinations_["status"] == "fitted", "combination"])
    assert set(p.features_) == set(p.screening_.loc[p.screening_["kept"], "feature"])
    assert set(p.imputer_.ks_.columns) == {"variable", "d_statistic", "p_value", "n_imputed", "d_critical_05"}
    json.dumps(p.config_)  # JSON-able
    assert p.config_["seed"] == 7 and p.config_["software"]["scikit-survival"]
    for key in ("selected", "c_index_train", "c_index_test", "cutoff", "logrank_p", "td_auc", "baseline_lasso_cox",
                "seconds", "oracle_c_index_test"):
        assert key in p.summary_
    assert set(p.summary_["td_auc"]["train"]) == {"1", "3", "5", "7"}
    assert p.baseline_.c_index_test_ == p.summary_["baseline_lasso_cox"]["c_index_test"]
    assert set(p.baseline_.patients_["cohort"]) == {"train", "test"}
    # stand-in CT features carry signal: the engine should beat chance clearly on the training cohort
    assert p.summary_["c_index_train"] > 0.7


def test_cutoff_is_the_frozen_training_median(pipeline, cohort_dir, embeddings):
    p = pipeline
    train = p.patients_[p.patients_["cohort"] == "train"]
    assert p.cutoff_ == pytest.approx(np.median(train["mlrs"]))
    assert (p.patients_["mlrs_group"] == np.where(p.patients_["mlrs"] > p.cutoff_, "high", "low")).all()
    # a new patient does not move the cut-off
    clinical, _, _ = read_cohort(cohort_dir)
    row = clinical.iloc[0]
    values = row.drop(["patient_id", "os_days", "os_event"]).to_dict()
    before = p.cutoff_
    for _ in range(3):
        p.predict_patient(embeddings.loc[row["patient_id"]].to_numpy(), values)
    assert p.cutoff_ == before


def test_individual_prediction_matches_the_cohort_mlrs(pipeline, cohort_dir, embeddings):
    clinical, _, _ = read_cohort(cohort_dir)
    p = pipeline
    test_ids = p.split_.loc[p.split_["cohort"] == "test", "patient_id"].tolist()
    pid = next(i for i in test_ids if clinical.set_index("patient_id").loc[i, ["nse", "ferritin"]].notna().all())
    values = clinical.set_index("patient_id").loc[pid].drop(["os_days", "os_event"]).to_dict()
    result = p.predict_patient(embeddings.loc[pid].to_numpy(), values)
    expected = p.patients_.set_index("patient_id").loc[pid]
    if not any(pd.isna(v) for v in values.values()):
        assert result.mlrs == pytest.approx(expected["mlrs"])
    assert result.group == ("high" if result.mlrs > p.cutoff_ else "low")
    assert 0 <= result.percentile <= 100
    assert result.times.shape == result.survival.shape and len(result.times) > 5
    assert np.all(np.diff(result.survival) <= 0) and result.survival.max() <= 1 and result.survival.min() >= 0
    if result.low is not None:
        assert np.all(result.low <= result.survival + 1e-12) and np.all(result.survival <= result.high + 1e-12)
    json.dumps(result.to_dict())


def test_missing_labs_are_imputed_and_noted(pipeline, embeddings):
    values = {"age_months": 30, "sex": "F", "inrg_stage": "L2", "histology": "favourable", "mycn_amplified": 0,
              "risk_group": "NHR", "nse": {"value": 25, "unit": "ug/L"}}
    result = pipeline.predict_patient(embeddings.iloc[0].to_dict(), values)
    assert "ferritin" in result.imputed and "nse" not in result.imputed
    assert any("imputed" in note and "ferritin" in note for note in result.notes)


def test_bad_inputs_raise_input_errors(pipeline, cohort_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("NBRISK_MODELS_DIR", str(tmp_path))  # no shipped classifier here
    with pytest.raises(InputError, match="16"):
        pipeline.predict_patient(np.zeros(15), {})
    with pytest.raises(InputError, match="nse = -1"):
        pipeline.predict_patient(np.zeros(16), {"nse": -1})
    with pytest.raises(InputError, match="CT embeddings of cohort .* are missing: make them with 'nbrisk embed"):
        fit_cohort_pipeline(cohort_dir, None, grid="test")
    with pytest.raises(InputError, match="no CT features for 1 of 120"):
        emb = pd.read_parquet(cohort_dir / "embeddings_standin.parquet").iloc[1:]
        cohort_design(read_cohort(cohort_dir)[0], emb)


def test_app_grid_fits_one_combination_and_predict_from_labs(cohort_dir, embeddings, tmp_path, monkeypatch):
    from nbrisk_core.prognosis import grid
    from nbrisk_core.prognosis.pipeline import _cached_pipeline, predict_from_labs

    # the app fits its combination with the full profile; small trees and folds keep the test fast
    monkeypatch.setitem(grid.PROFILES, "full", grid.PROFILES["test"])
    _cached_pipeline.cache_clear()

    labs = tmp_path / "labs.json"
    labs.write_text(json.dumps({"nse": {"value": 80, "unit": "ug/L"}, "ferritin": 150}))
    result = predict_from_labs(embeddings.iloc[3].to_numpy(), labs, cohort_dir,
                               embeddings_file=cohort_dir / "embeddings_standin.parquet")
    json.dumps(result)
    assert result["group"] in ("high", "low") and len(result["survival"]) == len(result["times_days"])
    assert "age_months" in result["imputed"] and "nse" not in result["imputed"]
    app = _cached_pipeline(str(cohort_dir.resolve()), str((cohort_dir / "embeddings_standin.parquet").resolve()))
    assert len(app.combinations_) in (1, 2)  # grid="app": the one combination (+ the fallback if needed)
    assert app.selected_ in ("StepCox[backward] + RSF", "RSF") and result["model"] == app.selected_


def test_nbrisk_benchmark_writes_the_tables(cohort_dir, tmp_path):
    from nbrisk_core.cli import main

    out = tmp_path / "out"
    code = main(["benchmark", "--data", str(cohort_dir), "--out", str(out), "--stand-in-embeddings",
                 "--grid", "test", "--n-jobs", "1", "--quiet"])
    assert code == 0
    patients = pd.read_csv(out / "patients.csv")
    assert list(patients.columns) == ["patient_id", "cohort", "time", "event", "mlrs", "mlrs_group"]
    assert set(patients["cohort"]) == {"train", "test"} and set(patients["event"]) <= {0, 1}
    combos = pd.read_csv(out / "combinations.csv")
    for column in ["combination", "selector", "predictor", "status", "reason", "c_index_train", "c_index_test",
                   "c_index_mean", "seconds"]:
        assert column in combos.columns
    assert len(combos) == 117 and set(combos["status"]) <= {"fitted", "skipped"}
    summary = json.loads((out / "summary.json").read_text())
    for key in ("selected", "c_index_train", "c_index_test", "oracle_c_index_test", "cutoff", "logrank_p",
                "td_auc", "baseline_lasso_cox", "seconds"):
        assert key in summary
    assert summary["embeddings"].startswith("stand-in")
    assert set(summary["td_auc"]["test"]) == {"1", "3", "5", "7"}
    assert len(summary["td_auc"]["train"]["1"]) == 3
    for name in ("c_index_heatmap.html", "km_train.html", "td_roc_test.html", "decision_curve.html",
                 "forest_plot.html", "baseline_comparison.html", "c_index_heatmap.png", "km.png", "plotly.min.js"):
        assert (out / name).stat().st_size > 0, name
    assert "cdn.plot.ly" not in (out / "km_test.html").read_text()
    # the nomogram of the MLRS + the default clinical variables, fitted on the training patients
    nomogram = json.loads((out / "nomogram.json").read_text())
    assert [p["name"] for p in nomogram["predictors"]] == ["mlrs", "mycn_amplified", "risk_group"]
    assert nomogram["n"] == int((patients["cohort"] == "train").sum())
    assert nomogram["cohort"]["sha256"] and set(nomogram["survival"]["baseline_survival"]) == {"1", "3", "5"}
    assert (out / "nomogram.png").read_bytes()[:4] == b"\x89PNG" and (out / "nomogram.pdf").stat().st_size > 0


def test_nbrisk_benchmark_bad_input_exits_2(tmp_path, capsys):
    from nbrisk_core.cli import main

    assert main(["benchmark", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--grid", "test"]) == 2
    assert "clinical.csv: not found" in capsys.readouterr().err


def test_ct_signal_note_only_when_no_ct_feature_is_used(pipeline):
    import copy

    # the stand-ins carry the latent score, so screening keeps at least one of them
    assert any(c in CT_COLUMNS for c in pipeline.features_)
    assert pipeline.ct_signal_note() is None
    clinical_only = copy.copy(pipeline)
    clinical_only.features_ = [c for c in pipeline.features_ if c not in CT_COLUMNS]
    note = clinical_only.ct_signal_note()
    assert note is not None and "None of the 16 CT features" in note and "clinical variables alone" in note


def test_prognosis_pipeline_fit_only_fits_and_matches_the_cohort_fit(pipeline, cohort_dir, embeddings):
    """The caller splits; PrognosisPipeline.fit(X, y) on the training rows gives the cohort fit's MLRS."""
    from nbrisk_core.prognosis.pipeline import split_cohort

    clinical, _, _ = read_cohort(cohort_dir)
    ids, X, y = cohort_design(clinical, embeddings)
    train = split_cohort(clinical)["cohort"].to_numpy() == "train"
    alone = PrognosisPipeline(combination=pipeline.selected_, profile="test", seed=7).fit(X[train], y[train])
    assert not hasattr(alone, "combinations_") and not hasattr(alone, "patients_")  # no grid, no evaluation
    expected = pipeline.patients_.set_index("patient_id").loc[ids[~train], "mlrs"].to_numpy()
    np.testing.assert_allclose(alone.predict(X[~train]), expected, rtol=0, atol=1e-9)
    assert alone.cutoff_ == pytest.approx(pipeline.cutoff_, abs=1e-9)
    assert alone.features_ == pipeline.features_
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        PrognosisPipeline().predict(X)


def test_evaluate_gives_the_summary_numbers_with_a_c_index_interval(pipeline):
    from nbrisk_core.prognosis import metrics
    from nbrisk_core.prognosis.evaluation import CohortEvaluation, evaluate

    patients = pipeline.patients_
    test = patients[patients["cohort"] == "test"]
    result = evaluate(pipeline, test)
    assert isinstance(result, CohortEvaluation) and result.n == len(test)
    assert result.c_index.value == pipeline.summary_["c_index_test"]
    assert result.c_index.low <= result.c_index.value <= result.c_index.high < 1.0 + 1e-12
    assert result.logrank.p_value == pipeline.summary_["logrank_p"]["test"]
    assert result.td_auc_by_year() == pipeline.summary_["td_auc"]["test"]
    train = patients[patients["cohort"] == "train"]
    probability = metrics.risk_probability_from_score(train["event"], train["time"], train["mlrs"],
                                                      test["mlrs"], result.horizon_days)
    pd.testing.assert_frame_equal(result.decision_curve,
                                  metrics.decision_curve(test["event"], test["time"], probability,
                                                         result.horizon_days))
    assert list(result.calibration.columns)[:3] == ["bin", "n", "n_events"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.n = 0
    with pytest.raises(InputError, match="lacks column.*mlrs"):
        evaluate(pipeline, test.drop(columns="mlrs"))
