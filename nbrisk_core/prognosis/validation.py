"""Validation of entered or uploaded clinical values against the schema, and their encoding.

:func:`validate_clinical` turns what a user typed in the form, uploaded as a file, or what a cohort's
``clinical.csv`` holds into one DataFrame in canonical units. It converts from the alternative units
the schema lists (``alt_units``) and rejects everything else: an unknown variable or unit, a value
outside the plausible range, a category not in the list, a missing required value. Nothing is
coerced silently; every problem is named (variable, value, what was accepted) in one
:class:`~nbrisk_core.errors.InputError`.

Numbers are read strictly (:func:`parse_number`): a JSON ``true`` is not 1, ``12,5`` and ``1,250``
are refused as ambiguous (decimal comma or thousands separator: the message asks for a point), and
``inf``, ``nan`` or ``1e400`` (which overflows to infinity) are refused as not finite. Names are
checked for duplicates, also after trimming and case-folding (``"nse"`` and ``" NSE "`` in one
file), in JSON objects (:func:`load_json_object`, an ``object_pairs_hook``), CSV headers and dicts,
instead of the last one silently winning. The Prognosis page's form, ``nbrisk predict --labs`` and
the cohort's ``clinical.csv`` all go through :func:`validate_clinical`.

:func:`encode_clinical` then makes the numeric design the survival models see (one column per
number, 0/1 indicators for categories, log-transformed tumour markers).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from nbrisk_core.clinical.schema import (CLINICAL_VARIABLES, COHORT_MISSING_ALLOWED, COHORT_VARIABLES,
                                         OUTCOME_COLUMNS, ClinicalVariable)
from nbrisk_core.errors import InputError

_BY_NAME = {v.name: v for v in CLINICAL_VARIABLES}
_COHORT_EXTRA = {v.name: v for v in COHORT_VARIABLES}
_ID_COLUMN = "patient_id"
#: text that means "not given" (an empty cell, NA, a JSON null); "nan" and "inf" are refused instead
_MISSING_TEXT = {"", "na", "n/a", "none", "null"}
#: a plain decimal number with a point: 12, -3.5, .5, 4e3 (no comma, no thousands separator, no "_")
_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
#: a decimal comma (12,5) or a thousands separator (1,250 or 1.250,5)
_COMMA_NUMBER = re.compile(r"[+-]?[\d.,]*\d,[\d.,]*")


class RejectedNumber(str):
    """A JSON number that is no finite double (``NaN``, ``Infinity``, ``1e400``), kept as its text
    so that :func:`validate_clinical` can name the variable it was given for."""


def _reject_constant(text: str) -> RejectedNumber:
    return RejectedNumber(text)


def _json_float(text: str):
    value = float(text)
    return value if math.isfinite(value) else RejectedNumber(text)


def _name_key(name) -> str:
    """What two spellings of one variable name have in common: trimmed and case-folded."""
    return _split_header(str(name))[0].casefold()


def duplicate_names(names) -> list[str]:
    """Problems for names given twice, also as another spelling (``"nse"`` and ``" NSE "``)."""
    seen: dict[str, list[str]] = {}
    for name in names:
        seen.setdefault(_name_key(name), []).append(str(name))
    return [f"{spellings[0].strip()!r} is given {len(spellings)} times"
            + (f" (as {', '.join(repr(n) for n in spellings)})" if len(set(spellings)) > 1 else "")
            + "; expected each variable once"
            for spellings in seen.values() if len(spellings) > 1]


def _object_pairs(source: str):
    def hook(pairs):
        problems = duplicate_names(key for key, _ in pairs)
        if problems:
            raise InputError(f"{source}: " + "; ".join(problems), source=source)
        return dict(pairs)
    return hook


def load_json_object(text: str, source: str) -> dict:
    """A JSON object of lab values, read strictly.

    Duplicate keys (also after trimming and case-folding) are an :class:`InputError` instead of the
    last one winning; ``NaN``, ``Infinity`` and numbers that overflow a double (``1e400``) come back
    as :class:`RejectedNumber` so that the variable they were given for is named in the error.
    """
    try:
        data = json.loads(text, object_pairs_hook=_object_pairs(source), parse_constant=_reject_constant,
                          parse_float=_json_float)
    except json.JSONDecodeError as error:
        raise InputError(f"{source}: not valid JSON ({error.msg} at line {error.lineno})",
                         source=source) from error
    except RecursionError as error:
        raise InputError(f"{source}: JSON nested too deeply (expected {{variable: value}})",
                         source=source) from error
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a JSON object {{variable: value}}, got {type(data).__name__}",
                         source=source)
    return data


def parse_number(raw, name: str, expected: str) -> float:
    """``raw`` as a finite float, or ``ValueError`` saying why not (its message names ``name``,
    the value and ``expected``).

    Accepted: int and float values (not bool), and text that is a plain decimal number with a point.

    Examples
    --------
    >>> parse_number(" 12.5 ", "nse", "ng/mL")
    12.5
    >>> parse_number("12,5", "nse", "ng/mL")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: nse = '12,5' is ambiguous: write the number with a point as the decimal separator and no ...
    """
    if isinstance(raw, (bool, np.bool_)):
        raise ValueError(f"{name} = {raw!r} is a true/false value, not a number (expected {expected})")
    if isinstance(raw, RejectedNumber):
        raise ValueError(f"{name} = {str(raw)} is not a finite number (expected {expected})")
    if isinstance(raw, (int, float, np.integer, np.floating)):
        value = float(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        if _COMMA_NUMBER.fullmatch(text):
            # 1,250 is 1250 in one locale and 1.25 in another: refused rather than guessed
            raise ValueError(f"{name} = {raw!r} is ambiguous: write the number with a point as the decimal "
                             f"separator and no thousands separator, e.g. 12.5 or 1250 (expected {expected})")
        if not _NUMBER_TEXT.fullmatch(text):
            word = text.lower().lstrip("+-")
            if word in ("inf", "infinity", "nan"):
                raise ValueError(f"{name} = {raw!r} is not a finite number (expected {expected})")
            raise ValueError(f"{name} = {raw!r} is not a number (expected {expected})")
        value = float(text)
    else:
        raise ValueError(f"{name} = {raw!r} is not a number (expected {expected})")
    if not math.isfinite(value):
        raise ValueError(f"{name} = {raw!r} is not a finite number (expected {expected})")
    return value


def _range_text(var: ClinicalVariable, unit: str | None = None) -> str:
    unit = var.unit if unit is None else unit
    factor = 1.0 if unit == var.unit else var.alt_units[unit]
    low, high = var.low / factor, var.high / factor
    return f"{low:g}-{high:g}" + (f" {unit}" if unit else "")


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and not isinstance(value, RejectedNumber) and math.isnan(value):
        return True  # a table's empty cell (pandas reads it as NaN); a JSON NaN is a RejectedNumber
    if isinstance(value, str) and value.strip().lower() in _MISSING_TEXT:
        return True
    return value is pd.NA or value is pd.NaT


def _parse_one(var: ClinicalVariable, raw, unit: str | None, where: str, problems: list[str]):
    """One value in canonical units (float, or category string), or NaN; problems appended."""
    if _is_missing(raw):
        return np.nan
    if var.kind == "categorical":
        text = raw.strip() if isinstance(raw, str) and not isinstance(raw, RejectedNumber) else None
        if text not in var.categories:
            problems.append(f"{where}{var.name} = {raw!r} is not an accepted category "
                            f"(expected one of {', '.join(var.categories)})")
            return np.nan
        return text
    if var.kind == "binary":
        # no bools: a JSON true is not "1" (True == 1 in a dict lookup, hence the type check)
        accepted = {0: 0.0, 1: 1.0, "0": 0.0, "1": 1.0, 0.0: 0.0, 1.0: 1.0}
        key = raw.strip() if isinstance(raw, str) else raw
        if isinstance(key, (np.integer, np.floating)):
            key = key.item()
        if isinstance(key, (bool, np.bool_, RejectedNumber)) or key not in accepted:
            problems.append(f"{where}{var.name} = {raw!r} is not accepted (expected 0 or 1)")
            return np.nan
        return accepted[key]
    # numeric
    try:
        value = parse_number(raw, var.name, f"{var.unit or 'a number'} in the range {_range_text(var)}")
    except ValueError as error:
        problems.append(f"{where}{error}")
        return np.nan
    unit = var.unit if unit in (None, "") else unit
    if unit != var.unit:
        if unit not in var.alt_units:
            accepted_units = ", ".join([var.unit, *var.alt_units]) or "(unitless)"
            problems.append(f"{where}{var.name}: unit {unit!r} is not accepted (expected one of {accepted_units})")
            return np.nan
        entered = f"{value:g} {unit}"
        value = value * var.alt_units[unit]
    else:
        entered = f"{value:g}" + (f" {unit}" if unit else "")
    if not math.isfinite(value) or value < var.low or value > var.high:
        shown_unit = unit if unit != var.unit else None
        problems.append(f"{where}{var.name} = {entered} is outside the accepted range {_range_text(var, shown_unit)}"
                        + ("" if shown_unit is None else f" ({_range_text(var)})"))
        return np.nan
    return value


def _split_header(header: str) -> tuple[str, str | None]:
    """``"nse [ug/L]"`` -> ``("nse", "ug/L")``; ``"nse"`` -> ``("nse", None)``."""
    text = str(header).strip()
    if text.endswith("]") and "[" in text:
        name, unit = text[:-1].split("[", 1)
        return name.strip(), unit.strip()
    return text, None


def _read_file(path: Path) -> tuple[pd.DataFrame | dict, str]:
    if not path.exists():
        raise InputError(f"{path}: file not found (expected a clinical CSV or a JSON object of lab values)",
                         source=str(path))
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path.name}: not UTF-8 text ({error.reason}); expected a CSV or JSON file",
                         source=path.name) from error
    if suffix == ".json":
        return load_json_object(text, path.name), path.name
    if suffix in (".csv", ".txt"):
        import csv
        import io

        header = next(csv.reader(io.StringIO(text)), [])
        problems = duplicate_names(header)
        if problems:  # pandas would rename the second one "nse.1"
            raise InputError(f"{path.name}: header: " + "; ".join(problems), source=path.name)
        try:
            return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False), path.name
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise InputError(f"{path.name}: cannot be read as CSV ({error})", source=path.name) from error
    raise InputError(f"{path.name}: unsupported file type {suffix!r} (expected .csv or .json)", source=path.name)


def validate_clinical(values, source: str = "form", *, require: bool = True,
                      allow_extra: bool = False, cohort: bool = False) -> pd.DataFrame:
    """Check clinical values against the schema and return them in canonical units.

    Parameters
    ----------
    values : dict, pandas.DataFrame, str or Path
        One patient as ``{variable: value}`` or ``{variable: {"value": v, "unit": u}}``; a table with
        one row per patient (headers may carry a unit as ``"nse [ug/L]"``); or the path of a CSV or
        JSON file holding either.
    source : str
        What to call the input in messages (a file name is used automatically).
    require : bool
        If true, variables that may not be missing (``missing_allowed=False``) must be given. If
        false (a partial entry: labs only), absent variables become missing and are imputed later.
    allow_extra : bool
        Keep columns the schema does not know (otherwise they are an error).
    cohort : bool
        A research cohort's table: the baseline variables of
        :data:`~nbrisk_core.clinical.schema.COHORT_MISSING_ALLOWED` may be missing (they are imputed).
        The cohort variables (``inss_stage``) are validated whenever their column is present.

    Returns
    -------
    pandas.DataFrame
        ``patient_id`` (if given), every schema variable in schema order (numbers as float in the
        canonical unit, binaries as 0.0/1.0, categories as strings, missing as NaN), then
        ``os_days``/``os_event`` if given, then extra columns if allowed.

    Raises
    ------
    InputError
        Listing every problem: variable, value, and the accepted range, categories or units.

    Examples
    --------
    >>> validate_clinical({"nse": {"value": 40, "unit": "ug/L"}}, require=False)["nse"].item()
    40.0
    """
    if isinstance(values, (str, Path)):
        values, source = _read_file(Path(values))
    where_prefix = f"{source}: "
    problems: list[str] = []

    if isinstance(values, dict):
        problems += duplicate_names(values)
        records = []
        for raw_name, raw in values.items():
            name, unit = _split_header(raw_name)
            if isinstance(raw, dict):
                if "value" not in raw:
                    problems.append(f"{name}: expected {{'value': ..., 'unit': ...}}, got keys {sorted(raw)}")
                    continue
                unit, raw = raw.get("unit", unit), raw["value"]
            records.append((name, unit, raw))
        table = {name: [raw] for name, _, raw in records}
        units = {name: unit for name, unit, _ in records}
        frame = pd.DataFrame(table, index=[0]) if table else pd.DataFrame(index=[0])
    elif isinstance(values, pd.DataFrame):
        frame = values.reset_index(drop=True)
        problems += duplicate_names(frame.columns)
        units = {}
        renamed = {}
        for column in frame.columns:
            name, unit = _split_header(column)
            renamed[column] = name
            units[name] = unit
        frame = frame.rename(columns=renamed)
    else:
        raise InputError(f"{source}: clinical values must be a dict, a table or a file path, "
                         f"got {type(values).__name__}", source=source)

    known = set(_BY_NAME) | set(_COHORT_EXTRA) | {_ID_COLUMN, *OUTCOME_COLUMNS}
    unknown = [c for c in frame.columns if c not in known]
    if unknown and not allow_extra:
        spelled = {k.casefold(): k for k in known}
        hints = [f"{c} (did you mean {spelled[str(c).casefold()]}?)" if str(c).casefold() in spelled
                 else str(c) for c in unknown]
        problems.append(f"unknown variable(s) {', '.join(hints)} "
                        f"(expected names from the clinical schema: {', '.join(_BY_NAME)})")

    out = pd.DataFrame(index=frame.index)
    if _ID_COLUMN in frame.columns:
        out[_ID_COLUMN] = frame[_ID_COLUMN].astype(str)
    multi_row = len(frame) > 1
    extras = [v for v in COHORT_VARIABLES if v.name in frame.columns]
    for var in (*CLINICAL_VARIABLES, *extras):
        may_miss = var.missing_allowed or (cohort and var.name in COHORT_MISSING_ALLOWED)
        if var.name not in frame.columns:
            if require and not may_miss:
                problems.append(f"{var.name} is required but was not given")
            out[var.name] = np.nan if var.kind != "categorical" else None
            continue
        parsed = []
        for i, raw in enumerate(frame[var.name].tolist()):
            where = f"row {i + 1}: " if multi_row else ""
            if _is_missing(raw) and require and not may_miss:
                problems.append(f"{where}{var.name} is missing but required "
                                + (f"(expected one of {', '.join(var.categories)})" if var.categories
                                   else f"(expected {_range_text(var)})"))
                parsed.append(np.nan)
                continue
            parsed.append(_parse_one(var, raw, units.get(var.name), where, problems))
        out[var.name] = pd.Series(parsed, index=frame.index,
                                  dtype=object if var.kind == "categorical" else float)
    if OUTCOME_COLUMNS[0] in frame.columns:
        days = pd.to_numeric(frame[OUTCOME_COLUMNS[0]], errors="coerce")
        bad = frame.index[days.isna() | (days < 0)]
        for i in bad[:5]:
            problems.append(f"row {i + 1}: {OUTCOME_COLUMNS[0]} = {frame.loc[i, OUTCOME_COLUMNS[0]]!r} "
                            "(expected a follow-up time in days >= 0)")
        out[OUTCOME_COLUMNS[0]] = days
    if OUTCOME_COLUMNS[1] in frame.columns:
        events = pd.to_numeric(frame[OUTCOME_COLUMNS[1]], errors="coerce")
        bad = frame.index[~events.isin([0, 1])]
        for i in bad[:5]:
            problems.append(f"row {i + 1}: {OUTCOME_COLUMNS[1]} = {frame.loc[i, OUTCOME_COLUMNS[1]]!r} "
                            "(expected 1 = death or 0 = censored)")
        out[OUTCOME_COLUMNS[1]] = events
    if allow_extra:
        for column in unknown:
            out[column] = frame[column]
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise InputError(where_prefix + "; ".join(shown), source=source)
    return out


def parse_entry(values: dict, source: str = "form") -> dict:
    """One patient's values as typed (text from a form), checked and parsed; units kept as typed.

    The Prognosis page sends what its fields hold (``{"nse": {"value": "12.5", "unit": "ug/L"}}``,
    ``{"mycn_amplified": 1}``, ``{"sex": "F"}``); this runs :func:`validate_clinical` on it (so the
    same rules apply as to a lab file) and returns the same shape with each number a float. Empty
    fields are left out (imputed later). Nothing is coerced: ``12,5``, ``1e400``, ``true`` raise.

    Raises
    ------
    InputError
        Naming each field, its value and what was expected.

    Examples
    --------
    >>> parse_entry({"nse": {"value": " 40.5 ", "unit": "ug/L"}, "crp": ""})
    {'nse': {'value': 40.5, 'unit': 'ug/L'}}
    """
    validate_clinical(values, source, require=False)
    parsed: dict = {}
    for name, raw in values.items():
        unit = None
        if isinstance(raw, dict):
            raw, unit = raw.get("value"), raw.get("unit")
        if _is_missing(raw):
            continue
        var = _BY_NAME[_split_header(name)[0]]
        if var.kind == "numeric":
            number = parse_number(raw, var.name, var.unit)
            parsed[name] = {"value": number, "unit": unit} if unit is not None else number
        elif var.kind == "binary":
            parsed[name] = int(parse_number(raw, var.name, "0 or 1"))
        else:
            parsed[name] = raw.strip()
    return parsed


# --------------------------------------------------------------------------------------------
# numeric encoding for the models
# --------------------------------------------------------------------------------------------

#: tumour markers and blood counts are log-normal: log1p makes their Cox effect roughly linear (ours)
LOG_TRANSFORMED: tuple[str, ...] = tuple(v.name for v in CLINICAL_VARIABLES
                                         if v.group in ("tumour_marker", "inflammatory"))


def encoded_columns() -> list[str]:
    """Names of the numeric model columns :func:`encode_clinical` produces, in order."""
    names = []
    for var in CLINICAL_VARIABLES:
        if var.kind == "categorical":
            names += [f"{var.name}_{c}" for c in var.categories[1:]]  # first category = reference
        else:
            names.append(var.name)
    return names


def categorical_groups(columns) -> dict[str, list[str]]:
    """The encoded columns of each categorical or binary variable among ``columns``.

    ``{"sex": ["sex_M"], "inrg_stage": ["inrg_stage_L2", "inrg_stage_M", "inrg_stage_MS"],
    "mycn_amplified": ["mycn_amplified"], ...}``: the blocks the imputer fills together, with a
    category-level model (see :class:`~nbrisk_core.prognosis.impute.MICEPMMImputer`).
    """
    present = set(columns)
    groups: dict[str, list[str]] = {}
    for var in (*CLINICAL_VARIABLES, *COHORT_VARIABLES):
        if var.kind == "categorical":
            block = [f"{var.name}_{c}" for c in var.categories[1:]]
        elif var.kind == "binary":
            block = [var.name]
        else:
            continue
        block = [c for c in block if c in present]
        if block:
            groups[var.name] = block
    return groups


def encode_clinical(clinical: pd.DataFrame) -> pd.DataFrame:
    """Numeric model design from validated clinical values (same index, NaN kept for MICE).

    Categories become 0/1 indicators against their first category (``sex_M``, ``inrg_stage_M`` ...,
    ``risk_group_HR``); tumour and inflammatory markers are ``log1p``-transformed; binaries stay 0/1.
    """
    out = pd.DataFrame(index=clinical.index)
    extras = [v for v in COHORT_VARIABLES if v.name in clinical.columns]
    for var in (*CLINICAL_VARIABLES, *extras):
        column = clinical[var.name] if var.name in clinical.columns else pd.Series(np.nan, index=clinical.index)
        if var.kind == "categorical":
            for category in var.categories[1:]:
                out[f"{var.name}_{category}"] = np.where(column.isna(), np.nan, (column == category).astype(float))
        elif var.name in LOG_TRANSFORMED:
            out[var.name] = np.log1p(column.astype(float))
        else:
            out[var.name] = column.astype(float)
    return out


def decode_clinical(encoded: pd.Series | dict, names=None) -> dict:
    """Schema values of one patient's encoded row: the inverse of :func:`encode_clinical`.

    Used to report what MICE-PMM filled in, in the units a clinician entered: markers are
    ``expm1`` of their ``log1p`` value in the schema's canonical unit, binaries 0/1, categories the
    category whose indicator is largest (the first, reference category when every indicator is 0).

    Parameters
    ----------
    encoded : Series or dict
        One row with the columns of :func:`encoded_columns` (a completed, imputed row).
    names : iterable of str, optional
        The schema variables to decode (default: all).

    Examples
    --------
    >>> row = encode_clinical(validate_clinical({"ldh": 455.0, "inrg_stage": "M"}, require=False)).iloc[0]
    >>> decode_clinical(row, ["ldh", "inrg_stage"])  # in schema order
    {'inrg_stage': 'M', 'ldh': 455.0}
    """
    row = dict(encoded)
    wanted = None if names is None else set(names)
    values: dict = {}
    for var in (*CLINICAL_VARIABLES, *COHORT_VARIABLES):
        if wanted is not None and var.name not in wanted:
            continue
        if var.kind == "categorical":
            indicators = [float(row.get(f"{var.name}_{c}", np.nan)) for c in var.categories[1:]]
            if any(np.isnan(indicators)):
                continue
            best = int(np.argmax(indicators))
            values[var.name] = var.categories[best + 1] if indicators[best] >= 0.5 else var.categories[0]
            continue
        number = float(row.get(var.name, np.nan))
        if np.isnan(number):
            continue
        if var.kind == "binary":
            values[var.name] = int(round(number))
        else:
            number = float(np.expm1(number)) if var.name in LOG_TRANSFORMED else number
            values[var.name] = float(f"{number:.12g}")  # drop the log/exp round-trip's last-digit noise
    return values
