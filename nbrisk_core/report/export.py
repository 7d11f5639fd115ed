"""CSV and JSON export of a saved case (de-identified values, no pixel data), and audited downloads.

Pixel arrays are summarised by shape, dtype and SHA-256 so an export can be checked against the
stored case without carrying the images; the PDF report (:mod:`nbrisk_core.report.pdf`) shows them.
:func:`clinical_values` is the one reading of entered and imputed clinical values that the PDF, the
CSV and the JSON share. :func:`export_case` makes the file of a stored case and writes its
``case_exported`` event in the same call, so a download is audited exactly when its bytes are made.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from nbrisk_core import RESEARCH_NOTICE
from nbrisk_core.clinical.schema import CLINICAL_VARIABLES
from nbrisk_core.errors import InputError
from nbrisk_core.safe_csv import write_rows
from nbrisk_core.store import codec
from nbrisk_core.store.cases import CaseRecord

#: export format -> MIME type
EXPORT_FORMATS: dict[str, str] = {"pdf": "application/pdf", "csv": "text/csv", "json": "application/json"}
#: shown for an imputed variable of a case saved before NBRisk stored the imputed values
VALUE_NOT_STORED = "(value not stored)"


@dataclass(frozen=True)
class ClinicalValue:
    """One clinical variable of a case as the report shows it.

    Attributes
    ----------
    name, label : str
        Schema column name and what a clinician reads.
    value : float, int, str or None
        As entered (in ``unit``), or the MICE-PMM imputed value in the schema's canonical unit;
        None when not given, or imputed in a case saved before the imputed values were stored.
    unit : str
    source : {"entered", "imputed", "not given"}
    """

    name: str
    label: str
    value: Any
    unit: str
    source: str

    @property
    def imputed(self) -> bool:
        return self.source == "imputed"


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and not np.isfinite(value))


def clinical_values(record: CaseRecord) -> list[ClinicalValue]:
    """The case's clinical values in schema order, each marked entered, imputed or not given.

    A variable counts as imputed when it was not entered and the case lists it in
    ``clinical_imputed``; its value is then the imputed one, in the schema's canonical unit (an
    entered value keeps the unit it was typed in).
    """
    entered = record.clinical_entered or {}
    imputed = record.clinical_imputed or {}
    rows = []
    for variable in CLINICAL_VARIABLES:
        if variable.name not in entered and variable.name not in imputed:
            continue
        value, unit = entered.get(variable.name), variable.unit
        if isinstance(value, Mapping):  # {"value", "unit"} as typed on the Prognosis page
            value, unit = value.get("value"), value.get("unit") or variable.unit
        if not _is_missing(value):
            rows.append(ClinicalValue(variable.name, variable.label, value, unit, "entered"))
        elif variable.name in imputed:
            filled = imputed.get(variable.name)
            rows.append(ClinicalValue(variable.name, variable.label, None if _is_missing(filled) else filled,
                                      variable.unit, "imputed"))
        else:
            rows.append(ClinicalValue(variable.name, variable.label, None, variable.unit, "not given"))
    return rows


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
        "clinical": {c.name: {"value": _plain(c.value), "unit": c.unit, "source": c.source,
                              **({"note": "imputed value not stored with this case"}
                                 if c.imputed and c.value is None else {})}
                     for c in clinical_values(record)},
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
    """Long-format CSV: one ``field,value`` row per value (nested fields joined with dots).

    Every value cell is quoted, and text that a spreadsheet would run as a formula (a label or a
    note starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) gets a leading ``'``
    (:mod:`nbrisk_core.safe_csv`).
    """
    rows: list = []
    _flatten("", case_to_dict(record), rows)
    buffer = io.StringIO()
    csv.writer(buffer).writerow(("field", "value"))
    # labels, notes and other text come from people and files: neutralised as formulas (OWASP)
    write_rows(buffer, rows)
    return buffer.getvalue()


def _unknown_format(fmt: str) -> InputError:
    return InputError(f"export format = {fmt!r} is not known (expected one of {', '.join(EXPORT_FORMATS)})",
                      source="format")


def render_export(record: CaseRecord, fmt: str, *, cohort_curves=None,
                  models_dir: Path | str | None = None) -> bytes:
    """The ``fmt`` file (``pdf``, ``csv`` or ``json``) of a case, as bytes."""
    if fmt == "pdf":
        from nbrisk_core.report.pdf import render_pdf

        return render_pdf(record, cohort_curves=cohort_curves, models_dir=models_dir)
    if fmt == "csv":
        return case_to_csv(record).encode()
    if fmt == "json":
        return case_to_json(record).encode()
    raise _unknown_format(fmt)


def export_case(engine, case_uid: str, username: str, fmt: str, *, version: int | None = None,
                cohort_curves=None, models_dir: Path | str | None = None) -> bytes:
    """Make the ``fmt`` file of a stored case and write its ``case_exported`` audit event.

    The event is written after the file was made and only then, in the call that makes it: the
    dashboard calls this when the user asks for the file ("Make PDF"), then offers its bytes for
    download. Nothing here reads the Streamlit session.

    Parameters
    ----------
    version : int, optional
        The version the user saw. If the stored case has changed since, nothing is exported (the
        file name and the report would name a version that is no longer stored).

    Raises
    ------
    CaseConflictError
        The case changed since ``version``.
    CaseNotFoundError
        No such case, or it was deleted.
    InputError
        Unknown format.

    Examples
    --------
    >>> pdf = export_case(engine, "C0123456789", "alice", "pdf", version=3)  # doctest: +SKIP
    """
    from nbrisk_core.store import cases

    if fmt not in EXPORT_FORMATS:
        raise _unknown_format(fmt)
    record = cases.load_case(engine, case_uid, username, record_open=False, operation="export")
    if version is not None and record.version != version:
        raise cases.CaseConflictError(
            f"case {case_uid} was changed by {record.updated_by} (it is now version {record.version}; "
            f"the page showed version {version}); reload the Saved cases page to export the current version",
            source="case_uid")
    data = render_export(record, fmt, cohort_curves=cohort_curves, models_dir=models_dir)
    cases.record_export(engine, case_uid, username, fmt, version=record.version,
                        sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    return data
