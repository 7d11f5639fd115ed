"""`nbrisk benchmark --cv`: repeated K-fold CV of the whole selection procedure (no leakage) and Harrell's
bootstrap optimism. Clinical variables only (no CT features)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nbrisk_core.bench.prognosis import write_synthetic_cohort
from nbrisk_core.prognosis.pipeline import read_cohort
from nbrisk_core.validation import internal


@pytest.fixture(scope="module")
def clinical(tmp_path_factory):
    cohort = write_synthetic_cohort(tmp_path_factory.mktemp("cv"), n_patients=100, seed=31)
    return read_cohort(cohort)[0]


def test_folds_never_see_their_held_out_patients(clinical, monkeypatch):
    fitted = []
    real_fit = internal._fit

    def spy(table, embeddings, grid, features, seed):
        fitted.append(set(table["patient_id"]))
        return real_fit(table, embeddings, grid, features, seed)

    monkeypatch.setattr(internal, "_fit", spy)
    from nbrisk_core.validation import scoring

    scored = []
    real_score = scoring.score_cohort

    def score_spy(pipeline, table, embeddings=None):
        scored.append(set(table["patient_id"]))
        return real_score(pipeline, table, embeddings)

    monkeypatch.setattr(scoring, "score_cohort", score_spy)
    table = internal.repeated_cv(clinical, None, k=2, repeats=1, grid="test", features="clinical", seed=3)
    assert len(table) == 2 and list(table["fold"]) == [1, 2]
    assert all(not (train & test) for train, test in zip(fitted, scored))
    assert set().union(*scored) == set(clinical["patient_id"])
    assert table["c_index_heldout"].between(0.5, 1).all()
    summary = internal.summarise_cv(table)
    assert summary["folds"] == 2 and sum(summary["selected_counts"].values()) == 2


def test_bootstrap_optimism_is_consistent(clinical):
    result = internal.bootstrap_optimism(clinical, None, n_bootstrap=2, grid="test", features="clinical",
                                         seed=3)
    assert result["n_bootstrap"] + len(result["failed_resamples"]) == 2
    if result["optimism"] is not None:
        assert result["corrected"] == pytest.approx(result["apparent"] - result["optimism"])
    assert 0.5 < result["apparent"] <= 1


def test_too_few_folds_is_an_input_error(clinical):
    from nbrisk_core.errors import InputError

    with pytest.raises(InputError, match="expected K >= 2"):
        internal.repeated_cv(clinical, None, k=1)


def test_benchmark_cli_cv(tmp_path, capsys):
    from nbrisk_core.cli import main

    cohort = write_synthetic_cohort(tmp_path / "c", n_patients=90, seed=41)
    assert main(["benchmark", "--data", str(cohort), "--features", "clinical", "--grid", "test", "--cv", "2",
                 "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "cv_summary.json").read_text())
    assert summary["k"] == 2 and summary["cv"]["folds"] == 2
    from nbrisk_core.cohort.format import cohort_hash

    assert summary["cohort"]["sha256"] == cohort_hash(cohort)   # the Cohort page flags results of another cohort
    # read back as the Cohort page does: per combination and over all folds
    results = internal.read_cv_results(tmp_path / "out")
    folds = pd.read_csv(tmp_path / "out" / "cv_folds.csv")
    overall = results.by_combination.set_index("combination").loc["all folds"]
    assert overall["times_selected"] == 2
    assert overall["c_index_mean"] == pytest.approx(folds["c_index_heldout"].mean())
    assert results.by_combination["times_selected"].iloc[:-1].sum() == 2
    assert internal.read_cv_results(tmp_path / "nothing") is None
    assert "2-fold CV of the whole selection" in capsys.readouterr().out
