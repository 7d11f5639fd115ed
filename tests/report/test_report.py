"""The case report: PDF content (rendered with poppler), CSV and JSON exports of a typed case."""

from __future__ import annotations

import ast
import csv
import io
import json
import shutil
import subprocess
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from nbrisk_core import RESEARCH_NOTICE
from nbrisk_core.case import (Case, ChosenSlice, PredictionInfo, Prognosis, RiskResult, StoredInfo,
                              VariantScore)
from nbrisk_core.report import case_to_csv, case_to_json, find_model_card, render_pdf

needs_poppler = pytest.mark.skipif(shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
                                   reason="poppler-utils (pdftoppm, pdftotext) is not installed; "
                                          ".ci/system-packages.sh installs it")


@pytest.fixture
def record() -> Case:
    yy, xx = np.mgrid[:96, :96]
    disc = ((yy - 48) ** 2 + (xx - 44) ** 2) < 600
    slices = {p: ChosenSlice(p, 10 + i, 40.0 + 2.5 * i, hu=np.where(disc, 60 + 20 * i, -40).astype(np.int16))
              for i, p in enumerate(("nc", "art", "pv"))}
    cam = np.exp(-((yy - 48) ** 2 + (xx - 44) ** 2) / 400.0)[::4, ::4]  # 24x24, like a Swin stage map
    times = np.linspace(0, 2500, 40)
    risk = RiskResult(scores={"art": VariantScore("art", "Swin-ART", 0.8123, "HR", 0.5, "ab" * 32)},
                      embedding=np.zeros(16), cams={"art": cam})
    prognosis = Prognosis(times=times, survival=np.exp(-times / 3000), mlrs=1.234, percentile=87.0,
                          group="high", cutoff=1.0, model="stepcox_backward+rsf", imputed=("ldh",),
                          imputed_values={"ldh": 456.0}, pipeline_sha256="ef" * 32)
    stored = StoredInfo(case_uid="C0123456789", version=3, created_by="alice", updated_by="bob",
                        reviewed_by="bob", signed_off_by="carol", created_at=datetime(2026, 1, 2, tzinfo=timezone.utc),
                        predictions=(PredictionInfo("risk", "art", "ab" * 32, "cd" * 32),
                                     PredictionInfo("prognosis", "stepcox_backward+rsf", "ef" * 32,
                                                    "01" * 32)))
    return Case(label="P0007", slices=slices, risk=risk, prognosis=prognosis, status="signed_off",
                notes="Left adrenal mass, 6 cm.", stored=stored,
                clinical={"age_months": 30.0, "sex": "F", "nse": 123.4, "ldh": None})


@needs_poppler
def test_pdf_has_every_section_and_renders(record, repo_root):
    cohort = {"HR": (np.array([0, 500, 1500]), np.array([1.0, 0.7, 0.5])),
              "NHR": (np.array([0, 800, 2000]), np.array([1.0, 0.95, 0.9]))}
    models = repo_root / "test-artifacts" / "report" / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / "swin_art_demo.json").write_text(json.dumps({
        "architecture": "swin_tiny_patch4_window7_224", "variant_label": "Swin-ART", "sha256": "ab" * 32,
        "training_cohort": {"name": "nbrisk-synthetic-demo"}, "metrics": {"test": {"auc": {"value": 0.7712}}}}))
    card = find_model_card(models, record.risk.model_sha256)
    pdf = render_pdf(record, cohort_curves=cohort, model_card=card)
    assert pdf.startswith(b"%PDF")
    out = repo_root / "test-artifacts" / "report"
    out.mkdir(parents=True, exist_ok=True)
    (out / "case_report.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(out / "case_report.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout
    flat = " ".join(text.split())
    assert RESEARCH_NOTICE in flat
    for expected in ("P0007", "C0123456789", "0.812", "high risk (HR)", "1.23", "87", "high MLRS",
                     "Lactate dehydrogenase (LDH) *", "imputed", "123.4", "ab" * 32, "carol",
                     "Swin-ART", "nbrisk-synthetic-demo", "0.771", "Left adrenal mass, 6 cm.", "Arterial (ART) + Grad-CAM", "Non-contrast (NC)"):
        assert expected in flat, expected
    assert "Non-contrast (NC) + Grad-CAM" not in flat  # only the ART map was stored
    pages = _render_pages(out / "case_report.pdf", out / "case_report")
    assert len(pages) >= 1
    # Control: the same case without the Grad-CAM map. The overlay is the difference in strongly
    # coloured pixels between the two renders (the notice and the plot lines are in both).
    record = replace(record, risk=replace(record.risk, cams={}))
    (out / "case_report_no_cam.pdf").write_bytes(render_pdf(record, cohort_curves=cohort, model_card=card))
    control = _render_pages(out / "case_report_no_cam.pdf", out / "case_report_no_cam")
    assert _coloured_pixels(pages[0]) - _coloured_pixels(control[0]) > 2000


def _render_pages(pdf_path, prefix):
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf_path), str(prefix)], check=True)
    return sorted(prefix.parent.glob(prefix.name + "-*.png"))


def _coloured_pixels(png_path) -> int:
    from PIL import Image

    rgb = np.asarray(Image.open(png_path).convert("RGB")).astype(int)
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 40).sum())


def test_pdf_without_predictions_still_carries_the_notice(record):
    bare = Case(label="P0001")
    pdf = render_pdf(bare)
    assert pdf.startswith(b"%PDF") and len(pdf) > 1000


def test_json_export_has_values_hashes_and_no_pixels(record):
    data = json.loads(case_to_json(record))
    assert data["notice"] == RESEARCH_NOTICE
    assert (data["risk"]["class"], data["risk"]["p_high_risk"]) == ("HR", 0.8123)
    assert data["clinical_imputed"] == {"ldh": 456.0}
    assert data["slices"]["art"]["shape"] == [96, 96] and len(data["slices"]["art"]["hu_sha256"]) == 64
    assert data["slices"]["art"]["slice_index"] == 11
    cam = data["risk"]["cams"]["art"]
    assert cam["array_shape"] == [24, 24] and len(cam["sha256"]) == 64
    assert data["predictions"][1]["model_sha256"] == "ef" * 32


def test_csv_export_is_long_format(record):
    rows = dict(csv.reader(io.StringIO(case_to_csv(record))))
    assert rows["field"] == "value"
    assert rows["risk.class"] == "HR" and rows["prognosis.group"] == "high"
    assert rows["clinical_imputed.ldh"] == "456.0" and rows["predictions[0].model_sha256"] == "ab" * 32


def _pdf_lines(pdf: bytes, tmp_path) -> list[str]:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    return [" ".join(line.split()) for line in text.splitlines()]


@needs_poppler
def test_pdf_prints_the_imputed_value_marked_as_imputed(record, tmp_path):
    record = replace(record, clinical={**record.clinical, "mycn_amplified": None},
                     prognosis=replace(record.prognosis, imputed=("ldh", "mycn_amplified"),
                                       imputed_values={"ldh": 456.0, "mycn_amplified": 1}))
    lines = _pdf_lines(render_pdf(record), tmp_path)
    ldh = next(line for line in lines if line.startswith("Lactate dehydrogenase (LDH) *"))
    assert "456" in ldh and "U/L" in ldh and "imputed" in ldh and "not stored" not in ldh
    mycn = next(line for line in lines if line.startswith("MYCN amplification *"))
    assert "yes" in mycn and "imputed" in mycn
    nse = next(line for line in lines if line.startswith("Neuron-specific enolase (NSE)"))
    assert "123.4" in nse and "entered" in nse and "*" not in nse
    # the survival model and the pipeline that made the prognosis are named
    flat = " ".join(lines)
    assert "stepcox_backward+rsf" in flat and "ef" * 32 in flat


@needs_poppler
def test_pdf_of_a_case_saved_without_imputed_values(record, tmp_path):
    # cases saved before the values were kept list names only
    record = replace(record, prognosis=replace(record.prognosis, imputed_values={}))
    lines = _pdf_lines(render_pdf(record), tmp_path)
    ldh = next(line for line in lines if line.startswith("Lactate dehydrogenase (LDH) *"))
    assert "(value not stored)" in ldh and "imputed" in ldh


def test_clinical_values_mark_sources_and_give_imputed_values_in_schema_units(record):
    from nbrisk_core.report import clinical_values

    # a unit chosen for a field left empty does not apply to the value imputed for it
    record = replace(record, clinical={**record.clinical, "ldh": {"value": None, "unit": "ukat/L"},
                                       "crp": None})
    rows = {c.name: c for c in clinical_values(record)}
    assert [c.name for c in clinical_values(record)] == ["age_months", "sex", "nse", "ldh", "crp"]  # schema order
    assert (rows["ldh"].value, rows["ldh"].unit, rows["ldh"].source, rows["ldh"].imputed) == (456.0, "U/L",
                                                                                               "imputed", True)
    assert (rows["nse"].value, rows["nse"].source) == (123.4, "entered")
    assert (rows["crp"].value, rows["crp"].source) == (None, "not given")


def test_exports_show_imputed_values_marked(record):
    data = json.loads(case_to_json(record))
    assert data["clinical"]["ldh"] == {"value": 456.0, "unit": "U/L", "source": "imputed"}
    assert data["clinical"]["nse"] == {"value": 123.4, "unit": "ng/mL", "source": "entered"}
    rows = dict(csv.reader(io.StringIO(case_to_csv(record))))
    assert (rows["clinical.ldh.value"], rows["clinical.ldh.source"]) == ("456.0", "imputed")
    assert rows["clinical.nse.source"] == "entered"
    record = replace(record, prognosis=replace(record.prognosis, imputed_values={}))
    old = json.loads(case_to_json(record))["clinical"]["ldh"]
    assert old["value"] is None and old["source"] == "imputed" and "not stored" in old["note"]


@needs_poppler
@pytest.mark.parametrize("status, who, label", [("draft", {}, "Last edited by bob"),
                                                ("reviewed", {"reviewed_by": "dave"}, "Reviewer dave"),
                                                ("signed_off",
                                                 {"reviewed_by": "dave", "signed_off_by": "carol"},
                                                 "Signed off by carol")])
def test_pdf_names_who_edited_a_draft_and_who_reviewed(record, tmp_path, status, who, label):
    """Bug: a draft's PDF called its last editor (``updated_by``) its "Reviewer"."""
    stored = replace(record.stored,
                     **{"updated_by": "bob", "reviewed_by": None, "signed_off_by": None, **who})
    lines = _pdf_lines(render_pdf(replace(record, status=status, stored=stored)), tmp_path)
    header = lines[:12]
    assert label in header
    if status == "draft":
        assert not any(line.startswith("Reviewer") for line in lines)


def test_pdf_draws_the_risk_pages_cam_overlay(record, monkeypatch):
    """The PDF blends the CAM with the Risk page's overlay function (one colour map for both)."""
    from nbrisk_core.imaging import render
    from nbrisk_core.report import figures

    calls = []

    def spy(grey, heatmap, opacity=render.CAM_OPACITY):
        calls.append((grey.shape, np.asarray(heatmap).shape, opacity))
        return render.cam_overlay(grey, heatmap, opacity)

    monkeypatch.setattr(figures, "cam_overlay", spy)
    render_pdf(record)
    assert calls == [((96, 96), (24, 24), render.CAM_OPACITY)]  # the ART map only


def test_pdf_draws_the_prognosis_reference_curves(record, monkeypatch):
    """The PDF's reference curves are the prognosis's (KM by MLRS group, as the Prognosis page)."""
    from nbrisk_core.report import pdf as pdf_module

    curves = {"high MLRS (training)": (np.array([0.0, 900.0]), np.array([1.0, 0.5])),
              "low MLRS (training)": (np.array([0.0, 900.0]), np.array([1.0, 0.9]))}
    seen = []
    monkeypatch.setattr(pdf_module, "survival_png", lambda patient, cohort: seen.append(cohort) or
                        _tiny_png())
    render_pdf(replace(record, prognosis=replace(record.prognosis, reference_curves=curves)),
               cohort_curves={"clinical risk group": (np.array([0.0]), np.array([1.0]))})
    assert list(seen[0]) == list(curves)


def _tiny_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_report_imports_nothing_from_the_store_or_the_classifier():
    """The report renders a typed case; the caller loads it (arrows point one way)."""
    import nbrisk_core.report as report

    offenders = []
    for path in sorted(Path(report.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {n}" for n in names
                          if n.startswith(("nbrisk_core.store", "nbrisk_core.classifier"))]
    assert offenders == []


def test_report_modules_import_no_each_other_in_a_cycle():
    import nbrisk_core.report as report

    graph = {}
    for path in Path(report.__file__).parent.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nbrisk_core.report."):
                imported.add(node.module.rsplit(".", 1)[1])
        graph[path.stem] = imported
    for module, targets in graph.items():
        for target in targets:
            assert module not in graph.get(target, set()), f"{module} <-> {target}"
