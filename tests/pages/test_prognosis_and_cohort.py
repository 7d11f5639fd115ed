"""AppTests of the Prognosis and Cohort pages.

The pipeline is the real one (``fit_cohort_pipeline``), fitted once on a tiny tables-only cohort
(60 patients from the demo generator, no images) with STAND-IN CT features
(``stand_in_embeddings``: a noisy copy of the generator's latent score, NOT the classifier's
embeddings), and with the fast single combination "LASSO" so the module runs in seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from nbrisk_ui import prognosis as ui_prognosis
from nbrisk_ui import state
from nbrisk_ui.text import plain

PAGES = Path(__file__).resolve().parents[2] / "pages"
TIMEOUT = 120


def _write_tables_only_cohort(out: Path, n_patients: int = 60) -> None:
    """clinical.csv, truth.csv and cohort.json of the demo generator, without images."""
    from nbrisk_core.demo.cohort import CLINICAL_COLUMNS, TRUTH_COLUMNS, generate_cohort_tables

    table = generate_cohort_tables(n_patients)
    out.mkdir(parents=True)
    table[list(CLINICAL_COLUMNS)].to_csv(out / "clinical.csv", index=False)
    truth = table.reindex(columns=list(TRUTH_COLUMNS))  # image truth left blank: no images here
    truth.to_csv(out / "truth.csv", index=False)
    meta = {"name": "tiny-test", "synthetic": True, "seed": 0, "n_patients": n_patients,
            "generator_version": "test", "example_patients": ["P0003"]}
    (out / "cohort.json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from nbrisk_core.prognosis.pipeline import stand_in_embeddings

    path = tmp_path_factory.mktemp("prognosis_pages") / "cohort"
    _write_tables_only_cohort(path)
    truth = pd.read_csv(path / "truth.csv", dtype={"patient_id": str})
    embeddings = stand_in_embeddings(truth)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ui_prognosis, "load_embeddings", lambda cohort_dir: embeddings)
        pipeline = ui_prognosis.fit_pipeline(str(path), "app", "LASSO")
    clinical = pd.read_csv(path / "clinical.csv", dtype={"patient_id": str})
    return path, embeddings, pipeline, clinical


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path, monkeypatch):
    """Whatever the pages write (a full search's bundle, audit events) goes to this test's folder, never to
    the checkout's models/ or data/; no CV results unless a test writes them."""
    monkeypatch.setenv("NBRISK_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("NBRISK_DATABASE_URL", f"sqlite:///{tmp_path / 'pages.db'}")
    monkeypatch.setenv("NBRISK_CV_DIR", str(tmp_path / "cv"))
    yield
    from nbrisk_core.store import dispose_engines

    dispose_engines()


@pytest.fixture
def fitted_app(cohort, monkeypatch):
    """Point the app at the tiny cohort and serve the fitted pipeline from the page helper."""
    path, embeddings, pipeline, _ = cohort
    monkeypatch.setenv("NBRISK_DATA_DIR", str(path))
    monkeypatch.setattr(ui_prognosis, "load_embeddings", lambda cohort_dir: embeddings)
    monkeypatch.setattr(ui_prognosis, "fit_pipeline", lambda cohort_dir, grid, selected=None: pipeline)
    _clear_caches()
    yield cohort
    _clear_caches()


def _clear_caches():
    ui_prognosis.get_pipeline.clear()
    ui_prognosis.cohort_embedding_table.clear()
    from nbrisk_ui.common import load_cohort_tables

    load_cohort_tables.clear()


def _page(name: str) -> AppTest:
    return AppTest.from_file(str(PAGES / name), default_timeout=TIMEOUT)


def _button(at, label_start: str):
    matches = [b for b in at.button if b.label.startswith(label_start)]
    assert matches, f"no button starting {label_start!r} in {[b.label for b in at.button]}"
    return matches[0]


def _number_input(at, label_start: str):
    """A numeric field of the form (a text field: the core parses it, see tests/security/test_labs.py)."""
    return next(n for n in at.text_input if n.label.startswith(label_start))


# ------------------------------------------------------------------ without embeddings
@pytest.mark.parametrize("page", ["3_Prognosis.py", "4_Cohort.py"])
def test_pages_explain_missing_embeddings(page, cohort, tmp_path, monkeypatch):
    path = cohort[0]
    monkeypatch.setenv("NBRISK_DATA_DIR", str(path))
    monkeypatch.setenv("NBRISK_MODELS_DIR", str(tmp_path / "no_models"))  # no shipped classifier
    _clear_caches()
    at = _page(page).run()
    assert not at.exception
    messages = [e.value for e in at.error]
    assert any("embeddings" in m and "missing" in m for m in messages), messages
    assert any("nbrisk embed" in i.value for i in at.info)
    assert not at.get("plotly_chart")
    _clear_caches()


@pytest.mark.parametrize("page", ["3_Prognosis.py", "4_Cohort.py"])
def test_pages_explain_missing_cohort(page, tmp_path, monkeypatch):
    monkeypatch.setenv("NBRISK_DATA_DIR", str(tmp_path / "nowhere"))
    _clear_caches()
    at = _page(page).run()
    assert not at.exception
    assert any("nbrisk demo build" in e.value for e in at.error)


# ------------------------------------------------------------------ Prognosis page
def test_prognosis_page_demo_patient(fitted_app):
    path, embeddings, pipeline, clinical = fitted_app
    at = _page("3_Prognosis.py").run()
    assert not at.exception
    assert any("Demo" in i.value and "P0003" in i.value for i in at.info)
    assert at.selectbox(key=state.PROGNOSIS_DEMO_PATIENT).value == "P0003"
    # fill the form with the demo patient's values, then predict
    _button(at, "Fill the form").click().run()
    row = clinical.set_index("patient_id").loc["P0003"]
    assert float(_number_input(at, "Age at diagnosis").value) == pytest.approx(row["age_months"])
    _button(at, "Predict survival").click().run()
    assert not at.exception, at.exception
    result = at.session_state[state.PROGNOSIS_RESULT]
    entered = at.session_state[state.CLINICAL_VALUES]
    expected = pipeline.predict_patient(embeddings.loc["P0003"].to_numpy(), entered)
    assert result.mlrs == pytest.approx(expected.mlrs)
    assert result.group == expected.group
    assert result.embedding_source == "demo patient P0003"
    assert at.metric[0].value == f"{expected.mlrs:.3g}"
    assert at.metric[2].value == ("High" if expected.group == "high" else "Low")
    assert len(at.get("plotly_chart")) == 2   # the curve over the cohort's KM curves, the nomogram
    assert len(at.get("download_button")) == 2
    # labs the demo table leaves blank are reported as imputed
    blank = [c for c in ("nse", "ferritin", "ldh", "ca125", "ca153", "ca199", "afp", "cea", "crp", "wbc",
                         "hemoglobin") if pd.isna(row[c])]
    assert sorted(result.imputed) == sorted(blank)
    if blank:
        assert any("Imputed" in w.value for w in at.warning)
    assert any("Individual prediction took" in c.value for c in at.caption)


def test_prognosis_page_nomogram_marks_the_patient_and_compares_a_scenario(fitted_app):
    from nbrisk_core.prognosis.nomogram import nomogram_for_pipeline, patient_row
    from nbrisk_core.prognosis.nomogram_plots import survival_difference

    _, _, pipeline, clinical = fitted_app
    at = _page("3_Prognosis.py").run()
    _button(at, "Fill the form").click().run()
    _button(at, "Predict survival").click().run()
    assert not at.exception, at.exception
    assert any(h.value == "Nomogram" for h in at.subheader)
    result = at.session_state[state.PROGNOSIS_RESULT]
    nomogram = nomogram_for_pipeline(pipeline, clinical)
    row, _ = patient_row(nomogram, result.mlrs, at.session_state[state.CLINICAL_VALUES], result.imputed_values)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Total points"] == f"{sum(nomogram.points(row).values()):.1f}"
    survival = nomogram.survival(row).iloc[0].to_numpy()
    assert [metrics[f"Survival ({t:g} y)"] for t in (1, 3, 5)] == [f"{v:.1%}" for v in survival]
    figure = json.loads(at.get("plotly_chart")[1].proto.spec)
    patient = next(t for t in figure["data"] if t.get("name") == "patient")
    assert patient["x"][0] == pytest.approx(nomogram.points(row)["mlrs"])   # the MLRS axis
    # scenario: flip MYCN amplification, compare
    flipped = "0" if str(int(row["mycn_amplified"])) == "1" else "1"
    at.selectbox(key=state.NOMOGRAM_FORM + "mycn_amplified").set_value(flipped)
    _button(at, "Compare scenario").click().run()
    assert not at.exception, at.exception
    scenario = at.session_state[state.NOMOGRAM_SCENARIO]
    assert scenario["mycn_amplified"] == flipped and scenario["mlrs"] == pytest.approx(row["mlrs"])
    charts = at.get("plotly_chart")
    assert len(charts) == 3   # curve, nomogram with both marked, the two survival curves
    names = {t.get("name") for t in json.loads(charts[1].proto.spec)["data"]}
    assert {"patient", "scenario"} <= names
    curves = json.loads(charts[2].proto.spec)["data"]
    assert [t["name"] for t in curves] == ["patient", "scenario"]
    table = at.dataframe[0].value
    expected = survival_difference(nomogram, row, scenario)
    np.testing.assert_allclose(table["difference (scenario - patient)"], [r["difference"] for r in expected],
                               atol=1e-12)
    assert any("MYCN amplification" in c.value for c in at.caption if c.value.startswith("Scenario changes"))


def test_prognosis_page_says_when_the_bundle_has_no_nomogram(fitted_app, monkeypatch):
    _, _, pipeline, _ = fitted_app
    monkeypatch.setitem(ui_prognosis._SOURCES, pipeline,
                        {"kind": "bundle", "name": "old_bundle", "sha256": "0" * 64, "nomogram": None})
    at = _page("3_Prognosis.py").run()
    _button(at, "Fill the form").click().run()
    _button(at, "Predict survival").click().run()
    assert not at.exception, at.exception
    assert any("No nomogram in this bundle" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) == 1 and not any(b.label == "Compare scenario" for b in at.button)


def _risk(vector, p_high_risk: float = 0.5):
    """The Risk page's result (nbrisk_core.case.RiskResult) with this embedding."""
    from nbrisk_core.case import RiskResult, VariantScore

    return RiskResult(scores={"art": VariantScore("art", "Swin-ART", p_high_risk, "HR", 0.5, "a" * 64)},
                      embedding=np.asarray(vector, dtype=float))


def test_prognosis_page_uses_the_risk_page_embedding(fitted_app):
    _, embeddings, pipeline, _ = fitted_app
    vector = embeddings.iloc[10].to_numpy() + 0.5
    at = _page("3_Prognosis.py")
    at.session_state[state.RISK_RESULT] = _risk(vector, 0.7)
    at.run()
    assert not at.exception
    assert any("current case" in s.value for s in at.success)
    _number_input(at, "Age at diagnosis").set_value("30")
    _button(at, "Predict survival").click().run()
    assert not at.exception
    result = at.session_state[state.PROGNOSIS_RESULT]
    expected = pipeline.predict_patient(vector, {"age_months": {"value": 30.0, "unit": "months"}})
    assert result.mlrs == pytest.approx(expected.mlrs)
    assert result.embedding_source == "risk page"
    assert "sex" in result.imputed and "age_months" not in result.imputed
    # the reference curves kept for the PDF are the page's: KM of the training cohort by MLRS group
    import json

    traces = {t.get("name") for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
    assert set(result.reference_curves) == {"high MLRS (training)", "low MLRS (training)"}
    assert all(any(label in str(name) for name in traces) for label in result.reference_curves), traces
    # each imputed variable is shown with the value MICE-PMM filled in
    imputed_sex = result.imputed_values["sex"]
    assert imputed_sex in ("F", "M")
    assert any("Imputed" in w.value and f"Sex = {imputed_sex}" in w.value for w in at.warning)
    # the same value entered in years gives the same prediction (unit-aware form)
    at2 = _page("3_Prognosis.py")
    at2.session_state[state.RISK_RESULT] = _risk(vector)
    at2.run()
    _number_input(at2, "Age at diagnosis").set_value("2.5")
    at2.selectbox(key=state.PROGNOSIS_FORM + "age_months.unit").set_value("years")
    _button(at2, "Predict survival").click().run()
    assert at2.session_state[state.PROGNOSIS_RESULT].mlrs == pytest.approx(expected.mlrs)


def test_prognosis_page_prefills_age_and_sex_from_the_study_header(fitted_app):
    _, embeddings, pipeline, _ = fitted_app
    vector = embeddings.iloc[4].to_numpy()
    at = _page("3_Prognosis.py")
    at.session_state[state.RISK_RESULT] = _risk(vector)
    at.session_state[state.CASE] = {"age_months": 27.0, "sex": "F", "phases": {}}
    at.run()
    assert not at.exception
    assert _number_input(at, "Age at diagnosis").value == "27"
    assert at.selectbox(key=state.PROGNOSIS_FORM + "sex").value == "F"
    assert any("DICOM header" in c.value for c in at.caption)
    _button(at, "Predict survival").click().run()
    result = at.session_state[state.PROGNOSIS_RESULT]
    # age and sex are entered from the header, never imputed against it
    assert "sex" not in result.imputed and "age_months" not in result.imputed
    expected = pipeline.predict_patient(vector, {"age_months": {"value": 27.0, "unit": "months"}, "sex": "F"})
    assert result.mlrs == pytest.approx(expected.mlrs)
    # a user's change is used and survives the rerun (the header fills the form once per case)
    at.selectbox(key=state.PROGNOSIS_FORM + "sex").set_value("M")
    _button(at, "Predict survival").click().run()
    assert at.selectbox(key=state.PROGNOSIS_FORM + "sex").value == "M"
    assert at.session_state[state.CLINICAL_VALUES]["sex"] == "M"
    # a header value the schema does not accept is not prefilled
    assert ui_prognosis.header_prefill({"age_months": 400.0, "sex": "O"}) == {}


def test_prognosis_page_shows_validation_errors(fitted_app):
    at = _page("3_Prognosis.py").run()
    _number_input(at, "Age at diagnosis").set_value("500")
    _button(at, "Predict survival").click().run()
    assert not at.exception
    messages = [plain(e.value) for e in at.error]  # shown as text: Markdown characters escaped
    assert any("age_months" in m and "500" in m and "outside" in m for m in messages), messages
    assert state.PROGNOSIS_RESULT not in at.session_state


# ------------------------------------------------------------------ Cohort page
def test_cohort_page_renders_and_marks_the_current_patient(fitted_app):
    _, embeddings, pipeline, clinical = fitted_app
    current = pipeline.predict_patient(embeddings.iloc[0].to_numpy(), {})
    at = _page("4_Cohort.py")
    from nbrisk_core.case import Prognosis

    at.session_state[state.PROGNOSIS_RESULT] = Prognosis(times=current.times, survival=current.survival,
                                                         mlrs=current.mlrs, percentile=current.percentile,
                                                         group=current.group, cutoff=current.cutoff,
                                                         model=current.model)
    at.run()
    assert not at.exception, at.exception
    charts = at.get("plotly_chart")
    # heatmap, 2 KM + 2 risk-factor, distribution, 2 td-ROC, 2 DCA + 2 calibration, forest, 4 associations
    assert len(charts) >= 15, len(charts)
    assert any("current patient" in c.value for c in at.caption)
    assert any("uses one combination" in i.value for i in at.info)
    # the td-AUC table has the 1/3/5/7-year rows of both cohorts
    tables = at.dataframe
    assert any({"cohort", "years", "auc", "low", "high"} <= set(t.value.columns) for t in tables)
    # subgroup filter: MYCN-amplified only; the MYCN comparison then cannot be made, and says so
    at.multiselect(key=state.COHORT_WIDGETS + "mycn").set_value(["amplified"]).run()
    assert not at.exception
    n_sub = int(clinical["mycn_amplified"].eq(1).sum())
    assert any(c.value.startswith(f"{n_sub} of {len(pipeline.patients_)} patients") for c in at.caption)
    assert any("Associations need both groups" in i.value for i in at.info)


def test_cohort_page_baseline_table(fitted_app):
    _, _, pipeline, _ = fitted_app
    at = _page("4_Cohort.py").run()
    assert not at.exception
    baseline = [t.value for t in at.dataframe if "model" in t.value.columns]
    assert baseline, "no baseline table"
    table = baseline[0]
    assert set(table["model"]) == {"MLRS", "LASSO-Cox (clinical only)"}
    test_row = table[(table["model"] == "LASSO-Cox (clinical only)") & (table["cohort"] == "Testing cohort")]
    assert test_row["c_index"].iloc[0] == pytest.approx(pipeline.baseline_.c_index_test_)
    assert np.isfinite(table["c_index"]).all()


def test_cohort_page_td_auc_matches_the_pipeline_summary(fitted_app):
    # the page, summary.json and `nbrisk benchmark` must give the same numbers for the whole cohort
    _, _, pipeline, _ = fitted_app
    at = _page("4_Cohort.py").run()
    assert not at.exception
    table = next(t.value for t in at.dataframe if {"years", "auc"} <= set(t.value.columns))
    compared = 0
    for cohort, label in (("train", "Training cohort"), ("test", "Testing cohort")):
        for years, (auc, low, high) in pipeline.summary_["td_auc"][cohort].items():
            row = table[(table["cohort"] == label) & (table["years"] == float(years))]
            assert len(row) == 1
            if auc is None:
                assert np.isnan(row["auc"].iloc[0])
                continue
            assert row["auc"].iloc[0] == pytest.approx(auc, abs=1e-12)
            assert (row["low"].iloc[0], row["high"].iloc[0]) == pytest.approx((low, high), abs=1e-12)
            compared += 1
    assert compared >= 4


def test_summary_csv_round_trips(fitted_app):
    import io

    from nbrisk_core.service import prognose_case

    _, embeddings, pipeline, _ = fitted_app
    prognosis = prognose_case(pipeline, embeddings.iloc[2].to_numpy(), {"age_months": 40},
                              embedding_source="demo patient P0003")
    result = prognosis
    text = ui_prognosis.summary_csv(result, {"name": "tiny-test", "synthetic": True})
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert "synthetic=True" in header[0] and "research use only" in header[0]
    assert f"mlrs={prognosis.mlrs:.6g}" in header[1] and f"group={prognosis.group}" in header[1]
    # each imputed variable carries the value MICE-PMM filled in
    assert f"imputed=sex={prognosis.imputed_values['sex']};" in header[2]
    curve = pd.read_csv(io.StringIO(text), comment="#")
    np.testing.assert_allclose(curve["time_days"], prognosis.times)
    np.testing.assert_allclose(curve["survival"], prognosis.survival)


def test_cohort_page_full_search_button_switches_the_session_to_the_full_grid(cohort, monkeypatch):
    path, embeddings, pipeline, _ = cohort
    asked = []

    def fake_fit(cohort_dir, grid, selected=None):
        asked.append((grid, selected))
        return pipeline

    monkeypatch.setenv("NBRISK_DATA_DIR", str(path))
    monkeypatch.setattr(ui_prognosis, "load_embeddings", lambda cohort_dir: embeddings)
    monkeypatch.setattr(ui_prognosis, "fit_pipeline", fake_fit)
    _clear_caches()
    try:
        at = _page("4_Cohort.py")
        at.run()
        assert not at.exception, at.exception
        assert asked == [("app", ui_prognosis.APP_MODEL)]
        _button(at, "Run the full model search").click().run()
        assert not at.exception, at.exception
        assert at.session_state[state.PROGNOSIS_GRID] == "full"
        assert asked[-1] == ("full", None)  # fitted once, then served from the cache
    finally:
        _clear_caches()


# ------------------------------------------------------------------ full search -> the cohort's bundle
ADMIN_PASSWORD = "admin-pass-for-pages-123"


def _signed_in_cohort_page(cohort, monkeypatch, username: str, role: str) -> tuple[AppTest, list]:
    """The Cohort page with sign-in on and ``username`` (``role``) signed in; the full search is the tiny
    fitted pipeline (``asked`` records the grids the page asked for)."""
    from nbrisk_core.store import get_engine, users

    path, embeddings, pipeline, _ = cohort
    asked = []

    def fake_fit(cohort_dir, grid, selected=None):
        asked.append(grid)
        return pipeline

    monkeypatch.setenv("NBRISK_AUTH", "on")
    monkeypatch.setenv("NBRISK_DATA_DIR", str(path))
    monkeypatch.setattr(ui_prognosis, "load_embeddings", lambda cohort_dir: embeddings)
    monkeypatch.setattr(ui_prognosis, "fit_pipeline", fake_fit)
    users.add_user(get_engine(os.environ["NBRISK_DATABASE_URL"]), username, ADMIN_PASSWORD, role, by="test")
    _clear_caches()
    at = _page("4_Cohort.py")
    at.session_state[state.USER] = {"username": username, "role": role}
    return at, asked


def _bundle_events():
    from nbrisk_core.store import audit, get_engine

    return audit.list_events(get_engine(os.environ["NBRISK_DATABASE_URL"]), action="prognosis_bundle_saved")


def test_full_search_by_an_admin_ends_by_writing_the_cohorts_bundle(cohort, monkeypatch, tmp_path):
    from nbrisk_core.prognosis.bundle import load_pipeline

    path, _, pipeline, clinical = cohort
    at, asked = _signed_in_cohort_page(cohort, monkeypatch, "adam", "admin")
    try:
        at.run()
        assert not at.exception, at.exception
        assert not (tmp_path / "models").exists()   # nothing is written before the search
        _button(at, "Run the full model search and save it").click().run()
        assert not at.exception, at.exception
        assert at.session_state[state.PROGNOSIS_GRID] == "full" and "full" in asked
        bundle_dir = tmp_path / "models" / f"prognosis_{path.name}"
        loaded = load_pipeline(bundle_dir)   # verified: SHA-256 of both files, schema, versions
        assert loaded.card["created_by"].startswith("nbrisk dashboard")
        np.testing.assert_allclose(loaded.pipeline.patients_["mlrs"], pipeline.patients_["mlrs"], rtol=0, atol=1e-12)
        saved = [s.value for s in at.success if "Saved as the cohort's model" in s.value]
        assert saved and loaded.sha256[:12] in saved[0]
        assert not list((tmp_path / "models").glob(".incoming/*"))   # the temporary folder was renamed
        events = _bundle_events()
        assert [(e.username, e.model_sha256) for e in events] == [("adam", loaded.sha256)]
        detail = events[0].detail
        assert detail["bundle"] == bundle_dir.name and detail["selected"] == pipeline.selected_
        assert detail["replaced_backup"] is None
        # no patient-identifying value in the event: no patient id, no patient's lab value
        text = json.dumps(detail)
        assert not any(pid in text for pid in clinical["patient_id"])

        # a second save replaces the bundle and keeps the first as a dated backup
        at.session_state[state.PROGNOSIS_BUNDLE_SAVED] = None
        at.run()
        _button(at, "Save these results as the cohort's model").click().run()
        assert not at.exception, at.exception
        backups = list((tmp_path / "models" / "backups").iterdir())
        assert len(backups) == 1 and backups[0].name.startswith(f"{bundle_dir.name}-")
        assert load_pipeline(backups[0]).sha256 == loaded.sha256
        newest = _bundle_events()[0]
        assert newest.model_sha256 == load_pipeline(bundle_dir).sha256
        assert newest.detail["replaced_backup"] == f"backups/{backups[0].name}"
    finally:
        _clear_caches()


def test_full_search_by_a_clinician_shows_the_results_but_saves_nothing(cohort, monkeypatch, tmp_path):
    at, asked = _signed_in_cohort_page(cohort, monkeypatch, "clara", "clinician")
    try:
        at.run()
        assert not at.exception, at.exception
        assert not [b for b in at.button if b.label.startswith("Run the full model search and save")]
        assert any("Only an admin can save" in c.value for c in at.caption)
        _button(at, "Run the full model search").click().run()
        assert not at.exception, at.exception
        assert at.session_state[state.PROGNOSIS_GRID] == "full" and "full" in asked
        assert any("Only an admin can save them as the cohort's model" in i.value for i in at.info)
        assert at.get("plotly_chart")   # the search's results are shown
        assert not [b for b in at.button if b.label.startswith("Save these results")]
        assert not (tmp_path / "models").exists()
        assert not _bundle_events()
    finally:
        _clear_caches()


def test_the_app_loads_a_newly_saved_bundle_at_its_next_run(cohort, monkeypatch, tmp_path):
    """get_pipeline's cache is keyed on the bundle cards' SHA-256: a bundle saved after the app cached a
    pipeline is loaded at the next call, without clearing any cache."""
    from nbrisk_core.prognosis.bundle import publish_pipeline

    path, embeddings, pipeline, clinical = cohort
    monkeypatch.setattr(ui_prognosis, "load_embeddings", lambda cohort_dir: embeddings)
    monkeypatch.setattr(ui_prognosis, "shipped_classifier_sha256", lambda cohort_dir: "c" * 64)
    provenance = {"source": "classifier", "model_sha256": "c" * 64}
    _clear_caches()
    try:
        first = publish_pipeline(pipeline, path, clinical=clinical, embeddings=provenance)
        loaded = ui_prognosis.app_pipeline(path, "app")
        assert ui_prognosis.app_pipeline(path, "app") is loaded   # cached
        assert first.sha256[:12] in ui_prognosis.pipeline_source(loaded)
        second = publish_pipeline(pipeline, path, clinical=clinical, embeddings=provenance)
        assert second.backup is not None and second.backup.parent.name == "backups"
        reloaded = ui_prognosis.app_pipeline(path, "app")
        assert reloaded is not loaded   # the new bundle, read from disk
        assert second.sha256[:12] in ui_prognosis.pipeline_source(reloaded)
    finally:
        _clear_caches()


# ------------------------------------------------------------------ internal validation (nbrisk benchmark --cv)
def _cv_tab(at):
    return next(t for t in at.tabs if t.label.startswith("Internal validation"))


def test_cohort_page_says_how_to_make_the_cv_results_when_absent(fitted_app, tmp_path):
    at = _page("4_Cohort.py").run()
    assert not at.exception, at.exception
    infos = [i.value for i in _cv_tab(at).info]
    assert any("nbrisk benchmark --cv" in i and str(tmp_path / "cv") in plain(i) for i in infos), infos


def test_cohort_page_shows_the_cv_results(fitted_app, tmp_path):
    from nbrisk_core.cohort.format import cohort_hash

    path = fitted_app[0]
    folds = pd.DataFrame({"repeat": [1, 1, 1, 2, 2, 2], "fold": [1, 2, 3, 1, 2, 3],
                          "selected": ["LASSO", "RSF", "LASSO", "LASSO", "RSF", "LASSO"],
                          "n_test": 20, "events_test": 6,
                          "c_index_heldout": [0.71, 0.64, 0.77, 0.69, 0.58, 0.80],
                          "c_index_internal_test": 0.7})
    cv = tmp_path / "cv"
    cv.mkdir()
    folds.to_csv(cv / "cv_folds.csv", index=False)
    values = folds["c_index_heldout"].to_numpy()
    summary = {"cv": {"folds": 6, "c_index_mean": float(values.mean()), "c_index_sd": float(values.std(ddof=1)),
                      "selected_counts": {"LASSO": 4, "RSF": 2}},
               "k": 3, "repeats": 2, "grid": "test", "features": "both",
               "cohort": {"path": str(path), "sha256": cohort_hash(path)},
               "optimism": {"selected": "LASSO", "apparent": 0.8, "optimism": 0.05, "corrected": 0.75,
                            "n_bootstrap": 10, "failed_resamples": []}}
    (cv / "cv_summary.json").write_text(json.dumps(summary))
    at = _page("4_Cohort.py").run()
    assert not at.exception, at.exception
    tab = _cv_tab(at)
    text = " ".join(m.value for m in tab.markdown)
    assert f"{values.mean():.3f}" in text and f"{values.std(ddof=1):.3f}" in text and "2 x 3-fold" in text
    assert "corrected **0.750**" in text
    assert not tab.warning   # computed on this very cohort
    table = tab.dataframe[0].value.set_index("combination")
    for name in ("LASSO", "RSF"):
        part = values[folds["selected"] == name]
        assert table.loc[name, "times_selected"] == len(part)
        assert table.loc[name, "c_index_mean"] == pytest.approx(part.mean())
        assert table.loc[name, "c_index_sd"] == pytest.approx(part.std(ddof=1))
    assert table.loc["all folds", "c_index_mean"] == pytest.approx(values.mean())
    assert len(tab.dataframe[1].value) == 6   # the per-fold table

    # results of another version of the cohort are flagged
    summary["cohort"]["sha256"] = "0" * 64
    (cv / "cv_summary.json").write_text(json.dumps(summary))
    at.run()
    assert any("another version of this cohort" in w.value for w in _cv_tab(at).warning)


def test_cohort_page_names_a_damaged_cv_file(fitted_app, tmp_path):
    cv = tmp_path / "cv"
    cv.mkdir()
    pd.DataFrame({"repeat": [1], "fold": [1]}).to_csv(cv / "cv_folds.csv", index=False)
    (cv / "cv_summary.json").write_text(json.dumps({"cv": {"folds": 1}}))
    at = _page("4_Cohort.py").run()
    assert not at.exception, at.exception
    errors = [plain(e.value) for e in _cv_tab(at).error]
    assert any("cv_folds.csv" in e and "c_index_heldout" in e for e in errors), errors


# ------------------------------------------------------------------ warm start (nbrisk_ui.warmup)
def test_warm_start_fills_the_cache_the_prognosis_page_reads(cohort, monkeypatch):
    """The server's warm start loads the pipeline and the embeddings once; the first Prognosis page then
    loads nothing (the same cache entries)."""
    from nbrisk_ui import warmup

    path, embeddings, pipeline, _ = cohort
    loads = []
    monkeypatch.setenv("NBRISK_DATA_DIR", str(path))
    monkeypatch.setattr(ui_prognosis, "load_embeddings", lambda cohort_dir: loads.append("embeddings") or embeddings)
    monkeypatch.setattr(ui_prognosis, "fit_pipeline",
                        lambda cohort_dir, grid, selected=None: loads.append(grid) or pipeline)
    _clear_caches()
    try:
        result = warmup.warm()
        assert result["problem"] is None and loads == ["app", "embeddings"]
        at = _page("3_Prognosis.py").run()
        assert not at.exception, at.exception
        assert at.button and loads == ["app", "embeddings"]   # nothing loaded again
    finally:
        _clear_caches()


def test_warm_start_without_a_cohort_reports_instead_of_raising(tmp_path, monkeypatch):
    from nbrisk_ui import warmup

    monkeypatch.setenv("NBRISK_DATA_DIR", str(tmp_path / "nowhere"))
    _clear_caches()
    result = warmup.warm()
    assert result["problem"] and "nowhere" in result["problem"]
    monkeypatch.setenv("NBRISK_WARM_START", "off")
    assert warmup.start() is None
