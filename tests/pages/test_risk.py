"""AppTest of the Risk page on a tiny cohort and a tiny Swin-ART."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from nbrisk_core.case import ChosenSlice, Phase, RiskResult
from nbrisk_ui import state

PAGE = Path(__file__).resolve().parents[2] / "pages" / "2_Risk.py"


def _app(monkeypatch, cohort, models):
    monkeypatch.setenv("NBRISK_DATA_DIR", str(cohort))
    monkeypatch.setenv("NBRISK_MODELS_DIR", str(models))
    return AppTest.from_file(str(PAGE), default_timeout=180)


def test_risk_page_scores_a_demo_patient(tiny_cohort, tiny_models_dir, monkeypatch):
    at = _app(monkeypatch, tiny_cohort, tiny_models_dir).run()
    assert not at.exception, at.exception
    result = at.session_state[state.RISK_RESULT]
    assert isinstance(result, RiskResult) and result.reference == "art"
    assert len(result.embedding) == 16 and result.risk_class in ("HR", "NHR")
    assert len(result.model_sha256) == 64 and result.device.startswith("cpu")
    # the CAM shown is kept with the result (a saved case and its PDF carry it)
    assert list(result.cams) == [Phase.ART] and result.cams[Phase.ART].ndim == 2
    assert [m.label for m in at.metric] == ["Swin-ART"]
    assert any("synthetic data" in w.value for w in at.warning)


def test_risk_page_takes_the_case_page_slices(tiny_cohort, tiny_models_dir, monkeypatch):
    at = _app(monkeypatch, tiny_cohort, tiny_models_dir)
    hu = np.full((64, 64), 40, np.int16)
    hu[20:40, 20:40] = 150
    at.session_state[state.CHOSEN_SLICES] = {"art": ChosenSlice("art", 3, 12.0, hu=hu,
                                                                pixel_spacing=(0.8, 0.8))}
    at.run()
    assert not at.exception, at.exception
    assert at.radio[0].value == "Case from the Case page"
    assert "current case" in " ".join(c.value for c in at.caption)


def test_risk_page_without_model_says_how_to_train(tiny_cohort, tmp_path, monkeypatch):
    at = _app(monkeypatch, tiny_cohort, tmp_path / "empty").run()
    assert not at.exception
    assert any("nbrisk train" in e.value for e in at.error)


def test_risk_page_caches_predictions_across_cam_changes(tiny_cohort, tiny_models_dir, monkeypatch):
    """Predictions are cached on (slices' hash, model SHA-256) and the model input is built once: changing
    a CAM control does not run the classifier or build its input again."""
    import streamlit as st

    from nbrisk_core.classifier.inference import Predictor
    from nbrisk_core.imaging import model_input

    calls = {"predict": 0, "input": 0}
    predict, build = Predictor.logits_and_embedding, model_input.build_model_input

    def counted_predict(self, x):
        calls["predict"] += 1
        return predict(self, x)

    def counted_build(*args, **kwargs):
        calls["input"] += 1
        return build(*args, **kwargs)

    monkeypatch.setattr(Predictor, "logits_and_embedding", counted_predict)
    monkeypatch.setattr(model_input, "build_model_input", counted_build)
    st.cache_resource.clear()
    at = _app(monkeypatch, tiny_cohort, tiny_models_dir).run()
    assert not at.exception, at.exception
    first = dict(calls)
    assert first == {"predict": 1, "input": 1}  # one variant in the tiny models dir: scored once
    shown = at.session_state[state.RISK_RESULT]
    at.slider(key="risk.cam.opacity").set_value(0.8).run()
    at.selectbox(key="risk.cam.target").select("NHR").run()
    assert not at.exception, at.exception
    assert calls == first  # neither the prediction nor the model input was made again
    after = at.session_state[state.RISK_RESULT]
    assert after.scores == shown.scores
    assert not np.array_equal(after.cams[Phase.ART], shown.cams[Phase.ART])  # the NHR map is the one kept
