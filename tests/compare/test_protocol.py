"""The comparison protocol on a small synthetic cohort: splits, folds, no leakage, not-run candidates."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.compare import protocol
from nbrisk_core.compare.candidates import CANDIDATES, CandidateUnavailable, parse_models
from nbrisk_core.errors import InputError
from tests.compare.conftest import synthetic_data


class Probe:
    """Records every fit's rows and every prediction's rows; predicts the label-free ``age`` rank."""

    name = "probe"
    label = "leakage probe"
    fits: list = []
    predictions: list = []

    def fit(self, data, idx):
        Probe.fits.append((id(data), np.asarray(idx).copy()))
        self.fitted_on_ = np.asarray(idx).copy()
        return self

    def predict_proba(self, data, idx):
        Probe.predictions.append((id(data), np.asarray(idx).copy(), self.fitted_on_))
        age = data.clinical["age_months"].to_numpy(dtype=float)[np.asarray(idx)]
        return (age - age.min() + 1) / (age.max() - age.min() + 2)

    def predict_risk(self, data, idx):
        return None


class NeedsImages:
    name = "needs_images"
    label = "needs images"

    def fit(self, data, idx):
        raise CandidateUnavailable("needs_images needs the images: none in this cohort")

    def predict_proba(self, data, idx):  # pragma: no cover - never reached
        raise AssertionError

    def predict_risk(self, data, idx):  # pragma: no cover
        raise AssertionError


class Broken(NeedsImages):
    name = "broken"

    def fit(self, data, idx):
        raise RuntimeError("a bug in the candidate")


@pytest.fixture()
def probe():
    Probe.fits, Probe.predictions = [], []
    return Probe


def test_development_split_is_the_projects_8_2_split(small_data):
    # the prognosis grid's split (stratified by the "HR"/"NHR" labels): the same test patients
    from nbrisk_core.prognosis.pipeline import split_strata
    from nbrisk_core.split import stratified_split

    dev, test = protocol.development_split(small_data)
    labels = pd.DataFrame({"risk_group": np.where(small_data.high_risk == 1, "HR", "NHR")})
    split = stratified_split(small_data.patient_id, split_strata(labels))
    assert set(small_data.patient_id[test]) == set(split.loc[split["cohort"] == "test", "patient_id"])
    assert len(np.intersect1d(dev, test)) == 0 and len(dev) + len(test) == small_data.n


def test_folds_are_stratified_disjoint_and_cover_the_development_cohort(small_data):
    dev, _ = protocol.development_split(small_data)
    folds = protocol.cv_folds(small_data.high_risk, dev, 5, seed=3)
    held = np.concatenate([b for _, b in folds])
    assert sorted(held) == sorted(dev)                     # every development patient held out once
    share = small_data.high_risk[dev].mean()
    for train, held_out in folds:
        assert len(np.intersect1d(train, held_out)) == 0
        assert sorted(np.concatenate([train, held_out])) == sorted(dev)
        assert abs(small_data.high_risk[held_out].mean() - share) < 0.1   # stratified
    again = protocol.cv_folds(small_data.high_risk, dev, 5, seed=3)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))      # seeded


def test_every_fit_sees_only_its_training_rows(small_data, probe):
    external = synthetic_data(40, seed=9, name="external")
    registry = {"probe": Probe}
    result = protocol.run_compare(small_data, external=external, models=["probe"], folds=4, seed=1,
                                  registry=registry, n_bootstrap=50)
    dev, test = result.development_idx, result.test_idx
    assert len(probe.fits) == 4 + 1                        # one fresh fit per fold, one on the development set
    for (data_id, fitted), (train, held_out) in zip(probe.fits[:4], result.folds):
        assert data_id == id(small_data)
        assert (np.sort(fitted) == np.sort(train)).all()
        assert len(np.intersect1d(fitted, held_out)) == 0
        assert len(np.intersect1d(fitted, test)) == 0      # the test split is never fitted on
    assert (np.sort(probe.fits[4][1]) == np.sort(dev)).all()
    # the test split and the external cohort are scored by the development fit (frozen, no refit)
    scored = [(d, rows, fitted_on) for d, rows, fitted_on in probe.predictions[4:]]
    assert [d for d, _, _ in scored] == [id(small_data), id(external)]
    assert all((np.sort(f) == np.sort(dev)).all() for _, _, f in scored)
    assert (scored[1][1] == np.arange(external.n)).all()
    entry = result.report["models"]["probe"]
    assert len(entry["cv"]["fold_auc"]) == 4
    assert entry["cv"]["mean"] == pytest.approx(np.mean(entry["cv"]["fold_auc"]))
    assert entry["external"]["n"] == external.n
    counts = result.predictions.groupby("set").size().to_dict()
    assert counts == {"cv": len(dev), "test": len(test), "external": external.n}


def test_unavailable_and_broken_candidates_are_reported_not_raised(small_data, probe, capsys):
    registry = {"probe": Probe, "needs_images": NeedsImages, "broken": Broken}
    result = protocol.run_compare(small_data, models=list(registry), folds=3, registry=registry, n_bootstrap=50)
    models = result.report["models"]
    assert models["probe"]["status"] == "ok"
    assert models["needs_images"] == {"label": "needs images", "status": "not run",
                                      "reason": "needs_images needs the images: none in this cohort"}
    assert models["broken"]["status"] == "not run" and "RuntimeError: a bug" in models["broken"]["reason"]
    assert "Traceback" in capsys.readouterr().err          # a bug keeps its traceback visible
    assert set(result.predictions["model"]) == {"probe"}
    table = protocol.summary_table(result.report)
    assert table.set_index("model").loc["broken", "status"].startswith("not run: RuntimeError")


def test_image_models_not_run_without_images_clinical_ones_run():
    data = synthetic_data(100, seed=4, images=False)
    result = protocol.run_compare(data, models=["clinical_lr", "swin_art", "combined", "oracle", "radiomics"],
                                  folds=3, n_bootstrap=50)
    models = result.report["models"]
    assert models["radiomics"]["status"] == "not run" and "slices" in models["radiomics"]["reason"]
    assert models["clinical_lr"]["status"] == "ok" and models["oracle"]["status"] == "ok"
    for name in ("swin_art", "combined"):
        assert models[name]["status"] == "not run"
        assert "no images in this test cohort" in models[name]["reason"]
    assert models["oracle"]["test"]["delong_p_vs_swin_art"] is None     # no reference, no test
    assert models["oracle"]["test"]["nri"]["category_free"]["value"] is not None


def test_real_candidates_metrics_and_outputs(small_data, tmp_path):
    result = protocol.run_compare(small_data, models=["clinical_lr", "swin_art", "combined", "combined_emb",
                                                      "oracle"], folds=3, n_bootstrap=50)
    models = result.report["models"]
    for name, entry in models.items():
        assert entry["status"] == "ok", entry
        test = entry["test"]
        assert 0 <= test["auc_ci"][0] <= test["auc"] <= test["auc_ci"][1] <= 1
        assert entry["cv"]["oof_auc_ci"][0] <= entry["cv"]["oof_auc"] <= entry["cv"]["oof_auc_ci"][1]
    assert models["swin_art"]["test"]["delong_p_vs_swin_art"] is None
    assert 0 < models["combined"]["test"]["delong_p_vs_swin_art"] <= 1
    assert models["clinical_lr"]["test"]["nri"] is None and models["combined"]["test"]["idi"]["value"] is not None
    assert models["clinical_lr"]["test"]["c_index"] is not None          # the clinical Cox
    # the swin_art candidate predicts the frozen probability itself
    swin = result.predictions.query("model == 'swin_art' and set == 'test'")
    assert np.allclose(swin["p_high_risk"], small_data.swin_prob[result.test_idx])
    files = protocol.write_outputs(result, tmp_path, figures=False)
    report = json.loads(files["report.json"].read_text())
    assert set(report["models"]) == set(models) and report["folds"] == 3
    assert set(report["models"]["combined"]["cv"]) >= {"fold_auc", "mean", "sd", "oof_auc", "oof_auc_ci"}
    assert set(report["models"]["combined"]["test"]) >= {"auc", "auc_ci", "delong_p_vs_swin_art", "nri", "idi",
                                                         "calibration", "c_index"}
    predictions = pd.read_csv(files["predictions.csv"])
    assert len(predictions) == 5 * small_data.n                          # each patient once in CV or test
    assert "<table>" in files["report.html"].read_text()


def test_extra_outputs_hook(small_data, tmp_path, probe, monkeypatch):
    def nomogram(result, out):
        path = out / "nomogram.json"
        path.write_text(json.dumps({"models": sorted(result.fitted)}))
        return {"nomogram.json": path}

    monkeypatch.setattr(protocol, "EXTRA_OUTPUTS", [nomogram])
    result = protocol.run_compare(small_data, models=["probe"], folds=3, registry={"probe": Probe}, n_bootstrap=50)
    protocol.write_outputs(result, tmp_path, figures=False)
    assert json.loads((tmp_path / "nomogram.json").read_text()) == {"models": ["probe"]}
    assert "nomogram.json" in json.loads((tmp_path / "report.json").read_text())["files"]


def test_binary_decision_curve_is_the_textbook_net_benefit():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 60)
    p = rng.random(60)
    dca = protocol.binary_decision_curve(y, p, thresholds=[0.1, 0.3, 0.5, 0.8])
    for row in dca.itertuples():
        treated = p > row.threshold
        tp, fp = (treated & (y == 1)).sum(), (treated & (y == 0)).sum()
        odds = row.threshold / (1 - row.threshold)
        assert row.net_benefit == pytest.approx(tp / 60 - fp / 60 * odds)
        assert row.treat_all == pytest.approx(y.mean() - (1 - y.mean()) * odds)


def test_bad_models_and_folds_name_the_value(small_data):
    with pytest.raises(InputError, match="unknown model 'nope'"):
        parse_models("clinical_lr,nope")
    with pytest.raises(InputError, match="unknown; expected some of"):
        protocol.run_compare(small_data, models=["nope"])
    with pytest.raises(InputError, match="--folds 1"):
        protocol.run_compare(small_data, models=["clinical_lr"], folds=1)
    assert parse_models(None) == list(CANDIDATES)
