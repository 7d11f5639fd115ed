"""The prognosis engine's inputs: the CT feature table (``patient_id`` x ct01..ct16) and one patient's vector.

Prognosis takes a feature table; it never computes one. The classifier's embeddings of a cohort are
made by the caller (:func:`nbrisk_core.features.cohort_ct_features`, ``nbrisk embed``) and passed in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nbrisk_core.errors import InputError

#: The 16 CT features (the hidden layer of Swin-ART), in order.
CT_COLUMNS: list[str] = [f"ct{i:02d}" for i in range(1, 17)]
#: The radiomics CT block (``--features radiomics``): one column, the rad-score of the radiomics model
#: fitted on the training patients (:mod:`nbrisk_core.radiomics.score`).
RADIOMICS_COLUMNS: list[str] = ["rad_score"]
#: Columns of the CT feature block, by feature set (clinical: none).
BLOCK_COLUMNS: dict[str, list[str]] = {"both": CT_COLUMNS, "ct": CT_COLUMNS, "radiomics": RADIOMICS_COLUMNS,
                                       "clinical": []}


def _names(columns) -> str:
    return "ct01..ct16" if list(columns) == CT_COLUMNS else ", ".join(columns)


def check_embeddings(embeddings: pd.DataFrame, source: str = "embeddings", columns=None) -> pd.DataFrame:
    """Embedding table indexed by patient_id with finite ``columns`` (default ct01..ct16; InputError
    otherwise)."""
    columns = list(CT_COLUMNS if columns is None else columns)
    if not isinstance(embeddings, pd.DataFrame):
        raise InputError(f"{source}: expected a table indexed by patient_id with columns {_names(columns)}, "
                         f"got {type(embeddings).__name__}")
    table = embeddings
    if "patient_id" in table.columns:
        table = table.set_index("patient_id")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{source}: columns {', '.join(missing)} are missing (expected {_names(columns)})",
                         source=source)
    table = table[columns].apply(pd.to_numeric, errors="coerce")
    table.index = table.index.astype(str)
    bad = table.index[~np.isfinite(table.to_numpy()).all(axis=1)]
    if len(bad):
        raise InputError(f"{source}: patient {bad[0]} has a missing or non-numeric CT feature "
                         f"({len(bad)} patient(s) in all); expected {len(columns)} finite number(s)",
                         source=source)
    if table.index.duplicated().any():
        raise InputError(f"{source}: patient {table.index[table.index.duplicated()][0]} appears twice",
                         source=source)
    return table


def read_embeddings(path) -> pd.DataFrame:
    """Embedding table from a parquet or CSV file (``patient_id`` + ct01..ct16)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: embedding file not found (expected parquet or CSV with patient_id and "
                         "ct01..ct16)", source=str(path))
    if path.suffix.lower() == ".parquet":
        table = pd.read_parquet(path)
        if table.index.name == "patient_id":
            table = table.reset_index()
    elif path.suffix.lower() == ".csv":
        table = pd.read_csv(path, dtype={"patient_id": str})
    else:
        raise InputError(f"{path.name}: unsupported embedding file type {path.suffix!r} "
                         "(expected .parquet or .csv)", source=path.name)
    if "patient_id" not in table.columns:
        raise InputError(f"{path.name}: column 'patient_id' is missing", source=path.name)
    return check_embeddings(table, source=path.name)


def stand_in_embeddings(truth: pd.DataFrame, seed: int = 2025, signal: float = 0.6) -> pd.DataFrame:
    """STAND-IN CT features for tests and benchmarks only -- NOT the classifier's embeddings.

    Sixteen columns shaped like the Swin-ART hidden layer: six carry a noisy copy of the cohort's
    ``latent_score`` (weight ``signal``), ten are noise. They let the prognosis engine be tested and
    timed before (and independently of) the trained classifier; every caller labels results made
    with them as stand-in.
    """
    rng = np.random.default_rng(seed)
    latent = truth["latent_score"].to_numpy(dtype=float)
    latent = (latent - latent.mean()) / (latent.std() or 1.0)
    values = rng.normal(size=(len(truth), len(CT_COLUMNS)))
    for k, column in enumerate((2, 5, 6, 9, 12, 14)):  # cf. the paper's features 3, 6, 7, 10, 13, 15
        values[:, column] = signal * (1 if k % 2 == 0 else -1) * latent + np.sqrt(1 - signal ** 2) * values[:, column]
    return pd.DataFrame(values, index=pd.Index(truth["patient_id"].astype(str), name="patient_id"),
                        columns=CT_COLUMNS)


def read_embedding_vector(embedding, columns=None) -> np.ndarray:
    """A patient's CT features (``columns``, default the 16 ct01..ct16) from a sequence, a dict/Series, or a
    JSON/CSV file."""
    columns = list(CT_COLUMNS if columns is None else columns)
    names = _names(columns)
    if isinstance(embedding, (str, Path)):
        path = Path(embedding)
        if not path.exists():
            raise InputError(f"{path}: embedding file not found (expected {len(columns)} CT feature(s) {names})")
        if path.suffix.lower() == ".json":
            import json

            embedding = json.loads(path.read_text())
        else:
            table = pd.read_csv(path)
            if len(table) != 1:
                raise InputError(f"{path.name}: expected one row of CT features, got {len(table)} rows")
            embedding = table.iloc[0].to_dict()
    if isinstance(embedding, dict) or hasattr(embedding, "to_dict"):
        values = dict(embedding.to_dict() if hasattr(embedding, "to_dict") else embedding)
        missing = [c for c in columns if c not in values]
        if missing:
            raise InputError(f"CT embedding: missing {', '.join(missing)} (expected the feature(s) {names})")
        embedding = [values[c] for c in columns]
    try:
        vector = np.asarray(embedding, dtype=float).ravel()
    except (TypeError, ValueError) as error:
        raise InputError(f"CT embedding: not numeric ({error}); expected {len(columns)} number(s)") from error
    if vector.size != len(columns):
        raise InputError(f"CT embedding has {vector.size} values; expected {len(columns)} ({names})")
    if not np.all(np.isfinite(vector)):
        raise InputError(f"CT embedding contains a missing or infinite value; expected {len(columns)} finite number(s)")
    return vector
