"""The 8:2 train/test split, stratified by risk group and fixed by seed.

One function serves the classifier and the prognosis engine, so both see the same testing
cohort (``../shared/spec/method.md`` section 1; stratification is our choice).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

DEFAULT_SPLIT_SEED = 2025
TEST_FRACTION = 0.2


def stratified_split(patient_ids, strata, test_fraction: float = TEST_FRACTION,
                     seed: int = DEFAULT_SPLIT_SEED) -> pd.DataFrame:
    """Assign each patient to ``"train"`` or ``"test"``, stratified by ``strata``.

    Returns a DataFrame with columns ``patient_id`` and ``cohort``, in the input order.
    With 202 patients and ``test_fraction=0.2`` this gives 161 training and 41 testing patients,
    as in the paper.
    """
    ids = np.asarray(list(patient_ids))
    strata = np.asarray(list(strata))
    if len(ids) != len(strata):
        raise ValueError(f"{len(ids)} patient IDs but {len(strata)} strata")
    if len(set(ids.tolist())) != len(ids):
        raise ValueError("patient IDs are not unique")
    # ceil: 202 x 0.2 = 40.4 -> 41 testing patients, as the paper's 161/41
    n_test = int(np.ceil(len(ids) * test_fraction - 1e-9))
    train_ids, test_ids = train_test_split(ids, test_size=n_test, stratify=strata, random_state=seed)
    test_set = set(test_ids.tolist())
    return pd.DataFrame({"patient_id": ids, "cohort": ["test" if i in test_set else "train" for i in ids]})
