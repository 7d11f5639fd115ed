"""The feature sets of the prognosis pipeline (`--features clinical|ct|both`) on one small cohort, with one
fast combination (the app grid with Ridge)."""

from __future__ import annotations

import pandas as pd
import pytest

from nbrisk_core.errors import InputError
from nbrisk_core.prognosis.pipeline import CT_COLUMNS, fit_cohort_pipeline


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from nbrisk_core.bench.prognosis import write_synthetic_cohort

    path = write_synthetic_cohort(tmp_path_factory.mktemp("features"), n_patients=100, seed=21)
    clinical = pd.read_csv(path / "clinical.csv", dtype={"patient_id": str})
    clinical.loc[::9, "histology"] = None   # a real cohort's gaps in the baseline categoricals
    clinical.loc[::11, "risk_group"] = None
    clinical.to_csv(path / "clinical.csv", index=False)
    return path, pd.read_parquet(path / "embeddings_standin.parquet")


def test_clinical_ct_and_both(cohort):
    path, embeddings = cohort
    clinical = fit_cohort_pipeline(path, None, grid="app", selected="Ridge", seed=3, features="clinical")
    assert clinical.ct_columns_ == [] and not set(clinical.candidate_columns_) & set(CT_COLUMNS)
    assert clinical.summary_["feature_set"] == "clinical" and clinical.ct_signal_note() is None
    assert "histology_unfavourable" in clinical.imputer_.imputed_variables_
    # a new patient without CT features and without histology: imputed, one category
    result = clinical.predict_patient(None, {"age_months": 30, "sex": "F", "inrg_stage": "M",
                                             "mycn_amplified": 1, "risk_group": "HR"})
    assert result.imputed_values["histology"] in ("favourable", "unfavourable")
    ct = fit_cohort_pipeline(path, embeddings, grid="app", selected="Ridge", seed=3, features="ct")
    assert set(ct.screening_["feature"]) == set(CT_COLUMNS) and set(ct.features_) <= set(CT_COLUMNS)
    both = fit_cohort_pipeline(path, embeddings, grid="app", selected="Ridge", seed=3)
    assert both.summary_["feature_set"] == "both" and set(CT_COLUMNS) < set(both.screening_["feature"])
    # the clinical-only baseline is the same whatever the feature set
    assert ct.baseline_.c_index_test_ == both.baseline_.c_index_test_ == clinical.baseline_.c_index_test_
    with pytest.raises(InputError, match="features 'images' is not known"):
        fit_cohort_pipeline(path, embeddings, grid="app", features="images")
