"""A clinical-only cohort (INSS stages, ages in days, MYCN coded Amp/1) imports and runs
`nbrisk benchmark --features clinical` end to end (the fastest grid profile, one worker)."""

from __future__ import annotations

import json

import pandas as pd

from nbrisk_core.cli import main


def test_clinical_only_cohort_runs_the_whole_grid(site, tmp_path, capsys):
    folder, _, _ = site
    cohort = tmp_path / "site-b"
    assert main(["cohort", "import", "--clinical", str(folder / "site.csv"),
                 "--mapping", str(folder / "site.toml"), "--out", str(cohort)]) == 0
    out = tmp_path / "bench"
    # no --features: the cohort has no images and no embeddings, so the clinical variables alone are used
    assert main(["benchmark", "--data", str(cohort), "--out", str(out), "--grid", "test", "--n-jobs", "1",
                 "--backend", "loky", "--quiet"]) == 0
    assert "--features clinical" in capsys.readouterr().out
    patients = pd.read_csv(out / "patients.csv")
    assert list(patients.columns) == ["patient_id", "cohort", "time", "event", "mlrs", "mlrs_group"]
    assert len(patients) == len(pd.read_csv(cohort / "clinical.csv"))
    combos = pd.read_csv(out / "combinations.csv")
    assert len(combos) == 117 and (combos["status"] == "fitted").any()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["feature_set"] == "clinical" and summary["embeddings"].startswith("none")
    assert summary["features"] and not any(f.startswith("ct") for f in summary["features"])
    assert "oracle_c_index_test" not in summary   # a real cohort: no known truth, no oracle figure
    # INSS stage is a candidate on its own; INRG (not in the sheet) is left out and said so
    screened = set(pd.read_csv(out / "screening.csv")["feature"])
    assert "inss_stage_4" in screened and not any(f.startswith("inrg_stage") for f in screened)
    assert any("inrg_stage_M" in note for note in summary["notes"])
    # the baseline categoricals missing in the sheet were imputed (KS table lists the imputed columns)
    imputed = set(pd.read_csv(out / "imputation_ks.csv")["variable"])
    assert {"sex_M", "mycn_amplified", "histology_unfavourable"} <= imputed
    for name in ("c_index_heatmap.html", "km_train.html", "forest_plot.html", "km.png"):
        assert (out / name).stat().st_size > 0, name
    # --features clinical explicitly, with embeddings given, is refused (one line, exit 2)
    assert main(["benchmark", "--data", str(cohort), "--out", str(out), "--features", "clinical",
                 "--stand-in-embeddings"]) == 2
