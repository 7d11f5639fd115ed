"""The TOML mapping of ``nbrisk cohort import``: which spreadsheet column is which schema variable.

Shape (``docs/cohort-format.md`` has the full example)::

    [cohort]            name = "...", source = "..." (optional), synthetic = false (optional)
    [patient_id]        column = "Study number"
    [outcome]           time = { column = "...", unit = "days" | "months" | "years" }
                        event = { column = "...", map = { "dead" = 1, "alive" = 0 } }
    [variables.NAME]    column = "...", unit = "..." (a unit the schema lists), map = { "cell" = value }

Every key is checked: an unknown section, key, variable or unit is an error naming the mapping file,
the section and what is accepted. Nothing here reads the spreadsheet.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from nbrisk_core.clinical.schema import ClinicalVariable, cohort_variables
from nbrisk_core.errors import InputError

#: Units of the follow-up time -> days.
TIME_UNITS: dict[str, float] = {"days": 1.0, "months": 365.25 / 12.0, "years": 365.25}


@dataclass(frozen=True)
class ColumnMap:
    """One mapped column: where it comes from, its unit and its value map (``None``: no map)."""

    target: str
    column: str
    unit: str | None = None
    values: dict | None = None


@dataclass
class CohortMapping:
    """A parsed, checked mapping file."""

    path: Path
    name: str
    source: str
    synthetic: bool
    patient_id: str
    time: ColumnMap
    event: ColumnMap
    variables: dict[str, ColumnMap] = field(default_factory=dict)

    @property
    def source_columns(self) -> list[str]:
        """The spreadsheet columns the mapping uses, in mapping order."""
        return [self.patient_id, self.time.column, self.event.column,
                *(m.column for m in self.variables.values())]


def _where(path: Path, section: str) -> str:
    return f"{path.name}: [{section}]"


def _table(data: dict, key: str, path: Path, section: str) -> dict:
    value = data.get(key)
    if not isinstance(value, dict):
        raise InputError(f"{_where(path, section)} is missing or not a table (see docs/cohort-format.md)",
                         source=path.name)
    return value


def _check_keys(table: dict, allowed: tuple[str, ...], path: Path, section: str) -> None:
    unknown = [k for k in table if k not in allowed]
    if unknown:
        raise InputError(f"{_where(path, section)}: unknown key(s) {', '.join(map(repr, unknown))} "
                         f"(expected {', '.join(allowed)})", source=path.name)


def _text(table: dict, key: str, path: Path, section: str, required: bool = True) -> str | None:
    value = table.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{_where(path, section)}: {key} = {value!r} (expected a non-empty string)",
                         source=path.name)
    return value


def _value_map(table: dict, path: Path, section: str) -> dict | None:
    if "map" not in table:
        return None
    values = table["map"]
    if not isinstance(values, dict):
        raise InputError(f"{_where(path, section)}: map = {values!r} (expected an inline table "
                         '{ "cell value" = value })', source=path.name)
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InputError(f"{_where(path, section)}: map value for {key!r} is {value!r} (expected a "
                             'string or a number; "" means missing)', source=path.name)
    return dict(values)


def _variable_map(name: str, table: dict, path: Path, known: dict[str, ClinicalVariable]) -> ColumnMap:
    section = f"variables.{name}"
    if name not in known:
        raise InputError(f"{_where(path, section)}: unknown variable {name!r} (expected one of "
                         f"{', '.join(known)})", source=path.name)
    if not isinstance(table, dict):
        raise InputError(f"{_where(path, section)}: expected a table with column (and unit, map)",
                         source=path.name)
    _check_keys(table, ("column", "unit", "map"), path, section)
    var = known[name]
    unit = _text(table, "unit", path, section, required=False)
    if unit is not None and unit != var.unit and unit not in var.alt_units:
        accepted = ", ".join([u for u in (var.unit, *var.alt_units) if u]) or "none (unitless)"
        raise InputError(f"{_where(path, section)}: unit {unit!r} is not accepted for {name} "
                         f"(accepted: {accepted})", source=path.name)
    return ColumnMap(name, _text(table, "column", path, section), unit, _value_map(table, path, section))


def load_mapping(path) -> CohortMapping:
    """Read and check a mapping file (InputError naming the file, section and value otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: mapping file not found (expected a TOML file: docs/cohort-format.md)",
                         source=str(path))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path.name}: not valid TOML ({error})", source=path.name) from None
    _check_keys(data, ("cohort", "patient_id", "outcome", "variables"), path, "top level")
    cohort = _table(data, "cohort", path, "cohort")
    _check_keys(cohort, ("name", "source", "synthetic"), path, "cohort")
    synthetic = cohort.get("synthetic", False)
    if not isinstance(synthetic, bool):
        raise InputError(f"{_where(path, 'cohort')}: synthetic = {synthetic!r} (expected true or false)",
                         source=path.name)
    source = cohort.get("source", "")
    if not isinstance(source, str):
        raise InputError(f"{_where(path, 'cohort')}: source = {source!r} (expected a string)",
                         source=path.name)
    patient = _table(data, "patient_id", path, "patient_id")
    _check_keys(patient, ("column",), path, "patient_id")
    outcome = _table(data, "outcome", path, "outcome")
    _check_keys(outcome, ("time", "event"), path, "outcome")
    time = _table(outcome, "time", path, "outcome.time")
    _check_keys(time, ("column", "unit"), path, "outcome.time")
    time_unit = _text(time, "unit", path, "outcome.time")
    if time_unit not in TIME_UNITS:
        raise InputError(f"{_where(path, 'outcome.time')}: unit {time_unit!r} is not accepted "
                         f"(accepted: {', '.join(TIME_UNITS)})", source=path.name)
    event = _table(outcome, "event", path, "outcome.event")
    _check_keys(event, ("column", "map"), path, "outcome.event")
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise InputError(f"{_where(path, 'variables')}: expected tables [variables.NAME]", source=path.name)
    known = {v.name: v for v in cohort_variables()}
    mapping = CohortMapping(
        path=path, name=_text(cohort, "name", path, "cohort"), source=source, synthetic=synthetic,
        patient_id=_text(patient, "column", path, "patient_id"),
        time=ColumnMap("os_days", _text(time, "column", path, "outcome.time"), time_unit),
        event=ColumnMap("os_event", _text(event, "column", path, "outcome.event"), None,
                        _value_map(event, path, "outcome.event")),
        variables={name: _variable_map(name, table, path, known) for name, table in variables.items()},
    )
    columns = mapping.source_columns
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise InputError(f"{path.name}: column(s) {', '.join(map(repr, twice))} mapped more than once "
                         "(each spreadsheet column feeds one variable)", source=path.name)
    return mapping
