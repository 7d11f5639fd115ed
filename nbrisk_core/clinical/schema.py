"""One declarative table of the clinical variables NBRisk knows.

Every variable has a column name, a label, a canonical unit, a kind, a plausible range (values
outside it are rejected with a message naming the variable, the value and the range), its
categories, whether it may be missing, and the other units it is accepted in with the factor to
the canonical unit. The paper (``../shared/spec/method.md`` sections 1 and 5) used baseline data,
tumour markers and inflammatory markers at diagnosis, with eleven indicators partly missing
(each under 30 %). The eleven labs below are those indicators for the synthetic demo cohort.

The table is data (like timm's ``default_cfgs``): code loops over it, never over ``if`` chains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["numeric", "binary", "categorical"]
Group = Literal["baseline", "tumour_marker", "inflammatory", "risk"]


@dataclass(frozen=True)
class ClinicalVariable:
    """One clinical variable.

    Attributes
    ----------
    name : str
        Column name in ``clinical.csv`` and in lab files (snake_case).
    label : str
        What a clinician reads on screen.
    unit : str
        Canonical unit ("" for unitless); stored values are in this unit.
    kind : {"numeric", "binary", "categorical"}
        Binary variables are stored as 0/1 integers, categorical ones as their category strings.
    low, high : float or None
        Plausible range in the canonical unit (inclusive); values outside are rejected.
    categories : tuple of str
        Allowed values of a categorical variable, in display order.
    missing_allowed : bool
        Whether the value may be absent (and is then imputed by MICE-PMM).
    alt_units : dict
        Other accepted units -> factor that converts a value in that unit to the canonical unit.
    group : str
        baseline, tumour_marker, inflammatory or risk.
    """

    name: str
    label: str
    unit: str
    kind: Kind
    low: float | None = None
    high: float | None = None
    categories: tuple[str, ...] = ()
    missing_allowed: bool = False
    alt_units: dict[str, float] = field(default_factory=dict)
    group: Group = "baseline"


CLINICAL_VARIABLES: tuple[ClinicalVariable, ...] = (
    # baseline profile
    ClinicalVariable("age_months", "Age at diagnosis", "months", "numeric", 0, 360,
                     alt_units={"years": 12.0, "days": 12.0 / 365.25}),
    ClinicalVariable("sex", "Sex", "", "categorical", categories=("F", "M")),
    ClinicalVariable("inrg_stage", "INRG stage", "", "categorical", categories=("L1", "L2", "M", "MS")),
    ClinicalVariable("histology", "INPC histology", "", "categorical",
                     categories=("favourable", "unfavourable")),
    ClinicalVariable("mycn_amplified", "MYCN amplification", "", "binary", 0, 1, group="risk"),
    # tumour markers (log-normal in the cohort; ranges are what a lab can report)
    ClinicalVariable("nse", "Neuron-specific enolase (NSE)", "ng/mL", "numeric", 0, 5000,
                     missing_allowed=True, alt_units={"ug/L": 1.0}, group="tumour_marker"),
    ClinicalVariable("ferritin", "Ferritin (FP)", "ng/mL", "numeric", 0, 20000,
                     missing_allowed=True, alt_units={"ug/L": 1.0}, group="tumour_marker"),
    ClinicalVariable("ldh", "Lactate dehydrogenase (LDH)", "U/L", "numeric", 0, 20000,
                     missing_allowed=True, alt_units={"ukat/L": 60.0}, group="tumour_marker"),
    ClinicalVariable("ca125", "CA125", "U/mL", "numeric", 0, 5000,
                     missing_allowed=True, alt_units={"kU/L": 1.0}, group="tumour_marker"),
    ClinicalVariable("ca153", "CA15-3", "U/mL", "numeric", 0, 1000,
                     missing_allowed=True, alt_units={"kU/L": 1.0}, group="tumour_marker"),
    ClinicalVariable("ca199", "CA19-9", "U/mL", "numeric", 0, 5000,
                     missing_allowed=True, alt_units={"kU/L": 1.0}, group="tumour_marker"),
    ClinicalVariable("afp", "Alpha-fetoprotein (AFP)", "ng/mL", "numeric", 0, 100000,
                     missing_allowed=True, alt_units={"ug/L": 1.0}, group="tumour_marker"),
    ClinicalVariable("cea", "Carcinoembryonic antigen (CEA)", "ng/mL", "numeric", 0, 1000,
                     missing_allowed=True, alt_units={"ug/L": 1.0}, group="tumour_marker"),
    # inflammatory and blood markers
    ClinicalVariable("crp", "C-reactive protein (CRP)", "mg/L", "numeric", 0, 500,
                     missing_allowed=True, alt_units={"mg/dL": 10.0}, group="inflammatory"),
    ClinicalVariable("wbc", "White blood cells", "10^9/L", "numeric", 0.1, 200,
                     missing_allowed=True, alt_units={"10^3/uL": 1.0, "/uL": 1e-3}, group="inflammatory"),
    ClinicalVariable("hemoglobin", "Haemoglobin", "g/L", "numeric", 20, 250,
                     missing_allowed=True, alt_units={"g/dL": 10.0, "mmol/L": 16.11}, group="inflammatory"),
    # risk group (HR/NHR): the classifier's target and, as in the paper, a prognostic feature
    ClinicalVariable("risk_group", "Risk group", "", "categorical", categories=("NHR", "HR"), group="risk"),
)

LAB_VARIABLES: tuple[ClinicalVariable, ...] = tuple(v for v in CLINICAL_VARIABLES if v.missing_allowed)

#: Outcome columns of ``clinical.csv``: overall survival in days and death (1) / censored (0).
OUTCOME_COLUMNS: tuple[str, str] = ("os_days", "os_event")

#: Variables a research group's cohort may carry beside :data:`CLINICAL_VARIABLES` (the demo cohort has
#: none). INSS stage is stored as given, in its own column, never converted to INRG: the two systems
#: are not equivalent (INSS is post-surgical, INRG pre-treatment and image-defined).
COHORT_VARIABLES: tuple[ClinicalVariable, ...] = (
    ClinicalVariable("inss_stage", "INSS stage", "", "categorical",
                     categories=("1", "2A", "2B", "3", "4", "4S"), missing_allowed=True),
)

#: Baseline variables that may be missing for some patients of an imported cohort (in the demo and
#: the form they are required). Their missing values are imputed with methods for categorical data:
#: logistic (binary) or multinomial logistic (several categories) regression draws inside the chained
#: equations (R mice's ``logreg``/``polyreg``), see :mod:`nbrisk_core.prognosis.impute`.
COHORT_MISSING_ALLOWED: frozenset[str] = frozenset(
    {"sex", "inrg_stage", "inss_stage", "histology", "mycn_amplified", "risk_group"})

_BY_NAME = {v.name: v for v in (*CLINICAL_VARIABLES, *COHORT_VARIABLES)}


def variable(name: str) -> ClinicalVariable:
    """The schema entry of a variable by column name (``KeyError`` if unknown)."""
    return _BY_NAME[name]


def canonical_number(name: str, value) -> float | None:
    """A numeric clinical value in the schema's canonical unit (``{"value", "unit"}`` as typed is converted);
    None when missing or not a finite number."""
    import math

    unit = None
    if isinstance(value, dict):
        value, unit = value.get("value"), value.get("unit")
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    spec = _BY_NAME.get(name)
    if spec is not None and unit and unit != spec.unit and unit in spec.alt_units:
        number *= spec.alt_units[unit]
    return number


def cohort_variables() -> tuple[ClinicalVariable, ...]:
    """Every variable an imported cohort's ``clinical.csv`` may hold: the core schema, then the extras."""
    return (*CLINICAL_VARIABLES, *COHORT_VARIABLES)
