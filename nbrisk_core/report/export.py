"""CSV and JSON export of a saved case (de-identified values, no pixel data).

Pixel arrays are summarised by shape, dtype and SHA-256 so an export can be checked against the
stored case without carrying the images; the PDF report (:mod:`nbrisk_core.report.pdf`) shows them.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

import numpy as np

from nbrisk_core import RESEARCH_NOTICE
from nbrisk_core.store import codec
from nbrisk_core.store.cases import CaseRecord


def _plain(value: Any) -> Any:
    """JSON-ready value: arrays above a handful of numbers become {shape, dtype, sha256}."""
    if isinstance(value, np.ndarray):
        if value.size <= 32 and value.dtype.kind in "biuf":
            return [_plain(v) for v in value.tolist()]
        return {"array_shape": list(value.shape), "dtype": str(value.dtype), "sha256": codec.sha256_of(value)}
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if np.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not codec.is_identifier_key(k)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return {"table_shape": list(value.shape), "columns": [str(c) for c in value.columns]}
    if value is None or isinstance(value, (str, int, bool)):
        return value
    from nbrisk_core.store.session import fields_of

    fields = fields_of(value)
    return _plain(fields) if fields else str(type(value).__name__)


def case_to_dict(record: CaseRecord) -> dict:
    """A JSON-ready description of the case (what the JSON and CSV exports contain)."""
    return {
        "notice": RESEARCH_NOTICE,
        "case_uid": record.case_uid, "label": record.label, "version": record.version, "status": record.status,
        "age_months": record.age_months, "sex": record.sex,
        "created_at": _plain(record.created_at), "created_by": record.created_by,
        "updated_at": _plain(record.updated_at), "updated_by": record.updated_by,
        "reviewed_by": record.reviewed_by, "reviewed_at": _plain(record.reviewed_at),
        "signed_off_by": record.signed_off_by, "signed_off_at": _plain(record.signed_off_at),
        "risk": {"class": record.risk_class, "p_high_risk": record.hr_probability},
        "prognosis": {"mlrs": record.mlrs, "percentile": record.mlrs_percentile, "group": record.mlrs_group},
        "clinical_entered": _plain(record.clinical_entered),
        "clinical_imputed": _plain(record.clinical_imputed),
        "slices": {p: {"slice_index": s.slice_index, "slice_position_mm": s.slice_position_mm,
                       "shape": list(np.asarray(s.hu).shape), "hu_sha256": codec.sha256_of(np.asarray(s.hu)),
                       "meta": _plain(s.meta)} for p, s in record.slices.items()},
        "predictions": [{"kind": p.kind, "model_name": p.model_name, "model_sha256": p.model_sha256,
                         "input_sha256": p.input_sha256, "created_at": _plain(p.created_at),
                         "created_by": p.created_by, "software_versions": p.software_versions,
                         "result": _plain(p.result)} for p in record.predictions],
        "notes": record.notes,
        "software_versions": record.software_versions,
    }


def case_to_json(record: CaseRecord) -> str:
    return json.dumps(case_to_dict(record), indent=2, sort_keys=False, default=str)


def _flatten(prefix: str, value: Any, rows: list) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, rows)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            _flatten(f"{prefix}[{i}]", v, rows)
    else:
        rows.append((prefix, "" if value is None else json.dumps(value) if isinstance(value, list) else value))


def case_to_csv(record: CaseRecord) -> str:
    """Long-format CSV: one ``field,value`` row per value (nested fields joined with dots)."""
    rows: list = []
    _flatten("", case_to_dict(record), rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(("field", "value"))
    writer.writerows(rows)
    return buffer.getvalue()
