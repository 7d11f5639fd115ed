"""Every command on any cohort: a second synthetic site, imported with `nbrisk cohort import` from its own
spreadsheet and marked real (``synthetic: false``, no truth.csv), trains a tiny classifier, embeds, is
evaluated, runs the model search and opens in the app, with no synthetic banner and no oracle figure.

Its chosen slices are the demo generator's max-area slices of the same patients (same seed), written
directly in the format of docs/cohort-format.md (``slices.csv`` + ``slices/<patient_id>/``), which keeps
this module fast; ``tests/cohort/test_site_chain.py`` (slow) does the whole chain with the slices proposed
by ``nbrisk cohort slices --auto`` and confirmed through the review API.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.cli import main
from tests.cohort.conftest import MAPPING, site_tables

REPO_ROOT = Path(__file__).resolve().parents[2]
N_PATIENTS = 24
SEED = 4243
#: the patient whose risk group the sheet leaves blank (real sheets have gaps)
NO_RISK_GROUP = "SB-005"


def _chosen_slices(cohort: Path, demo: Path) -> None:
    """slices.csv and slices/<patient_id>/ of the imported cohort from the demo build of the same seed
    (demo patient P0001 is the sheet's SB-001: both come from generate_cohort_tables(n, seed))."""
    rename = {f"P{i:04d}": f"SB-{i:03d}" for i in range(1, N_PATIENTS + 1)}
    slices = pd.read_csv(demo / "slices.csv", dtype=str, keep_default_na=False)
    slices["patient_id"] = slices["patient_id"].map(rename)
    slices["confirmed_by"], slices["confirmed_at"] = "reviewer", "2026-01-01T00:00:00Z"
    slices.to_csv(cohort / "slices.csv", index=False)
    for old, new in rename.items():
        shutil.copytree(demo / "slices" / old, cohort / "slices" / new)


@pytest.fixture(scope="module")
def real_cohort(tmp_path_factory):
    """The imported site (non-synthetic), its slices chosen, and a home for caches: (cohort, home)."""
    from nbrisk_core.demo import build_cohort

    root = tmp_path_factory.mktemp("any-cohort")
    sheet, _ = site_tables(N_PATIENTS, seed=SEED)
    sheet.loc[sheet["Study number"] == NO_RISK_GROUP, "Risk"] = ""   # not in the map: missing
    sheet.to_csv(root / "site.csv", index=False)
    (root / "site.toml").write_text(MAPPING)
    cohort = root / "site-b"
    assert main(["cohort", "import", "--clinical", str(root / "site.csv"),
                 "--mapping", str(root / "site.toml"), "--out", str(cohort)]) == 0
    build_cohort(root / "generated", n_patients=N_PATIENTS, seed=SEED, n_studies=0)
    _chosen_slices(cohort, root / "generated")
    meta = json.loads((cohort / "cohort.json").read_text())
    assert meta["synthetic"] is False and not (cohort / "truth.csv").exists()
    home = root / "home"
    (home / "models").mkdir(parents=True)   # NBRISK_MODELS_DIR: empty, the cohort's own models/ are used
    return cohort, home


@pytest.fixture
def site_env(real_cohort, monkeypatch):
    cohort, home = real_cohort
    monkeypatch.setenv("NBRISK_HOME", str(home))   # caches (data/embeddings) go there, not into the checkout
    monkeypatch.setenv("NBRISK_DATA_DIR", str(cohort))
    monkeypatch.setenv("NBRISK_MODELS_DIR", str(home / "models"))
    return cohort


@pytest.fixture(scope="module")
def trained(real_cohort):
    """`nbrisk train --tiny` (1 epoch) with the model written next to the cohort: (output, card)."""
    cohort, home = real_cohort
    import contextlib
    import io

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBRISK_HOME", str(home))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["train", "--tiny", "--cohort", str(cohort), "--run", str(home / "run"),
                         "--out", str(cohort / "models" / "swin_art_demo"), "--epochs", "1",
                         "--batch-size", "8", "--no-progress", "--threads", "1"])
    assert code == 0, out.getvalue()
    card = json.loads((cohort / "models" / "swin_art_demo.json").read_text())
    return out.getvalue(), card


def test_models_are_found_next_to_the_cohort_else_in_models_dir(tmp_path, monkeypatch):
    from nbrisk_core.classifier.model_io import shipped_model_path
    from nbrisk_core.config import cohort_models_dir

    monkeypatch.setenv("NBRISK_MODELS_DIR", str(tmp_path / "shared"))
    assert cohort_models_dir(tmp_path / "c") == (tmp_path / "shared").resolve()
    assert shipped_model_path("art", tmp_path / "c").parent == (tmp_path / "shared").resolve()
    (tmp_path / "c" / "models").mkdir(parents=True)
    assert cohort_models_dir(tmp_path / "c") == (tmp_path / "c" / "models").resolve()
    own = (tmp_path / "c" / "models" / "swin_art_demo.safetensors").resolve()
    assert shipped_model_path("art", tmp_path / "c") == own
    assert cohort_models_dir(None) == (tmp_path / "shared").resolve()


def test_patients_without_slices_or_risk_group_are_left_out_and_named(real_cohort, tmp_path):
    from nbrisk_core.classifier.data import load_cohort_images, skipped_note
    from nbrisk_core.errors import InputError

    cohort, _ = real_cohort
    copy = tmp_path / "partial"
    shutil.copytree(cohort, copy, ignore=shutil.ignore_patterns("models"))
    for pid in ("SB-001", "SB-002"):
        shutil.rmtree(copy / "slices" / pid)
    data = load_cohort_images(copy, "art")
    assert data.skipped == {"no slices": ["SB-001", "SB-002"], "no risk_group": [NO_RISK_GROUP]}
    assert len(data.patient_ids) == N_PATIENTS - 3 and NO_RISK_GROUP not in data.patient_ids
    note = skipped_note(data.skipped, N_PATIENTS)
    assert note.startswith(f"left out 3 of {N_PATIENTS} patients")
    assert "SB-001" in note and NO_RISK_GROUP in note
    # embeddings need no label: the patient without a risk group is kept (label -1)
    unlabelled = load_cohort_images(copy, "art", labels=False)
    assert NO_RISK_GROUP in unlabelled.patient_ids and list(unlabelled.skipped) == ["no slices"]
    assert unlabelled.labels[unlabelled.patient_ids.index(NO_RISK_GROUP)] == -1
    # a cohort just imported (no slice chosen yet) says so, with the count
    shutil.rmtree(copy / "slices")
    expected = f"none of the {N_PATIENTS} patients.*{N_PATIENTS} have no slices chosen"
    with pytest.raises(InputError, match=expected):
        load_cohort_images(copy, "art")


def test_train_evaluate_embed_on_a_real_cohort(trained, site_env, capsys):
    cohort = site_env
    output, card = trained
    assert f"left out 1 of {N_PATIENTS} patients: 1 without risk_group ({NO_RISK_GROUP})" in output
    assert card["training_cohort"]["synthetic"] is False and not card.get("synthetic_data")
    assert card["training_cohort"]["left_out"] == {"no risk_group": 1}
    assert card["training_cohort"]["oracle_auc"] is None and card["split"]["counts"]["test"] >= 2
    # evaluate: the model next to the cohort is the default; no oracle line on a real cohort
    assert main(["evaluate", "--cohort", str(cohort), "--split", "train,test", "--threads", "1"]) == 0
    out, err = capsys.readouterr()
    assert "AUC" in out and "oracle" not in out and NO_RISK_GROUP in err
    # embed: every patient with slices, the one without a risk group too; the cache lands under NBRISK_HOME
    emb = cohort.parent / "emb.csv"
    assert main(["embed", "--cohort", str(cohort), "--out", str(emb), "--threads", "1"]) == 0
    table = pd.read_csv(emb, dtype={"patient_id": str})
    assert len(table) == N_PATIENTS and NO_RISK_GROUP in set(table["patient_id"])
    assert np.isfinite(table.filter(like="ct").to_numpy()).all()
    assert list((cohort.parent / "home" / "data" / "embeddings").glob("*.parquet"))


def test_benchmark_on_a_real_cohort_has_no_oracle(trained, site_env, capsys):
    cohort = site_env
    out = cohort.parent / "bench"
    # default features: the classifier's embeddings (model found next to the cohort), CT + clinical
    assert main(["benchmark", "--data", str(cohort), "--out", str(out), "--grid", "test", "--n-jobs", "1",
                 "--backend", "loky", "--quiet", "--no-figures"]) == 0
    printed = capsys.readouterr().out
    assert "oracle" not in printed
    summary = json.loads((out / "summary.json").read_text())
    assert "oracle_c_index_test" not in summary and summary["embeddings"] == "classifier"
    assert summary["feature_set"] == "both"
    assert len(pd.read_csv(out / "patients.csv")) == N_PATIENTS
    # a stand-in needs the known truth: a real cohort says "no known truth" (exit 2)
    assert main(["benchmark", "--data", str(cohort), "--out", str(out), "--stand-in-embeddings"]) == 2
    assert "no known truth" in capsys.readouterr().err


def _banners(at) -> list[str]:
    return [w.value for w in at.warning if "Synthetic" in w.value or "synthetic" in w.value]


def test_home_page_on_a_real_cohort_has_no_synthetic_banner(site_env):
    from streamlit.testing.v1 import AppTest

    from nbrisk_ui.common import load_cohort_tables

    load_cohort_tables.clear()
    at = AppTest.from_file(str(REPO_ROOT / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert not _banners(at)
    assert not any("Demo models are trained" in c.value for c in at.caption)
    metrics = {m.label: m for m in at.metric}
    assert metrics["Patients"].value == str(N_PATIENTS)
    assert "1 unknown" in str(metrics["High risk / non-high risk"].proto.delta)
    assert not any("seed" in c.value for c in at.caption)   # a generator's seed: synthetic cohorts only
    load_cohort_tables.clear()


def test_cohort_page_on_a_real_cohort_has_no_banner_and_no_oracle(trained, site_env):
    from streamlit.testing.v1 import AppTest

    from nbrisk_ui import prognosis as ui_prognosis
    from nbrisk_ui.common import load_cohort_tables

    load_cohort_tables.clear()
    ui_prognosis.get_pipeline.clear()
    ui_prognosis.cohort_embedding_table.clear()
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "4_Cohort.py"), default_timeout=300).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert not _banners(at)
    page_text = " ".join(str(e.value) for e in [*at.markdown, *at.caption, *at.info])
    assert "combinations fitted" in page_text and f"of {N_PATIENTS} patients" in page_text   # it rendered
    assert "oracle" not in page_text.lower()
    load_cohort_tables.clear()
    ui_prognosis.get_pipeline.clear()


def test_reproduce_report_and_pdf_notice_follow_the_cohort(tmp_path):
    """The synthetic-data wording of the reproduction report and the case PDF: only for synthetic data."""
    from nbrisk_core import RESEARCH_NOTICE, RESEARCH_USE, SYNTHETIC_MODELS, research_notice
    from nbrisk_core.report.pdf import synthetic_case
    from nbrisk_core.reproduce.report import render_html

    assert research_notice(True) == RESEARCH_NOTICE and research_notice(False) == RESEARCH_USE
    real = render_html([], {"synthetic cohort": False})
    assert "Synthetic data" not in real and SYNTHETIC_MODELS not in real and RESEARCH_USE in real
    assert "Synthetic data" in render_html([], {"synthetic cohort": True})

    def record(prognosis_result=None):
        import numpy as np

        from nbrisk_core.case import Case, Prognosis

        if not prognosis_result:
            return Case()
        return Case(prognosis=Prognosis(times=np.zeros(1), survival=np.ones(1), mlrs=0.0, percentile=50.0,
                                        group="low", cutoff=0.0, model="m", **prognosis_result))

    # a model trained on a real cohort (nbrisk train writes training_cohort.synthetic = false)
    assert not synthetic_case(record(), {"training_cohort": {"synthetic": False}})
    assert synthetic_case(record(), {"synthetic_data": True, "training_cohort": {"synthetic": True}})
    assert not synthetic_case(record({"synthetic": False}), None)   # prognosis fitted on a real cohort
    assert synthetic_case(record(), {"training_cohort": {"name": "x"}})   # unknown: the full notice


@pytest.mark.slow
def test_reproduce_quick_profile_on_a_real_cohort(real_cohort, tmp_path, monkeypatch):
    cohort, home = real_cohort
    monkeypatch.setenv("NBRISK_HOME", str(home))
    out = tmp_path / "report"
    assert main(["reproduce", "--data", str(cohort), "--profile", "quick", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["stages"]["oracle"]["available"] is False
    assert "no oracle" in report["stages"]["oracle"]["reason"]
    html = (out / "report.html").read_text()
    assert "<b>Synthetic data.</b>" not in html and report["meta"]["synthetic cohort"] is False
    for spec in ("art",):
        assert 0.0 <= report["stages"][f"classifier_swin_{spec}"]["test"]["auc"]["value"] <= 1.0


@pytest.mark.parametrize("page", ["1_Case.py", "2_Risk.py", "3_Prognosis.py"])
def test_other_pages_open_on_a_real_cohort_without_banner(page, trained, site_env):
    from streamlit.testing.v1 import AppTest

    from nbrisk_ui.common import load_cohort_tables

    load_cohort_tables.clear()
    at = AppTest.from_file(str(REPO_ROOT / "pages" / page), default_timeout=300).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]   # the Risk page finds the model next to the cohort
    assert not _banners(at)
    load_cohort_tables.clear()
