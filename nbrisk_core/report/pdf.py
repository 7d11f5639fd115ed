"""One-page-per-case PDF report (fpdf2) of a typed :class:`~nbrisk_core.case.Case`: slices with their CAM,
risk, survival, MLRS, clinical values.

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
from nbrisk_core.case import PHASES, Case, ChosenSlice
from nbrisk_core.clinical.schema import CLINICAL_VARIABLES
from nbrisk_core.report.clinical import VALUE_NOT_STORED, ClinicalValue, clinical_values
from nbrisk_core.report.figures import slice_png, survival_png

_BINARY = frozenset(v.name for v in CLINICAL_VARIABLES if v.kind == "binary")
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


def burned_in_view(chosen: ChosenSlice) -> tuple[np.ndarray, str | None]:
    """The plane the report prints for a stored slice, and what it says about burned-in text.

    Slices saved since NBRisk checks for burned-in annotation carry the reviewer's decision
    (:mod:`nbrisk_core.imaging.burned_in`); a slice stored before that is checked here, and text-like
    marks outside the body are blacked out in the report (the stored slice is not changed).
    """
    from nbrisk_core.imaging.burned_in import find_pixel_text, mask_outside_body

    plane, is_hu = chosen.plane, chosen.is_hu
    record = chosen.burned_in or {}
    decision = record.get("decision")
    if decision == "mask":
        return plane, "suspected; the area outside the body was blacked out before storing."
    if decision == "confirm":
        return plane, (f"suspected; stored as shown: {record.get('decided_by', '?')} confirmed it shows no "
                       f"identifying text ({record.get('decided_at', '?')}).")
    # a slice saved since NBRisk checks carries the finding made when it was chosen: not redone here
    pixel_text = record["pixel_text"] if "pixel_text" in record else find_pixel_text(plane, is_hu)
    if pixel_text:
        return (mask_outside_body(plane, is_hu),
                "text-like marks outside the body, blacked out in this report (stored before NBRisk "
                "checked).")
    return plane, None


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


def synthetic_case(case: Case, card: Mapping | None) -> bool:
    """Whether the report carries the synthetic-data sentence: yes unless the classifier's card (its
    ``synthetic_data``, else ``training_cohort.synthetic``) or, without a card, the prognosis result
    (``synthetic``: the cohort it was fitted on) says explicitly that the data were real."""
    card = card or {}
    training = card.get("training_cohort") if isinstance(card.get("training_cohort"), Mapping) else {}
    if card.get("synthetic_data") is not None:
        return bool(card["synthetic_data"])
    if training.get("synthetic") is not None:
        return bool(training["synthetic"])
    synthetic = case.prognosis.synthetic if case.prognosis is not None and not card else None
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


def _who(case: Case, reviewer: str | None) -> tuple[str, str]:
    """The header's person row: who signed off or reviewed the case; for a draft, who edited it last."""
    stored = case.stored
    if reviewer:
        return "Reviewer", reviewer
    if stored is not None and stored.signed_off_by:
        return "Signed off by", stored.signed_off_by
    if stored is not None and stored.reviewed_by:
        return "Reviewer", stored.reviewed_by
    return "Last edited by", (stored.updated_by if stored is not None else None) or "–"


def render_pdf(case: Case, *, cohort_curves: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
               model_card: Mapping | None = None, reviewer: str | None = None,
               generated_at: datetime | None = None) -> bytes:
    """The PDF report of a case, as bytes.

    Parameters
    ----------
    case : Case
        The case (the caller loads a stored one: slices, risk, prognosis, clinical values, status,
        who/when in ``case.stored``).
    cohort_curves : mapping label -> (times, survival), optional
        Reference curves drawn under the patient's predicted curve when the prognosis carries none
        (a prognosis carries the Kaplan-Meier curves by MLRS group that the Prognosis page draws).
    model_card : mapping, optional
        The classifier's model card (:func:`find_model_card`).
    reviewer : str, optional
        Who reviewed the case, when the report is made for a review not yet stored.
    """
    generated_at = generated_at or datetime.now(timezone.utc)
    risk, prognosis, stored = case.risk, case.prognosis, case.stored
    card = model_card or {}
    # the synthetic-data sentence only for a demo model or a synthetic cohort (docs/cohort-format.md)
    notice = research_notice(synthetic_case(case, card))
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
    uid, version = (stored.case_uid, stored.version) if stored is not None else ("unsaved", None)
    report.pairs([
        ("Case", f"{case.label}   (id {uid}, version {version or '–'})"),
        ("Status", case.status.replace("_", " ")),
        ("Age / sex", f"{_fmt(case.age_months)} months / {case.sex or '–'}"),
        _who(case, reviewer),
        ("Report date", generated_at.strftime("%Y-%m-%d %H:%M UTC")),
    ])

    report.heading("Chosen slices (W400/L40), Grad-CAM where stored")
    cams = dict(risk.cams) if risk is not None else {}
    shown = {p: burned_in_view(s) for p, s in case.slices.items()}
    if case.slices:
        width = 54.0
        gap = (pdf.w - pdf.l_margin - pdf.r_margin - 3 * width) / 2
        top = pdf.get_y()
        for k, phase in enumerate(PHASES):
            x = pdf.l_margin + k * (width + gap)
            pdf.set_xy(x, top)
            pdf.set_font("DejaVu", "B", 8)
            chosen = case.slices.get(phase)
            pdf.cell(width, 5, phase.title + (" + Grad-CAM" if phase in cams else ""), align="C")
            if chosen is None:
                pdf.set_xy(x, top + 6)
                pdf.set_font("DejaVu", "I", 8)
                pdf.cell(width, 5, "not chosen", align="C")
                continue
            png = slice_png(shown[phase][0], cams.get(phase), is_hu=chosen.is_hu)
            pdf.image(png, x=x, y=top + 6, w=width, h=width)
            pdf.set_xy(x, top + 7 + width)
            pdf.set_font("DejaVu", "", 7)
            where = [f"slice {chosen.index}" if chosen.index is not None else None,
                     f"z = {chosen.z_mm:.1f} mm" if chosen.z_mm is not None else None]
            pdf.cell(width, 4, ", ".join(w for w in where if w) or "–", align="C")
        pdf.set_xy(pdf.l_margin, top + 12 + width)
        notes = [f"{phase.upper()}: {note}" for phase, (_, note) in shown.items() if note]
        if notes:
            pdf.set_font("DejaVu", "I", 7)
            pdf.multi_cell(0, 4, "Burned-in annotation. " + " ".join(notes), new_x="LMARGIN", new_y="NEXT")
    else:
        pdf.cell(0, 5, "No slices stored.", new_x="LMARGIN", new_y="NEXT")

    measured = {p: s.segmentation for p, s in case.slices.items() if s.segmentation is not None}
    if measured:
        report.heading("Tumour size (segmentation)")
        report.pairs([(phase.title, summary.describe()) for phase, summary in measured.items()])

    report.heading("High-risk classification (Swin-T)")
    if risk is not None:
        report.pairs([
            ("P(high risk)", _fmt(risk.p_high_risk)),
            ("Class", {"HR": "high risk (HR)", "NHR": "non-high risk (NHR)"}.get(risk.risk_class, "–")),
            ("Model", risk.score.label or risk.reference),
            ("Model SHA-256", risk.model_sha256 or "–"),
        ])
    else:
        pdf.cell(0, 5, "No risk prediction stored.", new_x="LMARGIN", new_y="NEXT")

    report.heading("Prognosis (machine-learning risk score)")
    rows = [
        ("MLRS", _fmt(prognosis.mlrs if prognosis else None)),
        ("Cohort percentile", "–" if prognosis is None else f"{prognosis.percentile:.0f}"),
        ("MLRS group", {"high": "high MLRS", "low": "low MLRS"}.get(prognosis.group if prognosis else "",
                                                                   "–")),
    ]
    if prognosis is not None and prognosis.model:
        rows.append(("Survival model", prognosis.model))
    if prognosis is not None and prognosis.pipeline_sha256:
        rows.append(("Pipeline SHA-256", prognosis.pipeline_sha256))
    report.pairs(rows)
    patient_curve = (prognosis.times, prognosis.survival) if prognosis is not None else None
    reference = (prognosis.reference_curves if prognosis is not None else None) or cohort_curves
    if patient_curve is not None or reference:
        png = survival_png(patient_curve, reference)
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
    _clinical_table(pdf, case)

    report.heading("Model card")
    rows = [(label, _fmt(_card_value(card, path))) for label, path in MODEL_CARD_FIELDS
            if _card_value(card, path) is not None]
    versions = stored.software_versions if stored is not None else {}
    rows.append(("Software", ", ".join(f"{k} {v}" for k, v in versions.items()
                                       if k in ("nbrisk", "python", "torch", "timm", "scikit-survival"))))
    report.pairs(rows or [("Model card", "not stored with this case")])

    if case.notes:
        report.heading("Notes")
        pdf.multi_cell(0, 5, case.notes, new_x="LMARGIN", new_y="NEXT")

    report.heading("Record")
    if stored is None:
        report.pairs([("Record", "not saved")])
    else:
        report.pairs([
            ("Created", f"{_when(stored.created_at)} by {stored.created_by or '–'}"),
            ("Last changed", f"{_when(stored.updated_at)} by {stored.updated_by or '–'}"),
            ("Reviewed", f"{_when(stored.reviewed_at)} by {stored.reviewed_by}"
             if stored.reviewed_by else "–"),
            ("Signed off", f"{_when(stored.signed_off_at)} by {stored.signed_off_by}"
             if stored.signed_off_by else "–"),
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


def _clinical_table(pdf, case: Case) -> None:
    rows = clinical_values(case)
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
