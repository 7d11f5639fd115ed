"""Feature tables for the prognosis engine, made by the caller from the classifier.

The prognosis engine (:mod:`nbrisk_core.prognosis`) takes a table of CT features and never reaches
into the classifier; the CLI, the pages and the UI helpers call :func:`cohort_ct_features` here to
make that table from the shipped Swin-ART model, and pass it in.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nbrisk_core.errors import InputError
from nbrisk_core.split import DEFAULT_SPLIT_SEED


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


def cohort_radiomics_block(cohort_dir, *, split_seed: int = DEFAULT_SPLIT_SEED, seed: int = 0,
                           progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """The CT block of ``--features radiomics``: ``(table patient_id x rad_score, provenance)``.

    The rad-score (:mod:`nbrisk_core.radiomics.score`: contour-ICC >= 0.75, redundancy removal, LASSO and
    logistic regression for HR, all cross-validated) is fitted on the **training patients of the grid's
    split** (:func:`nbrisk_core.prognosis.pipeline.split_cohort`, same seed), so no selection step sees a
    testing patient; every patient is then scored with the frozen rad-score. The provenance (what the
    prognosis bundle records as ``embeddings``) holds the rad-score itself, so a cohort can be scored
    later. InputError with the command to run when the cohort's radiomics are not cached.
    """
    from nbrisk_core.prognosis.pipeline import read_cohort, split_cohort
    from nbrisk_core.radiomics.model import fit_rad_score
    from nbrisk_core.radiomics.score import cohort_rad_scores

    clinical, _, _ = read_cohort(cohort_dir)
    split = split_cohort(clinical, seed=split_seed)
    train = split.loc[split["cohort"] == "train", "patient_id"].astype(str).tolist()
    rad_score = fit_rad_score(cohort_dir, train, seed=seed, progress=progress)
    table = cohort_rad_scores(cohort_dir, rad_score)
    absent = sorted(set(clinical["patient_id"].astype(str)) - set(table.index.astype(str)))
    if absent:
        raise InputError(f"{cohort_dir}: no radiomics for {len(absent)} patient(s) (e.g. {', '.join(absent[:3])}:"
                         " no chosen slice or an empty tumour mask); --features radiomics needs every patient")
    return table, {"source": "radiomics", "rad_score": rad_score.to_dict(),
                   "rad_score_sha256": rad_score.sha256(),
                   "note": f"rad-score fitted on the {len(train)} training patients of the split "
                           f"(seed {split_seed}); features {len(rad_score.features)} of "
                           f"{rad_score.fitted_on.get('n_robust')} robust"}
