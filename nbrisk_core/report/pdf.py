"""One-page-per-case PDF report (fpdf2): slices with Grad-CAM, risk, survival, MLRS, clinical values.

The report carries the research-use notice at the top and in the footer of every page
(:func:`nbrisk_core.research_notice`: with the synthetic-data sentence unless the classifier's model card,
or the prognosis result, says the model came from a real cohort).
Text is set in DejaVu Sans (the TTF that ships with matplotlib), so units such as "10^9/L" and
names with accents print as typed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from nbrisk_core import __version__, research_notice
from nbrisk_core.clinical.schema import CLINICAL_VARIABLES
from nbrisk_core.report.export import VALUE_NOT_STORED, ClinicalValue, clinical_values
from nbrisk_core.report.figures import curve_from, slice_png, survival_png
from nbrisk_core.store.cases import CaseRecord
from nbrisk_core.store.session import _phase_key, fields_of, lookup

_BINARY = frozenset(v.name for v in CLINICAL_VARIABLES if v.kind == "binary")
PHASE_TITLES = {"NC": "Non-contrast (NC)", "ART": "Arterial (ART)", "PV": "Portal venous (PV)"}
#: model-card fields shown in the report, in order (label, key path)
MODEL_CARD_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Architecture", ("architecture",)),
    ("Variant", ("variant_label",)),
    ("Trained on", ("training_cohort", "name")),
    ("Synthetic training data", ("synthetic_data",)),
    ("Test AUC", ("metrics", "test", "auc", "value")),
    ("Decision threshold", ("decision_threshold",)),
    ("Weights SHA-256", ("sha256",)),
)


def find_model_card(models_dir: Path | str | None, sha256: str | None) -> dict | None:
    """The JSON model card in ``models_dir`` whose ``sha256`` is ``sha256`` (cards are JSON: no unpickling)."""
    import json

    if not models_dir or not sha256 or not Path(models_dir).is_dir():
        return None
    for path in sorted(Path(models_dir).glob("*.json")):
        try:
            card = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(card, dict) and card.get("sha256") == sha256:
            return card
    return None


def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def gradcam_by_phase(record: CaseRecord) -> dict[str, np.ndarray]:
    """Grad-CAM maps stored in the risk prediction(s), keyed by phase (NC, ART, PV)."""
    cams: dict[str, np.ndarray] = {}
    risk = record.prediction("risk")
    results = [p.result for p in record.predictions if p.kind == "risk"] if risk else []
    for result in results:
        cam = lookup(result, "gradcam")
        if cam is None:
            continue
        if isinstance(cam, Mapping):
            for key, value in cam.items():
                phase = _phase_key(key)
                if phase and value is not None and np.ndim(value) >= 2:
                    cams[phase] = np.asarray(value)
        elif np.ndim(cam) >= 2:
            variant = str(lookup(result, "model_name") or fields_of(result).get("variant") or "art")
            phase = next((p for p in ("NC", "ART", "PV") if p.lower() in variant.lower()), None)
            if phase is None:  # the multiphase model explains all three channels at once
                for p in ("NC", "ART", "PV"):
                    cams.setdefault(p, np.asarray(cam))
            else:
                cams[phase] = np.asarray(cam)
    return cams


def burned_in_view(sl) -> tuple[np.ndarray, str | None]:
    """The plane the report prints for a stored slice, and what it says about burned-in text.

    Slices saved since NBRisk checks for burned-in annotation carry the reviewer's decision
    (:mod:`nbrisk_core.imaging.burned_in`); a slice stored before that is checked here, and text-like
    marks outside the body are blacked out in the report (the stored slice is not changed).
    """
    from nbrisk_core.imaging.burned_in import META_KEY, find_pixel_text, mask_outside_body

    is_hu = sl.meta.get("units", "HU") == "HU"
    record = sl.meta.get(META_KEY) or {}
    decision = record.get("decision")
    if decision == "mask":
        return sl.hu, "suspected; the area outside the body was blacked out before storing."
    if decision == "confirm":
        return sl.hu, (f"suspected; stored as shown: {record.get('decided_by', '?')} confirmed it shows no "
                       f"identifying text ({record.get('decided_at', '?')}).")
    # a slice saved since NBRisk checks carries the finding made when it was chosen: not redone here
    pixel_text = record["pixel_text"] if "pixel_text" in record else find_pixel_text(sl.hu, is_hu)
    if pixel_text:
        return (mask_outside_body(sl.hu, is_hu),
                "text-like marks outside the body, blacked out in this report (stored before NBRisk "
                "checked).")
    return sl.hu, None


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, (float, np.floating)):
        return "–" if not np.isfinite(value) else f"{float(value):.{digits}g}"
    return str(value)


def _card_value(card: Mapping, path: tuple[str, ...]):
    value: Any = card
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def synthetic_case(record: CaseRecord, card: Mapping | None) -> bool:
    """Whether the report carries the synthetic-data sentence: yes unless the classifier's card (its
    ``synthetic_data``, else ``training_cohort.synthetic``) or, without a card, the prognosis result
    (``synthetic``: the cohort it was fitted on) says explicitly that the data were real."""
    card = card or {}
    training = card.get("training_cohort") if isinstance(card.get("training_cohort"), Mapping) else {}
    if card.get("synthetic_data") is not None:
        return bool(card["synthetic_data"])
    if training.get("synthetic") is not None:
        return bool(training["synthetic"])
    prognosis = record.prediction("prognosis")
    synthetic = fields_of(prognosis.result).get("synthetic") if prognosis is not None and not card else None
    return True if synthetic is None else bool(synthetic)


class _Report:
    def __init__(self, notice: str):
        from fpdf import FPDF

        pdf = FPDF(orientation="P", unit="mm", format="A4")
        fonts = _font_dir()
        pdf.add_font("DejaVu", "", str(fonts / "DejaVuSans.ttf"))
        pdf.add_font("DejaVu", "B", str(fonts / "DejaVuSans-Bold.ttf"))
        pdf.add_font("DejaVu", "I", str(fonts / "DejaVuSans-Oblique.ttf"))
        pdf.set_auto_page_break(auto=True, margin=16)
        pdf.set_margins(14, 14, 14)
        pdf.set_creator(f"NBRisk {__version__}")
        pdf.set_title("NBRisk case report")

        def footer():
            pdf.set_y(-12)
            pdf.set_font("DejaVu", "I", 7)
            pdf.set_text_color(120, 120, 120)
            pdf.cell(0, 5, f"{notice}   ·   page {pdf.page_no()}/{{nb}}", align="C")

        pdf.footer = footer
        self.pdf = pdf

    def heading(self, text: str) -> None:
        pdf = self.pdf
        pdf.ln(2)
        pdf.set_font("DejaVu", "B", 11)
        pdf.set_text_color(31, 95, 139)
        pdf.cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
        pdf.set_font("DejaVu", "", 9)

    def pairs(self, rows: list[tuple[str, str]], label_width: float = 48) -> None:
        pdf = self.pdf
        for label, value in rows:
            pdf.set_font("DejaVu", "B", 9)
            pdf.cell(label_width, 5, label)
            pdf.set_font("DejaVu", "", 9)
            pdf.multi_cell(0, 5, value, new_x="LMARGIN", new_y="NEXT")


def render_pdf(record: CaseRecord, *, cohort_curves: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
               model_card: Mapping | None = None, models_dir: Path | str | None = None,
               reviewer: str | None = None, generated_at: datetime | None = None) -> bytes:
    """The PDF report of a case, as bytes.

    Parameters
    ----------
    record : CaseRecord
        The stored case (slices, predictions, clinical values, status, who/when).
    cohort_curves : mapping label -> (times, survival), optional
        Cohort Kaplan-Meier curves drawn under the patient's predicted curve.
    model_card : mapping, optional
        The classifier's model card (default: the one in the risk result, else the card in
        ``models_dir`` whose SHA-256 matches the risk prediction's model).
    reviewer : str, optional
        Who the report is for (default: who signed off, else who reviewed, else who saved).
    """
    generated_at = generated_at or datetime.now(timezone.utc)
    risk = record.prediction("risk")
    card = model_card or (lookup(risk.result, "model_card") if risk else None) \
        or (find_model_card(models_dir, risk.model_sha256) if risk else None) or {}
    # the synthetic-data sentence only for a demo model or a synthetic cohort (docs/cohort-format.md)
    notice = research_notice(synthetic_case(record, card))
    report = _Report(notice)
    pdf = report.pdf
    pdf.add_page()

    pdf.set_font("DejaVu", "B", 16)
    pdf.cell(0, 9, "NBRisk case report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_fill_color(253, 236, 234)
    pdf.set_text_color(160, 30, 30)
    pdf.set_font("DejaVu", "B", 9)
    pdf.multi_cell(0, 6, notice, border=1, fill=True, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.ln(1)
    reviewer = reviewer or record.signed_off_by or record.reviewed_by or record.updated_by or "–"
    report.pairs([
        ("Case", f"{record.label}   (id {record.case_uid or 'unsaved'}, version {record.version or '–'})"),
        ("Status", record.status.replace("_", " ")),
        ("Age / sex", f"{_fmt(record.age_months)} months / {record.sex or '–'}"),
        ("Reviewer", reviewer),
        ("Report date", generated_at.strftime("%Y-%m-%d %H:%M UTC")),
    ])

    report.heading("Chosen slices (W400/L40), Grad-CAM where stored")
    cams = gradcam_by_phase(record)
    phases = [p for p in ("NC", "ART", "PV") if p in record.slices]
    shown = {p: burned_in_view(record.slices[p]) for p in phases}
    if phases:
        width = 54.0
        gap = (pdf.w - pdf.l_margin - pdf.r_margin - 3 * width) / 2
        top = pdf.get_y()
        for k, phase in enumerate(("NC", "ART", "PV")):
            x = pdf.l_margin + k * (width + gap)
            pdf.set_xy(x, top)
            pdf.set_font("DejaVu", "B", 8)
            sl = record.slices.get(phase)
            title = PHASE_TITLES[phase] + (" + Grad-CAM" if phase in cams else "")
            pdf.cell(width, 5, title, align="C")
            if sl is None:
                pdf.set_xy(x, top + 6)
                pdf.set_font("DejaVu", "I", 8)
                pdf.cell(width, 5, "not chosen", align="C")
                continue
            png = slice_png(shown[phase][0], cams.get(phase), is_hu=sl.meta.get("units", "HU") == "HU")
            pdf.image(png, x=x, y=top + 6, w=width, h=width)
            pdf.set_xy(x, top + 7 + width)
            pdf.set_font("DejaVu", "", 7)
            where = [f"slice {sl.slice_index}" if sl.slice_index is not None else None,
                     f"z = {sl.slice_position_mm:.1f} mm" if sl.slice_position_mm is not None else None]
            pdf.cell(width, 4, ", ".join(w for w in where if w) or "–", align="C")
        pdf.set_xy(pdf.l_margin, top + 12 + width)
        notes = [f"{phase}: {note}" for phase, (_, note) in shown.items() if note]
        if notes:
            pdf.set_font("DejaVu", "I", 7)
            pdf.multi_cell(0, 4, "Burned-in annotation. " + " ".join(notes), new_x="LMARGIN", new_y="NEXT")
    else:
        pdf.cell(0, 5, "No slices stored.", new_x="LMARGIN", new_y="NEXT")

    report.heading("High-risk classification (Swin-T)")
    if record.hr_probability is not None or risk is not None:
        report.pairs([
            ("P(high risk)", _fmt(record.hr_probability)),
            ("Class", {"HR": "high risk (HR)", "NHR": "non-high risk (NHR)"}.get(record.risk_class or "", "–")),
            ("Model", (risk.model_name if risk else None) or "–"),
            ("Model SHA-256", (risk.model_sha256 if risk else None) or "–"),
        ])
    else:
        pdf.cell(0, 5, "No risk prediction stored.", new_x="LMARGIN", new_y="NEXT")

    report.heading("Prognosis (machine-learning risk score)")
    prognosis = record.prediction("prognosis")
    rows = [
        ("MLRS", _fmt(record.mlrs)),
        ("Cohort percentile", "–" if record.mlrs_percentile is None else f"{record.mlrs_percentile:.0f}"),
        ("MLRS group", {"high": "high MLRS", "low": "low MLRS"}.get(record.mlrs_group or "", "–")),
    ]
    if prognosis is not None and prognosis.model_name:
        rows.append(("Survival model", prognosis.model_name))
    if prognosis is not None and prognosis.model_sha256:
        rows.append(("Pipeline SHA-256", prognosis.model_sha256))
    report.pairs(rows)
    patient_curve = None
    if prognosis is not None:
        patient_curve = curve_from(prognosis.result)
        if patient_curve is None:
            patient_curve = curve_from(lookup(prognosis.result, "survival_curve"))
    if patient_curve is not None or cohort_curves:
        png = survival_png(patient_curve, cohort_curves)
        w = 140.0
        if pdf.get_y() + w * 3.4 / 6.4 > pdf.h - 18:
            pdf.add_page()
        pdf.image(png, x=(pdf.w - w) / 2, w=w)
    if patient_curve is None:
        pdf.set_font("DejaVu", "I", 8)
        pdf.cell(0, 5, "No individual survival curve stored.", new_x="LMARGIN", new_y="NEXT")

    if pdf.get_y() > pdf.h - 45:  # keep the heading with the first rows of its table
        pdf.add_page()
    report.heading("Clinical values (* = imputed by MICE-PMM, not measured)")
    _clinical_table(pdf, record)

    report.heading("Model card")
    rows = [(label, _fmt(_card_value(card, path))) for label, path in MODEL_CARD_FIELDS
            if _card_value(card, path) is not None]
    rows.append(("Software", ", ".join(f"{k} {v}" for k, v in (record.software_versions or {}).items()
                                       if k in ("nbrisk", "python", "torch", "timm", "scikit-survival"))))
    report.pairs(rows or [("Model card", "not stored with this case")])

    if record.notes:
        report.heading("Notes")
        pdf.multi_cell(0, 5, record.notes, new_x="LMARGIN", new_y="NEXT")

    report.heading("Record")
    report.pairs([
        ("Created", f"{_when(record.created_at)} by {record.created_by or '–'}"),
        ("Last changed", f"{_when(record.updated_at)} by {record.updated_by or '–'}"),
        ("Reviewed", f"{_when(record.reviewed_at)} by {record.reviewed_by}" if record.reviewed_by else "–"),
        ("Signed off", f"{_when(record.signed_off_at)} by {record.signed_off_by}" if record.signed_off_by else "–"),
    ])
    return bytes(pdf.output())


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "–"


def _shown(value: ClinicalValue) -> str:
    if value.value is None:
        return VALUE_NOT_STORED if value.imputed else "–"
    if value.name in _BINARY:
        try:
            return "yes" if int(float(value.value)) == 1 else "no"
        except (TypeError, ValueError):
            return str(value.value)
    return _fmt(value.value, 4)


def _clinical_table(pdf, record: CaseRecord) -> None:
    rows = clinical_values(record)
    if not rows:
        pdf.cell(0, 5, "No clinical values stored.", new_x="LMARGIN", new_y="NEXT")
        return
    pdf.set_fill_color(238, 242, 246)
    with pdf.table(col_widths=(70, 40, 30, 40), text_align=("LEFT", "RIGHT", "LEFT", "LEFT"),
                   line_height=4.6, first_row_as_headings=True) as table:
        header = table.row()
        for text in ("Variable", "Value", "Unit", "Source"):
            header.cell(text)
        for value in rows:
            row = table.row()
            row.cell(value.label + (" *" if value.imputed else ""))
            row.cell(_shown(value))
            row.cell(value.unit)
            row.cell("imputed (MICE-PMM)" if value.imputed else value.source)
