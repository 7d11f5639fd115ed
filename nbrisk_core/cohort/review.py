"""Slice review at cohort scale: automatic proposals for every patient, then a reviewer's queue.

``nbrisk cohort slices --cohort DIR --auto`` (:func:`propose_cohort`) runs the automatic segmentation
(:mod:`nbrisk_core.segment.inference`) on each imported study (``studies/<patient_id>/<NC|ART|PV>/``)
and writes, per patient and phase, the proposed max-area slice:

- ``slices.csv``: a row with ``chosen_by = auto`` and no ``confirmed_by`` (a tumour was found);
- ``slices/<patient_id>/hu.npz`` and ``<phase>.png``: that slice and its mask, as the demo has them;
- ``slices/<patient_id>/proposal.npz``: the 3-D mask and the area curve of each phase (the review
  shows the contour on any slice and the curve);
- ``proposals.csv``: the proposal (slice, area, confidence, found) and the review's decision.

The Cohort builder page works through :func:`review_queue` (low-confidence and not-found items first)
and records each decision with :func:`decide`: ``accept`` (the proposed slice), ``move`` (another
slice: ``chosen_by = user``) or ``reject`` (no slice chosen for that phase; its row leaves
``slices.csv``). ``confirmed_by``/``confirmed_at`` and ``decided_by``/``decided_at`` say who did what.

Crash safety: every file is written to a temporary file in its folder and renamed over the old one
(:func:`atomic_write_bytes`), so a reader sees the old or the new file, never half of one; writes of
one cohort are serialised by a lock file (two reviewers at once). A decision writes the slice files,
then ``slices.csv``, then ``proposals.csv``: a crash in between leaves the item in the queue, and
doing it again gives the same files. The proposals of a patient are written the same way, slice
files first, so an interrupted ``--auto`` run resumes with the patients that have no proposal yet.
"""

from __future__ import annotations

import fcntl
import io
import os
import tempfile
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nbrisk_core.case import PHASES, Phase
from nbrisk_core.cohort.format import SLICES_COLUMNS, empty_slices_table, load_cohort
from nbrisk_core.errors import InputError

PROPOSALS_CSV = "proposals.csv"
#: Columns of ``proposals.csv``: one row per patient and phase the automatic segmentation has seen.
PROPOSAL_COLUMNS: tuple[str, ...] = ("patient_id", "phase", "series_uid", "proposed_slice", "z_mm",
                                     "area_mm2", "confidence", "found", "low_confidence", "decision",
                                     "decided_by", "decided_at")
#: What a reviewer can do with a proposal (and the ``decision`` column's values; empty: to review).
ACTIONS: tuple[str, ...] = ("accept", "move", "reject")
DECISIONS: dict[str, str] = {"accept": "accepted", "move": "moved", "reject": "rejected"}
LOCK_FILE = ".slices.lock"
#: display window of the ``<phase>.png`` exports (the demo's W400/L40)
PNG_WINDOW = (400.0, 40.0)


# --------------------------------------------------------------------------------------------
# atomic files


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder renamed over it
    (``os.replace`` is atomic on one file system): a crash leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _csv_bytes(table: pd.DataFrame, columns) -> bytes:
    return table.loc[:, list(columns)].to_csv(index=False, lineterminator="\n").encode()


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            item = io.BytesIO()
            np.lib.format.write_array(item, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(f"{name}.npy", item.getvalue())
    return buffer.getvalue()


def _png_bytes(hu: np.ndarray) -> bytes:
    from PIL import Image

    from nbrisk_core.imaging.windowing import window_to_uint8

    buffer = io.BytesIO()
    Image.fromarray(window_to_uint8(hu, *PNG_WINDOW), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise InputError(f"{path}: unreadable ({error})", source=str(path)) from None


@contextmanager
def cohort_lock(cohort_dir: Path):
    """Exclusive lock of a cohort's review files (``.slices.lock``) for one read-modify-write."""
    with open(Path(cohort_dir) / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --------------------------------------------------------------------------------------------
# tables


def read_slices(cohort_dir: Path) -> pd.DataFrame:
    """``slices.csv`` (all text; empty table when missing)."""
    path = Path(cohort_dir) / "slices.csv"
    if not path.is_file():
        return empty_slices_table()
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in SLICES_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing columns {', '.join(missing)}", source=str(path))
    return table


def read_proposals(cohort_dir: Path) -> pd.DataFrame:
    """``proposals.csv`` (all text; empty table when no proposal was made yet)."""
    path = Path(cohort_dir) / PROPOSALS_CSV
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype=str) for c in PROPOSAL_COLUMNS})
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in PROPOSAL_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing columns {', '.join(missing)}", source=str(path))
    return table


def _in_order(table: pd.DataFrame) -> pd.DataFrame:
    """Rows by patient, then phase in acquisition order."""
    order = {p.value: i for i, p in enumerate(PHASES)}
    return table.assign(_order=table["phase"].map(order)).sort_values(["patient_id", "_order"], kind="stable")


def _write_slices(cohort_dir: Path, table: pd.DataFrame) -> None:
    atomic_write_bytes(Path(cohort_dir) / "slices.csv", _csv_bytes(_in_order(table), SLICES_COLUMNS))


def _write_proposals(cohort_dir: Path, table: pd.DataFrame) -> None:
    atomic_write_bytes(Path(cohort_dir) / PROPOSALS_CSV, _csv_bytes(_in_order(table), PROPOSAL_COLUMNS))


def _upsert(table: pd.DataFrame, rows: list[dict], columns) -> pd.DataFrame:
    keys = {(r["patient_id"], r["phase"]) for r in rows}
    keep = np.array([(pid, ph) not in keys for pid, ph in zip(table["patient_id"], table["phase"])],
                    dtype=bool)
    new = pd.DataFrame([{c: str(r.get(c, "")) for c in columns} for r in rows], columns=list(columns))
    return pd.concat([table.loc[keep], new], ignore_index=True) if rows else table


# --------------------------------------------------------------------------------------------
# studies and proposals


def study_phase_dirs(cohort_dir: Path, patient_id: str) -> dict[Phase, Path]:
    """The phase folders of an imported study (``studies/<patient_id>/NC|ART|PV``) that exist."""
    root = Path(cohort_dir) / "studies" / patient_id
    return {p: root / p.value.upper() for p in PHASES if (root / p.value.upper()).is_dir()}


def phase_volumes(cohort_dir: Path, patient_id: str) -> dict[Phase, object]:
    """``{phase: PhaseVolume}`` of a patient's imported study (the phases the import assigned)."""
    from nbrisk_core.imaging.dicom_io import load_study
    from nbrisk_core.segment.inference import PhaseVolume

    volumes = {}
    for phase, folder in study_phase_dirs(cohort_dir, patient_id).items():
        series = [s for s in load_study(folder).series if s.is_hu and s.hu.ndim == 3]
        if not series:
            raise InputError(f"{folder}: no CT series in Hounsfield units", source=str(folder))
        volume = PhaseVolume.from_series(series[0])
        # the reader remaps UIDs with a fresh key on every read; the cohort's records name the stored
        # (already de-identified at import) SeriesInstanceUID (0020,000E)
        volume.series_uid = _stored_series_uid(folder) or volume.series_uid
        volumes[phase] = volume
    return volumes


def _stored_series_uid(folder: Path) -> str:
    import pydicom

    for path in sorted(folder.glob("*.dcm"))[:1]:
        try:
            return str(pydicom.dcmread(path, stop_before_pixels=True).get("SeriesInstanceUID", "") or "")
        except Exception:   # noqa: BLE001 - the reader has read the folder; a bad header gives no UID
            return ""
    return ""


def load_proposal_arrays(cohort_dir: Path, patient_id: str) -> dict[str, np.ndarray]:
    """``slices/<patient_id>/proposal.npz``: ``mask_<phase>`` (3-D uint8) and ``areas_<phase>``."""
    return _read_npz(Path(cohort_dir) / "slices" / patient_id / "proposal.npz")


def _write_chosen(cohort_dir: Path, patient_id: str, chosen: dict[Phase, tuple[np.ndarray, np.ndarray]],
                  remove: tuple[Phase, ...] = ()) -> None:
    """Update ``hu.npz`` and ``<phase>.png`` of a patient with ``{phase: (hu slice, mask slice)}``."""
    folder = Path(cohort_dir) / "slices" / patient_id
    arrays = _read_npz(folder / "hu.npz")
    for phase in remove:
        arrays.pop(phase.value, None)
        arrays.pop(f"mask_{phase.value}", None)
    for phase, (hu, mask) in chosen.items():
        arrays[phase.value] = np.asarray(hu, dtype=np.int16)
        arrays[f"mask_{phase.value}"] = np.asarray(mask, dtype=np.uint8)
        atomic_write_bytes(folder / f"{phase.value}.png", _png_bytes(arrays[phase.value]))
    atomic_write_bytes(folder / "hu.npz", _npz_bytes(arrays))
    for phase in remove:
        (folder / f"{phase.value}.png").unlink(missing_ok=True)


def _slice_row(patient_id: str, phase: Phase, volume, index: int, area_mm2: float, chosen_by: str,
               confirmed_by: str = "", confirmed_at: str = "") -> dict:
    return {"patient_id": patient_id, "phase": phase.value, "series_uid": volume.series_uid,
            "slice_index": int(index), "z_mm": round(float(volume.z_mm[index]), 3),
            "area_mm2": round(float(area_mm2), 2), "chosen_by": chosen_by, "confirmed_by": confirmed_by,
            "confirmed_at": confirmed_at}


def propose_patient(cohort_dir: Path, patient_id: str, model) -> list[dict]:
    """Segment one patient's imported study and write its proposals (see the module docstring).

    Returns the ``proposals.csv`` rows (an empty list when the patient has no study phase).
    """
    from nbrisk_core.segment.inference import segment_phases

    cohort_dir = Path(cohort_dir)
    volumes = phase_volumes(cohort_dir, patient_id)
    if not volumes:
        return []
    found = segment_phases(model, {p.value: v for p, v in volumes.items()})
    folder = cohort_dir / "slices" / patient_id
    arrays = {}
    for phase in volumes:
        result = found[phase.value]
        arrays[f"mask_{phase.value}"] = result.mask.astype(np.uint8)
        arrays[f"areas_{phase.value}"] = np.asarray(result.areas_mm2, dtype=np.float64)
    atomic_write_bytes(folder / "proposal.npz", _npz_bytes(arrays))
    peak = {p: found[p.value].max_area_slice for p in volumes}
    chosen = {p: (volumes[p].hu[peak[p]], found[p.value].mask[peak[p]])
              for p in volumes if found[p.value].found}
    _write_chosen(cohort_dir, patient_id, chosen, remove=tuple(p for p in volumes if p not in chosen))
    slice_rows, proposal_rows = [], []
    for phase, volume in volumes.items():
        result = found[phase.value]
        if result.found:
            slice_rows.append(_slice_row(patient_id, phase, volume, result.max_area_slice, result.area_mm2,
                                         "auto"))
        proposal_rows.append({"patient_id": patient_id, "phase": phase.value, "series_uid": volume.series_uid,
                              "proposed_slice": int(result.max_area_slice),
                              "z_mm": round(float(volume.z_mm[result.max_area_slice]), 3),
                              "area_mm2": round(float(result.area_mm2), 2),
                              "confidence": round(float(result.confidence), 3),
                              "found": int(result.found), "low_confidence": int(result.low_confidence),
                              "decision": "", "decided_by": "", "decided_at": ""})
    with cohort_lock(cohort_dir):
        slices = read_slices(cohort_dir)
        # a re-proposal replaces the patient's unconfirmed rows of these phases, never a reviewer's choice
        mine = {p.value for p in volumes}
        stale = np.array([pid == patient_id and ph in mine and not by for pid, ph, by
                          in zip(slices["patient_id"], slices["phase"], slices["confirmed_by"])], dtype=bool)
        slices = _upsert(slices.loc[~stale], slice_rows, SLICES_COLUMNS)
        _write_slices(cohort_dir, slices)
        _write_proposals(cohort_dir, _upsert(read_proposals(cohort_dir), proposal_rows, PROPOSAL_COLUMNS))
    return proposal_rows


@dataclass
class ProposeResult:
    proposed: list[str]
    skipped: list[str]      # already proposed (resumed run)
    no_study: list[str]
    low_confidence: int


def seg_model_path(cohort_dir: Path) -> Path:
    """The segmentation model a cohort uses: ``<cohort>/models/seg_demo`` when the cohort has a models
    folder, else the shipped one (``NBRISK_MODELS_DIR``)."""
    from nbrisk_core.config import cohort_models_dir
    from nbrisk_core.segment import SHIPPED_SEG_MODEL

    return cohort_models_dir(cohort_dir) / f"{SHIPPED_SEG_MODEL}.safetensors"


def propose_cohort(cohort_dir, *, model=None, redo: bool = False, progress=None) -> ProposeResult:
    """Propose the max-area slice of every phase for every patient with an imported study.

    Resumable: a patient with rows in ``proposals.csv`` is skipped unless ``redo`` (a redo keeps every
    confirmed slice). ``progress(done, total)`` after each patient.

    Raises
    ------
    InputError
        Not a cohort; no segmentation model (``nbrisk train-seg`` makes one).
    """
    cohort_dir = Path(cohort_dir)
    cohort = load_cohort(cohort_dir)
    if model is None:
        from nbrisk_core.segment.model import load_seg_model

        path = seg_model_path(cohort_dir)
        if not path.is_file():
            raise InputError(f"{path}: no segmentation model; the patients stay 'to review' (train one with "
                             "'nbrisk train-seg' or set NBRISK_MODELS_DIR)", source=str(path))
        model = load_seg_model(path)
    done = set(read_proposals(cohort_dir)["patient_id"])
    result = ProposeResult([], [], [], 0)
    ids = cohort.patient_ids
    for n, pid in enumerate(ids):
        if not study_phase_dirs(cohort_dir, pid):
            result.no_study.append(pid)
        elif pid in done and not redo:
            result.skipped.append(pid)
        else:
            rows = propose_patient(cohort_dir, pid, model)
            result.proposed.append(pid)
            result.low_confidence += sum(int(r["low_confidence"]) for r in rows)
        if progress is not None:
            progress(n + 1, len(ids))
    return result


# --------------------------------------------------------------------------------------------
# the review queue


@dataclass(frozen=True)
class QueueItem:
    """One patient-phase waiting for a reviewer."""

    patient_id: str
    phase: Phase
    series_uid: str
    proposed_slice: int
    area_mm2: float
    confidence: float
    found: bool
    low_confidence: bool


def review_queue(cohort_dir) -> list[QueueItem]:
    """The proposals without a decision: not found and low confidence first, then by confidence
    (lowest first), patient and phase."""
    table = read_proposals(Path(cohort_dir))
    items = [QueueItem(r.patient_id, Phase(r.phase), r.series_uid, int(r.proposed_slice), float(r.area_mm2),
                       float(r.confidence), r.found == "1", r.low_confidence == "1")
             for r in table.itertuples(index=False) if not r.decision]
    return sorted(items, key=lambda i: (i.found, not i.low_confidence, i.confidence, i.patient_id,
                                        PHASES.index(i.phase)))


@dataclass(frozen=True)
class ReviewProgress:
    total: int
    decided: int
    accepted: int
    moved: int
    rejected: int

    @property
    def to_review(self) -> int:
        return self.total - self.decided


def review_progress(cohort_dir) -> ReviewProgress:
    decisions = list(read_proposals(Path(cohort_dir))["decision"])
    return ReviewProgress(total=len(decisions), decided=sum(bool(d) for d in decisions),
                          accepted=decisions.count("accepted"), moved=decisions.count("moved"),
                          rejected=decisions.count("rejected"))


def patient_states(cohort_dir) -> pd.DataFrame:
    """Per patient: phases found (study folders), proposed, confirmed, rejected and a state
    (``no study``, ``to propose``, ``to review``, ``confirmed``, ``problem``)."""
    cohort_dir = Path(cohort_dir)
    cohort = load_cohort(cohort_dir)
    proposals = read_proposals(cohort_dir)
    slices = read_slices(cohort_dir)
    rows = []
    for pid in cohort.patient_ids:
        phases = list(study_phase_dirs(cohort_dir, pid))
        mine = proposals[proposals["patient_id"] == pid]
        confirmed = int(((slices["patient_id"] == pid) & (slices["confirmed_by"] != "")).sum())
        rejected = int((mine["decision"] == "rejected").sum())
        if not phases:
            state = "no study"
        elif mine.empty:
            state = "to propose"
        elif (mine["decision"] == "").any():
            state = "to review"
        elif rejected or len(phases) < len(PHASES):
            state = "problem"
        else:
            state = "confirmed"
        rows.append({"patient_id": pid, "phases found": len(phases),
                     "proposed": int((mine["found"] == "1").sum()), "confirmed": confirmed,
                     "rejected": rejected, "state": state})
    return pd.DataFrame(rows, columns=["patient_id", "phases found", "proposed", "confirmed", "rejected",
                                       "state"])


def decide(cohort_dir, patient_id: str, phase, action: str, user: str, *, index: int | None = None,
           volume=None, mask=None) -> dict:
    """Record a reviewer's decision on one proposal; returns the ``proposals.csv`` row written.

    Parameters
    ----------
    action : str
        ``accept`` (the proposed slice), ``move`` (slice ``index``: ``chosen_by = user``) or ``reject``.
    user : str
        The reviewer's user name (``confirmed_by``/``decided_by``).
    volume : PhaseVolume, optional
        The phase's volume when the caller has it (else read from ``studies/``).
    mask : ndarray, optional
        The 3-D mask to take the chosen slice's contour from (default: the proposal's).

    Raises
    ------
    InputError
        Unknown action, patient or phase without a proposal, an index outside the series, no user.
    """
    cohort_dir = Path(cohort_dir)
    if action not in ACTIONS:
        raise InputError(f"action = {action!r}: expected one of {', '.join(ACTIONS)}")
    if not str(user or "").strip():
        raise InputError("a decision needs the reviewer's user name (confirmed_by)")
    try:
        phase = Phase(phase)
    except ValueError:
        raise InputError(f"phase = {phase!r}: expected one of {', '.join(PHASES)}") from None
    proposals = read_proposals(cohort_dir)
    match = proposals[(proposals["patient_id"] == patient_id) & (proposals["phase"] == phase.value)]
    if match.empty:
        raise InputError(f"{cohort_dir / PROPOSALS_CSV}: no proposal for patient {patient_id!r}, phase "
                         f"{phase.upper()} (run 'nbrisk cohort slices --cohort {cohort_dir} --auto')")
    proposal = match.iloc[0]
    if action == "accept":
        if proposal["found"] != "1":
            raise InputError(f"patient {patient_id} {phase.upper()}: no tumour was found, so there is no "
                             "proposed slice to accept; move to the tumour's largest slice or reject")
        index = int(proposal["proposed_slice"])
    at = now_utc()
    if action != "reject":
        volume = volume if volume is not None else phase_volumes(cohort_dir, patient_id).get(phase)
        if volume is None:
            raise InputError(f"patient {patient_id}: no {phase.upper()} series under studies/{patient_id}")
        if index is None or not 0 <= int(index) < volume.hu.shape[0]:
            raise InputError(f"patient {patient_id} {phase.upper()}: slice index {index!r} "
                             f"(expected 0..{volume.hu.shape[0] - 1})")
        index = int(index)
        if mask is None:
            mask = load_proposal_arrays(cohort_dir, patient_id).get(f"mask_{phase.value}")
        plane_mask = (np.asarray(mask[index], dtype=np.uint8) if mask is not None
                      else np.zeros(volume.hu.shape[1:], dtype=np.uint8))
        pixel_mm2 = float(volume.pixel_spacing[0]) * float(volume.pixel_spacing[1])
        area = float(plane_mask.astype(bool).sum()) * pixel_mm2
        chosen_by = "auto" if action == "accept" else "user"
        row = _slice_row(patient_id, phase, volume, index, area, chosen_by, user, at)
    with cohort_lock(cohort_dir):
        if action == "reject":
            _write_chosen(cohort_dir, patient_id, {}, remove=(phase,))
        else:
            _write_chosen(cohort_dir, patient_id, {phase: (volume.hu[index], plane_mask)})
        slices = read_slices(cohort_dir)
        slices = slices[~((slices["patient_id"] == patient_id) & (slices["phase"] == phase.value))]
        _write_slices(cohort_dir, _upsert(slices, [] if action == "reject" else [row], SLICES_COLUMNS))
        proposals = read_proposals(cohort_dir)
        updated = {**proposal.to_dict(), "decision": DECISIONS[action], "decided_by": user, "decided_at": at}
        _write_proposals(cohort_dir, _upsert(proposals, [updated], PROPOSAL_COLUMNS))
    return updated


# --------------------------------------------------------------------------------------------
# the audit trail's record of a decision

#: audit action of each review action (:data:`nbrisk_core.store.audit.ACTIONS`)
AUDIT_ACTIONS: dict[str, str] = {"accept": "slice_confirmed", "move": "slice_confirmed",
                                 "reject": "slice_rejected"}
_ACTION_OF_DECISION = {decision: action for action, decision in DECISIONS.items()}


def row_reference(row: dict, columns=PROPOSAL_COLUMNS) -> str:
    """SHA-256 (hex) of one table row as the CSV holds it (every value as text, in ``columns``).

    The audit trail names a reviewed patient-phase by this reference, never by the study number:
    whoever holds the cohort finds the row again with :func:`find_decision`; the trail alone does not
    say which patient it was (the row holds the de-identified series UID and the decision's time).
    """
    import hashlib
    import json

    text = json.dumps({c: str(row.get(c, "")) for c in columns}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def decision_audit_detail(cohort_dir, row: dict) -> tuple[str, dict]:
    """``(audit action, detail)`` of a decision :func:`decide` wrote (its returned ``proposals.csv`` row).

    The detail holds no patient identifier: the cohort's name, the phase, the review action, the chosen
    slice index (none for a reject), ``chosen_by`` and ``proposal_sha256`` (:func:`row_reference` of the
    written row).
    """
    from nbrisk_core.cohort.format import read_meta

    cohort_dir = Path(cohort_dir)
    action = _ACTION_OF_DECISION.get(row.get("decision", ""))
    if action is None:
        raise InputError(f"decision = {row.get('decision')!r} is no review decision "
                         f"(expected one of {', '.join(DECISIONS.values())})")
    index, chosen_by = None, ""
    if action != "reject":
        slices = read_slices(cohort_dir)
        match = slices[(slices["patient_id"] == row["patient_id"]) & (slices["phase"] == row["phase"])]
        if not match.empty:
            index, chosen_by = int(match.iloc[0]["slice_index"]), match.iloc[0]["chosen_by"]
    try:
        name = str(read_meta(cohort_dir).get("name") or cohort_dir.name)
    except InputError:
        name = cohort_dir.name
    detail = {"cohort": name, "phase": row["phase"], "action": action, "slice_index": index,
              "chosen_by": chosen_by, "proposal_sha256": row_reference(row)}
    return AUDIT_ACTIONS[action], detail


def find_decision(cohort_dir, reference: str) -> dict | None:
    """The ``proposals.csv`` row whose :func:`row_reference` is ``reference`` (None: not there any more)."""
    for row in read_proposals(Path(cohort_dir)).to_dict("records"):
        if row_reference(row) == reference:
            return row
    return None
