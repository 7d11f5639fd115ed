"""The reproduction report: one self-contained HTML file (figures embedded) plus the JSON of every
number, with the paper's value, NBRisk's value and the synthetic cohort's oracle value side by side."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from nbrisk_core import research_notice
from nbrisk_core.jsonable import json_default_or_str


def paper_values() -> dict:
    """The paper's reported numbers (``paper_values.json``, copied from the method spec)."""
    return json.loads(resources.files("nbrisk_core.reproduce").joinpath("paper_values.json").read_text())


@dataclass
class Row:
    """One quantity: the paper's value, NBRisk's value on this cohort, the oracle's value."""

    quantity: str
    paper: Any = None
    nbrisk: Any = None
    oracle: Any = None


@dataclass
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)
    figures: list[Any] = field(default_factory=list)  # plotly Figures
    text: str = ""


def format_value(value: Any) -> str:
    """Numbers to 3 decimals, ``[v, lo, hi]`` as ``v (lo-hi)``, None as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value):
        v, lo, hi = value
        return f"{format_value(v)} ({format_value(lo)}–{format_value(hi)})"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2e}"
        return f"{value:.3f}"
    return html.escape(str(value))


def render_html(sections: list[Section], meta: dict) -> str:
    """A self-contained HTML report: tables and plotly figures (plotly.js embedded once)."""
    synthetic = bool(meta.get("synthetic cohort", True))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>NBRisk reproduction report</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}.notice{background:#fff3cd;padding:.8em;border-radius:6px}"
        "h2{border-bottom:2px solid #1f5f8b;padding-bottom:4px}</style></head><body>",
        "<h1>NBRisk: reproduction of Zhao et al. 2025</h1>",
        # the synthetic-data banner only for a synthetic cohort (cohort.json "synthetic"); the notice always
        "<p class='notice'>" + ("<b>Synthetic data.</b> " if synthetic else "")
        + f"{html.escape(research_notice(synthetic))}</p>",
        "<table><tr><th>run</th><th>value</th></tr>",
    ]
    for key, value in meta.items():
        parts.append(f"<tr><td>{html.escape(str(key))}</td><td>{format_value(value)}</td></tr>")
    parts.append("</table>")
    plotly_included = False
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append(f"<p>{html.escape(section.text)}</p>")
        if section.rows:
            parts.append("<table><tr><th>quantity</th><th>paper</th><th>NBRisk (this cohort)</th>"
                         "<th>oracle (cohort truth)</th></tr>")
            for row in section.rows:
                parts.append(f"<tr><td>{html.escape(row.quantity)}</td><td>{format_value(row.paper)}</td>"
                             f"<td>{format_value(row.nbrisk)}</td><td>{format_value(row.oracle)}</td></tr>")
            parts.append("</table>")
        for figure in section.figures:
            parts.append(figure.to_html(full_html=False, include_plotlyjs=not plotly_included))
            plotly_included = True
    parts.append("</body></html>")
    return "\n".join(parts)


def _undefined_to_none(value: Any) -> Any:
    # NaN marks a number that is undefined on this cohort (e.g. a correlation with a constant score):
    # JSON null, shown as "n/a"
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_undefined_to_none(v) for v in value]
    return value


def sections_to_json(sections: list[Section]) -> dict:
    return {s.title: [{"quantity": r.quantity, "paper": r.paper, "nbrisk": _undefined_to_none(r.nbrisk),
                       "oracle": _undefined_to_none(r.oracle)} for r in s.rows] for s in sections}


def write_report(sections: list[Section], meta: dict, out_dir: Path, extra: dict | None = None) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.json`` into ``out_dir``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, json_path = out_dir / "report.html", out_dir / "report.json"
    html_path.write_text(render_html(sections, meta), encoding="utf-8")
    payload = {"meta": meta, "sections": sections_to_json(sections), **(extra or {})}
    json_path.write_text(json.dumps(payload, indent=2, default=json_default_or_str), encoding="utf-8")
    return html_path, json_path

