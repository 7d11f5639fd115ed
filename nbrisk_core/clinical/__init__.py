"""Clinical data: the declarative variable schema shared by the demo generator, validation,
imputation and the prognosis engine."""

from nbrisk_core.clinical.schema import (
    CLINICAL_VARIABLES,
    LAB_VARIABLES,
    OUTCOME_COLUMNS,
    ClinicalVariable,
    variable,
)

__all__ = ["CLINICAL_VARIABLES", "LAB_VARIABLES", "OUTCOME_COLUMNS", "ClinicalVariable", "variable"]
