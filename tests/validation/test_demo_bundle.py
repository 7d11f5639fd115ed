"""The demo's frozen bundle (``make bundle``): the app loads it instead of fitting; it scores as a fresh fit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

PAGES = Path(__file__).resolve().parents[2] / "pages"


def _refuse_fit(monkeypatch):
    from nbrisk_core.prognosis import pipeline as pipeline_module

    def refuse(*args, **kwargs):
        raise AssertionError("the app fitted the demo pipeline although the demo bundle exists")

    monkeypatch.setattr(pipeline_module, "fit_cohort_pipeline", refuse)


def test_the_app_loads_the_demo_bundle_without_fitting(demo_dir, demo_bundle, monkeypatch):
    from nbrisk_ui import prognosis as ui

    _refuse_fit(monkeypatch)
    pipeline = ui.fit_pipeline(str(demo_dir), "app", None)
    card = json.loads((demo_bundle / "card.json").read_text())
    assert pipeline.fit_sha256() == card["pipeline_fit_sha256"]
    assert pipeline.selected_ == card["selected"]
    # the Prognosis page's caption names the bundle (the browser test looks for it)
    source = ui.pipeline_source(pipeline)
    assert source.startswith("frozen bundle prognosis\\_demo") and card["sha256"][:12] in source


def _clear_caches():
    from nbrisk_ui import prognosis as ui
    from nbrisk_ui.common import load_cohort_tables

    ui.get_pipeline.clear()
    ui.cohort_embedding_table.clear()
    load_cohort_tables.clear()


def test_the_prognosis_page_says_it_uses_the_bundle(demo_dir, demo_bundle, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from nbrisk_ui import prognosis as ui

    monkeypatch.setenv("NBRISK_DATA_DIR", str(demo_dir))
    monkeypatch.delenv("NBRISK_PROGNOSIS_MODEL", raising=False)
    monkeypatch.setattr(ui, "APP_MODEL", None)
    _refuse_fit(monkeypatch)
    _clear_caches()
    try:
        at = AppTest.from_file(str(PAGES / "3_Prognosis.py"), default_timeout=120)
        at.run()
        assert not at.exception, at.exception
        captions = " ".join(c.value for c in at.caption)
        assert "frozen bundle prognosis\\_demo" in captions, captions
    finally:
        _clear_caches()


def test_the_demo_bundle_scores_as_a_fresh_fit(demo_dir, demo_bundle):
    """The bundle ``make bundle`` writes gives the MLRS and S(t) of a fresh fit of the same combination."""
    import pandas as pd

    from nbrisk_core.features import cohort_ct_features
    from nbrisk_core.prognosis.bundle import load_pipeline
    from nbrisk_core.prognosis.pipeline import fit_cohort_pipeline

    bundle = load_pipeline(demo_bundle)
    embeddings = cohort_ct_features(demo_dir)
    fresh = fit_cohort_pipeline(demo_dir, embeddings, grid="app", selected=bundle.pipeline.selected_,
                                n_jobs=1, backend="sequential", seed=bundle.card["seed"])
    loaded = bundle.pipeline
    assert fresh.selected_ == loaded.selected_
    pd.testing.assert_series_equal(fresh.patients_["patient_id"], loaded.patients_["patient_id"])
    np.testing.assert_allclose(loaded.patients_["mlrs"], fresh.patients_["mlrs"], rtol=0, atol=1e-12)
    assert loaded.cutoff_ == pytest.approx(fresh.cutoff_, abs=1e-12)
    clinical = pd.read_csv(demo_dir / "clinical.csv", dtype={"patient_id": str}).set_index("patient_id")
    for patient in ("P0001", "P0002"):
        labs = {k: v for k, v in clinical.loc[patient].items()
                if k in ("age_months", "nse", "ldh", "ferritin") and pd.notna(v)}
        embedding = embeddings.loc[patient].to_numpy(dtype=float)
        a, b = loaded.predict_patient(embedding, labs), fresh.predict_patient(embedding, labs)
        assert a.mlrs == pytest.approx(b.mlrs, abs=1e-12) and a.group == b.group
        np.testing.assert_allclose(a.survival, b.survival, rtol=0, atol=1e-12)
