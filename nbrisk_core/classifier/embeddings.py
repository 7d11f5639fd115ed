"""The 16-d CT embedding per patient (Swin-ART hidden layer), cached on disk by model SHA-256.

``cohort_embeddings(cohort_dir)`` is what the prognosis engine and the pages call: it loads the
shipped Swin-ART model unless given one, and reads ``data/embeddings/<sha256[:16]>.parquet``
(index ``patient_id``, columns ``ct01`` ... ``ct16``) when that cache holds this cohort, so nothing is
computed twice. The cache file records the cohort's content hash; a rebuilt cohort is recomputed.
Cohorts other than the default one get ``<sha256[:16]>-<cohort hash[:8]>.parquet`` beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nbrisk_core.classifier import HIDDEN_UNITS
from nbrisk_core.errors import InputError

EMBEDDING_COLUMNS: tuple[str, ...] = tuple(f"ct{i:02d}" for i in range(1, HIDDEN_UNITS + 1))
_META_KEY = b"nbrisk"


def embedding_cache_path(model_sha256: str, cohort_dir: Path, cohort_sha256: str) -> Path:
    from nbrisk_core.config import data_dir, demo_cohort_dir

    folder = data_dir() / "embeddings"
    if Path(cohort_dir).resolve() == demo_cohort_dir().resolve():
        return folder / f"{model_sha256[:16]}.parquet"
    return folder / f"{model_sha256[:16]}-{cohort_sha256[:8]}.parquet"


def _read_cache(path: Path, model_sha256: str, cohort_sha256: str) -> pd.DataFrame | None:
    import json

    import pyarrow.parquet as pq

    if not path.exists():
        return None
    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
    if meta.get("model_sha256") != model_sha256 or meta.get("cohort_sha256") != cohort_sha256:
        return None
    frame = table.to_pandas()
    return frame if list(frame.columns) == list(EMBEDDING_COLUMNS) else None


def _write_cache(path: Path, frame: pd.DataFrame, meta: dict) -> None:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: json.dumps(meta).encode()})
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)  # atomic: a reader never sees half a file


def compute_embeddings(loaded, cohort_dir: Path, batch_size: int = 16) -> pd.DataFrame:
    """Embeddings of every patient of a cohort with a loaded Swin-ART-type model (fp32)."""
    from nbrisk_core.classifier.data import cohort_model_inputs
    from nbrisk_core.classifier.inference import Predictor

    # every patient with chosen slices (a risk group is not needed); the others have no embedding yet
    data, x = cohort_model_inputs(cohort_dir, loaded.model_card.data, labels=False)
    predictor = Predictor(loaded)
    _, embedding = predictor.predict_batches(x, batch_size)
    frame = pd.DataFrame(embedding.astype(np.float64), index=pd.Index(data.patient_ids, name="patient_id"),
                         columns=list(EMBEDDING_COLUMNS))
    return frame


def _verified_weights_sha256(path: Path) -> str | None:
    """The SHA-256 of the model at ``path`` when its weights file matches its card (as :func:`load_model`
    checks), else None (then :func:`load_model` reports the problem)."""
    from nbrisk_core.classifier.model_io import read_model_card
    from nbrisk_core.hashing import sha256_file

    try:
        card = read_model_card(path)
    except InputError:
        return None
    weights = Path(path).with_name(card.weights_file or Path(path).with_suffix(".safetensors").name)
    return card.sha256 if weights.exists() and sha256_file(weights) == card.sha256 else None


def cohort_embeddings(cohort_dir: Path | None = None, model=None, use_cache: bool = True) -> pd.DataFrame:
    """The 16-d CT embedding of every patient of ``cohort_dir`` (default: the demo cohort).

    Parameters
    ----------
    cohort_dir : path, optional
        A cohort directory (``clinical.csv``, ``slices/<pid>/hu.npz`` or ``art.png``).
    model : LoadedModel or path, optional
        Default: the shipped ``models/swin_art_demo.safetensors``.
    use_cache : bool
        Read and write ``data/embeddings/<sha256[:16]>.parquet``.

    Returns
    -------
    DataFrame indexed by ``patient_id`` with columns ``ct01`` ... ``ct16``.
    """
    from nbrisk_core.classifier.model_io import LoadedModel, load_model, shipped_model_path
    from nbrisk_core.cohort.format import cohort_hash
    from nbrisk_core.config import demo_cohort_dir

    cohort_dir = Path(cohort_dir) if cohort_dir is not None else demo_cohort_dir()
    if not (cohort_dir / "clinical.csv").exists():
        raise InputError(f"{cohort_dir}: not a cohort directory (no clinical.csv)")
    cohort_sha = None
    if model is None:
        path = shipped_model_path("art", cohort_dir)
        if not path.exists():
            raise InputError(f"{path}: the shipped Swin-ART model is missing; train it with `nbrisk train`")
        if use_cache:   # a cached table needs only the model's SHA-256: no network is built (torch, timm)
            cohort_sha = cohort_hash(cohort_dir)
            sha256 = _verified_weights_sha256(path)
            cached = None if sha256 is None else _read_cache(embedding_cache_path(sha256, cohort_dir, cohort_sha),
                                                             sha256, cohort_sha)
            if cached is not None:
                return cached
        model = load_model(path)
    elif not isinstance(model, LoadedModel):
        model = load_model(Path(model))
    cohort_sha = cohort_sha or cohort_hash(cohort_dir)
    cache = embedding_cache_path(model.sha256, cohort_dir, cohort_sha)
    if use_cache:
        cached = _read_cache(cache, model.sha256, cohort_sha)
        if cached is not None:
            return cached
    frame = compute_embeddings(model, cohort_dir)
    if use_cache:
        _write_cache(cache, frame, {"model_sha256": model.sha256, "cohort_sha256": cohort_sha,
                                    "cohort_dir": str(cohort_dir), "variant": model.variant})
    return frame


def store_embeddings(loaded, cohort_dir: Path, patient_ids, embedding: np.ndarray) -> Path | None:
    """Write the cache for a whole cohort computed elsewhere (``nbrisk evaluate`` runs the same
    forward pass). Only whole cohorts of single-phase ART-type models are stored."""
    from nbrisk_core.cohort.format import cohort_hash

    clinical = pd.read_csv(Path(cohort_dir) / "clinical.csv", dtype={"patient_id": str})
    if loaded.variant != "art" or sorted(patient_ids) != sorted(clinical["patient_id"]):
        return None
    cohort_sha = cohort_hash(cohort_dir)
    frame = pd.DataFrame(np.asarray(embedding, dtype=np.float64), columns=list(EMBEDDING_COLUMNS),
                         index=pd.Index(list(patient_ids), name="patient_id"))
    path = embedding_cache_path(loaded.sha256, cohort_dir, cohort_sha)
    _write_cache(path, frame, {"model_sha256": loaded.sha256, "cohort_sha256": cohort_sha,
                               "cohort_dir": str(cohort_dir), "variant": loaded.variant})
    return path
