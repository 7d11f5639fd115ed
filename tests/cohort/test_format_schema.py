"""Cohort format v1 (one loader for the demo and imported cohorts) and the schema for real cohorts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.cohort import FORMAT_VERSION, SLICES_COLUMNS, load_cohort
from nbrisk_core.errors import InputError
from nbrisk_core.prognosis.impute import MICEPMMImputer
from nbrisk_core.prognosis.validation import categorical_groups, encode_clinical, validate_clinical


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from nbrisk_core.demo import build_cohort

    out = tmp_path_factory.mktemp("demo") / "c"
    build_cohort(out, n_patients=3, seed=5, n_studies=0)
    return out


def test_the_demo_is_a_v1_cohort_with_known_truth(demo):
    cohort = load_cohort(demo)
    assert cohort.meta["format_version"] == FORMAT_VERSION and cohort.synthetic and cohort.has_truth
    assert cohort.meta["phase_counts"] == {"nc": 3, "art": 3, "pv": 3} and cohort.meta["created"] is None
    assert len(cohort.require_truth("oracle")) == 3
    slices = cohort.slices
    assert list(slices.columns) == list(SLICES_COLUMNS) and len(slices) == 9
    assert set(slices["chosen_by"]) == {"auto"}
    art = slices[(slices["patient_id"] == "P0002") & (slices["phase"] == "art")].iloc[0]
    assert art["slice_index"] == cohort.truth.set_index("patient_id").loc["P0002", "max_area_slice_art"]
    assert cohort.slice_hu("P0002", "art").ndim == 2


def test_loader_rules(demo, tmp_path):
    import shutil

    legacy = tmp_path / "legacy"
    shutil.copytree(demo, legacy)
    meta = json.loads((legacy / "cohort.json").read_text())
    del meta["format_version"]   # a demo cohort built before v1 still loads
    (legacy / "cohort.json").write_text(json.dumps(meta))
    (legacy / "slices.csv").unlink()
    assert load_cohort(legacy).slices.empty
    meta["format_version"] = 2
    (legacy / "cohort.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="format_version = 2 is not supported"):
        load_cohort(legacy)
    meta.update(format_version=1, synthetic=False)   # truth.csv only in synthetic cohorts
    (legacy / "cohort.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="truth.csv is for synthetic cohorts only"):
        load_cohort(legacy)
    with pytest.raises(InputError, match="not a cohort directory"):
        load_cohort(tmp_path)


def test_schema_accepts_young_adults_and_inss_but_stays_strict():
    table = pd.DataFrame({"patient_id": ["a", "b"], "age_months": [30 * 12, 5], "sex": ["F", None],
                          "inrg_stage": [None, "M"], "inss_stage": ["2A", "4S"],
                          "histology": [None, "favourable"],
                          "mycn_amplified": [None, 1], "risk_group": [None, "HR"]})
    out = validate_clinical(table, cohort=True)
    assert out["inss_stage"].tolist() == ["2A", "4S"] and out["age_months"].tolist() == [360.0, 5.0]
    with pytest.raises(InputError, match="sex is missing but required"):
        validate_clinical(table)   # the form and the demo still need the baseline variables
    bad = table.assign(inss_stage=["2a", "4S"], age_months=[361, 5])
    with pytest.raises(InputError) as error:
        validate_clinical(bad, cohort=True)
    message = str(error.value)
    assert "inss_stage = '2a' is not an accepted category (expected one of 1, 2A, 2B, 3, 4, 4S)" in message
    assert "age_months = 361 months is outside the accepted range 0-360" in message


def _categorical_table(n=120, seed=3):
    rng = np.random.default_rng(seed)
    stage = rng.choice(["L1", "L2", "M", "MS"], n)
    table = pd.DataFrame({"age_months": rng.uniform(1, 100, n), "sex": rng.choice(["F", "M"], n),
                          "inrg_stage": stage,
                          "histology": np.where(stage == "M", "unfavourable", "favourable"),
                          "mycn_amplified": (stage == "M").astype(float),
                          "risk_group": np.where(stage == "M", "HR", "NHR"),
                          "nse": np.exp(rng.normal(3, 1, n))})
    return table


def test_categoricals_are_imputed_as_whole_categories():
    table = _categorical_table()
    holes = table.copy()
    holes.loc[:14, "inrg_stage"] = None
    holes.loc[10:24, "mycn_amplified"] = np.nan
    encoded = encode_clinical(holes).dropna(axis=1, how="all")
    groups = categorical_groups(encoded.columns)
    assert groups["inrg_stage"] == ["inrg_stage_L2", "inrg_stage_M", "inrg_stage_MS"]
    imputer = MICEPMMImputer(max_iter=20, min_iter=10, window=5, seed=1, groups=groups).fit(encoded)
    stage = imputer.completed_[groups["inrg_stage"]].to_numpy()
    assert set(np.unique(stage)) <= {0.0, 1.0} and (stage.sum(axis=1) <= 1).all()   # one stage per patient
    assert set(np.unique(imputer.completed_["mycn_amplified"])) <= {0.0, 1.0}
    # the categorical model uses the other variables: MYCN follows the stage it is tied to here
    rows = holes.index[holes["mycn_amplified"].isna() & holes["inrg_stage"].notna()]
    agree = (imputer.completed_.loc[rows, "mycn_amplified"] == (holes.loc[rows, "inrg_stage"] == "M")).mean()
    assert agree >= 0.8
    new = encode_clinical(table.iloc[:3].assign(inrg_stage=None)).reindex(columns=imputer.columns_)
    filled = imputer.transform(new)[groups["inrg_stage"]].to_numpy()
    assert (filled.sum(axis=1) <= 1).all() and set(np.unique(filled)) <= {0.0, 1.0}


def test_groups_change_nothing_when_no_category_is_missing():
    encoded = encode_clinical(_categorical_table().assign(nse=lambda t: t["nse"].where(t.index % 4 != 0)))
    encoded = encoded.dropna(axis=1, how="all")
    plain = MICEPMMImputer(max_iter=20, min_iter=10, window=5, seed=1).fit(encoded)
    grouped = MICEPMMImputer(max_iter=20, min_iter=10, window=5, seed=1,
                             groups=categorical_groups(encoded.columns)).fit(encoded)
    pd.testing.assert_frame_equal(plain.completed_, grouped.completed_)
