"""Saved cases: create, update (optimistic locking), load, list/filter, soft delete, sharing.

Every function takes the acting user (a user name, or an :class:`~nbrisk_core.store.access.Actor`)
and enforces who may see and change which case (:mod:`nbrisk_core.store.access`: owner, sharing
with users or the owner's team, admins); a refusal raises
:class:`~nbrisk_core.store.access.CaseAccessError` and is audited.

Every write is one database transaction: the case row, its slices, its new predictions and the
audit events are committed together or not at all. Two sessions editing the same case cannot
silently overwrite each other: the ``cases.version`` column is SQLAlchemy's ``version_id_col``, the
caller passes the version it loaded, and a mismatch raises :class:`CaseConflictError` naming who
changed the case and when.
"""

from __future__ import annotations

import secrets
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from nbrisk_core.errors import InputError
from nbrisk_core.store import audit, codec
from nbrisk_core.store.access import Actor, CaseAccessError, check, refuse, resolve, visible
from nbrisk_core.store.db import transaction
from nbrisk_core.store.models import (CASE_STATUSES, PHASES, Case, CaseShare, CaseSlice, Prediction, User,
                                      utc_now)


#: packages whose versions are stored with every case and prediction (read from metadata: no import)
VERSIONED_PACKAGES: tuple[str, ...] = ("numpy", "torch", "timm", "scikit-learn", "scikit-survival",
                                       "lifelines", "pydicom", "pandas")
RISK_CLASSES: tuple[str, ...] = ("HR", "NHR")
MLRS_GROUPS: tuple[str, ...] = ("high", "low")


class CaseConflictError(InputError):
    """The case was changed (or deleted) by someone else since it was loaded."""


class CaseNotFoundError(InputError):
    """No (undeleted) case with this id."""


class _Denied(Exception):
    """Raised inside a transaction to roll it back; the refusal is audited after it ends."""

    def __init__(self, actor: Actor, operation: str, why: str):
        super().__init__(why)
        self.actor, self.operation, self.why = actor, operation, why


def _guard(session, actor: Actor, row: Case, operation: str) -> None:
    why = check(session, actor, row, operation)
    if why is not None:
        raise _Denied(actor, operation, why)


@contextmanager
def _acting(engine: Engine, username: str | Actor, case_uid: str, *, readonly: bool = False):
    """``(session, actor)``: one transaction of ``username`` on ``case_uid``. A refusal raised in it
    (:func:`_guard`) rolls it back, is audited after it and leaves as :class:`CaseAccessError`."""
    try:
        with transaction(engine, readonly=readonly) as session:
            yield session, resolve(session, username)
    except _Denied as denied:
        raise refuse(engine, denied.actor, case_uid, denied.operation, denied.why) from None


def _visible_case(session, actor: Actor, case_uid: str, operation: str, *related,
                  include_deleted: bool = False) -> Case:
    """The case row (with ``related`` loaded) that ``actor`` may ``operation``; not found or refused."""
    row = session.scalar(select(Case).where(Case.case_uid == case_uid)
                         .options(*(selectinload(r) for r in related)))
    if row is None or (row.deleted_at is not None and not include_deleted):
        raise CaseNotFoundError(f"case {case_uid!r} does not exist or was deleted", source="case_uid")
    _guard(session, actor, row, operation)
    return row


def software_versions() -> dict[str, str | None]:
    """NBRisk, Python and the versions of :data:`VERSIONED_PACKAGES` installed now (None: absent)."""
    from nbrisk_core.versions import software_versions as versions

    return versions(VERSIONED_PACKAGES)


@dataclass
class SliceRecord:
    """The chosen slice of one phase.

    Attributes
    ----------
    phase : {"nc", "art", "pv"}
        :class:`nbrisk_core.case.Phase` (stored lower case since migration 0003).
    hu : ndarray
        2-D Hounsfield units of the chosen slice (8-bit grey for a 2-D image upload,
        ``meta["units"] == "grey8"``).
    slice_index : int or None
        0-based index in the series sorted by ascending z.
    slice_position_mm : float or None
        z position, (0020,1041) SliceLocation or the z of (0020,0032) ImagePositionPatient.
    meta : dict
        Phase metadata (pixel spacing, slice thickness, window, ...) without identifiers.
    series_hu : ndarray or None
        The whole series of the phase; stored only when the case is saved with ``include_series``.
    """

    phase: str
    hu: np.ndarray
    slice_index: int | None = None
    slice_position_mm: float | None = None
    meta: dict = field(default_factory=dict)
    series_hu: np.ndarray | None = None


@dataclass
class PredictionRecord:
    """One model output: kind (``risk`` or ``prognosis``), the result, model SHA-256 and input hash."""

    kind: str
    result: Any
    model_name: str | None = None
    model_sha256: str | None = None
    input_sha256: str = ""
    software_versions: dict = field(default_factory=software_versions)
    created_at: datetime | None = None
    created_by: str | None = None


@dataclass
class CaseRecord:
    """A case as the application sees it (in memory); :func:`save_case` writes it."""

    label: str
    age_months: float | None = None
    sex: str | None = None
    status: str = "draft"
    notes: str = ""
    clinical_entered: dict = field(default_factory=dict)
    clinical_imputed: dict = field(default_factory=dict)
    phase_meta: dict = field(default_factory=dict)
    slices: dict[str, SliceRecord] = field(default_factory=dict)
    predictions: list[PredictionRecord] = field(default_factory=list)
    #: the working objects of the dashboard session (restored into the pages when reopened)
    session: dict = field(default_factory=dict)
    risk_class: str | None = None
    hr_probability: float | None = None
    mlrs: float | None = None
    mlrs_percentile: float | None = None
    mlrs_group: str | None = None
    include_series: bool = False
    software_versions: dict = field(default_factory=software_versions)
    case_uid: str | None = None
    version: int | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None
    reviewed_at: datetime | None = None
    reviewed_by: str | None = None
    signed_off_at: datetime | None = None
    signed_off_by: str | None = None
    deleted_at: datetime | None = None
    owner: str | None = None

    def prediction(self, kind: str) -> PredictionRecord | None:
        """The latest prediction of ``kind``."""
        matches = [p for p in self.predictions if p.kind == kind]
        return matches[-1] if matches else None


@dataclass(frozen=True)
class CaseSummary:
    """One row of the case list."""

    case_uid: str
    label: str
    status: str
    risk_class: str | None
    hr_probability: float | None
    mlrs: float | None
    mlrs_group: str | None
    age_months: float | None
    sex: str | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    version: int
    deleted: bool
    owner: str = ""
    #: True when the case is shared with anyone (users or a team)
    shared: bool = False


@dataclass(frozen=True)
class Sharing:
    """Whom a case is shared with: user names, and the team (the owner's, when it was shared)."""

    owner: str
    users: tuple[str, ...] = ()
    team: str | None = None


def new_case_uid() -> str:
    """A random case id (not derived from any patient data): ``C`` + 10 hex digits."""
    return "C" + secrets.token_hex(5).upper()


def _validate(record: CaseRecord) -> None:
    label = (record.label or "").strip()
    if not label or len(label) > 64:
        raise InputError(f"case label = {record.label!r} is not valid (expected 1-64 characters, a pseudonym "
                         "such as the study's case number, never a name)", source="label")
    if record.status not in CASE_STATUSES:
        raise InputError(f"case status = {record.status!r} is not known (expected one of "
                         f"{', '.join(CASE_STATUSES)})", source="status")
    if record.risk_class is not None and record.risk_class not in RISK_CLASSES:
        raise InputError(f"risk class = {record.risk_class!r} is not known (expected HR or NHR)", source="risk_class")
    if record.mlrs_group is not None and record.mlrs_group not in MLRS_GROUPS:
        raise InputError(f"MLRS group = {record.mlrs_group!r} is not known (expected high or low)",
                         source="mlrs_group")
    for phase, sl in record.slices.items():
        if phase not in PHASES or sl.phase != phase:
            raise InputError(f"slice phase = {phase!r} is not known (expected one of {', '.join(PHASES)})",
                             source="phase")
        hu = np.asarray(sl.hu)
        if hu.ndim != 2 or hu.size == 0 or hu.dtype.kind not in "iuf":
            raise InputError(f"{str(phase).upper()} chosen slice has shape {hu.shape} and dtype {hu.dtype} "
                             "(expected a non-empty 2-D numeric HU array)", source=phase)


def _npz(**arrays) -> bytes:
    return codec.pack_arrays({k: np.asarray(v) for k, v in arrays.items() if v is not None})


def _slice_row(sl: SliceRecord, include_series: bool) -> CaseSlice:
    hu = np.asarray(sl.hu)
    meta = codec.Encoder().encode(sl.meta or {})
    return CaseSlice(phase=sl.phase, slice_index=None if sl.slice_index is None else int(sl.slice_index),
                     slice_position_mm=None if sl.slice_position_mm is None else float(sl.slice_position_mm),
                     rows=int(hu.shape[0]), cols=int(hu.shape[1]), hu_npz=_npz(hu=hu),
                     hu_sha256=codec.sha256_of(hu),
                     series_npz=_npz(series=sl.series_hu) if include_series and sl.series_hu is not None else None,
                     meta=meta if isinstance(meta, dict) else {})


def _prediction_key(kind, model_sha256, input_sha256, result_sha) -> tuple:
    return kind, model_sha256 or "", input_sha256 or "", result_sha


def _prediction_row(p: PredictionRecord, username: str) -> tuple[Prediction, str]:
    encoder = codec.Encoder(prefix="p")
    encoded = encoder.encode(p.result)
    result_sha = codec.sha256_of(p.result)
    input_sha = p.input_sha256 or result_sha
    row = Prediction(kind=p.kind, model_name=p.model_name, model_sha256=p.model_sha256, input_sha256=input_sha,
                     software_versions=dict(p.software_versions or {}),
                     result={"value": encoded, "result_sha256": result_sha},
                     result_arrays=codec.pack_arrays(encoder.arrays),
                     created_at=p.created_at or utc_now(), created_by=p.created_by or username)
    return row, result_sha


_SIMPLE_FIELDS = ("label", "age_months", "sex", "status", "notes", "clinical_entered", "clinical_imputed",
                  "phase_meta", "risk_class", "hr_probability", "mlrs", "mlrs_percentile", "mlrs_group",
                  "include_series", "software_versions")


def _apply(row: Case, record: CaseRecord, username: str, now: datetime) -> list[str]:
    """Copy ``record`` into ``row``; return the names of the fields that changed."""
    changed = []
    encoder = codec.Encoder(include_series=record.include_series, prefix="s")
    session_state = encoder.encode(record.session or {})
    values = {
        "label": record.label.strip(), "age_months": None if record.age_months is None else float(record.age_months),
        "sex": record.sex, "status": record.status, "notes": record.notes or "",
        "clinical_entered": codec.Encoder().encode(record.clinical_entered or {}),
        "clinical_imputed": codec.Encoder().encode(record.clinical_imputed or {}),
        "phase_meta": codec.Encoder().encode(record.phase_meta or {}),
        "risk_class": record.risk_class,
        "hr_probability": None if record.hr_probability is None else float(record.hr_probability),
        "mlrs": None if record.mlrs is None else float(record.mlrs),
        "mlrs_percentile": None if record.mlrs_percentile is None else float(record.mlrs_percentile),
        "mlrs_group": record.mlrs_group, "include_series": bool(record.include_series),
        "software_versions": dict(record.software_versions or {}),
    }
    for name in _SIMPLE_FIELDS:
        if getattr(row, name, None) != values[name]:
            setattr(row, name, values[name])
            changed.append(name)
    blob = codec.pack_arrays(encoder.arrays)
    if row.session_state != session_state or row.session_arrays != blob:
        row.session_state = session_state
        row.session_arrays = blob
        changed.append("session")
    if "status" in changed or row.id is None:
        if record.status in ("reviewed", "signed_off") and row.reviewed_by is None:
            row.reviewed_by, row.reviewed_at = username, now
        if record.status == "signed_off":
            row.signed_off_by, row.signed_off_at = username, now
        elif row.signed_off_by is not None:
            row.signed_off_by, row.signed_off_at = None, None
    wanted = {phase: _slice_row(sl, record.include_series) for phase, sl in record.slices.items()}
    existing = {s.phase: s for s in row.slices}
    for phase, new in wanted.items():
        old = existing.get(phase)
        if old is None:
            row.slices.append(new)
            changed.append(f"slice_{phase}")
        elif (old.hu_sha256, old.slice_index, old.slice_position_mm, old.series_npz is None, old.meta) != \
                (new.hu_sha256, new.slice_index, new.slice_position_mm, new.series_npz is None, new.meta):
            for attr in ("slice_index", "slice_position_mm", "rows", "cols", "hu_npz", "hu_sha256",
                         "series_npz", "meta"):
                setattr(old, attr, getattr(new, attr))
            changed.append(f"slice_{phase}")
    for phase, old in existing.items():
        if phase not in wanted:
            row.slices.remove(old)
            changed.append(f"slice_{phase}")
    return changed


def _add_new_predictions(session, row: Case, record: CaseRecord, username: str) -> int:
    known = {_prediction_key(p.kind, p.model_sha256, p.input_sha256, (p.result or {}).get("result_sha256"))
             for p in row.predictions}
    added = 0
    for p in record.predictions:
        pred_row, result_sha = _prediction_row(p, username)
        key = _prediction_key(pred_row.kind, pred_row.model_sha256, pred_row.input_sha256, result_sha)
        if key in known:
            continue
        known.add(key)
        row.predictions.append(pred_row)
        audit.record(session, username, "prediction", case_uid=row.case_uid, model_sha256=p.model_sha256,
                     detail={"kind": p.kind, "model": p.model_name, "input_sha256": pred_row.input_sha256})
        added += 1
    return added


def save_case(engine: Engine, record: CaseRecord, username: str | Actor) -> CaseRecord:
    """Create (``record.case_uid is None``) or update a case in one transaction.

    Parameters
    ----------
    record : CaseRecord
        For an update, ``record.version`` must be the version that was loaded.
    username : str or Actor
        Who saves (written to the case and the audit trail). A new case is theirs; an update needs
        access to the case (owner, shared with them or their team, or admin).

    Returns
    -------
    CaseRecord
        ``record`` with ``case_uid``, ``version`` and the who/when fields set from the database.

    Raises
    ------
    CaseConflictError
        Someone else saved or deleted the case since ``record.version`` was loaded.
    CaseAccessError
        The case is not shared with ``username`` (audited).
    InputError
        Invalid label, status, class, group or slice.
    """
    _validate(record)
    now = utc_now()
    try:
        with _acting(engine, username, record.case_uid or "(new)") as (session, actor):
            username = actor.username
            if not actor.active:
                raise _Denied(actor, "change", f"user {username!r} is disabled")
            if record.case_uid is None:
                row = Case(case_uid=new_case_uid(), created_at=now, created_by=username, owner=username,
                           updated_at=now,
                           updated_by=username, notes="", clinical_entered={}, clinical_imputed={},
                           phase_meta={}, session_state={}, software_versions={})
                changed = _apply(row, record, username, now)
                session.add(row)
                session.flush()
                audit.record(session, username, "case_created", case_uid=row.case_uid,
                             detail={"status": row.status})
            else:
                row = session.scalar(select(Case).where(Case.case_uid == record.case_uid)
                                     .options(selectinload(Case.slices), selectinload(Case.predictions)))
                if row is None:
                    raise CaseNotFoundError(f"case {record.case_uid} does not exist", source="case_uid")
                _guard(session, actor, row, "change")
                if row.deleted_at is not None:
                    raise CaseConflictError(f"case {record.case_uid} was deleted by {row.deleted_by} at "
                                            f"{_when(row.deleted_at)}; it cannot be saved again",
                                            source="case_uid")
                if record.version is None or row.version != record.version:
                    raise CaseConflictError(_conflict_message(row, record.version), source="case_uid")
                changed = _apply(row, record, username, now)
                if changed:
                    row.updated_at, row.updated_by = now, username
            added = _add_new_predictions(session, row, record, username)
            if record.case_uid is not None and (changed or added):
                if not changed:
                    row.updated_at, row.updated_by = now, username  # bump the version for new predictions
                session.flush()
                audit.record(session, username, "case_changed", case_uid=row.case_uid,
                             detail={"version": row.version, "status": row.status,
                                     "changed": sorted(set(changed)), "predictions_added": added})
            session.flush()
            result = _to_record(row)
    except StaleDataError as error:
        # another session committed between our read and our write (the version_id_col guard)
        raise CaseConflictError(f"case {record.case_uid} was changed by someone else while it was being "
                                "saved; reopen it and apply your changes again", source="case_uid") from error
    return result


def _when(value: datetime | None) -> str:
    value = audit.as_utc(value)
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "?"


def _conflict_message(row: Case, loaded: int | None) -> str:
    return (f"case {row.case_uid} was changed by {row.updated_by} at {_when(row.updated_at)} "
            f"(it is now version {row.version}; you opened version {loaded}). Your changes were not saved: "
            "reopen the case and apply them again.")


def _to_record(row: Case) -> CaseRecord:
    arrays = codec.unpack_arrays(row.session_arrays)
    slices = {}
    for s in row.slices:
        hu = codec.unpack_arrays(s.hu_npz)["hu"]
        series = codec.unpack_arrays(s.series_npz).get("series") if s.series_npz else None
        slices[s.phase] = SliceRecord(s.phase, hu, s.slice_index, s.slice_position_mm, codec.decode(s.meta or {}),
                                      series)
    predictions = []
    for p in row.predictions:
        stored = p.result or {}
        predictions.append(PredictionRecord(
            kind=p.kind, result=codec.decode(stored.get("value"), codec.unpack_arrays(p.result_arrays)),
            model_name=p.model_name, model_sha256=p.model_sha256, input_sha256=p.input_sha256,
            software_versions=dict(p.software_versions or {}), created_at=audit.as_utc(p.created_at),
            created_by=p.created_by))
    return CaseRecord(
        label=row.label, age_months=row.age_months, sex=row.sex, status=row.status, notes=row.notes or "",
        clinical_entered=codec.decode(row.clinical_entered or {}),
        clinical_imputed=codec.decode(row.clinical_imputed or {}),
        phase_meta=codec.decode(row.phase_meta or {}), slices=dict(sorted(slices.items(), key=lambda kv:
                                                                          PHASES.index(kv[0]))),
        predictions=predictions, session=codec.decode(row.session_state or {}, arrays),
        risk_class=row.risk_class, hr_probability=row.hr_probability, mlrs=row.mlrs,
        mlrs_percentile=row.mlrs_percentile, mlrs_group=row.mlrs_group, include_series=row.include_series,
        software_versions=dict(row.software_versions or {}), case_uid=row.case_uid, version=row.version,
        created_at=audit.as_utc(row.created_at), created_by=row.created_by,
        updated_at=audit.as_utc(row.updated_at), updated_by=row.updated_by,
        reviewed_at=audit.as_utc(row.reviewed_at), reviewed_by=row.reviewed_by,
        signed_off_at=audit.as_utc(row.signed_off_at), signed_off_by=row.signed_off_by,
        deleted_at=audit.as_utc(row.deleted_at), owner=row.owner)


def load_case(engine: Engine, case_uid: str, username: str | Actor, *, record_open: bool = True,
              include_deleted: bool = False, operation: str = "open") -> CaseRecord:
    """The stored case ``case_uid``; the opening is written to the audit trail.

    Raises
    ------
    CaseNotFoundError
        No such case, or it was deleted (unless ``include_deleted``).
    CaseAccessError
        ``username`` may not see it (audited, as ``operation``).
    """
    with _acting(engine, username, case_uid) as (session, actor):
        row = _visible_case(session, actor, case_uid, operation, Case.slices, Case.predictions,
                            include_deleted=include_deleted)
        record = _to_record(row)
        if record_open:
            audit.record(session, actor.username, "case_opened", case_uid=case_uid,
                         detail={"version": row.version})
    return record


def list_cases(engine: Engine, username: str | Actor, *, status: str | None = None,
               risk_class: str | None = None,
               mlrs_group: str | None = None, since: datetime | None = None, until: datetime | None = None,
               search: str | None = None, include_deleted: bool = False, created_by: str | None = None,
               limit: int = 500) -> list[CaseSummary]:
    """The cases ``username`` may see, most recently changed first, filtered by status, risk class,
    MLRS group, date and text.

    ``search`` matches the case label, the case id and the notes (case-insensitive substring).
    """
    for name, value, allowed in (("status", status, CASE_STATUSES), ("risk class", risk_class, RISK_CLASSES),
                                 ("MLRS group", mlrs_group, MLRS_GROUPS)):
        if value is not None and value not in allowed:
            raise InputError(f"case filter {name} = {value!r} is not known (expected one of {', '.join(allowed)})")
    query = select(Case).order_by(Case.updated_at.desc(), Case.id.desc()).limit(limit)
    if not include_deleted:
        query = query.where(Case.deleted_at.is_(None))
    if status:
        query = query.where(Case.status == status)
    if risk_class:
        query = query.where(Case.risk_class == risk_class)
    if mlrs_group:
        query = query.where(Case.mlrs_group == mlrs_group)
    if since is not None:
        query = query.where(Case.created_at >= since)
    if until is not None:
        query = query.where(Case.created_at <= until)
    if created_by:
        query = query.where(Case.created_by == created_by)
    if search and search.strip():
        pattern = f"%{search.strip().lower()}%"
        query = query.where(or_(Case.label.ilike(pattern), Case.case_uid.ilike(pattern), Case.notes.ilike(pattern)))
    shared = select(CaseShare.id).where(CaseShare.case_id == Case.id).exists()
    with transaction(engine, readonly=True) as session:
        query = query.where(visible(resolve(session, username)))
        return [CaseSummary(r.case_uid, r.label, r.status, r.risk_class, r.hr_probability, r.mlrs, r.mlrs_group,
                            r.age_months, r.sex, audit.as_utc(r.created_at), r.created_by,
                            audit.as_utc(r.updated_at), r.updated_by, r.version, r.deleted_at is not None,
                            r.owner, bool(is_shared))
                for r, is_shared in session.execute(query.add_columns(shared))]


def delete_case(engine: Engine, case_uid: str, username: str | Actor, *, version: int | None = None) -> None:
    """Soft-delete a case: hidden from lists and pages, kept in the database and the audit trail.

    Only its owner or an admin may (:class:`CaseAccessError` otherwise, audited).
    """
    try:
        with _acting(engine, username, case_uid) as (session, actor):
            username = actor.username
            row = session.scalar(select(Case).where(Case.case_uid == case_uid))
            if row is None or row.deleted_at is not None:
                raise CaseNotFoundError(f"case {case_uid!r} does not exist or was already deleted",
                                        source="case_uid")
            _guard(session, actor, row, "delete")
            if version is not None and row.version != version:
                raise CaseConflictError(_conflict_message(row, version), source="case_uid")
            now = utc_now()
            row.deleted_at, row.deleted_by, row.updated_at, row.updated_by = now, username, now, username
            session.flush()
            audit.record(session, username or "-", "case_deleted", case_uid=case_uid,
                         detail={"version": row.version})
    except StaleDataError as error:
        raise CaseConflictError(f"case {case_uid} was changed by someone else while it was being deleted",
                                source="case_uid") from error


def record_export(engine: Engine, case_uid: str, username: str | Actor, fmt: str, **detail) -> None:
    """Write a ``case_exported`` event (PDF, CSV or JSON download); ``detail`` adds version, file hash...

    Refused (and audited) when ``username`` may not see the case.
    """
    with _acting(engine, username, case_uid) as (session, actor):
        row = session.scalar(select(Case).where(Case.case_uid == case_uid))
        if row is None:
            raise CaseNotFoundError(f"case {case_uid!r} does not exist", source="case_uid")
        _guard(session, actor, row, "export")
        audit.record(session, actor.username, "case_exported", case_uid=case_uid,
                     detail={"format": fmt, **detail})


def sharing(engine: Engine, case_uid: str, username: str | Actor) -> Sharing:
    """Whom ``case_uid`` is shared with (for anyone who may see it)."""
    with _acting(engine, username, case_uid, readonly=True) as (session, actor):
        return _sharing_of(_visible_case(session, actor, case_uid, "open", Case.shares))


def _sharing_of(row: Case) -> Sharing:
    users = tuple(sorted(s.grantee for s in row.shares if s.grantee_kind == "user"))
    team = next((s.grantee for s in row.shares if s.grantee_kind == "team"), None)
    return Sharing(row.owner, users, team)


def set_sharing(engine: Engine, case_uid: str, username: str | Actor, *,
                users: list[str] | tuple[str, ...] = (), team: bool = False) -> Sharing:
    """Share ``case_uid`` with exactly ``users`` and (``team=True``) its owner's team; audited.

    Only the owner or an admin may. Grants that are added are written as one ``case_shared`` event,
    grants that are removed as one ``case_unshared`` event, in the same transaction.

    Raises
    ------
    CaseAccessError
        ``username`` is neither the owner nor an admin (audited).
    InputError
        A user that does not exist, or ``team=True`` while the owner has no team.
    """
    wanted_users = sorted({(u or "").strip().lower() for u in users} - {""})
    with _acting(engine, username, case_uid) as (session, actor):
        row = _visible_case(session, actor, case_uid, "share", Case.shares)
        known = set(session.scalars(select(User.username).where(User.username.in_(wanted_users))))
        unknown = [u for u in wanted_users if u not in known]
        if unknown:
            raise InputError(f"share with = {unknown} : no such user (expected existing user names)",
                             source="users")
        wanted = {("user", u) for u in wanted_users if u != row.owner}
        if team:
            owner_team = session.scalar(select(User.team).where(User.username == row.owner))
            if not owner_team:
                raise InputError(f"case {case_uid} cannot be shared with a team: its owner {row.owner!r} "
                                 "has no team (an admin sets one with `nbrisk users team`)",
                                 source="team")
            wanted.add(("team", owner_team))
        current = {(s.grantee_kind, s.grantee): s for s in row.shares}
        added = sorted(wanted - set(current))
        removed = sorted(set(current) - wanted)
        if removed:
            session.execute(delete(CaseShare).where(CaseShare.id.in_([current[k].id for k in removed])))
        now = utc_now()
        for kind, grantee in added:
            session.add(CaseShare(case_id=row.id, grantee_kind=kind, grantee=grantee,
                                  granted_by=actor.username, granted_at=now))
        for action, grants in (("case_shared", added), ("case_unshared", removed)):
            if grants:
                audit.record(session, actor.username, action, case_uid=case_uid,
                             detail={"users": [g for k, g in grants if k == "user"],
                                     "team": next((g for k, g in grants if k == "team"), None)})
        session.flush()
        session.expire(row, ["shares"])
        result = _sharing_of(row)
    return result
