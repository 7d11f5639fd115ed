"""Cohort format v1 (``docs/cohort-format.md``): one loader for every cohort, synthetic or real.

A cohort directory holds ``cohort.json`` (metadata), ``clinical.csv`` (one row per patient),
optionally ``studies/<patient_id>/...`` (the de-identified DICOM), ``slices.csv`` and
``slices/<patient_id>/...`` (the chosen max-area slice per phase) and, for synthetic cohorts only,
``truth.csv`` (the known truth). The demo cohort (``nbrisk demo build``) is one instance; a research
group's cohort made by ``nbrisk cohort import`` is another. Code that needs the known truth asks
:meth:`Cohort.require_truth`, which says "no known truth" on a real cohort instead of failing later.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nbrisk_core.case import PHASES as _PHASES
from nbrisk_core.clinical.schema import OUTCOME_COLUMNS, cohort_variables
from nbrisk_core.errors import InputError

#: The version of the layout this NBRisk writes and reads.
FORMAT_VERSION = 1
#: The phases of a cohort (lower case, as in ``slices/<patient_id>/hu.npz`` and ``slices.csv``).
PHASES = _PHASES  # nbrisk_core.case.Phase, in acquisition order
#: Columns of ``slices.csv``: one row per patient and phase whose slice has been chosen.
SLICES_COLUMNS: tuple[str, ...] = ("patient_id", "phase", "series_uid", "slice_index", "z_mm", "area_mm2",
                                   "chosen_by", "confirmed_by", "confirmed_at")
#: Who chose a slice: ``auto`` (the generator or an automatic proposal) or ``user`` (a reviewer).
CHOSEN_BY: tuple[str, ...] = ("auto", "user")
#: Keys every v1 ``cohort.json`` has.
META_KEYS: tuple[str, ...] = ("format_version", "name", "synthetic", "source", "created", "n_patients",
                              "phase_counts")
#: How many patients' slices a loaded cohort keeps in memory.
SLICE_CACHE_PATIENTS = 32
NO_KNOWN_TRUTH = "no known truth"


def created_now() -> str:
    """ISO-8601 UTC time for ``cohort.json``'s ``created`` (``SOURCE_DATE_EPOCH`` if set: reproducible)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    seconds = int(epoch) if epoch and epoch.isdigit() else int(time.time())
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def cohort_meta(*, name: str, synthetic: bool, source: str, created: str | None, n_patients: int,
                phase_counts: dict, **extra) -> dict:
    """A v1 ``cohort.json`` object (the format's keys first, then ``extra``)."""
    return {"format_version": FORMAT_VERSION, "name": str(name), "synthetic": bool(synthetic),
            "source": str(source), "created": created, "n_patients": int(n_patients),
            "phase_counts": {p: int(phase_counts.get(p, 0)) for p in PHASES}, **extra}


def empty_slices_table() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in SLICES_COLUMNS})


@dataclass
class Cohort:
    """A cohort on disk: metadata, tables and the chosen slices.

    Attributes
    ----------
    path : Path
    meta : dict
        ``cohort.json``.
    clinical : pandas.DataFrame
        ``clinical.csv`` as stored (``patient_id`` as a string column; missing values NaN).
    truth : pandas.DataFrame or None
        ``truth.csv``: synthetic cohorts only; None on a real cohort (see :meth:`require_truth`).
    slices : pandas.DataFrame
        ``slices.csv`` (:data:`SLICES_COLUMNS`); empty when no slice is recorded there.
    """

    path: Path
    meta: dict
    clinical: pd.DataFrame
    truth: pd.DataFrame | None = None
    slices: pd.DataFrame | None = None
    _slices: dict = field(default_factory=dict, repr=False)

    @property
    def patient_ids(self) -> list[str]:
        return list(self.clinical["patient_id"])

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.path.name))

    @property
    def synthetic(self) -> bool:
        return bool(self.meta.get("synthetic", False))

    @property
    def has_truth(self) -> bool:
        return self.truth is not None

    def require_truth(self, what: str) -> pd.DataFrame:
        """``truth.csv``, or an InputError saying that ``what`` needs a known truth this cohort lacks."""
        if self.truth is None:
            kind = "a real cohort" if not self.synthetic else "a synthetic cohort without truth.csv"
            raise InputError(f"{what}: {NO_KNOWN_TRUTH}: {self.path} ({self.name}) is {kind}; "
                             "truth.csv exists only for synthetic cohorts", source=str(self.path))
        return self.truth

    def _check(self, patient_id: str, phase: str) -> None:
        if patient_id not in set(self.clinical["patient_id"]):
            ids = self.patient_ids
            raise InputError(f"patient {patient_id!r} is not in the cohort at {self.path} "
                             f"(expected one of {ids[0]}..{ids[-1]})" if ids else
                             f"patient {patient_id!r}: the cohort at {self.path} has no patients")
        if phase not in PHASES:
            raise InputError(f"phase {phase!r}: expected one of {', '.join(PHASES)}")

    def _npz(self, patient_id: str) -> dict:
        if patient_id in self._slices:
            self._slices[patient_id] = self._slices.pop(patient_id)   # most recently used last
            return self._slices[patient_id]
        path = self.path / "slices" / patient_id / "hu.npz"
        if not path.is_file():
            raise InputError(f"{path}: missing slice file of patient {patient_id} "
                             "(no slice chosen yet for this patient?)")
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        for array in arrays.values():
            array.setflags(write=False)   # the cache is shared (Streamlit sessions): never edited
        self._slices[patient_id] = arrays
        # bounded: ~0.5 MB per patient, and a dashboard may browse the whole cohort
        while len(self._slices) > SLICE_CACHE_PATIENTS:
            self._slices.pop(next(iter(self._slices)))
        return arrays

    def slice_hu(self, patient_id: str, phase: str) -> np.ndarray:
        """The chosen (max-area) slice of ``phase`` in HU (int16, 2-D)."""
        self._check(patient_id, phase)
        arrays = self._npz(patient_id)
        if phase not in arrays:
            raise InputError(f"patient {patient_id}: no {phase.upper()} slice in {self.path / 'slices'}")
        return arrays[phase].copy()   # a copy: callers may edit it freely

    def slice_mask(self, patient_id: str, phase: str) -> np.ndarray:
        """The tumour mask (uint8) of the chosen slice of ``phase``."""
        self._check(patient_id, phase)
        arrays = self._npz(patient_id)
        if f"mask_{phase}" not in arrays:
            raise InputError(f"patient {patient_id}: no {phase.upper()} mask in {self.path / 'slices'}")
        return arrays[f"mask_{phase}"].copy()

    def slice_png(self, patient_id: str, phase: str) -> Path:
        """Path of the 8-bit W400/L40 PNG export of the chosen slice of ``phase``."""
        self._check(patient_id, phase)
        return self.path / "slices" / patient_id / f"{phase}.png"

    def study_dir(self, patient_id: str) -> Path | None:
        """The stored DICOM study of a patient (None if it has none)."""
        path = self.path / "studies" / patient_id
        return path if path.is_dir() else None


def table_dtypes() -> dict:
    """``read_csv`` dtypes of a cohort table: ``patient_id`` and the categories as text (INSS stage
    "1"/"3" would otherwise be read as numbers)."""
    return {"patient_id": str, **{v.name: str for v in cohort_variables() if v.kind == "categorical"}}


def _read_table(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=table_dtypes())
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: unreadable CSV ({error})", source=str(path)) from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing columns {', '.join(missing)}", source=str(path))
    return table


def _parse_meta(meta_path: Path) -> dict:
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{meta_path}: not valid JSON ({error})", source=str(meta_path)) from None
    if not isinstance(meta, dict):
        raise InputError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}",
                         source=str(meta_path))
    return meta


def read_meta_if_any(path) -> dict:
    """``cohort.json`` of a directory as written, ``{}`` when it has none (a tables-only cohort); an
    InputError naming the file when it is not a JSON object. No format check: see :func:`read_meta`."""
    meta_path = Path(path) / "cohort.json"
    return _parse_meta(meta_path) if meta_path.is_file() else {}


def cohort_hash(cohort_dir) -> str:
    """SHA-256 over the clinical table and every slice file of a cohort (identifies the data).

    Used by the classifier (embedding caches, model cards) and by prognosis bundles (which cohort a
    bundle was fitted on) alike, so it lives with the cohort format rather than in either of them.
    """
    import hashlib

    digest = hashlib.sha256()
    cohort_dir = Path(cohort_dir)
    for path in [cohort_dir / "clinical.csv", *sorted((cohort_dir / "slices").rglob("*.npz"))]:
        digest.update(path.relative_to(cohort_dir).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def read_meta(path) -> dict:
    """``cohort.json`` of a cohort directory, checked (InputError naming the file otherwise).

    A demo cohort built before format v1 (no ``format_version``, but the generator's keys) is read as v1.
    """
    path = Path(path)
    meta_path = path / "cohort.json"
    if not path.is_dir():
        raise InputError(f"{path}: cohort directory not found (build the demo with 'nbrisk demo build --out "
                         f"{path}' or import one with 'nbrisk cohort import ... --out {path}')",
                         source=str(path))
    if not meta_path.is_file():
        raise InputError(f"{meta_path}: missing; {path} is not a cohort directory (expected cohort.json, "
                         "clinical.csv: docs/cohort-format.md)", source=str(meta_path))
    meta = _parse_meta(meta_path)
    version = meta.get("format_version")
    if version is None and "generator_version" in meta:
        version = FORMAT_VERSION   # a demo cohort from before the format had a version
    if version != FORMAT_VERSION:
        raise InputError(f"{meta_path}: format_version = {version!r} is not supported "
                         f"(this NBRisk reads format_version {FORMAT_VERSION}: docs/cohort-format.md)",
                         source=str(meta_path))
    missing = [k for k in ("name", "synthetic", "n_patients") if k not in meta]
    if missing:
        raise InputError(f"{meta_path}: expected the keys {', '.join(missing)}", source=str(meta_path))
    if not isinstance(meta["synthetic"], bool):
        raise InputError(f"{meta_path}: synthetic = {meta['synthetic']!r} (expected true or false)",
                         source=str(meta_path))
    return meta


def load_cohort(path) -> Cohort:
    """Read any cohort directory of format v1 (the demo or an imported one).

    Raises
    ------
    InputError
        The directory, ``cohort.json`` or a table is missing or invalid; ``truth.csv`` in a cohort
        that is not synthetic; a ``patient_id`` twice; ``n_patients`` not the number of rows.
    """
    path = Path(path)
    meta = read_meta(path)
    clinical_path = path / "clinical.csv"
    if not clinical_path.is_file():
        raise InputError(f"{clinical_path}: missing table of the cohort", source=str(clinical_path))
    clinical = _read_table(clinical_path, ("patient_id", *OUTCOME_COLUMNS))
    duplicated = clinical["patient_id"][clinical["patient_id"].duplicated()]
    if len(duplicated):
        raise InputError(f"{clinical_path}: patient_id {duplicated.iloc[0]!r} appears more than once",
                         source=str(clinical_path))
    if len(clinical) != meta["n_patients"]:
        raise InputError(f"{clinical_path}: {len(clinical)} rows, but cohort.json says n_patients = "
                         f"{meta['n_patients']}", source=str(clinical_path))
    truth = None
    truth_path = path / "truth.csv"
    if truth_path.is_file():
        if not meta["synthetic"]:
            raise InputError(f"{truth_path}: a cohort with synthetic = false cannot have a known truth "
                             "(truth.csv is for synthetic cohorts only)", source=str(truth_path))
        truth = _read_table(truth_path, ("patient_id",))
    slices_path = path / "slices.csv"
    slices = _read_table(slices_path, SLICES_COLUMNS) if slices_path.is_file() else empty_slices_table()
    bad = slices.loc[~slices["chosen_by"].isin(CHOSEN_BY), "chosen_by"]
    if len(bad):
        raise InputError(f"{slices_path}: chosen_by = {bad.iloc[0]!r} "
                         f"(expected one of {', '.join(CHOSEN_BY)})", source=str(slices_path))
    return Cohort(path=path, meta=meta, clinical=clinical, truth=truth, slices=slices)


def replace_dir(new: Path, target: Path) -> None:
    """Put the finished folder ``new`` in place of ``target`` (a cohort others may be reading): swap by
    renames, delete the old one afterwards, so that a reader sees the old or the new cohort, never half."""
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{new.name.rsplit('-', 1)[-1]}"
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_target(out: Path, kind: str = "cohort") -> None:
    """InputError unless ``out`` is new, an empty directory or a cohort (``cohort.json``) to replace."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "cohort.json").exists())):
        raise InputError(f"{out}: exists and is not a {kind} directory (no cohort.json); expected a new or "
                         f"empty directory or an existing {kind} to replace", source=str(out))


@contextmanager
def staged_dir(out: Path, verb: str):
    """A temporary folder beside ``out`` to write a cohort into: it takes the place of ``out``
    (:func:`replace_dir`) when the block ends, and is deleted if the block fails (nothing left behind)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.{verb}-", dir=out.parent))
    try:
        yield staging
        replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
