"""The clinical values of a case as the report shows them: entered, imputed or not given.

:func:`clinical_values` is the one reading of entered and imputed clinical values that the PDF, the
CSV and the JSON share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nbrisk_core.case import Case
from nbrisk_core.clinical.schema import CLINICAL_VARIABLES

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


def clinical_values(case: Case) -> list[ClinicalValue]:
    """The case's clinical values in schema order, each marked entered, imputed or not given.

    A variable counts as imputed when it was not entered and the prognosis imputed it
    (:attr:`nbrisk_core.case.Case.imputed`); its value is then the imputed one, in the schema's canonical
    unit (an
    entered value keeps the unit it was typed in).
    """
    entered = case.clinical
    imputed = case.imputed
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
