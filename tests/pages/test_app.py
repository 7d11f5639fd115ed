"""The entry page renders on the demo cohort, and explains itself when no cohort exists."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

REPO_ROOT = Path(__file__).resolve().parents[2]

APP = str(REPO_ROOT / "streamlit_app.py")


def test_entry_page_shows_demo_cohort(demo_dir, monkeypatch):
    monkeypatch.setenv("NBRISK_DATA_DIR", str(demo_dir))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "NBRisk"
    assert any("Synthetic demo data" in w.value for w in at.warning)
    metrics = {m.label: m.value for m in at.metric}
    clinical = pd.read_csv(demo_dir / "clinical.csv")
    assert metrics["Patients"] == str(len(clinical))
    n_hr = int((clinical["risk_group"] == "HR").sum())
    assert metrics["High risk / non-high risk"] == f"{n_hr} / {len(clinical) - n_hr}"
    assert len(at.get("plotly_chart")) == 1


def test_entry_page_without_cohort_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setenv("NBRISK_DATA_DIR", str(tmp_path / "missing"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert "nbrisk demo build" in at.error[0].value
