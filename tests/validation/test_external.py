"""`nbrisk validate`: a bundle fitted on the demo cohort, scored on a second synthetic site (another seed).

The report's C-index, time-dependent AUC and S(3 y) calibration are recomputed here independently
(lifelines, scikit-survival) from the patient table the command writes. CT features are STAND-INS
(a noisy copy of the generator's latent score), not the classifier's embeddings.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.bench.prognosis import write_synthetic_cohort
from nbrisk_core.cli import main

SECOND_SITE_SEED = 777
DAYS_PER_YEAR = 365.25


@pytest.fixture(scope="module")
def demo_bundle(demo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "demo_standin"
    assert main(["prognosis", "fit", "--cohort", str(demo_dir), "--stand-in-embeddings", "--grid", "test",
                 "--n-jobs", "1", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def second_site(tmp_path_factory):
    return write_synthetic_cohort(tmp_path_factory.mktemp("site_b"), n_patients=150, seed=SECOND_SITE_SEED)


@pytest.fixture(scope="module")
def validated(demo_bundle, second_site, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert main(["validate", "--prognosis", str(demo_bundle), "--cohort", str(second_site),
                 "--stand-in-embeddings", "--bootstrap", "200", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    patients = pd.read_csv(out / "patients.csv", dtype={"patient_id": str})
    return out, report, patients


def test_report_has_the_promised_fields(validated, second_site):
    out, report, patients = validated
    clinical = pd.read_csv(second_site / "clinical.csv", dtype={"patient_id": str})
    assert report["n"] == len(clinical) == len(patients)
    assert report["events"] == int(clinical["os_event"].sum())
    assert "classifier" not in report   # no --classifier
    progn = report["prognosis"]
    for key in ("c_index", "c_index_ci", "td_auc", "calibration", "ibs"):
        assert progn[key] is not None, key
    low, high = progn["c_index_ci"]
    assert low <= progn["c_index"] <= high
    assert set(progn["td_auc"]) == {"1", "3", "5"}
    assert 0 < progn["ibs"] < 0.25
    assert list(patients.columns[:5]) == ["patient_id", "time", "event", "mlrs", "mlrs_group"]
    assert any("frozen training models and donors" in s for s in report["frozen"])
    assert report["imputation"]["patients_with_imputation"] > 0
    assert {"development", "external"} <= set(report["case_mix"])
    assert any(row["status"] == "covered" for row in report["tripod_ai"])
    html = (out / "report.html").read_text()
    assert "frozen training models and donors" in html and "TRIPOD+AI" in html


def test_c_index_recomputed_with_lifelines(validated):
    from lifelines.utils import concordance_index

    _, report, patients = validated
    # lifelines takes a score that is higher for longer survival: the negative risk
    recomputed = concordance_index(patients["time"], -patients["mlrs"], patients["event"])
    assert report["prognosis"]["c_index"] == pytest.approx(recomputed, abs=1e-9)
    assert report["prognosis"]["c_index"] > 0.7   # the stand-in features carry the site's latent risk


def test_td_auc_recomputed_with_sksurv(validated):
    from sksurv.metrics import cumulative_dynamic_auc
    from sksurv.util import Surv

    _, report, patients = validated
    y = Surv.from_arrays(patients["event"].astype(bool), patients["time"])
    for years, entry in report["prognosis"]["td_auc"].items():
        auc, _ = cumulative_dynamic_auc(y, y, patients["mlrs"].to_numpy(), [DAYS_PER_YEAR * int(years)])
        assert entry["auc"] == pytest.approx(float(auc[0]), abs=1e-12)


def test_calibration_recomputed_with_lifelines(validated):
    from lifelines import KaplanMeierFitter

    _, report, patients = validated
    calibration = report["prognosis"]["calibration"]
    horizon = DAYS_PER_YEAR * calibration["horizon_years"]
    risk = 1 - patients["s_3y"].to_numpy()
    order = np.argsort(risk, kind="stable")
    bin_of = np.empty(len(risk), dtype=int)
    bin_of[order] = np.arange(len(risk)) * len(calibration["bins"]) // len(risk)
    for entry in calibration["bins"]:
        members = patients[bin_of == entry["bin"] - 1]
        assert entry["n"] == len(members)
        assert entry["predicted_survival"] == pytest.approx(members["s_3y"].mean(), abs=1e-12)
        km = KaplanMeierFitter().fit(members["time"], members["event"])
        if entry["observed_survival"] is not None:
            observed = float(km.survival_function_at_times(horizon).iloc[0])
            assert entry["observed_survival"] == pytest.approx(observed, abs=1e-12)
    overall = KaplanMeierFitter().fit(patients["time"], patients["event"]).survival_function_at_times(horizon)
    assert calibration["observed_km_survival"] == pytest.approx(float(overall.iloc[0]), abs=1e-12)


def test_frozen_cut_off_and_groups(validated, demo_bundle):
    _, report, patients = validated
    card = json.loads((demo_bundle / "card.json").read_text())
    cutoff = card["mlrs_cutoff"]
    assert report["bundle"]["mlrs_cutoff"] == cutoff
    expected = np.where(patients["mlrs"] > cutoff, "high", "low")
    assert (patients["mlrs_group"].to_numpy() == expected).all()
    assert report["prognosis"]["high_risk_share"] == pytest.approx((expected == "high").mean())


def test_scoring_needs_no_refit(demo_bundle, second_site, monkeypatch, tmp_path):
    """Any fit during validation would go through these: make them fail."""
    from nbrisk_core.prognosis import grid, impute, pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("a model was fitted during validation")

    monkeypatch.setattr(pipeline.PrognosisPipeline, "fit", refuse)
    monkeypatch.setattr(impute.MICEPMMImputer, "fit", refuse)
    monkeypatch.setattr(grid, "fit_combination", refuse)
    from sklearn.preprocessing import StandardScaler

    monkeypatch.setattr(StandardScaler, "fit", refuse)
    from nbrisk_core.validation.external import validate_external

    report = validate_external(demo_bundle, second_site, tmp_path / "r", stand_in=True, n_bootstrap=50,
                               figures=False)
    assert report["n"] == 150


def test_clinical_bundle_on_a_clinical_cohort_and_clear_refusals(second_site, tmp_path, capsys):
    site_a = write_synthetic_cohort(tmp_path / "site_a", n_patients=120, seed=5)
    bundle = tmp_path / "clinical_bundle"
    assert main(["prognosis", "fit", "--cohort", str(site_a), "--features", "clinical", "--grid", "app",
                 "--selected", "LASSO", "--n-jobs", "1", "--out", str(bundle)]) == 0
    assert main(["validate", "--prognosis", str(bundle), "--cohort", str(second_site), "--bootstrap", "50",
                 "--no-figures", "--out", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["ct_features"].startswith("none") and "classifier" not in report
    capsys.readouterr()
    # a cohort without images cannot be scored by a classifier
    assert main(["validate", "--prognosis", str(bundle), "--cohort", str(second_site), "--classifier",
                 "models/swin_art_demo.safetensors", "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "leave out --classifier" in err


def test_a_ct_bundle_without_ct_features_is_refused(demo_bundle, second_site, tmp_path, capsys):
    assert main(["validate", "--prognosis", str(demo_bundle), "--cohort", str(second_site),
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "uses CT features" in err


@pytest.mark.slow
def test_classifier_metrics_on_an_imaged_second_site(tmp_path, demo_dir):
    """The shipped classifier on a small imaged site (generator seed 4242): AUC with DeLong CI and the
    p_high_risk column; the AUC is recomputed with scikit-learn."""
    from sklearn.metrics import roc_auc_score

    from nbrisk_core.demo import build_cohort

    site = tmp_path / "site_img"
    build_cohort(site, n_patients=40, seed=4242, n_studies=0)
    bundle = tmp_path / "b"
    assert main(["prognosis", "fit", "--cohort", str(demo_dir), "--features", "clinical", "--grid", "app",
                 "--selected", "LASSO", "--n-jobs", "1", "--out", str(bundle)]) == 0
    assert main(["validate", "--prognosis", str(bundle), "--cohort", str(site), "--classifier",
                 "models/swin_art_demo.safetensors", "--bootstrap", "50", "--out", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    patients = pd.read_csv(tmp_path / "r" / "patients.csv", dtype={"patient_id": str})
    clinical = pd.read_csv(site / "clinical.csv", dtype={"patient_id": str}).set_index("patient_id")
    y = (clinical.loc[patients["patient_id"], "risk_group"] == "HR").to_numpy(dtype=int)
    assert report["classifier"]["auc"] == pytest.approx(roc_auc_score(y, patients["p_high_risk"]), abs=1e-12)
    low, high = report["classifier"]["auc_ci"]
    assert low <= report["classifier"]["auc"] <= high
    assert report["classifier"]["calibration"]["slope"] is not None
