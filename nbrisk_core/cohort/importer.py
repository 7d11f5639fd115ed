"""``nbrisk cohort import``: a research group's spreadsheet (+ DICOM studies) -> a cohort directory (v1).

Steps: read the mapping (:mod:`.mapping`) and the sheet (CSV, TSV or XLSX, every cell as text); check
that every mapped column exists; turn each row into schema values (cells trimmed; the value map
looked up, an empty cell under ``""`` and otherwise missing; values not in the map taken as written;
units converted with the schema's factors); collect every problem as (row, patient, column, value,
problem). Without ``drop_invalid`` any problem fails the import (:class:`CohortImportError`, exit 2)
before anything is written; with it the rows with problems are left out and listed in
``import-report.{json,html}``. With ``studies`` each patient's study is found (a sub-folder or zip
named by the patient_id, or the ``--studies-map`` CSV), read with the NBRisk reader and written
de-identified (PS3.15 Basic Profile, :mod:`nbrisk_core.imaging.deid`) with the study number as the
only patient identity; phases are assigned (:mod:`nbrisk_core.imaging.phases`) and problems listed per
patient. Everything is written into a temporary folder beside ``out`` and renamed at the end: a
failed import leaves nothing behind, and an existing cohort at ``out`` is replaced whole.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nbrisk_core.clinical.schema import (CLINICAL_VARIABLES, COHORT_MISSING_ALLOWED, OUTCOME_COLUMNS,
                                         ClinicalVariable, cohort_variables, variable)
from nbrisk_core.cohort.format import (PHASES, check_target, cohort_meta, created_now, empty_slices_table,
                                       staged_dir)
from nbrisk_core.cohort.mapping import TIME_UNITS, CohortMapping, load_mapping
from nbrisk_core.errors import InputError
from nbrisk_core.hashing import sha256_file

SHEET_SUFFIXES = (".csv", ".tsv", ".xlsx")
#: A patient_id becomes a folder name: letters, digits, ``.``, ``_``, ``-``; not starting with a dot.
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")
REPORT_JSON = "import-report.json"
REPORT_HTML = "import-report.html"
#: Phase suggestions below this confidence are listed as ambiguous.
AMBIGUOUS_CONFIDENCE = 0.6


@dataclass
class Problem:
    """One invalid cell or row: spreadsheet row (header = row 1), patient, source column, value, problem."""

    row: int
    patient_id: str
    column: str
    value: str
    problem: str

    def as_dict(self) -> dict:
        return {"row": self.row, "patient_id": self.patient_id, "column": self.column, "value": self.value,
                "problem": self.problem}


class CohortImportError(InputError):
    """Invalid rows without ``--drop-invalid``: ``problems`` lists every one."""

    def __init__(self, message: str, problems: list[Problem], source: str | None = None):
        super().__init__(message, source=source)
        self.problems = problems


@dataclass
class ImportResult:
    out: Path
    n_rows: int
    n_imported: int
    dropped: list[dict] = field(default_factory=list)
    report: dict = field(default_factory=dict)


def problems_table(problems: list[Problem]) -> str:
    """A plain-text table of problems (one line each) for the terminal."""
    header = ("row", "patient", "column", "value", "problem")
    rows = [(str(p.row), p.patient_id, p.column, p.value, p.problem) for p in problems]
    widths = [min(max(len(r[i]) for r in [header, *rows]), 40) for i in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header[:4], widths)) + "  " + header[4]]
    for r in rows:
        lines.append("  ".join(c[:40].ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# reading


def read_sheet(path) -> pd.DataFrame:
    """The clinical sheet with every cell as text ('' when empty); headers trimmed."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: clinical file not found (expected .csv, .tsv or .xlsx)", source=str(path))
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        elif suffix == ".tsv":
            table = pd.read_csv(path, dtype=str, keep_default_na=False, sep="\t", encoding="utf-8-sig")
        elif suffix == ".xlsx":
            table = pd.read_excel(path, dtype=str, keep_default_na=False, engine="openpyxl")
        else:
            raise InputError(f"{path.name}: unsupported file type {suffix!r} (expected .csv, .tsv or .xlsx)",
                             source=path.name)
    except InputError:
        raise
    except ImportError as error:
        raise InputError(f"{path.name}: reading .xlsx needs openpyxl ({error}); install requirements.txt",
                         source=path.name) from None
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError, KeyError) as error:
        raise InputError(f"{path.name}: cannot be read as {suffix[1:].upper()} ({error})",
                         source=path.name) from None
    table.columns = [str(c).strip() for c in table.columns]
    twice = sorted({c for c in table.columns if list(table.columns).count(c) > 1})
    if twice:
        raise InputError(f"{path.name}: column(s) {', '.join(map(repr, twice))} appear more than once",
                         source=path.name)
    return table.fillna("").astype(str)


# --------------------------------------------------------------------------------------------
# one cell


def _lookup(cell: str, values: dict | None):
    """Mapped value of a trimmed cell: the map's value, the cell as written, or None (missing)."""
    if values is not None and cell in values:
        mapped = values[cell]
        return None if isinstance(mapped, str) and mapped.strip() == "" else mapped
    return None if cell == "" else cell


def _accepted_text(var: ClinicalVariable, unit: str | None) -> str:
    if var.kind == "categorical":
        return f"one of {', '.join(var.categories)}"
    if var.kind == "binary":
        return "0 or 1"
    factor = 1.0 if unit in (None, var.unit) else var.alt_units[unit]
    shown = unit or var.unit
    return f"a number in {var.low / factor:g}-{var.high / factor:g}" + (f" {shown}" if shown else "")


def _cell_value(var: ClinicalVariable, value, unit: str | None):
    """``(canonical value or NaN, problem or None)`` of one mapped, non-missing value."""
    if var.kind == "categorical":
        text = str(value).strip()
        if text not in var.categories:
            return np.nan, (f"not an accepted category (expected {_accepted_text(var, unit)}; "
                            "add it to the map)")
        return text, None
    if var.kind == "binary":
        flag = _zero_one(value)
        if flag is None:
            return np.nan, f"not accepted (expected {_accepted_text(var, unit)}; add it to the map)"
        return float(flag), None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return np.nan, f"not a number (expected {_accepted_text(var, unit)})"
    factor = 1.0 if unit in (None, var.unit) else var.alt_units[unit]
    canonical = number * factor
    if not math.isfinite(canonical) or canonical < var.low or canonical > var.high:
        return np.nan, f"outside the accepted range (expected {_accepted_text(var, unit)})"
    return canonical, None


def _zero_one(value) -> int | None:
    """0 or 1 from a mapped number or a cell written exactly ``0`` or ``1``, else None.

    Strict on purpose: a cell ``1.0`` is not read as 1, since a site's own code ``"1"`` may mean
    something else (MYCN ``"1"`` = one copy = 0) and only the map can say so.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return int(value.strip()) if value.strip() in ("0", "1") else None
    return int(value) if value in (0, 1) else None


def _may_be_missing(var: ClinicalVariable) -> bool:
    return var.missing_allowed or var.name in COHORT_MISSING_ALLOWED


# --------------------------------------------------------------------------------------------
# the table


def convert_rows(sheet: pd.DataFrame, mapping: CohortMapping,
                 sheet_name: str) -> tuple[pd.DataFrame, list[Problem]]:
    """Schema table (one row per sheet row, same order) and every problem found."""
    missing_columns = [c for c in mapping.source_columns if c not in sheet.columns]
    if missing_columns:
        raise InputError(f"{mapping.path.name}: column(s) {', '.join(map(repr, missing_columns))} not found "
                         f"in {sheet_name} (its columns: {', '.join(map(repr, sheet.columns))})",
                         source=mapping.path.name)
    problems: list[Problem] = []
    rows = [int(r) + 2 for r in sheet.index]   # the sheet's own row numbers (header = row 1)
    ids = [str(v).strip() for v in sheet[mapping.patient_id]]
    out = pd.DataFrame({"patient_id": ids})
    counts = pd.Series(ids).value_counts()
    for i, pid in enumerate(ids):
        if pid == "":
            problems.append(Problem(rows[i], "", mapping.patient_id, "", "patient_id is empty"))
        elif not _SAFE_ID.match(pid):
            problems.append(Problem(rows[i], pid, mapping.patient_id, pid,
                                    "patient_id must be 1-64 letters, digits, '.', '_' or '-' (it names the "
                                    "patient's folder), not starting with '.'"))
        elif counts[pid] > 1:
            problems.append(Problem(rows[i], pid, mapping.patient_id, pid,
                                    f"duplicate patient_id ({counts[pid]} rows have it)"))

    # outcome
    factor = TIME_UNITS[mapping.time.unit]
    days, events = [], []
    for i, cell in enumerate(sheet[mapping.time.column]):
        cell = str(cell).strip()
        try:
            number = float(cell) if cell else float("nan")
        except ValueError:
            number = None
        if cell == "":
            problems.append(Problem(rows[i], ids[i], mapping.time.column, cell, "follow-up time is missing"))
        elif number is None or not math.isfinite(number):
            problems.append(Problem(rows[i], ids[i], mapping.time.column, cell,
                                    f"not a number (expected a follow-up time in {mapping.time.unit} >= 0)"))
        elif number < 0:
            problems.append(Problem(rows[i], ids[i], mapping.time.column, cell,
                                    f"negative time (expected a follow-up time in {mapping.time.unit} >= 0)"))
        days.append(number * factor if number is not None and cell and math.isfinite(number) and number >= 0
                    else np.nan)
    for i, cell in enumerate(sheet[mapping.event.column]):
        cell = str(cell).strip()
        value = _lookup(cell, mapping.event.values)
        flag = None if value is None else _zero_one(value)
        if flag is None:
            mapped = ("" if mapping.event.values is None
                      else f"; map keys: {', '.join(map(repr, mapping.event.values))}")
            problems.append(Problem(rows[i], ids[i], mapping.event.column, cell,
                                    "event is missing" if value is None else
                                    f"event must be 1 (death) or 0 (censored){mapped}"))
            events.append(np.nan)
        else:
            events.append(flag)

    # schema variables
    for var in (*CLINICAL_VARIABLES, *(variable(n) for n in mapping.variables if n not in
                                       {v.name for v in CLINICAL_VARIABLES})):
        column_map = mapping.variables.get(var.name)
        if column_map is None:
            if not _may_be_missing(var):
                raise InputError(f"{mapping.path.name}: [variables.{var.name}] is required (no patient may "
                                 f"lack {var.label}); map the column that holds it", source=mapping.path.name)
            out[var.name] = np.nan if var.kind != "categorical" else None
            continue
        values = []
        for i, cell in enumerate(sheet[column_map.column]):
            cell = str(cell).strip()
            value = _lookup(cell, column_map.values)
            if value is None:
                if not _may_be_missing(var):
                    problems.append(Problem(rows[i], ids[i], column_map.column, cell,
                                            f"{var.name} is missing but required "
                                            f"(expected {_accepted_text(var, column_map.unit)})"))
                values.append(np.nan)
                continue
            parsed, problem = _cell_value(var, value, column_map.unit)
            if problem:
                shown = cell if str(value) == cell else f"{cell} -> {value}"
                problems.append(Problem(rows[i], ids[i], column_map.column, shown, f"{var.name}: {problem}"))
            values.append(parsed)
        out[var.name] = pd.Series(values, dtype=object if var.kind == "categorical" else float)
    out[OUTCOME_COLUMNS[0]] = days
    out[OUTCOME_COLUMNS[1]] = pd.array([None if pd.isna(e) else int(e) for e in events], dtype="Int64")
    problems.sort(key=lambda p: (p.row, p.column))
    out.attrs["rows"] = rows
    return out, problems


def _clinical_csv(table: pd.DataFrame) -> str:
    out = table.copy()
    for var in cohort_variables():
        if var.kind == "binary" and var.name in out.columns:   # 0/1, not 0.0/1.0
            out[var.name] = pd.array([None if pd.isna(v) else int(v) for v in out[var.name]], dtype="Int64")
    return out.to_csv(index=False, lineterminator="\n", float_format="%.10g")


# --------------------------------------------------------------------------------------------
# studies


def find_studies(studies_dir: Path, patient_ids: list[str],
                 studies_map: Path | None) -> dict[str, Path | None]:
    """patient_id -> its study folder or zip (None when not found)."""
    studies_dir = Path(studies_dir)
    if not studies_dir.is_dir():
        raise InputError(f"{studies_dir}: studies folder not found (expected one sub-folder or zip per "
                         "patient)", source=str(studies_dir))
    explicit: dict[str, str] = {}
    if studies_map is not None:
        studies_map = Path(studies_map)
        if not studies_map.is_file():
            raise InputError(f"{studies_map}: studies map not found (expected a CSV with patient_id,study)",
                             source=str(studies_map))
        table = pd.read_csv(studies_map, dtype=str, keep_default_na=False)
        if list(table.columns[:2]) != ["patient_id", "study"]:
            raise InputError(f"{studies_map.name}: expected the columns patient_id,study (study = a "
                             f"sub-folder or zip of {studies_dir}), got {', '.join(table.columns)}",
                             source=studies_map.name)
        for pid, study in zip(table["patient_id"].str.strip(), table["study"].str.strip()):
            if pid in explicit:
                raise InputError(f"{studies_map.name}: patient_id {pid!r} appears twice",
                                 source=studies_map.name)
            explicit[pid] = study
    root = studies_dir.resolve()
    found: dict[str, Path | None] = {}
    for pid in patient_ids:
        names = [explicit[pid]] if pid in explicit else [pid, f"{pid}.zip"]
        found[pid] = None
        for name in names:
            candidate = (studies_dir / name).resolve()
            if root not in candidate.parents or not candidate.exists():
                continue   # never outside the studies folder
            found[pid] = candidate
            break
    return found


def ingest_study(source: Path, out_dir: Path, patient_id: str) -> dict:
    """Read one patient's study, write its CT series de-identified, assign phases; the study's entry.

    Files are written as ``out_dir/<PHASE or S<n>>/IM0001.dcm ...`` in slice order, after PS3.15
    de-identification with a fresh per-study key (UIDs remapped, dates shifted); PatientName and
    PatientID become the study number ``patient_id``: the DICOM's own are never stored.
    """
    import pydicom

    from nbrisk_core.imaging.deid import Deidentifier
    from nbrisk_core.imaging.dicom_io import load_study
    from nbrisk_core.imaging.phases import suggest_phases
    from nbrisk_core.imaging.sources import collect_sources

    deid = Deidentifier()
    study = load_study(source, deid)
    ct = [s for s in study.series if s.is_hu]
    suggestions = suggest_phases(ct)
    problems: list[str] = []
    if not ct:
        problems.append("no CT series (no loadable DICOM image series with Hounsfield units)")
    by_phase: dict[str, list] = {}
    for series, guess in zip(ct, suggestions):
        if guess.phase:
            by_phase.setdefault(guess.phase, []).append((series, guess))
    folders: dict[str, str] = {}
    series_entries = []
    for k, (series, guess) in enumerate(zip(ct, suggestions)):
        phase = guess.phase
        unique = phase is not None and len(by_phase.get(phase, [])) == 1
        folders[series.series_uid] = phase.upper() if unique else f"S{k + 1:02d}"
        series_entries.append({"folder": folders[series.series_uid], "series_uid": series.series_uid,
                               "phase": phase, "phase_confidence": round(float(guess.confidence), 3),
                               "n_slices": series.n_slices})
        if phase is not None and guess.confidence < AMBIGUOUS_CONFIDENCE:
            problems.append(f"ambiguous phase: series {folders[series.series_uid]} looks {phase.upper()} "
                            f"with low confidence ({guess.confidence:.0%})")
    if ct:
        for phase in PHASES:
            if phase not in by_phase:
                problems.append(f"phase {phase.upper()} missing")
            elif len(by_phase[phase]) > 1:
                problems.append(f"ambiguous phases: {len(by_phase[phase])} series look {phase.upper()}")
    # write the de-identified files of the CT series (the reader keeps pixels, not datasets)
    slice_of: dict[str, dict] = {s.series_uid: {} for s in ct}
    for sf in collect_sources(source):
        if sf.error or sf.head(132)[128:132] != b"DICM":
            continue
        try:
            ds = pydicom.dcmread(sf.open())
        except Exception:   # noqa: BLE001 - the reader already listed it as skipped
            continue
        uid = deid.uid(str(ds.get("SeriesInstanceUID", "") or ""))
        if uid not in slice_of:
            continue
        position = ds.get("ImagePositionPatient")
        z = (float(position[2]) if position is not None and len(position) == 3
             else float(ds.get("InstanceNumber", 0)))
        clean = deid.deidentify_dataset(ds)
        clean.PatientName = patient_id
        clean.PatientID = patient_id
        slice_of[uid].setdefault(z, clean)
    for series in ct:
        folder = out_dir / folders[series.series_uid]
        folder.mkdir(parents=True, exist_ok=True)
        for k, z in enumerate(sorted(slice_of[series.series_uid])):
            slice_of[series.series_uid][z].save_as(folder / f"IM{k + 1:04d}.dcm", enforce_file_format=True)
    return {"series": series_entries, "phases": sorted(by_phase, key=PHASES.index),
            "skipped_files": len(study.skipped), "problems": problems}


# --------------------------------------------------------------------------------------------
# the import


def import_cohort(clinical, mapping, out, *, studies=None, studies_map=None, drop_invalid: bool = False,
                  progress=None) -> ImportResult:
    """Import a clinical sheet (and DICOM studies) into a cohort directory of format v1.

    Parameters
    ----------
    clinical : path
        ``.csv``, ``.tsv`` or ``.xlsx`` (first sheet), one row per patient.
    mapping : path
        The TOML mapping (:func:`nbrisk_core.cohort.mapping.load_mapping`).
    out : path
        The cohort directory: new, empty, or an existing cohort (replaced whole at the end).
    studies : path, optional
        Folder with one sub-folder or zip per patient (named by patient_id, or by ``studies_map``).
    studies_map : path, optional
        CSV ``patient_id,study``.
    drop_invalid : bool
        Leave out invalid rows (listed in the report) instead of failing.
    progress : callable, optional
        ``progress(done, total)`` while studies are ingested.

    Raises
    ------
    CohortImportError
        Invalid rows without ``drop_invalid`` (``.problems`` lists them all); nothing is written.
    InputError
        A bad mapping, an unreadable sheet, a mapped column not in the sheet, no valid row.
    """
    clinical, out = Path(clinical), Path(out)
    mapping = load_mapping(mapping)
    sheet = read_sheet(clinical)
    check_target(out)
    blank = (sheet.apply(lambda column: column.str.strip()) == "").all(axis=1)
    sheet = sheet[~blank]   # empty rows (a spreadsheet's formatted tail) are no patients
    table, problems = convert_rows(sheet, mapping, clinical.name)
    rows = table.attrs["rows"]
    locations: dict[str, Path | None] = {}
    if studies is not None:
        locations = find_studies(Path(studies), [p for p in table["patient_id"] if p], studies_map)
        for i, pid in enumerate(table["patient_id"]):
            if pid and locations.get(pid) is None:
                problems.append(Problem(rows[i], pid, "study", "",
                                        f"no study found for this patient in {Path(studies).name} "
                                        f"(expected a sub-folder or zip named {pid}, or a row in "
                                        "--studies-map)"))
        problems.sort(key=lambda p: (p.row, p.column))
    if problems and not drop_invalid:
        rows = len({p.row for p in problems})
        raise CohortImportError(f"{clinical.name}: {len(problems)} problem(s) in {rows} of {len(table)} "
                                "rows; nothing was written (fix them, or pass --drop-invalid to import the "
                                "valid rows)", problems, source=clinical.name)
    bad_rows = {p.row for p in problems}
    keep = np.array([row not in bad_rows for row in rows], dtype=bool)
    dropped = [{"row": r, "patient_id": next(p.patient_id for p in problems if p.row == r),
                "problems": [p.as_dict() for p in problems if p.row == r]} for r in sorted(bad_rows)]
    kept = table[keep].reset_index(drop=True)
    if kept.empty:
        raise InputError(f"{clinical.name}: no valid row to import ({len(table)} rows, all with problems; "
                         "see the problems above)", source=clinical.name)

    with staged_dir(out, "importing") as staging:
        study_entries: dict[str, dict] = {}
        if studies is not None:
            for n, pid in enumerate(kept["patient_id"]):
                try:
                    study_entries[pid] = ingest_study(locations[pid], staging / "studies" / pid, pid)
                except InputError as error:   # an unsafe or unreadable container: name the patient
                    raise InputError(f"study of {pid} ({locations[pid].name}): {error}",
                                     source=locations[pid].name) from None
                if progress is not None:
                    progress(n + 1, len(kept))
        report = _report(clinical, mapping, sheet, table, kept, problems, dropped, study_entries,
                         drop_invalid)
        report["blank_rows_skipped"] = int(blank.sum())
        (staging / "clinical.csv").write_text(_clinical_csv(kept))
        empty_slices_table().to_csv(staging / "slices.csv", index=False, lineterminator="\n")
        phase_counts = {p: sum(p in e["phases"] for e in study_entries.values()) for p in PHASES}
        meta = cohort_meta(name=mapping.name, synthetic=mapping.synthetic, source=mapping.source,
                           created=created_now(), n_patients=len(kept), phase_counts=phase_counts,
                           imported_from={"clinical": clinical.name,
                                          "clinical_sha256": report["clinical_sha256"],
                                          "mapping": mapping.path.name,
                                          "mapping_sha256": report["mapping_sha256"]},
                           studies=len(study_entries))
        (staging / "cohort.json").write_text(json.dumps(meta, indent=2) + "\n")
        (staging / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n")
        (staging / REPORT_HTML).write_text(report_html(report))
    return ImportResult(out=out, n_rows=len(table), n_imported=len(kept), dropped=dropped, report=report)


def _report(clinical: Path, mapping: CohortMapping, sheet, table, kept, problems, dropped, studies,
            drop_invalid):
    mapped = set(mapping.source_columns)
    variables = [c for c in kept.columns if c not in ("patient_id", *OUTCOME_COLUMNS)]
    return {
        "clinical": clinical.name, "clinical_sha256": sha256_file(clinical),
        "mapping": mapping.path.name, "mapping_sha256": sha256_file(mapping.path),
        "cohort_name": mapping.name, "drop_invalid": drop_invalid,
        "n_rows": int(len(table)), "n_imported": int(len(kept)), "n_dropped": len(dropped),
        "unmapped_columns": [c for c in sheet.columns if c not in mapped],
        "variables_not_mapped": [v.name for v in CLINICAL_VARIABLES if v.name not in mapping.variables],
        "conversions": [{"variable": m.target, "column": m.column, "unit": m.unit,
                         "to": variable(m.target).unit, "factor": variable(m.target).alt_units[m.unit]}
                        for m in mapping.variables.values() if m.unit and m.unit != variable(m.target).unit]
        + [{"variable": "os_days", "column": mapping.time.column, "unit": mapping.time.unit, "to": "days",
            "factor": TIME_UNITS[mapping.time.unit]}],
        "missing": {c: int(kept[c].isna().sum()) for c in variables},
        "problems": [p.as_dict() for p in problems],
        "dropped": dropped,
        "studies": studies,
    }


def report_html(report: dict) -> str:
    """``import-report.html``: the report as a self-contained page (no script, no network)."""
    e = html.escape

    def table(rows: list[dict], columns: list[str]) -> str:
        if not rows:
            return "<p>None.</p>"
        head = "".join(f"<th>{e(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{e(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
                       for r in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    study_rows = [{"patient_id": pid, "phases": ", ".join(p.upper() for p in s["phases"]),
                   "series": len(s["series"]), "problems": "; ".join(s["problems"])}
                  for pid, s in report["studies"].items()]
    return "\n".join([
        "<!doctype html><html><head><meta charset='utf-8'><title>NBRisk cohort import report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}</style></head><body>",
        f"<h1>Import of {e(report['cohort_name'])}</h1>",
        f"<p>{e(report['clinical'])} with {e(report['mapping'])}: {report['n_imported']} of "
        f"{report['n_rows']} rows imported, {report['n_dropped']} dropped.</p>",
        "<h2>Problems</h2>", table(report["problems"], ["row", "patient_id", "column", "value", "problem"]),
        "<h2>Source columns not mapped</h2>",
        "<p>" + (e(", ".join(report["unmapped_columns"])) or "None.") + "</p>",
        "<h2>Schema variables not mapped (missing for every patient)</h2>",
        "<p>" + (e(", ".join(report["variables_not_mapped"])) or "None.") + "</p>",
        "<h2>Unit conversions</h2>",
        table(report["conversions"], ["variable", "column", "unit", "to", "factor"]),
        "<h2>Missing values per variable (imputed by the prognosis engine)</h2>",
        table([{"variable": k, "missing": v} for k, v in report["missing"].items()], ["variable", "missing"]),
        "<h2>Studies</h2>", table(study_rows, ["patient_id", "phases", "series", "problems"]),
        "</body></html>", ""])
