"""AppTests of the radiomics-beside-Swin-ART panels of the Risk and Cohort pages.

The radiomics model is a hand-written rad-score on two IBSI features with a hand-written saved evaluation
(the pages show the saved evaluation; they never recompute it): the tests check that the pages show the
case's own radiomics probability (computed from its slice and mask) and the saved AUCs, CIs and p.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from nbrisk_core.radiomics.cohort import SLICE_SETTINGS, settings_hash
from nbrisk_core.radiomics.score import RadScore, patient_probability, save
from tests.classifier.conftest import make_cohort
from tests.pages.test_prognosis_and_cohort import cohort, fitted_app  # noqa: F401 - Cohort page fixtures

PAGES = Path(__file__).resolve().parents[2] / "pages"


def _model() -> RadScore:
    return RadScore(phase="art", features=["art_stat_mean", "art_shape2d_area"], mean=[100.0, 150.0],
                    scale=[30.0, 200.0], coef=[0.8, 1.1], intercept=-0.2,
                    settings=json.loads(json.dumps(SLICE_SETTINGS.as_dict(), default=list)),
                    settings_sha256=settings_hash(SLICE_SETTINGS, ("art",)))


def _evaluation(cohort_sha256: str = "0" * 64) -> dict:
    def auc(v, lo, hi):
        return {"value": v, "ci_low": lo, "ci_high": hi, "method": "DeLong"}

    return {"cohort": "data/demo", "cohort_sha256": cohort_sha256, "n_test": 41,
            "test_auc": auc(0.823, 0.695, 0.950),
            "comparisons": {
                "Swin-ART": {"test_auc": auc(0.835, 0.707, 0.963),
                             "delong_vs_radiomics": {"diff": -0.012, "z": -0.28, "p": 0.78}},
                "oracle": {"test_auc": auc(0.905, 0.816, 0.994),
                           "delong_vs_radiomics": {"diff": -0.083, "z": -1.73, "p": 0.084}}},
            "survival_grid": [
                {"feature_set": "radiomics", "grid": "full", "selected": "RSF",
                 "c_index": {"test": [0.855, 0.755, 0.944]}},
                {"feature_set": "both", "grid": "full", "selected": "RSF",
                 "c_index": {"test": [0.890, 0.795, 0.973]}}]}


@pytest.fixture
def risk_setup(tmp_path, tiny_models_dir, monkeypatch):
    cohort_path = make_cohort(tmp_path / "cohort", n=6)
    meta = json.loads((cohort_path / "cohort.json").read_text())
    (cohort_path / "cohort.json").write_text(json.dumps({**meta, "pixel_spacing_mm": [0.8, 0.8]}))
    models = tmp_path / "models"
    shutil.copytree(tiny_models_dir, models)
    monkeypatch.setenv("NBRISK_DATA_DIR", str(cohort_path))
    monkeypatch.setenv("NBRISK_MODELS_DIR", str(models))
    return cohort_path, models


def _risk_page() -> AppTest:
    return AppTest.from_file(str(PAGES / "2_Risk.py"), default_timeout=180)


def test_risk_page_shows_the_cases_radiomics_probability_beside_swin_art(risk_setup):
    cohort_path, models = risk_setup
    save(_model(), models / "radiomics_demo.json", evaluation=_evaluation())
    at = _risk_page().run()
    assert not at.exception, at.exception
    patient = at.selectbox[0].value
    expected = patient_probability(_model(), cohort_path, patient)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Radiomics"] == f"{expected:.1%}"
    assert metrics["Swin-ART"].endswith("%")
    table = next(t.value for t in at.dataframe if "DeLong p vs radiomics" in t.value.columns)
    assert list(table["model"]) == ["radiomics (logistic)", "Swin-ART"]   # no oracle on the Risk page
    assert table["test AUC"].tolist() == pytest.approx([0.823, 0.835])
    assert table["95% CI (DeLong)"].tolist() == ["0.695-0.950", "0.707-0.963"]
    assert any("p = 0.78" in c.value for c in at.caption)
    # another patient: another slice, its own probability
    other = at.selectbox[0].options[-1]
    at.selectbox[0].set_value(other).run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Radiomics"] == \
        f"{patient_probability(_model(), cohort_path, other):.1%}"


def test_risk_page_without_a_radiomics_model_says_how_to_build_it(risk_setup):
    at = _risk_page().run()
    assert not at.exception, at.exception
    assert any("nbrisk radiomics" in i.value and "--save-model" in i.value for i in at.info)


def test_risk_page_refuses_an_altered_radiomics_model(risk_setup):
    _, models = risk_setup
    save(_model(), models / "radiomics_demo.json", evaluation=_evaluation())
    document = json.loads((models / "radiomics_demo.json").read_text())
    document["intercept"] = 5.0
    (models / "radiomics_demo.json").write_text(json.dumps(document))
    at = _risk_page().run()
    assert not at.exception, at.exception
    assert any("SHA-256" in e.value for e in at.error)
    assert "Radiomics" not in {m.label for m in at.metric}


def _cohort_page(fitted_app, monkeypatch, tmp_path, evaluation) -> AppTest:
    models = tmp_path / "models"
    models.mkdir()
    save(_model(), models / "radiomics_demo.json", evaluation=evaluation)
    monkeypatch.setenv("NBRISK_MODELS_DIR", str(models))
    at = AppTest.from_file(str(PAGES / "4_Cohort.py"), default_timeout=180).run()
    assert not at.exception, at.exception
    return at


def test_cohort_page_compares_radiomics_swin_art_and_oracle(fitted_app, monkeypatch, tmp_path):
    from nbrisk_core.cohort.format import cohort_hash

    path = fitted_app[0]
    at = _cohort_page(fitted_app, monkeypatch, tmp_path, _evaluation(cohort_hash(path)))
    table = next(t.value for t in at.dataframe if "DeLong p vs radiomics" in t.value.columns)
    assert list(table["model"]) == ["radiomics (logistic)", "Swin-ART", "oracle"]
    assert table["DeLong p vs radiomics"].iloc[1:].tolist() == pytest.approx([0.78, 0.084])
    grid = next(t.value for t in at.dataframe if "test C-index" in t.value.columns)
    assert list(grid["CT features"]) == ["radiomics rad-score + clinical", "Swin-ART CT + clinical"]
    assert grid["test C-index"].tolist() == pytest.approx([0.855, 0.890])


def test_cohort_page_leaves_out_the_oracle_of_another_cohort(fitted_app, monkeypatch, tmp_path):
    at = _cohort_page(fitted_app, monkeypatch, tmp_path, _evaluation("f" * 64))
    table = next(t.value for t in at.dataframe if "DeLong p vs radiomics" in t.value.columns)
    assert list(table["model"]) == ["radiomics (logistic)", "Swin-ART"]
    assert any("not this cohort" in c.value for c in at.caption)
