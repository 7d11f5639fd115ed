"""Pre-treatment risk groups of neuroblastoma: INRG (Cohn 2009) and COG v2 (Irwin 2021), as data tables.

Both classifications are tuples of :class:`RiskRow`; a row lists, for each input it depends on, the
codes under which it applies (an input a row does not name is "any"). Code never branches on a
clinical value: :func:`classify` looks the patient up in a table, and the tests enumerate every
combination of the inputs to prove that exactly one row applies to each (or that the combination is
a declared gap, :data:`GAPS`).

Sources (see ``docs/clinical-risk.md`` for what a clinician should double-check):

- INRG: Cohn SL et al., J Clin Oncol 2009;27:289-297, Table 3, as reprinted in the NCI PDQ
  "Neuroblastoma Treatment (Health Professional Version)", Table 4 (reprinted there from Pinto N et
  al., J Clin Oncol 2015;33:3008). The rows below were checked cell by cell against a public
  transcription of the PDQ page (repository gautamgauri/suchi-cancer-bot, file
  ``suchi_phase1_pack/kb/en/02_nci_core/pdq/types-neuroblastoma-hp-neuroblastoma-treatment-pdq.md``).
  One cell is ambiguous in that transcription and was resolved from memory: group N (L2, MYCN
  amplified) is applied at any age, not only >= 18 months.
- COG v2: Irwin MS et al., J Clin Oncol 2021;39:3229-3241, summarised in the same PDQ page, Table 3,
  which lists the high- and low-risk rows and says "all other groups" are intermediate. The PDQ
  summary was checked against the same transcription; the explicit intermediate rows (the
  complement) are derived from it, not copied from Irwin's full table, which could not be consulted.

Age: 18 months = 547 days and 12 months = 365 days, as in both papers; ``age_months`` is converted
to days with the schema's factor (365.25 / 12 days per month) and compared in days, so that a child
of 547 days entered as 17.97 months is ">= 18 months".

A missing input is never defaulted. If the answer does not depend on it (every completion of the
missing inputs gives the same risk) the risk is given; otherwise the result is "indeterminate" and
names the inputs it needs.

>>> r = classify_patient({"inrg_stage": "M", "age_months": 30})
>>> (r.inrg.group, r.inrg.risk, r.cog.risk)
('P', 'high', 'high')
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

#: Days per month, as in :mod:`nbrisk_core.clinical.schema` (``age_months`` alt unit "days").
DAYS_PER_MONTH = 365.25 / 12

#: (code, first day, first day of the next band): 12 months = 365 days, 18 months = 547 days.
AGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<12 mo", 0.0, 365.0),
    ("12 to <18 mo", 365.0, 547.0),
    (">=18 mo", 547.0, math.inf),
)
UNDER_18 = ("<12 mo", "12 to <18 mo")
ALL_AGES = tuple(code for code, _, _ in AGE_BANDS)

INDETERMINATE = "indeterminate"


@dataclass(frozen=True)
class RiskInput:
    """One input of the classifications, as a column of ``nbrisk inrg``'s table.

    ``codes`` are the accepted cell values (an empty cell is missing); ``age_months`` is numeric and
    enters the tables through its band (:data:`AGE_BANDS`), under the name ``age_band``.
    """

    name: str
    label: str
    codes: tuple[str, ...]
    used_by: tuple[str, ...]
    numeric_range: tuple[float, float] | None = None


RISK_INPUTS: tuple[RiskInput, ...] = (
    RiskInput("inrg_stage", "INRGSS stage", ("L1", "L2", "M", "MS"), ("INRG", "COG")),
    RiskInput("age_months", "Age at diagnosis (months)", (), ("INRG", "COG"), numeric_range=(0.0, 360.0)),
    RiskInput("histologic_category", "Histologic category (INRG)",
              ("GN maturing", "GNB intermixed", "GNB nodular", "neuroblastoma"), ("INRG",)),
    RiskInput("differentiation_grade", "Grade of tumour differentiation (INRG)",
              ("differentiating", "poorly differentiated", "undifferentiated"), ("INRG",)),
    RiskInput("mycn_amplified", "MYCN amplified", ("0", "1"), ("INRG", "COG")),
    RiskInput("aberration_11q", "11q aberration (INRG)", ("0", "1"), ("INRG",)),
    RiskInput("ploidy", "DNA ploidy", ("hyperdiploid", "diploid"), ("INRG", "COG")),
    RiskInput("histology", "INPC histology (COG)", ("favourable", "unfavourable"), ("COG",)),
    RiskInput("segmental_aberrations", "Segmental chromosomal aberrations, 1p or 11q (COG)", ("0", "1"),
              ("COG",)),
    RiskInput("resection", "Resection of an L1 tumour (COG)", ("complete", "incomplete"), ("COG",)),
    RiskInput("symptomatic", "Symptoms, for MS (COG)", ("0", "1"), ("COG",)),
)
RISK_INPUT_NAMES: tuple[str, ...] = tuple(i.name for i in RISK_INPUTS)

#: The finite domain of every table variable (``age_band`` stands for ``age_months``).
DOMAINS: dict[str, tuple[str, ...]] = {
    ("age_band" if i.name == "age_months" else i.name): (ALL_AGES if i.name == "age_months" else i.codes)
    for i in RISK_INPUTS
}


@dataclass(frozen=True)
class RiskRow:
    """One row of a classification table: the group it assigns and when it applies.

    ``when`` maps a table variable to the codes under which the row applies; a variable not named
    is "any". ``row_id`` is unique in its table (INRG group H has two rows).
    """

    row_id: str
    group: str
    risk: str
    when: tuple[tuple[str, tuple[str, ...]], ...]
    source: str = ""

    def conditions(self) -> dict[str, tuple[str, ...]]:
        return dict(self.when)


def _row(row_id: str, group: str, risk: str, source: str = "", **when) -> RiskRow:
    for name, codes in when.items():
        if name not in DOMAINS or not set(codes) <= set(DOMAINS[name]):
            raise ValueError(f"row {row_id}: {name} = {codes} is not in the domain {DOMAINS.get(name)}")
    return RiskRow(row_id, group, risk, tuple((n, tuple(c)) for n, c in when.items()), source)


NOT_GN = ("GNB nodular", "neuroblastoma")
GN = ("GN maturing", "GNB intermixed")
NO, YES = ("0",), ("1",)

#: INRG pre-treatment classification schema (Cohn 2009 Table 3 = PDQ Table 4); group letter, risk.
INRG_TABLE: tuple[RiskRow, ...] = (
    _row("A", "A", "very low", inrg_stage=("L1", "L2"), histologic_category=GN),
    _row("B", "B", "very low", inrg_stage=("L1",), histologic_category=NOT_GN, mycn_amplified=NO),
    _row("K", "K", "high", inrg_stage=("L1",), histologic_category=NOT_GN, mycn_amplified=YES),
    _row("D", "D", "low", inrg_stage=("L2",), age_band=UNDER_18, histologic_category=NOT_GN,
         mycn_amplified=NO, aberration_11q=NO),
    _row("G", "G", "intermediate", inrg_stage=("L2",), age_band=UNDER_18, histologic_category=NOT_GN,
         mycn_amplified=NO, aberration_11q=YES),
    _row("E", "E", "low", inrg_stage=("L2",), age_band=(">=18 mo",), histologic_category=NOT_GN,
         differentiation_grade=("differentiating",), mycn_amplified=NO, aberration_11q=NO),
    _row("H-differentiating", "H", "intermediate", inrg_stage=("L2",), age_band=(">=18 mo",),
         histologic_category=NOT_GN, differentiation_grade=("differentiating",), mycn_amplified=NO,
         aberration_11q=YES),
    _row("H-poorly-or-undifferentiated", "H", "intermediate", inrg_stage=("L2",), age_band=(">=18 mo",),
         histologic_category=NOT_GN, differentiation_grade=("poorly differentiated", "undifferentiated"),
         mycn_amplified=NO),
    _row("N", "N", "high", "any age: from memory, the PDQ transcription prints it under >= 18 mo",
         inrg_stage=("L2",), histologic_category=NOT_GN, mycn_amplified=YES),
    _row("F", "F", "low", inrg_stage=("M",), age_band=UNDER_18, mycn_amplified=NO, ploidy=("hyperdiploid",)),
    _row("I", "I", "intermediate", inrg_stage=("M",), age_band=("<12 mo",), mycn_amplified=NO,
         ploidy=("diploid",)),
    _row("J", "J", "intermediate", inrg_stage=("M",), age_band=("12 to <18 mo",), mycn_amplified=NO,
         ploidy=("diploid",)),
    _row("O", "O", "high", inrg_stage=("M",), age_band=UNDER_18, mycn_amplified=YES),
    _row("P", "P", "high", inrg_stage=("M",), age_band=(">=18 mo",)),
    _row("C", "C", "very low", inrg_stage=("MS",), age_band=UNDER_18, mycn_amplified=NO, aberration_11q=NO),
    _row("Q", "Q", "high", inrg_stage=("MS",), age_band=UNDER_18, mycn_amplified=NO, aberration_11q=YES),
    _row("R", "R", "high", inrg_stage=("MS",), age_band=UNDER_18, mycn_amplified=YES),
)

FH, UH = ("favourable",), ("unfavourable",)
_PDQ = "PDQ Table 3"
_REST = "intermediate: 'all other groups' (PDQ Table 3), complement derived here"

#: COG v2 (Irwin 2021; PDQ Table 3). ``group`` is the row's short name.
COG_TABLE: tuple[RiskRow, ...] = (
    _row("L1-nonamp", "L1 MYCN NA", "low", _PDQ + " low 1", inrg_stage=("L1",), mycn_amplified=NO),
    _row("L1-amp-resected", "L1 MYCN amp, complete resection", "low", _PDQ + " low 2",
         inrg_stage=("L1",), mycn_amplified=YES, resection=("complete",)),
    _row("L1-amp-residual", "L1 MYCN amp, incomplete resection", "high", _PDQ + " high 6",
         inrg_stage=("L1",), mycn_amplified=YES, resection=("incomplete",)),
    _row("L2-amp", "L2 MYCN amp", "high", _PDQ + " high 3", inrg_stage=("L2",), mycn_amplified=YES),
    _row("L2-UH-18mo", "L2 >=18 mo UH", "high", _PDQ + " high 4", inrg_stage=("L2",), mycn_amplified=NO,
         age_band=(">=18 mo",), histology=UH),
    _row("L2-FH-18mo", "L2 >=18 mo FH MYCN NA", "intermediate", _REST, inrg_stage=("L2",),
         mycn_amplified=NO, age_band=(">=18 mo",), histology=FH),
    _row("L2-under-18mo", "L2 <18 mo MYCN NA", "intermediate", _REST, inrg_stage=("L2",),
         mycn_amplified=NO, age_band=UNDER_18),
    _row("M-18mo", "M >=18 mo", "high", _PDQ + " high 1", inrg_stage=("M",), age_band=(">=18 mo",)),
    _row("M-amp", "M <18 mo MYCN amp", "high", _PDQ + " high 2", inrg_stage=("M",), age_band=UNDER_18,
         mycn_amplified=YES),
    _row("M-under-12mo", "M <12 mo MYCN NA", "intermediate", _REST, inrg_stage=("M",), age_band=("<12 mo",),
         mycn_amplified=NO),
    _row("M-12-18-UH", "M 12-18 mo UH", "high", _PDQ + " high 5", inrg_stage=("M",),
         age_band=("12 to <18 mo",), mycn_amplified=NO, histology=UH),
    _row("M-12-18-SCA", "M 12-18 mo SCA", "high", _PDQ + " high 5", inrg_stage=("M",),
         age_band=("12 to <18 mo",), mycn_amplified=NO, histology=FH, segmental_aberrations=YES),
    _row("M-12-18-diploid", "M 12-18 mo diploid", "high", _PDQ + " high 5", inrg_stage=("M",),
         age_band=("12 to <18 mo",), mycn_amplified=NO, histology=FH, segmental_aberrations=NO,
         ploidy=("diploid",)),
    _row("M-12-18-favourable", "M 12-18 mo all favourable", "intermediate", _REST, inrg_stage=("M",),
         age_band=("12 to <18 mo",), mycn_amplified=NO, histology=FH, segmental_aberrations=NO,
         ploidy=("hyperdiploid",)),
    _row("MS-amp", "MS MYCN amp", "high", _PDQ + " high 3", inrg_stage=("MS",), age_band=UNDER_18,
         mycn_amplified=YES),
    _row("MS-12-18-UH", "MS 12-18 mo UH", "high", _PDQ + " high 5", inrg_stage=("MS",),
         age_band=("12 to <18 mo",), mycn_amplified=NO, histology=UH),
    _row("MS-12-18-SCA", "MS 12-18 mo SCA", "high", _PDQ + " high 5", inrg_stage=("MS",),
         age_band=("12 to <18 mo",), mycn_amplified=NO, histology=FH, segmental_aberrations=YES),
    _row("MS-12-18-diploid", "MS 12-18 mo diploid", "high", _PDQ + " high 5", inrg_stage=("MS",),
         age_band=("12 to <18 mo",), mycn_amplified=NO, histology=FH, segmental_aberrations=NO,
         ploidy=("diploid",)),
    _row("MS-12-18-favourable", "MS 12-18 mo all favourable", "intermediate", _REST, inrg_stage=("MS",),
         age_band=("12 to <18 mo",), mycn_amplified=NO, histology=FH, segmental_aberrations=NO,
         ploidy=("hyperdiploid",)),
    _row("MS-under-12-favourable", "MS <12 mo all favourable", "low", _PDQ + " low 3", inrg_stage=("MS",),
         age_band=("<12 mo",), mycn_amplified=NO, symptomatic=NO, histology=FH, segmental_aberrations=NO,
         ploidy=("hyperdiploid",)),
    _row("MS-under-12-symptomatic", "MS <12 mo symptomatic", "intermediate", _REST, inrg_stage=("MS",),
         age_band=("<12 mo",), mycn_amplified=NO, symptomatic=YES),
    _row("MS-under-12-UH", "MS <12 mo UH", "intermediate", _REST, inrg_stage=("MS",), age_band=("<12 mo",),
         mycn_amplified=NO, symptomatic=NO, histology=UH),
    _row("MS-under-12-SCA", "MS <12 mo SCA", "intermediate", _REST, inrg_stage=("MS",),
         age_band=("<12 mo",), mycn_amplified=NO, symptomatic=NO, histology=FH, segmental_aberrations=YES),
    _row("MS-under-12-diploid", "MS <12 mo diploid", "intermediate", _REST, inrg_stage=("MS",),
         age_band=("<12 mo",), mycn_amplified=NO, symptomatic=NO, histology=FH, segmental_aberrations=NO,
         ploidy=("diploid",)),
)

#: Combinations no row covers, on purpose: (variable, codes) that together describe the gap, and why.
GAPS: tuple[tuple[tuple[tuple[str, tuple[str, ...]], ...], str], ...] = (
    ((("inrg_stage", ("MS",)), ("age_band", (">=18 mo",))),
     "stage MS is defined only below 18 months (INRGSS); at >= 18 months metastatic disease is stage M"),
)

TABLES: dict[str, tuple[RiskRow, ...]] = {"INRG": INRG_TABLE, "COG": COG_TABLE}
RISK_LEVELS: dict[str, tuple[str, ...]] = {
    "INRG": ("very low", "low", "intermediate", "high", INDETERMINATE),
    "COG": ("low", "intermediate", "high", INDETERMINATE),
}


@dataclass(frozen=True)
class RiskResult:
    """The result of one classification for one patient.

    ``group`` is the INRG letter (or the COG row's name), "" unless one row applies; ``risk`` one of
    :data:`RISK_LEVELS`; ``needs`` the missing inputs the answer depends on; ``reason`` the text a
    clinician reads ("indeterminate: needs ploidy").
    """

    system: str
    group: str
    risk: str
    needs: tuple[str, ...] = ()
    reason: str = ""

    @property
    def determined(self) -> bool:
        return self.risk != INDETERMINATE


def age_band(age_months: float | None) -> str | None:
    """The band of :data:`AGE_BANDS` of an age in months (compared in days; 547 days is ">=18 mo")."""
    if age_months is None:
        return None
    days = round(age_months * DAYS_PER_MONTH, 6)
    return next(code for code, low, high in AGE_BANDS if low <= days < high)


def _applies(conditions: Mapping[str, tuple[str, ...]], values: Mapping[str, str | None]) -> bool | None:
    """True if every condition holds, False if a known value breaks one, None if a missing one decides."""
    undecided = False
    for name, codes in conditions.items():
        value = values.get(name)
        if value is None:
            undecided = True
        elif value not in codes:
            return False
    return None if undecided else True


def _gap(values: Mapping[str, str]) -> str | None:
    for conditions, why in GAPS:
        if _applies(dict(conditions), values):
            return why
    return None


def _lookup(system: str, values: Mapping[str, str]) -> RiskRow | str:
    """The one row of a complete combination, or the gap's explanation."""
    rows = [row for row in TABLES[system] if _applies(row.conditions(), values)]
    if len(rows) == 1:
        return rows[0]
    gap = _gap(values)
    if gap is not None and not rows:
        return gap
    raise AssertionError(f"{system} table: {len(rows)} rows apply to {dict(values)}")  # the tests forbid it


@lru_cache(maxsize=4096)
def _classify_cached(system: str, known: tuple[tuple[str, str | None], ...]) -> RiskResult:
    values = dict(known)
    rows = TABLES[system]
    full = [row for row in rows if _applies(row.conditions(), values) is True]
    if full:
        row = full[0]
        return RiskResult(system, row.group, row.risk, reason=f"{system} {row.group}: {row.risk}")
    gap = _gap(values)
    if gap is not None:
        return RiskResult(system, "", INDETERMINATE, reason=f"{system} indeterminate: no row applies ({gap})")
    candidates = [row for row in rows if _applies(row.conditions(), values) is not False]
    relevant = sorted({name for row in candidates for name in row.conditions() if values.get(name) is None},
                      key=list(DOMAINS).index)
    by_combination = {}
    for combination in itertools.product(*(DOMAINS[name] for name in relevant)):
        outcome = _lookup(system, {**values, **dict(zip(relevant, combination))})
        by_combination[combination] = ((outcome.group, outcome.risk) if isinstance(outcome, RiskRow)
                                       else ("", INDETERMINATE))
    outcomes = set(by_combination.values())
    risks = {risk for _, risk in outcomes}
    if len(risks) == 1 and INDETERMINATE not in risks:
        groups = {group for group, _ in outcomes}
        group = groups.pop() if len(groups) == 1 else ""
        risk = risks.pop()
        return RiskResult(system, group, risk,
                          reason=f"{system} {risk} whatever {', '.join(_input_names(relevant))} is")
    needs = tuple(_input_names(name for i, name in enumerate(relevant) if _matters(by_combination, i)))
    return RiskResult(system, "", INDETERMINATE, needs,
                      f"{system} indeterminate: needs {', '.join(needs)}")


def _matters(by_combination: dict, index: int) -> bool:
    """Whether changing only the ``index``-th missing input can change the risk."""
    seen: dict[tuple, str] = {}
    for combination, (_, risk) in by_combination.items():
        rest = combination[:index] + combination[index + 1:]
        if seen.setdefault(rest, risk) != risk:
            return True
    return False


def _input_names(variables) -> list[str]:
    return ["age_months" if name == "age_band" else name for name in variables]


def classify(system: str, inputs: Mapping[str, object]) -> RiskResult:
    """Classify one patient with one table ("INRG" or "COG").

    ``inputs`` maps :data:`RISK_INPUT_NAMES` to valid codes (``age_months`` a number); a name absent
    or None is missing. Use :func:`parse_inputs` first for raw cells.
    """
    values: dict[str, str | None] = {}
    for name in DOMAINS:
        if name == "age_band":
            age = inputs.get("age_months")
            values[name] = age_band(float(age)) if age is not None else None
        else:
            value = inputs.get(name)
            values[name] = None if value is None else str(value)
    return _classify_cached(system, tuple(sorted(values.items(), key=lambda kv: kv[0])))


#: INRG risk -> the COG level it is compared with ("very low" and "low" are both low-risk therapy).
INRG_TO_COG_LEVEL: dict[str, str] = {"very low": "low", "low": "low", "intermediate": "intermediate",
                                     "high": "high"}


@dataclass(frozen=True)
class PatientRisk:
    """INRG and COG results for one patient, and whether they disagree."""

    inrg: RiskResult
    cog: RiskResult

    @property
    def missing_inputs(self) -> tuple[str, ...]:
        needed = set(self.inrg.needs) | set(self.cog.needs)
        return tuple(name for name in RISK_INPUT_NAMES if name in needed)

    @property
    def disagree(self) -> bool:
        return (self.inrg.determined and self.cog.determined
                and INRG_TO_COG_LEVEL[self.inrg.risk] != self.cog.risk)

    @property
    def note(self) -> str:
        inrg = f"INRG {self.inrg.risk}" + (f" ({self.inrg.group})" if self.inrg.group else "")
        if self.disagree:
            return f"INRG and COG disagree: {inrg}, COG {self.cog.risk}"
        parts = [r.reason for r in (self.inrg, self.cog) if not r.determined]
        return "; ".join(parts)


def classify_patient(inputs: Mapping[str, object]) -> PatientRisk:
    """Both classifications of one patient (see :func:`classify`)."""
    return PatientRisk(classify("INRG", inputs), classify("COG", inputs))


@dataclass(frozen=True)
class CellProblem:
    """One invalid cell; ``row`` counts data rows from 1 (in a CSV with a header, line ``row + 1``)."""

    row: int
    column: str
    value: str
    expected: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.column} = {self.value!r} is not accepted; expected {self.expected}"


def expected_text(risk_input: RiskInput) -> str:
    if risk_input.numeric_range is not None:
        low, high = risk_input.numeric_range
        return f"a number of months from {low:g} to {high:g} (or an empty cell)"
    return " | ".join(risk_input.codes) + " (or an empty cell)"


#: Combinations of inputs that contradict each other: (the first input and its codes, the second
#: input, its contradicting code, what the second input should be and why). Checked by :func:`parse_inputs`.
CONTRADICTIONS: tuple[tuple[str, tuple[str, ...], str, str, str], ...] = (
    ("histologic_category", GN, "histology", "unfavourable",
     "favourable: GN maturing and GNB intermixed are INPC favourable histology"),
    ("aberration_11q", YES, "segmental_aberrations", "0",
     "1: an 11q aberration is a segmental chromosomal aberration"),
)


def parse_inputs(cells: Mapping[str, object], row: int = 1) -> tuple[dict[str, object], list[CellProblem]]:
    """Raw cells (text; "" or None is missing) -> (inputs for :func:`classify`, problems).

    Codes are matched exactly (after trimming spaces): "1.0" is not "1", "Diploid" is not "diploid";
    only the table can say what a site's code means.
    """
    inputs: dict[str, object] = {}
    problems: list[CellProblem] = []
    for risk_input in RISK_INPUTS:
        raw = cells.get(risk_input.name)
        text = "" if raw is None or (isinstance(raw, float) and math.isnan(raw)) else str(raw).strip()
        if text == "":
            continue
        if risk_input.numeric_range is not None:
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            low, high = risk_input.numeric_range
            if not math.isfinite(number) or not low <= number <= high:
                problems.append(CellProblem(row, risk_input.name, text, expected_text(risk_input)))
                continue
            inputs[risk_input.name] = number
        elif text in risk_input.codes:
            inputs[risk_input.name] = text
        else:
            problems.append(CellProblem(row, risk_input.name, text, expected_text(risk_input)))
    for first, first_codes, second, contradicting, expected in CONTRADICTIONS:
        if inputs.get(first) in first_codes and inputs.get(second) == contradicting:
            problems.append(CellProblem(row, second, contradicting,
                                        f"{expected} ({first} = {inputs[first]})"))
    return inputs, problems


OUTPUT_COLUMNS: tuple[str, ...] = ("inrg_group", "inrg_risk", "cog_risk", "missing_inputs", "risk_note")


class RiskTableError(ValueError):
    """Invalid cells in a risk table; ``problems`` lists each one."""

    def __init__(self, source: str, problems: list[CellProblem]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} invalid cell(s); first: {problems[0]}")


def classify_table(table, source: str = "table"):
    """A DataFrame of text cells -> a copy with :data:`OUTPUT_COLUMNS` added.

    Columns named in :data:`RISK_INPUT_NAMES` are read (any may be absent: then it is missing for
    every row); other columns are kept unchanged. Raises :class:`RiskTableError` listing every
    invalid cell (rows numbered from 1 = the first data row) before classifying anything.
    """
    import pandas as pd

    records = table.to_dict(orient="records")
    parsed, problems = [], []
    for number, record in enumerate(records, start=1):
        inputs, row_problems = parse_inputs(record, row=number)
        parsed.append(inputs)
        problems.extend(row_problems)
    if problems:
        raise RiskTableError(source, problems)
    out = table.copy()
    results = [classify_patient(inputs) for inputs in parsed]
    columns = {
        "inrg_group": [r.inrg.group if r.inrg.determined else "" for r in results],
        "inrg_risk": [r.inrg.risk for r in results],
        "cog_risk": [r.cog.risk for r in results],
        "missing_inputs": ["; ".join(r.missing_inputs) for r in results],
        "risk_note": [r.note for r in results],
    }
    for name, values in columns.items():
        out[name] = pd.Series(values, index=out.index, dtype=object)
    return out
