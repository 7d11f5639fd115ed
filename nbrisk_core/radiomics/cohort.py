"""Radiomics of a cohort: IBSI features of the tumour on each patient's chosen slice, cached.

``cohort_radiomics(cohort_dir)`` reads ``slices/<pid>/hu.npz`` (``<phase>`` in HU and ``mask_<phase>``)
and returns a table indexed by ``patient_id`` with one column per feature, named
``<phase>_<feature>`` (e.g. ``art_cm_contrast``). The pixel spacing of a slice is taken from
``slices.csv`` (``area_mm2`` / mask pixels, as every cohort records it) or else from ``cohort.json``'s
``pixel_spacing_mm``. Results are cached as ``data/radiomics/<settings hash[:12]>-<cohort hash[:8]>.parquet``
with the settings and the cohort's content hash in the file's metadata: a second call with the same
settings on the same data reads the cache; changed data, settings, feature names or :data:`FORMAT`
recompute (a stale table with other column names once made ICC miss renamed features).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from nbrisk_core.errors import InputError
from nbrisk_core.radiomics.extract import Settings, extract

#: CT slice defaults: 1 x 1 mm in-plane (the demo's spacing varies 0.92-1.39 mm), soft tissue to
#: calcification kept ([-150, 1000] HU: neuroblastoma calcifies), 25 HU bins, directions merged per slice
SLICE_SETTINGS = Settings(new_spacing=(1.0, 1.0), interpolation_order=1, round_intensities=True,
                          resegment=(-150.0, 1000.0), discretisation="fbs", bin_width=25.0,
                          aggregation="2D_smrg")
MARGIN_MM = 10.0  # crop around the mask (local intensity peak looks 6.2 mm around a voxel)
_META_KEY = b"nbrisk"
#: bump when a feature's definition changes; the feature names are part of the cache key as well
FORMAT = 3  # 3: interpolated mask threshold 0.5 with a 1e-9 tolerance (processing.MASK_EPS)


def settings_hash(settings: Settings, phases) -> str:
    from nbrisk_core.radiomics.extract import IBSI_CODES

    text = json.dumps({"settings": settings.as_dict(), "phases": list(phases), "format": FORMAT,
                       "features": sorted(IBSI_CODES)}, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()


def slice_spacing(cohort_dir: Path, slices: pd.DataFrame | None, patient_id: str, phase: str,
                  mask: np.ndarray) -> tuple[float, float]:
    """In-plane pixel spacing (mm) of a patient's chosen slice."""
    if slices is not None:
        row = slices[(slices["patient_id"] == patient_id) & (slices["phase"] == phase)]
        if len(row) and pd.notna(row["area_mm2"].iloc[0]) and mask.any():
            s = float(np.sqrt(float(row["area_mm2"].iloc[0]) / float(mask.astype(bool).sum())))
            if np.isfinite(s) and s > 0:
                return s, s
    meta_path = Path(cohort_dir) / "cohort.json"
    if meta_path.is_file():
        spacing = json.loads(meta_path.read_text()).get("pixel_spacing_mm")
        if spacing:
            return float(spacing[0]), float(spacing[1])
    raise InputError(f"{cohort_dir}: no pixel spacing for patient {patient_id} {phase.upper()} "
                     "(expected area_mm2 in slices.csv or pixel_spacing_mm in cohort.json)")


def crop(image: np.ndarray, mask: np.ndarray, spacing, margin_mm: float = MARGIN_MM):
    rows, cols = np.nonzero(mask)
    my, mx = (int(np.ceil(margin_mm / s)) for s in spacing)
    ys = slice(max(0, rows.min() - my), rows.max() + my + 1)
    xs = slice(max(0, cols.min() - mx), cols.max() + mx + 1)
    return image[ys, xs], mask[ys, xs]


def slice_features(image: np.ndarray, mask: np.ndarray, spacing, settings: Settings = SLICE_SETTINGS
                   ) -> dict[str, float]:
    """Features of one 2-D slice's region (cropped around the mask first, which changes nothing)."""
    mask = np.asarray(mask).astype(bool)
    if not mask.any():
        raise InputError("mask: empty (no tumour pixel on the chosen slice)")
    image, mask = crop(np.asarray(image, dtype=np.float64), mask, spacing)
    return extract(image, mask, spacing, settings)


def compute(cohort_dir: Path, phases=("art",), settings: Settings = SLICE_SETTINGS,
            mask_key: str = "mask_{phase}", progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """``(table, skipped)``: features of every patient with a slice and a non-empty mask."""
    cohort_dir = Path(cohort_dir)
    clinical = pd.read_csv(cohort_dir / "clinical.csv", dtype={"patient_id": str})
    slices_csv = cohort_dir / "slices.csv"
    slices = pd.read_csv(slices_csv, dtype={"patient_id": str}) if slices_csv.is_file() else None
    ids = list(clinical["patient_id"])
    iterator = ids
    if progress:
        from tqdm import tqdm

        iterator = tqdm(ids, desc="radiomics", unit="patient")
    rows, index, skipped = [], [], {"no slice": [], "empty mask": []}
    for pid in iterator:
        path = cohort_dir / "slices" / pid / "hu.npz"
        if not path.is_file():
            skipped["no slice"].append(pid)
            continue
        with np.load(path, allow_pickle=False) as arrays:
            data = {k: arrays[k] for k in arrays.files}
        row = {}
        for phase in phases:
            key = mask_key.format(phase=phase)
            if phase not in data or key not in data:
                skipped["no slice"].append(pid)
                break
            if not data[key].any():
                skipped["empty mask"].append(pid)
                break
            spacing = slice_spacing(cohort_dir, slices, pid, phase, data[f"mask_{phase}"])
            feats = slice_features(data[phase], data[key], spacing, settings)
            row.update({f"{phase}_{k}": v for k, v in feats.items()})
        else:
            rows.append(row)
            index.append(pid)
    frame = pd.DataFrame(rows, index=pd.Index(index, name="patient_id"))
    return frame, {k: v for k, v in skipped.items() if v}


def cache_path(cohort_dir: Path, settings: Settings, phases, cohort_sha: str) -> Path:
    from nbrisk_core.config import data_dir

    return data_dir() / "radiomics" / f"{settings_hash(settings, phases)[:12]}-{cohort_sha[:8]}.parquet"


def cohort_radiomics(cohort_dir: Path | None = None, phases=("art",), settings: Settings = SLICE_SETTINGS,
                     use_cache: bool = True, progress: bool = False) -> pd.DataFrame:
    """Features of a cohort's chosen slices (default: the demo cohort, arterial phase), cached."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nbrisk_core.classifier.pipeline import cohort_hash
    from nbrisk_core.config import demo_cohort_dir

    cohort_dir = Path(cohort_dir) if cohort_dir is not None else demo_cohort_dir()
    if not (cohort_dir / "clinical.csv").is_file():
        raise InputError(f"{cohort_dir}: not a cohort directory (no clinical.csv)")
    cohort_sha = cohort_hash(cohort_dir)
    meta = {"cohort_sha256": cohort_sha, "settings_sha256": settings_hash(settings, phases),
            "settings": settings.as_dict(), "phases": list(phases), "cohort_dir": str(cohort_dir)}
    path = cache_path(cohort_dir, settings, phases, cohort_sha)
    if use_cache and path.is_file():
        table = pq.read_table(path)
        stored = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
        key = (stored.get("cohort_sha256"), stored.get("settings_sha256"))
        if key == (cohort_sha, meta["settings_sha256"]):
            return table.to_pandas()
    frame, skipped = compute(cohort_dir, phases, settings, progress=progress)
    if frame.empty:
        raise InputError(f"{cohort_dir}: no patient with a chosen slice and a tumour mask")
    frame.attrs["skipped"] = skipped
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(frame)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               _META_KEY: json.dumps({**meta, "skipped": skipped},
                                                                     default=list).encode()})
        tmp = path.with_suffix(".tmp")
        pq.write_table(table, tmp)
        tmp.replace(path)
    return frame
