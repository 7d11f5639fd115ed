"""Portable prognosis bundles: every algorithm of the grid round-trips exactly; tampered, foreign and
incompatible bundles are refused with a clear message.

CT features here are STAND-INS (``stand_in_embeddings``), not the classifier's embeddings.
"""

from __future__ import annotations

import inspect
import json
import pickle

import numpy as np
import pandas as pd
import pytest
from sksurv.util import Surv

from nbrisk_core.bench.prognosis import write_synthetic_cohort
from nbrisk_core.cli import main
from nbrisk_core.errors import InputError
from nbrisk_core.prognosis import bundle as bundle_module
from nbrisk_core.prognosis import estimators as est
from nbrisk_core.prognosis import grid as grid_module
from nbrisk_core.prognosis.bundle import (ARRAYS_FILE, CARD_FILE, STRUCTURE_FILE, load_bundle, load_pipeline,
                                          save_object, save_pipeline, sha256_file)
from nbrisk_core.prognosis.pipeline import fit_cohort_pipeline, read_cohort

TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def design():
    rng = np.random.default_rng(3)
    n, p = 90, 6
    X = rng.normal(size=(n, p))
    linear = X[:, 0] - 0.7 * X[:, 1] + 0.5 * X[:, 2]
    time = rng.exponential(np.exp(-linear)) * 1000 + 1
    event = rng.random(n) < 0.75
    return X, Surv.from_arrays(event, time)


@pytest.mark.parametrize("name", [*grid_module.ALGORITHMS, "StepCox[backward] + RSF", "LASSO + GBM"])
def test_every_algorithm_round_trips_exactly(name, design, tmp_path):
    X, y = design
    names = [f"f{i}" for i in range(X.shape[1])]
    model = grid_module.fit_combination(name, X, y, names, profile="test", seed=5)
    save_object(model, tmp_path / "b")
    loaded = load_bundle(tmp_path / "b").obj
    assert type(loaded.predictor_) is type(model.predictor_)
    assert loaded.used_features_ == model.used_features_
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=0, atol=TOLERANCE)
    assert loaded.has_survival_function == model.has_survival_function
    if model.has_survival_function:
        np.testing.assert_allclose(loaded.predict_survival_function(X, return_array=True),
                                   model.predict_survival_function(X, return_array=True),
                                   rtol=0, atol=TOLERANCE)
    band = model.predict_survival_band(X)
    if band is not None:
        for before, after in zip(band, loaded.predict_survival_band(X)):
            np.testing.assert_allclose(after, before, rtol=0, atol=TOLERANCE)


def test_registry_covers_every_estimator_class():
    covered = bundle_module.registered_classes()
    classes = [obj for _, obj in inspect.getmembers(est, inspect.isclass)
               if obj.__module__ == est.__name__ and hasattr(obj, "fit") and not obj.__name__.startswith("_")]
    assert classes, "no estimator class found"
    for cls in classes:
        assert cls.__name__ in covered, f"{cls.__name__} cannot be saved in a bundle"


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    return write_synthetic_cohort(tmp_path_factory.mktemp("cohort"), n_patients=100, seed=11)


@pytest.fixture(scope="module")
def embeddings(cohort_dir):
    return pd.read_parquet(cohort_dir / "embeddings_standin.parquet")


def _patients_to_predict(cohort_dir, k=6):
    clinical, _, _ = read_cohort(cohort_dir)
    with_missing = clinical[clinical.isna().any(axis=1)].head(k // 2)
    complete = clinical[~clinical.isna().any(axis=1)].head(k - len(with_missing))
    return pd.concat([with_missing, complete])


@pytest.mark.parametrize("selected", ["StepCox[backward] + RSF", "survival-SVM"])
def test_pipeline_bundle_predicts_the_same_mlrs_and_survival(selected, cohort_dir, embeddings, tmp_path):
    pipeline = fit_cohort_pipeline(cohort_dir, embeddings, grid="app", selected=selected,
                                   backend="sequential",
                                   seed=7)
    clinical, _, _ = read_cohort(cohort_dir)
    card = save_pipeline(pipeline, tmp_path / "b", cohort_dir=cohort_dir, clinical=clinical,
                         embeddings={"source": "stand-in", "seed": 2025})
    bundle = load_pipeline(tmp_path / "b")
    loaded = bundle.pipeline
    assert loaded.fit_sha256() == pipeline.fit_sha256() == card["pipeline_fit_sha256"]
    assert loaded.cutoff_ == pipeline.cutoff_ and loaded.selected_ == pipeline.selected_ == selected
    pd.testing.assert_frame_equal(loaded.patients_, pipeline.patients_)
    pd.testing.assert_frame_equal(loaded.screening_, pipeline.screening_)
    for _, row in _patients_to_predict(cohort_dir).iterrows():
        values = row.drop(["patient_id", "os_days", "os_event"]).to_dict()
        vector = embeddings.loc[row["patient_id"]].to_numpy()
        before, after = pipeline.predict_patient(vector, values), loaded.predict_patient(vector, values)
        assert abs(after.mlrs - before.mlrs) <= TOLERANCE
        assert after.group == before.group and after.imputed == before.imputed
        assert after.imputed_values == before.imputed_values
        np.testing.assert_allclose(after.times, before.times, rtol=0, atol=0)
        np.testing.assert_allclose(after.survival, before.survival, rtol=0, atol=TOLERANCE)
        assert (after.low is None) == (before.low is None)
        if before.low is not None:
            np.testing.assert_allclose(after.low, before.low, rtol=0, atol=TOLERANCE)
            np.testing.assert_allclose(after.high, before.high, rtol=0, atol=TOLERANCE)
    # the card: cohort hash, N, events, features, metrics with CIs, versions, SHA-256 of the files
    assert card["n_patients"] == len(pipeline.patients_)
    assert card["events"] == int(pipeline.patients_["event"].sum())
    assert len(card["cohort"]["sha256"]) == 64 and card["features"] == pipeline.features_
    c, low, high = card["metrics"]["test"]["c_index"]
    assert low <= c <= high
    assert card["software"]["scikit-survival"]
    assert card["files"][ARRAYS_FILE] == sha256_file(tmp_path / "b" / ARRAYS_FILE)
    assert set(bundle.km_by_group["group"]) == {"high", "low"}
    assert bundle.development_case_mix["n"] == int((pipeline.patients_["cohort"] == "train").sum())


# --------------------------------------------------------------------------------------------
# refusals
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def small_bundle(cohort_dir, tmp_path):
    pipeline = fit_cohort_pipeline(cohort_dir, None, grid="app", selected="LASSO", features="clinical",
                                   backend="sequential", seed=7)
    save_pipeline(pipeline, tmp_path / "b", cohort_dir=cohort_dir, embeddings={"source": "none"})
    return tmp_path / "b"


def _reseal(bundle_dir, name):
    """Make the card match a changed file, so that only the check under test can refuse it."""
    card = json.loads((bundle_dir / CARD_FILE).read_text())
    card["files"][name] = sha256_file(bundle_dir / name)
    (bundle_dir / CARD_FILE).write_text(json.dumps(card))


@pytest.mark.parametrize("name", [ARRAYS_FILE, STRUCTURE_FILE])
def test_one_flipped_byte_is_refused(small_bundle, name):
    load_bundle(small_bundle)  # intact: loads
    path = small_bundle / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=rf"{name}: SHA-256 .* does not match the card"):
        load_bundle(small_bundle)


def test_another_schema_version_is_refused(small_bundle):
    structure = json.loads((small_bundle / STRUCTURE_FILE).read_text())
    structure["schema_version"] = 2
    (small_bundle / STRUCTURE_FILE).write_text(json.dumps(structure))
    _reseal(small_bundle, STRUCTURE_FILE)
    with pytest.raises(InputError, match="schema_version = 2 is not supported .*reads schema version 1"):
        load_bundle(small_bundle)


def test_other_library_versions_are_refused(small_bundle):
    structure = json.loads((small_bundle / STRUCTURE_FILE).read_text())
    structure["software"]["scikit-learn"] = "0.24.2"
    (small_bundle / STRUCTURE_FILE).write_text(json.dumps(structure))
    _reseal(small_bundle, STRUCTURE_FILE)
    with pytest.raises(InputError, match=r"other library versions \(scikit-learn 0.24.2 \(bundle\)"):
        load_bundle(small_bundle)


class _Sneaky:
    pass


def test_a_pickle_renamed_to_a_bundle_is_refused(small_bundle, tmp_path):
    payload = pickle.dumps({"coef_": np.ones(3)})
    (small_bundle / ARRAYS_FILE).write_bytes(payload)
    _reseal(small_bundle, ARRAYS_FILE)   # even with a matching hash the pickle is never opened
    with pytest.raises(InputError, match=f"{ARRAYS_FILE}: is a Python pickle, not an NBRisk bundle file"):
        load_bundle(small_bundle)
    single = tmp_path / "model_bundle"
    single.write_bytes(pickle.dumps(_Sneaky()))
    with pytest.raises(InputError, match="model_bundle: is a Python pickle"):
        load_bundle(single)


def test_a_class_outside_the_registry_is_refused(small_bundle):
    text = (small_bundle / STRUCTURE_FILE).read_text()
    assert '"$object":"CoxnetCV"' in text
    (small_bundle / STRUCTURE_FILE).write_text(text.replace('"$object":"CoxnetCV"', '"$object":"Popen"', 1))
    _reseal(small_bundle, STRUCTURE_FILE)
    with pytest.raises(InputError, match="class 'Popen' is not an allowed bundle class"):
        load_bundle(small_bundle)


def test_an_unregistered_object_cannot_be_saved(tmp_path):
    with pytest.raises(InputError, match="root.x: a .*_Sneaky cannot be saved"):
        save_object({"x": _Sneaky()}, tmp_path / "b")


def test_cli_fit_show_and_refusal(cohort_dir, tmp_path, capsys):
    out = tmp_path / "cli_bundle"
    assert main(["prognosis", "fit", "--cohort", str(cohort_dir), "--features", "clinical", "--grid", "app",
                 "--selected", "LASSO", "--n-jobs", "1", "--out", str(out)]) == 0
    assert "selected LASSO" in capsys.readouterr().out
    assert main(["prognosis", "show", str(out)]) == 0
    assert "verified: SHA-256" in capsys.readouterr().out
    data = bytearray((out / ARRAYS_FILE).read_bytes())
    data[-1] ^= 0xFF
    (out / ARRAYS_FILE).write_bytes(bytes(data))
    assert main(["prognosis", "show", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not match the card" in err
