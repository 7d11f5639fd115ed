"""Cohort statistics of the default cohort's tables: the paper's numbers and the oracle ranges."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from nbrisk_core.clinical.schema import CLINICAL_VARIABLES, LAB_VARIABLES
from nbrisk_core.demo import cohort_statistics, generate_cohort_tables
from nbrisk_core.demo.cohort import hr_count_for
from nbrisk_core.demo.patients import HR_FRACTION, sample_patients
from nbrisk_core.errors import InputError


def test_default_cohort_mirrors_the_paper(default_tables):
    stats = cohort_statistics(default_tables)
    assert (stats["n_patients"], stats["n_hr"], stats["n_nhr"]) == (202, 121, 81)
    assert 32.0 <= stats["median_age_months"] <= 45.0
    q1, q3 = stats["age_iqr_months"]
    assert 14.0 <= q1 <= 26.0 and 50.0 <= q3 <= 66.0
    assert default_tables["age_months"].between(0, 168).all()
    assert 520.0 <= stats["median_follow_up_days"] <= 800.0
    for name, fraction in stats["missing_fraction"].items():
        assert 0.05 <= fraction <= 0.30, (name, fraction)
    assert len(stats["missing_fraction"]) == 11


def test_oracle_figures_in_range_on_the_default_seed(default_tables):
    stats = cohort_statistics(default_tables)
    assert 0.85 <= stats["oracle_auc"] <= 0.92
    assert 0.80 <= stats["oracle_c_index"] <= 0.88


def test_population_oracle_and_hr_share():
    # the oracle figures are a property of the generative model, not of one lucky seed
    table = sample_patients(4000, np.random.default_rng(99))
    stats = cohort_statistics(table)
    assert 0.85 <= stats["oracle_auc"] <= 0.92
    assert 0.80 <= stats["oracle_c_index"] <= 0.88
    assert abs(stats["n_hr"] / 4000 - HR_FRACTION) < 0.04


def test_values_follow_the_schema(default_tables):
    for variable in CLINICAL_VARIABLES:
        column = default_tables[variable.name]
        if variable.kind == "categorical":
            assert set(column) <= set(variable.categories), variable.name
        elif variable.kind == "binary":
            assert set(column) <= {0, 1}
        else:
            observed = column.dropna()
            assert observed.between(variable.low, variable.high).all(), variable.name
    assert set(default_tables["os_event"]) == {0, 1}
    assert (default_tables["os_days"] >= 1).all()


def test_labs_carry_the_intended_signal(default_tables):
    latent = default_tables["latent_score"]
    for name in ("nse", "ferritin"):
        observed = default_tables[name].notna()
        assert spearmanr(latent[observed], default_tables.loc[observed, name])[0] > 0.5, name
    for name in ("ca199", "cea"):
        observed = default_tables[name].notna()
        assert abs(spearmanr(latent[observed], default_tables.loc[observed, name])[0]) < 0.25, name


def test_five_year_survival_far_worse_for_high_risk():
    from lifelines import KaplanMeierFitter

    table = sample_patients(3000, np.random.default_rng(7))
    five_year = {}
    for group in ("HR", "NHR"):
        rows = table[table["risk_group"] == group]
        km_fit = KaplanMeierFitter().fit(rows["os_days"], rows["os_event"])
        five_year[group] = float(km_fit.predict(5 * 365.25))
    assert five_year["NHR"] > 0.8
    assert five_year["HR"] < 0.6
    assert five_year["NHR"] - five_year["HR"] > 0.25


def test_other_sizes_keep_the_proportion_and_are_deterministic():
    assert hr_count_for(202) == 121
    table = generate_cohort_tables(50, 3)
    assert (table["risk_group"] == "HR").sum() == hr_count_for(50) == 30
    assert table.equals(generate_cohort_tables(50, 3))
    assert not table["latent_score"].equals(generate_cohort_tables(50, 4)["latent_score"])
    assert list(table["patient_id"][:2]) == ["P0001", "P0002"]
    assert len([v for v in LAB_VARIABLES]) == 11


@pytest.mark.parametrize("n, seed", [(1, 3), (0, 3), (10, -1), ("10", 3)])
def test_bad_sizes_are_input_errors(n, seed):
    with pytest.raises(InputError, match="n_patients|seed"):
        generate_cohort_tables(n, seed)
