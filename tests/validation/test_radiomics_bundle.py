"""A prognosis bundle fitted with ``--features radiomics`` scores another cohort with ``nbrisk validate``:
the bundle's recorded rad-score is applied to that cohort's cached radiomics (two small synthetic sites)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nbrisk_core.cli import main


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    from nbrisk_core.demo import build_cohort

    root = tmp_path_factory.mktemp("radiomics_sites")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBRISK_HOME", str(root / "home"))
        a, b = root / "a", root / "b"
        build_cohort(a, n_patients=80, seed=11, n_studies=0)
        build_cohort(b, n_patients=60, seed=12, n_studies=0)
        assert main(["radiomics", "--cohort", str(a), "--out", str(root / "a.parquet")]) == 0
        yield root, a, b


@pytest.mark.slow
def test_radiomics_bundle_validates_on_another_site(sites, capsys):
    root, a, b = sites
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBRISK_HOME", str(root / "home"))
        bundle = root / "bundle"
        assert main(["prognosis", "fit", "--cohort", str(a), "--features", "radiomics", "--grid", "app",
                     "--selected", "LASSO", "--n-jobs", "1", "--out", str(bundle)]) == 0
        card = json.loads((bundle / "card.json").read_text())
        assert card["feature_set"] == "radiomics" and card["embeddings"]["source"] == "radiomics"
        assert card["candidate_features"][0] == "rad_score"
        n_train = card["embeddings"]["rad_score"]["fitted_on"]["n_train"]
        assert n_train == card["n_train"]   # the rad-score saw the grid's training patients only
        capsys.readouterr()
        # the other site's radiomics are not cached yet: refused with the command that makes them
        assert main(["validate", "--prognosis", str(bundle), "--cohort", str(b), "--out", str(root / "r0"),
                     "--bootstrap", "50", "--no-figures"]) != 0
        assert f"nbrisk radiomics --cohort {b}" in capsys.readouterr().err
        assert main(["radiomics", "--cohort", str(b), "--out", str(root / "b.parquet")]) == 0
        assert main(["validate", "--prognosis", str(bundle), "--cohort", str(b), "--out", str(root / "r"),
                     "--bootstrap", "50", "--no-figures"]) == 0
        report = json.loads((root / "r" / "report.json").read_text())
        assert report["ct_features"].startswith("radiomics rad-score of the bundle")
        patients = pd.read_csv(root / "r" / "patients.csv", dtype={"patient_id": str})
        assert len(patients) == 60 and patients["mlrs"].notna().all()
