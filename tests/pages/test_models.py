"""The Models page (AppTest): the comparison table and plots from a compare output folder, the message with
the exact command when there is none, and an administrator's run from the page."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.compare.conftest import write_tiny_comparison

PAGE = "pages/8_Models.py"
TIMEOUT = 120


def _page(repo_root):
    at = AppTest.from_file(str(repo_root / PAGE), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def test_table_and_plots_of_a_comparison(repo_root, demo_dir, tmp_path, monkeypatch):
    out = tmp_path / "compare"
    report = write_tiny_comparison(out)
    monkeypatch.setenv("NBRISK_COMPARE_DIR", str(out))
    at = _page(repo_root)
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert list(table["model"]) == ["clinical_lr", "swin_art", "oracle"]
    auc = report["models"]["oracle"]["test"]["auc"]
    assert table.set_index("model").loc["oracle", "test AUC (95% CI)"].startswith(f"{auc:.3f}")
    assert len(at.get("plotly_chart")) == 3              # ROC, calibration, decision curve of the test split
    at.radio(key="models.set").set_value("cv").run()
    assert not at.exception and len(at.get("plotly_chart")) == 1
    assert not any("No model comparison" in i.value for i in at.info)


def test_no_comparison_says_the_exact_command(repo_root, demo_dir, tmp_path, monkeypatch):
    out = tmp_path / "none-yet"
    monkeypatch.setenv("NBRISK_COMPARE_DIR", str(out))
    at = _page(repo_root)
    message = at.info[0].value
    assert "No model comparison" in message and f"--out {out}" in message and "nbrisk compare --cohort" in message
    assert len(at.dataframe) == 0


def test_a_broken_report_is_an_error_naming_it(repo_root, demo_dir, tmp_path, monkeypatch):
    out = tmp_path / "broken"
    out.mkdir()
    (out / "report.json").write_text("[1, 2]")
    monkeypatch.setenv("NBRISK_COMPARE_DIR", str(out))
    at = _page(repo_root)
    assert any("expected an nbrisk compare report" in e.value and "broken" in e.value for e in at.error)


@pytest.mark.slow
def test_an_admin_runs_the_comparison_from_the_page(repo_root, demo_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setenv("NBRISK_COMPARE_DIR", str(out))
    at = _page(repo_root)                                  # sign-in off: everyone is administrator
    at.multiselect(key="models.models").set_value(["clinical_lr"])
    at.number_input(key="models.folds").set_value(2)
    at.button[0].click().run(timeout=300)
    assert not at.exception, at.exception
    report = json.loads((out / "report.json").read_text())
    assert list(report["models"]) == ["clinical_lr"] and report["folds"] == 2 and report["n"] == 202
    assert at.dataframe[0].value["model"].tolist() == ["clinical_lr"]
