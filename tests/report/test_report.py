"""The case report: PDF content (rendered with poppler), CSV and JSON exports."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from datetime import datetime, timezone

import numpy as np
import pytest

from nbrisk_core import RESEARCH_NOTICE
from nbrisk_core.report import case_to_csv, case_to_json, render_pdf
from nbrisk_core.store.cases import CaseRecord, PredictionRecord, SliceRecord

needs_poppler = pytest.mark.skipif(shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
                                   reason="poppler-utils (pdftoppm, pdftotext) is not installed; "
                                          ".ci/system-packages.sh installs it")


@pytest.fixture
def record():
    yy, xx = np.mgrid[:96, :96]
    disc = ((yy - 48) ** 2 + (xx - 44) ** 2) < 600
    slices = {p: SliceRecord(p, np.where(disc, 60 + 20 * i, -40).astype(np.int16), 10 + i, 40.0 + 2.5 * i)
              for i, p in enumerate(("NC", "ART", "PV"))}
    cam = np.exp(-((yy - 48) ** 2 + (xx - 44) ** 2) / 400.0)[::4, ::4]  # 24x24, like a Swin stage map
    times = np.linspace(0, 2500, 40)
    risk = {"p_high_risk": 0.8123, "gradcam": cam}
    prognosis = {"mlrs": 1.234, "survival_curve": {"times": times, "survival": np.exp(-times / 3000)}}
    return CaseRecord(
        label="P0007", age_months=30.0, sex="F", status="signed_off", notes="Left adrenal mass, 6 cm.",
        clinical_entered={"age_months": 30.0, "sex": "F", "nse": 123.4, "ldh": None},
        clinical_imputed={"ldh": 456.0}, slices=slices,
        predictions=[PredictionRecord("risk", risk, "swin_art_demo", "ab" * 32, "cd" * 32),
                     PredictionRecord("prognosis", prognosis, "stepcox_backward+rsf", "ef" * 32, "01" * 32)],
        risk_class="HR", hr_probability=0.8123, mlrs=1.234, mlrs_percentile=87.0, mlrs_group="high",
        case_uid="C0123456789", version=3, created_by="alice", updated_by="bob", reviewed_by="bob",
        signed_off_by="carol", created_at=datetime(2026, 1, 2, tzinfo=timezone.utc))


@needs_poppler
def test_pdf_has_every_section_and_renders(record, repo_root):
    cohort = {"HR": (np.array([0, 500, 1500]), np.array([1.0, 0.7, 0.5])),
              "NHR": (np.array([0, 800, 2000]), np.array([1.0, 0.95, 0.9]))}
    models = repo_root / "test-artifacts" / "report" / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / "swin_art_demo.json").write_text(json.dumps({
        "architecture": "swin_tiny_patch4_window7_224", "variant_label": "Swin-ART", "sha256": "ab" * 32,
        "training_cohort": {"name": "nbrisk-synthetic-demo"}, "metrics": {"test": {"auc": {"value": 0.7712}}}}))
    pdf = render_pdf(record, cohort_curves=cohort, models_dir=models)
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
    record.predictions[0].result = {k: v for k, v in record.predictions[0].result.items() if k != "gradcam"}
    (out / "case_report_no_cam.pdf").write_bytes(render_pdf(record, cohort_curves=cohort, models_dir=models))
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
    bare = CaseRecord(label="P0001")
    pdf = render_pdf(bare)
    assert pdf.startswith(b"%PDF") and len(pdf) > 1000


def test_json_export_has_values_hashes_and_no_pixels(record):
    data = json.loads(case_to_json(record))
    assert data["notice"] == RESEARCH_NOTICE
    assert data["risk"] == {"class": "HR", "p_high_risk": 0.8123}
    assert data["clinical_imputed"] == {"ldh": 456.0}
    assert data["slices"]["ART"]["shape"] == [96, 96] and len(data["slices"]["ART"]["hu_sha256"]) == 64
    cam = data["predictions"][0]["result"]["gradcam"]
    assert cam["array_shape"] == [24, 24] and len(cam["sha256"]) == 64
    assert data["predictions"][1]["model_sha256"] == "ef" * 32


def test_csv_export_is_long_format(record):
    rows = dict(csv.reader(io.StringIO(case_to_csv(record))))
    assert rows["field"] == "value"
    assert rows["risk.class"] == "HR" and rows["prognosis.group"] == "high"
    assert rows["clinical_imputed.ldh"] == "456.0" and rows["predictions[0].model_sha256"] == "ab" * 32


def test_gradcam_lookup_by_phase(record):
    from nbrisk_core.report.pdf import gradcam_by_phase

    assert list(gradcam_by_phase(record)) == ["ART"]
    record.predictions[0].result = {"p_high_risk": 0.5, "gradcam": {"nc": np.ones((4, 4)), "PV": np.ones((4, 4))}}
    assert sorted(gradcam_by_phase(record)) == ["NC", "PV"]


def _pdf_lines(pdf: bytes, tmp_path) -> list[str]:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    return [" ".join(line.split()) for line in text.splitlines()]


@needs_poppler
def test_pdf_prints_the_imputed_value_marked_as_imputed(record, tmp_path):
    record.clinical_entered["mycn_amplified"] = None
    record.clinical_imputed["mycn_amplified"] = 1
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
    record.clinical_imputed = {"ldh": None}  # cases saved before the values were kept list names only
    lines = _pdf_lines(render_pdf(record), tmp_path)
    ldh = next(line for line in lines if line.startswith("Lactate dehydrogenase (LDH) *"))
    assert "(value not stored)" in ldh and "imputed" in ldh


def test_clinical_values_mark_sources_and_give_imputed_values_in_schema_units(record):
    from nbrisk_core.report import clinical_values

    # a unit chosen for a field left empty does not apply to the value imputed for it
    record.clinical_entered["ldh"] = {"value": None, "unit": "ukat/L"}
    record.clinical_entered["crp"] = None
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
    record.clinical_imputed = {"ldh": None}
    old = json.loads(case_to_json(record))["clinical"]["ldh"]
    assert old["value"] is None and old["source"] == "imputed" and "not stored" in old["note"]
