"""Score a cohort with a frozen prognosis pipeline: nothing is refitted, nothing re-standardised.

Every patient goes through :meth:`PrognosisPipeline.predict_patient`, the same path as one patient
in the app: the clinical values are encoded, missing ones are imputed by the *frozen* training
models (predictive mean matching against the training donors kept in the bundle), features are
standardised with the training means and SDs, the selected model gives the MLRS and S(t), and the
group is read against the frozen training-median cut-off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nbrisk_core.clinical.schema import CLINICAL_VARIABLES, OUTCOME_COLUMNS
from nbrisk_core.errors import InputError

DAYS_PER_YEAR = 365.25
#: years at which S(t) is written to the patient table
SURVIVAL_YEARS = (1, 3, 5)


@dataclass
class ScoredCohort:
    """The patient table (``patient_id, time, event, mlrs, mlrs_group, s_1y, s_3y, s_5y``), each
    patient's survival curve, and what was imputed."""

    patients: pd.DataFrame
    curves: list = field(default_factory=list)
    imputed_counts: dict = field(default_factory=dict)
    absent_variables: list = field(default_factory=list)
    left_out: list = field(default_factory=list)

    def survival_matrix(self, times) -> np.ndarray:
        """S(t) of every patient (rows) at ``times`` (columns)."""
        return np.vstack([curve.survival_at(times) for curve in self.curves])


def score_cohort(pipeline, clinical: pd.DataFrame, embeddings: pd.DataFrame | None = None) -> ScoredCohort:
    """Score every patient of a validated clinical table (with ``os_days``, ``os_event``).

    ``embeddings`` (indexed by patient_id, ct01..ct16) is needed when the pipeline uses CT features;
    patients without a row there are left out (listed in ``left_out``).
    """
    names = [v.name for v in CLINICAL_VARIABLES]
    present = [n for n in names if n in clinical.columns]
    absent = [n for n in names if n not in clinical.columns or clinical[n].isna().all()]
    uses_ct = bool(pipeline.ct_columns_)
    if uses_ct and embeddings is None:
        raise InputError("the prognosis bundle uses CT features: give the cohort's embeddings (--classifier, "
                         "--embeddings FILE or --stand-in-embeddings)")
    rows, curves, left_out = [], [], []
    counts: dict[str, int] = {}
    for _, row in clinical.iterrows():
        patient_id = str(row["patient_id"])
        if uses_ct and patient_id not in embeddings.index:
            left_out.append(patient_id)
            continue
        values = {n: row[n] for n in present}
        vector = embeddings.loc[patient_id].to_numpy(dtype=float) if uses_ct else None
        result = pipeline.predict_patient(vector, values)
        for name in result.imputed:
            counts[name] = counts.get(name, 0) + 1
        survival = result.survival_at([DAYS_PER_YEAR * y for y in SURVIVAL_YEARS])
        rows.append({"patient_id": patient_id, "time": float(row[OUTCOME_COLUMNS[0]]),
                     "event": int(row[OUTCOME_COLUMNS[1]]), "mlrs": result.mlrs, "mlrs_group": result.group,
                     **{f"s_{y}y": float(s) for y, s in zip(SURVIVAL_YEARS, survival)},
                     "n_imputed": len(result.imputed)})
        curves.append(result)
    if not rows:
        raise InputError("no patient of the cohort could be scored (none has CT features)")
    return ScoredCohort(pd.DataFrame(rows), curves, counts, absent, left_out)
