"""Portable prognosis bundles: every algorithm of the grid round-trips exactly; tampered, foreign and
incompatible bundles are refused with a clear message.

CT features here are STAND-INS (``stand_in_embeddings``), not the classifier's embeddings.
"""

from __future__ import annotations

import hashlib
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
    """A fitted combination is a scikit-learn ``Pipeline(select, model)``: it comes back as one, with
    its steps (a list of (name, estimator) tuples), its selected columns and the same predictions."""
    from sklearn.pipeline import Pipeline

    X, y = design
    names = [f"f{i}" for i in range(X.shape[1])]
    model = grid_module.fit_combination(name, X, y, names, profile="test", seed=5)
    save_object(model, tmp_path / "b")
    loaded = load_bundle(tmp_path / "b").obj
    assert type(loaded) is Pipeline and type(loaded.steps) is list
    assert [type(step) for step in loaded.steps] == [tuple, tuple]
    assert [n for n, _ in loaded.steps] == [n for n, _ in model.steps] == ["select", "model"]
    assert type(loaded[-1]) is type(model[-1])
    assert type(loaded.named_steps["select"]) is type(model.named_steps["select"])
    select = model.named_steps["select"]
    if select != "passthrough":   # the selector's kept columns (grid.used_features names them)
        assert loaded.named_steps["select"].get_support().tolist() == select.get_support().tolist()
        assert grid_module.used_features(loaded, names) == grid_module.used_features(model, names)
    else:
        assert loaded.named_steps["select"] == "passthrough"
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=0, atol=TOLERANCE)
    assert grid_module.has_survival_function(loaded) == grid_module.has_survival_function(model)
    if grid_module.has_survival_function(model):
        np.testing.assert_allclose(loaded.predict_survival_function(X, return_array=True),
                                   model.predict_survival_function(X, return_array=True),
                                   rtol=0, atol=TOLERANCE)
    risk, band = grid_module.predict_with_band(model, X)
    loaded_risk, loaded_band = grid_module.predict_with_band(loaded, X)
    np.testing.assert_allclose(loaded_risk, risk, rtol=0, atol=TOLERANCE)
    assert (loaded_band is None) == (band is None)
    if band is not None:
        for before, after in zip(band, loaded_band):
            np.testing.assert_allclose(after, before, rtol=0, atol=TOLERANCE)


def test_lists_tuples_and_shared_objects_round_trip_faithfully(tmp_path):
    """Lists stay lists and tuples tuples (a Pipeline's steps), a list subclass is refused rather than
    flattened, and an object held twice comes back as one object."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(np.arange(6.0).reshape(3, 2))
    root = {"steps": [("a", scaler), ("b", "passthrough")], "nested": ([1, (2, 3)], ()), "again": scaler}
    save_object(root, tmp_path / "b")
    loaded = load_bundle(tmp_path / "b").obj
    assert loaded["nested"] == ([1, (2, 3)], ()) and type(loaded["nested"][0]) is list
    assert [type(s) for s in loaded["steps"]] == [tuple, tuple] and loaded["steps"][1] == ("b", "passthrough")
    assert loaded["again"] is loaded["steps"][0][1]
    np.testing.assert_array_equal(loaded["again"].mean_, scaler.mean_)

    class Steps(list):
        pass

    with pytest.raises(InputError, match=r"root\.x: a .*Steps cannot be saved"):
        save_object({"x": Steps([1])}, tmp_path / "c")


def test_registry_covers_every_estimator_class():
    covered = bundle_module.registered_classes()
    classes = [getattr(est, name) for name in est.__all__
               if inspect.isclass(getattr(est, name)) and hasattr(getattr(est, name), "fit")]
    assert len(classes) >= 10, "no estimator class found"
    for cls in classes:
        if cls is est.LinearCoxModel:   # the base class of the linear models, never fitted itself
            continue
        assert cls.__name__ in covered, f"{cls.__name__} cannot be saved in a bundle"
    assert "Pipeline" in covered and "CohortPreprocessor" in covered and "CombinationModel" not in covered


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
    # the nomogram travels inside bundle.json (covered by its SHA-256); nomogram.json beside it is a copy
    from nbrisk_core.prognosis.nomogram import nomogram_for_pipeline, read_nomogram

    assert bundle.nomogram is not None and card["nomogram"]["in_bundle"]
    assert card["nomogram"]["predictors"] == ["mlrs", "mycn_amplified", "risk_group"]
    copy = tmp_path / "b" / "nomogram.json"
    assert card["nomogram"]["sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest()
    assert read_nomogram(copy).to_dict() == bundle.nomogram.to_dict()
    refit = nomogram_for_pipeline(pipeline, clinical, cohort_dir=cohort_dir)
    train = pipeline.patients_.merge(clinical[["patient_id", "mycn_amplified", "risk_group"]], on="patient_id")
    np.testing.assert_allclose(bundle.nomogram.survival(train), refit.survival(train), rtol=0, atol=0)


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
    assert load_pipeline(small_bundle).nomogram is None   # written without the clinical table: no nomogram
    path = small_bundle / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=rf"{name}: SHA-256 .* does not match the card"):
        load_bundle(small_bundle)


def test_another_schema_version_is_refused(small_bundle):
    structure = json.loads((small_bundle / STRUCTURE_FILE).read_text())
    other = bundle_module.SCHEMA_VERSION + 1
    structure["schema_version"] = other
    (small_bundle / STRUCTURE_FILE).write_text(json.dumps(structure))
    _reseal(small_bundle, STRUCTURE_FILE)
    with pytest.raises(InputError, match=f"schema_version = {other} is not supported .*reads schema "
                                         f"version {bundle_module.SCHEMA_VERSION}"):
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
