"""Feature tables for the prognosis engine, made by the caller from the classifier.

The prognosis engine (:mod:`nbrisk_core.prognosis`) takes a table of CT features and never reaches
into the classifier; the CLI, the pages and the UI helpers call :func:`cohort_ct_features` here to
make that table from the shipped Swin-ART model, and pass it in.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nbrisk_core.errors import InputError


def cohort_ct_features(cohort_dir) -> pd.DataFrame:
    """CT features (ct01..ct16 by ``patient_id``) of a cohort from its shipped Swin-ART classifier.

    Uses :func:`nbrisk_core.classifier.embeddings.cohort_embeddings` (cached by model SHA-256).
    :class:`InputError` saying how to make them when the model is missing.
    """
    from nbrisk_core.classifier.model_io import shipped_model_path
    from nbrisk_core.prognosis.inputs import check_embeddings

    model_path = shipped_model_path("art", cohort_dir)   # the cohort's own models/ first
    how = (f"the CT embeddings of cohort {cohort_dir} are missing: make them with "
           f"'nbrisk embed --cohort {cohort_dir} --out FILE.parquet' (needs the shipped classifier "
           f"{model_path}, made by 'nbrisk train') and pass --embeddings "
           "FILE.parquet (patient_id, ct01..ct16)")
    try:
        from nbrisk_core.classifier.embeddings import cohort_embeddings
    except ImportError as error:
        raise InputError(how) from error
    if not model_path.exists():
        raise InputError(how)
    return check_embeddings(cohort_embeddings(Path(cohort_dir)), source="classifier embeddings")
