"""AppTest of the Risk page on a tiny cohort and a tiny Swin-ART."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

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
    assert len(result["embedding"]) == 16 and result["risk_class"] in ("HR", "NHR")
    assert len(result["model_sha256"]) == 64 and result["device"].startswith("cpu")
    assert [m.label for m in at.metric] == ["Swin-ART"]
    assert any("synthetic data" in w.value for w in at.warning)


def test_risk_page_takes_the_case_page_slices(tiny_cohort, tiny_models_dir, monkeypatch):
    at = _app(monkeypatch, tiny_cohort, tiny_models_dir)
    hu = np.full((64, 64), 40, np.int16)
    hu[20:40, 20:40] = 150
    at.session_state[state.CHOSEN_SLICES] = {"art": {"hu": hu, "index": 3, "z_mm": 12.0, "pixel_spacing": (0.8, 0.8)}}
    at.run()
    assert not at.exception, at.exception
    assert at.radio[0].value == "Case from the Case page"
    assert "current case" in " ".join(c.value for c in at.caption)


def test_risk_page_without_model_says_how_to_train(tiny_cohort, tmp_path, monkeypatch):
    at = _app(monkeypatch, tiny_cohort, tmp_path / "empty").run()
    assert not at.exception
    assert any("nbrisk train" in e.value for e in at.error)
