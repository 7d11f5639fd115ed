"""CSV and JSON export of a case (de-identified values, no pixel data), and the one entry to every format.

Pixel arrays are summarised by shape, dtype and SHA-256 so an export can be checked against the
stored case without carrying the images; the PDF report (:mod:`nbrisk_core.report.pdf`) shows them.
The caller loads the case (:func:`nbrisk_core.service.export_case` loads it from the store and
audits the download); nothing here reads the store.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from nbrisk_core import RESEARCH_NOTICE
from nbrisk_core.case import Case, ChosenSlice
from nbrisk_core.errors import InputError
from nbrisk_core.hashing import sha256_array
from nbrisk_core.imaging.burned_in import META_KEY
from nbrisk_core.report.clinical import clinical_values
from nbrisk_core.report.pdf import render_pdf
from nbrisk_core.safe_csv import write_rows

#: export format -> MIME type
EXPORT_FORMATS: dict[str, str] = {"pdf": "application/pdf", "csv": "text/csv", "json": "application/json"}


def _plain(value: Any) -> Any:
    """JSON-ready value: arrays above a handful of numbers become {shape, dtype, sha256}."""
    if isinstance(value, np.ndarray):
        if value.size <= 32 and value.dtype.kind in "biuf":
            return [_plain(v) for v in value.tolist()]
        return {"array_shape": list(value.shape), "dtype": str(value.dtype), "sha256": sha256_array(value)}
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if np.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _slice(chosen: ChosenSlice) -> dict:
    meta = {"units": "HU" if chosen.is_hu else "grey8", "pixel_spacing": chosen.pixel_spacing,
            "series_uid": chosen.series_uid, META_KEY: dict(chosen.burned_in) or None,
            "viewer_window": chosen.window}
    return {"slice_index": chosen.index, "slice_position_mm": chosen.z_mm, "shape": list(chosen.plane.shape),
            "hu_sha256": sha256_array(chosen.plane),
            "meta": _plain({k: v for k, v in meta.items() if v is not None}),
            # volume, longest diameter and area of the phase's segmentation (None: none stored)
            "segmentation": chosen.segmentation.to_dict() if chosen.segmentation is not None else None}


def case_to_dict(case: Case) -> dict:
    """A JSON-ready description of the case (what the JSON and CSV exports contain)."""
    stored, risk, prognosis = case.stored, case.risk, case.prognosis
    when = {name: getattr(stored, name) if stored else None
            for name in ("created_at", "created_by", "updated_at", "updated_by", "reviewed_by", "reviewed_at",
                         "signed_off_by", "signed_off_at")}
    return {
        "notice": RESEARCH_NOTICE,
        "case_uid": stored.case_uid if stored else None, "label": case.label,
        "version": stored.version if stored else None, "status": case.status,
        "age_months": case.age_months, "sex": case.sex,
        **{k: _plain(v) for k, v in when.items()},
        "risk": {"class": risk.risk_class if risk else None,
                 "p_high_risk": risk.p_high_risk if risk else None,
                 **({"model_sha256": risk.model_sha256, "device": risk.device,
                     "variants": {v: {"p_high_risk": s.p_high_risk, "risk_class": s.risk_class,
                                      "threshold": s.threshold, "model_sha256": s.model_sha256}
                                  for v, s in risk.scores.items()},
                     "embedding": _plain(risk.embedding),
                     "cams": {str(p): _plain(m) for p, m in risk.cams.items()}} if risk else {})},
        "prognosis": {"mlrs": prognosis.mlrs if prognosis else None,
                      "percentile": prognosis.percentile if prognosis else None,
                      "group": prognosis.group if prognosis else None,
                      **({"model": prognosis.model, "cutoff": prognosis.cutoff,
                          "pipeline_sha256": prognosis.pipeline_sha256, "notes": list(prognosis.notes),
                          "survival_curve": {"times": _plain(prognosis.times),
                                             "survival": _plain(prognosis.survival)}}
                         if prognosis else {})},
        "clinical": {c.name: {"value": _plain(c.value), "unit": c.unit, "source": c.source,
                              **({"note": "imputed value not stored with this case"}
                                 if c.imputed and c.value is None else {})}
                     for c in clinical_values(case)},
        "clinical_entered": _plain(case.clinical),
        "clinical_imputed": _plain(case.imputed),
        "slices": {str(p): _slice(s) for p, s in case.slices.items()},
        "predictions": [{"kind": p.kind, "model_name": p.model_name, "model_sha256": p.model_sha256,
                         "input_sha256": p.input_sha256, "created_at": _plain(p.created_at),
                         "created_by": p.created_by, "software_versions": dict(p.software_versions)}
                        for p in (stored.predictions if stored else ())],
        "notes": case.notes,
        "software_versions": dict(stored.software_versions) if stored else {},
    }


def case_to_json(case: Case) -> str:
    return json.dumps(case_to_dict(case), indent=2, sort_keys=False, default=str)


def _flatten(prefix: str, value: Any, rows: list) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, rows)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            _flatten(f"{prefix}[{i}]", v, rows)
    else:
        rows.append((prefix, "" if value is None else json.dumps(value) if isinstance(value, list) else value))


def case_to_csv(case: Case) -> str:
    """Long-format CSV: one ``field,value`` row per value (nested fields joined with dots).

    Every value cell is quoted, and text that a spreadsheet would run as a formula (a label or a
    note starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) gets a leading ``'``
    (:mod:`nbrisk_core.safe_csv`).
    """
    rows: list = []
    _flatten("", case_to_dict(case), rows)
    buffer = io.StringIO()
    csv.writer(buffer).writerow(("field", "value"))
    # labels, notes and other text come from people and files: neutralised as formulas (OWASP)
    write_rows(buffer, rows)
    return buffer.getvalue()


def render_export(case: Case, fmt: str, *, cohort_curves=None, model_card: Mapping | None = None) -> bytes:
    """The ``fmt`` file (``pdf``, ``csv`` or ``json``) of a case, as bytes."""
    if fmt == "pdf":
        return render_pdf(case, cohort_curves=cohort_curves, model_card=model_card)
    if fmt == "csv":
        return case_to_csv(case).encode()
    if fmt == "json":
        return case_to_json(case).encode()
    raise InputError(f"export format = {fmt!r} is not known (expected one of {', '.join(EXPORT_FORMATS)})",
                     source="format")
