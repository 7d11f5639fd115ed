"""One patient's prognosis keeps the values MICE-PMM filled in, in schema units, and the fit that made it.

A small stand-in cohort (80 patients, CT features = noisy latent score) and the app's one-combination
grid keep the fit to a few seconds.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.bench.prognosis import write_synthetic_cohort
from nbrisk_core.clinical.schema import CLINICAL_VARIABLES, variable
from nbrisk_core.prognosis.individual import IndividualPrognosis, describe_imputed
from nbrisk_core.prognosis.pipeline import fit_cohort_pipeline, read_cohort
from nbrisk_core.prognosis.validation import decode_clinical, encode_clinical, validate_clinical


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    return write_synthetic_cohort(tmp_path_factory.mktemp("cohort"), n_patients=80, seed=11)


@pytest.fixture(scope="module")
def embeddings(cohort_dir):
    return pd.read_parquet(cohort_dir / "embeddings_standin.parquet")


@pytest.fixture(scope="module")
def pipeline(cohort_dir, embeddings):
    return fit_cohort_pipeline(cohort_dir, embeddings, grid="app", backend="sequential", n_jobs=1, seed=7)


def test_decode_is_the_inverse_of_encode_in_canonical_units():
    entered = {"age_months": 30, "sex": "M", "inrg_stage": "MS", "histology": "unfavourable", "mycn_amplified": 1,
               "nse": {"value": 25, "unit": "ug/L"}, "ldh": {"value": 2.5, "unit": "ukat/L"},
               "hemoglobin": {"value": 11.2, "unit": "g/dL"}, "risk_group": "HR"}
    row = encode_clinical(validate_clinical(entered, require=False)).iloc[0]
    decoded = decode_clinical(row)
    assert decoded == {"age_months": 30.0, "sex": "M", "inrg_stage": "MS", "histology": "unfavourable",
                       "mycn_amplified": 1, "nse": 25.0, "ldh": 150.0, "hemoglobin": 112.0, "risk_group": "HR"}
    # the reference category is the one whose indicators are all 0
    assert decode_clinical(encode_clinical(validate_clinical({"inrg_stage": "L1"}, require=False)).iloc[0],
                           ["inrg_stage"]) == {"inrg_stage": "L1"}


def test_imputed_values_are_observed_training_values_in_schema_units(pipeline, cohort_dir, embeddings):
    clinical, _, _ = read_cohort(cohort_dir)
    entered = {"age_months": 30, "sex": "F", "inrg_stage": "L2", "histology": "favourable", "mycn_amplified": 0,
               "risk_group": "NHR", "nse": {"value": 25, "unit": "ug/L"}}
    result = pipeline.predict_patient(embeddings.iloc[0].to_dict(), entered)
    assert set(result.imputed_values) == set(result.imputed) and "nse" not in result.imputed_values
    assert {"ferritin", "ldh", "hemoglobin"} <= set(result.imputed_values)
    for name, value in result.imputed_values.items():
        observed = clinical[name].dropna().to_numpy(dtype=float)
        # PMM takes a donor's observed value: the filled-in number is one a training patient had
        assert isinstance(value, float) and np.isclose(observed, value, rtol=1e-9).any(), (name, value)
        spec = variable(name)
        assert spec.low <= value <= spec.high
    note = next(n for n in result.notes if n.startswith("imputed"))
    assert describe_imputed("ldh", result.imputed_values["ldh"]) in note and "U/L" in note
    as_json = json.loads(json.dumps(result.to_dict()))
    assert as_json["imputed_values"] == result.imputed_values
    assert dataclasses.asdict(result)["imputed_values"] == result.imputed_values  # what the Prognosis page keeps


def test_missing_categories_and_binaries_come_back_as_schema_values(pipeline, embeddings):
    result = pipeline.predict_patient(embeddings.iloc[1].to_dict(), {"nse": 40.0})
    filled = result.imputed_values
    kinds = {v.name: v for v in CLINICAL_VARIABLES}
    assert set(filled) == {v.name for v in CLINICAL_VARIABLES} - {"nse"}
    for name, value in filled.items():
        spec = kinds[name]
        if spec.kind == "categorical":
            assert value in spec.categories
        elif spec.kind == "binary":
            assert value in (0, 1) and isinstance(value, int)


def test_pipeline_sha256_identifies_the_fit(pipeline, embeddings):
    first = pipeline.predict_patient(embeddings.iloc[0].to_dict(), {"nse": 40.0})
    second = pipeline.predict_patient(embeddings.iloc[2].to_dict(), {"nse": 10.0})
    assert first.pipeline_sha256 == second.pipeline_sha256 == pipeline.fit_sha256()
    assert len(first.pipeline_sha256) == 64
    refit = copy.copy(pipeline)
    refit.patients_ = pipeline.patients_.assign(mlrs=pipeline.patients_["mlrs"] + 1e-9)
    assert refit.fit_sha256() != pipeline.fit_sha256()


def test_a_prognosis_saved_before_the_new_fields_still_decodes():
    from nbrisk_core.store import codec

    old = IndividualPrognosis(times=np.array([0.0, 100.0]), survival=np.array([1.0, 0.9]), low=None, high=None,
                              mlrs=0.5, percentile=50.0, group="low", cutoff=0.6, model="RSF", imputed=["ldh"])
    encoder = codec.Encoder()
    encoded = encoder.encode(old)
    for name in ("imputed_values", "pipeline_sha256"):
        del encoded["fields"][name]
    back = codec.decode(encoded, encoder.arrays)
    assert isinstance(back, IndividualPrognosis)
    assert back.imputed == ["ldh"] and back.imputed_values == {} and back.pipeline_sha256 is None
