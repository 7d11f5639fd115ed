"""``features="radiomics"``: the CT block is one column, the rad-score; bundles record where it came from.

The rad-score here is a STAND-IN (a noisy copy of the synthetic cohort's latent score, column ``rad_score``),
not a fitted radiomics model: the engine only sees a table (tests/radiomics/test_rad_score.py fits one).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.bench.prognosis import write_synthetic_cohort
from nbrisk_core.errors import InputError
from nbrisk_core.prognosis.bundle import load_pipeline, predict_from_labs, save_pipeline
from nbrisk_core.prognosis.pipeline import CT_COLUMNS, cohort_design, fit_cohort_pipeline, read_cohort


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    return write_synthetic_cohort(tmp_path_factory.mktemp("cohort"), n_patients=100, seed=11)


@pytest.fixture(scope="module")
def rad_scores(cohort_dir):
    ct = pd.read_parquet(cohort_dir / "embeddings_standin.parquet")
    return pd.DataFrame({"rad_score": ct["ct01"].to_numpy() * 2.0}, index=ct.index)


def test_design_takes_the_rad_score_as_its_ct_block(cohort_dir, rad_scores):
    clinical, _, _ = read_cohort(cohort_dir)
    _, X, _ = cohort_design(clinical, rad_scores, "radiomics")
    assert X.columns[0] == "rad_score" and not set(CT_COLUMNS) & set(X.columns)
    with pytest.raises(InputError, match="rad_score"):
        cohort_design(clinical, rad_scores.rename(columns={"rad_score": "x"}), "radiomics")
    with pytest.raises(InputError, match="ct01"):   # the Swin-ART block still needs its 16 columns
        cohort_design(clinical, rad_scores, "both")


def test_radiomics_bundle_scores_and_records_its_source(cohort_dir, rad_scores, tmp_path):
    pipeline = fit_cohort_pipeline(cohort_dir, rad_scores, grid="app", selected="StepCox[backward] + RSF",
                                   features="radiomics", backend="sequential", seed=7)
    assert pipeline.ct_columns_ == ["rad_score"]
    assert pipeline.config_["feature_set"] == "radiomics"
    source = {"source": "radiomics", "rad_score": {"kind": "nbrisk-rad-score"}, "rad_score_sha256": "0" * 64}
    card = save_pipeline(pipeline, tmp_path / "b", cohort_dir=cohort_dir, embeddings=source)
    assert card["feature_set"] == "radiomics" and card["embeddings"]["source"] == "radiomics"
    bundle = load_pipeline(tmp_path / "b")
    assert bundle.embeddings == source
    clinical, _, _ = read_cohort(cohort_dir)
    row = clinical.iloc[0]
    values = row.drop(["patient_id", "os_days", "os_event"]).dropna().to_dict()
    one = rad_scores.loc[row["patient_id"], "rad_score"]
    before = pipeline.predict_patient([one], values)
    after = bundle.pipeline.predict_patient({"rad_score": one}, values)
    assert after.mlrs == pytest.approx(before.mlrs, abs=1e-12)
    assert np.isfinite(after.mlrs) and after.group in ("high", "low")
    with pytest.raises(InputError, match="expected 1"):
        bundle.pipeline.predict_patient(np.zeros(16), values)
    # `nbrisk predict --labs --prognosis BUNDLE` has images but no tumour mask: refused, saying what to run
    labs = tmp_path / "labs.json"
    labs.write_text("{}")
    with pytest.raises(InputError, match="nbrisk validate"):
        predict_from_labs([one], labs, tmp_path / "b")


def test_cli_refuses_radiomics_without_its_cache(cohort_dir, tmp_path, monkeypatch, capsys):
    from nbrisk_core.cli import main

    monkeypatch.setenv("NBRISK_HOME", str(tmp_path / "home"))
    code = main(["prognosis", "fit", "--cohort", str(cohort_dir), "--features", "radiomics", "--out",
                 str(tmp_path / "b")])
    assert code != 0 and not (tmp_path / "b").exists()
    assert f"'nbrisk radiomics --cohort {cohort_dir} --out " in capsys.readouterr().err
    code = main(["benchmark", "--data", str(cohort_dir), "--features", "radiomics", "--cv", "5", "--out",
                 str(tmp_path / "o")])
    assert code != 0 and "--cv" in capsys.readouterr().err
