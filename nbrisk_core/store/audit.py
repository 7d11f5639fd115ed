"""The append-only, tamper-evident audit trail: who did what, when, to which case, with which model.

There is deliberately no update or delete function here, and the database refuses both: triggers on
SQLite (UPDATE, DELETE, and an INSERT that would replace an existing row, ``REPLACE INTO``) and on
PostgreSQL, where the migration also revokes UPDATE, DELETE and TRUNCATE on the table from the role
that runs it (see :func:`protection_problems`, checked whenever a process opens the store).

Each event carries a hash chain: ``seq`` (1, 2, 3, ... without gaps), ``prev_hash`` (the previous
event's hash; 64 zeros for the first) and ``hash`` = SHA-256 of the canonical JSON of the event's
fields and ``prev_hash`` (:func:`event_hash`). Events are appended one at a time
(:func:`nbrisk_core.store.db.serialize`), so the chain cannot fork; :func:`verify_chain` (``nbrisk
audit verify``) recomputes it and names the first event that was edited, removed or reordered.
Events name the case by its random ``case_uid`` and never carry patient identifiers or passwords; a
Cohort builder decision (``slice_confirmed``/``slice_rejected``) names the cohort, phase and slice and
the SHA-256 of the ``proposals.csv`` row it wrote, not the study number
(:func:`nbrisk_core.cohort.review.decision_audit_detail`); a ``prognosis_bundle_saved`` (an admin's full
search on the Cohort page) names the bundle folder, the cohort (name and content hash), the selected
combination, N and events, and the replaced bundle's backup folder, with the bundle's SHA-256 as
``model_sha256`` (:func:`nbrisk_core.service.publish_prognosis_bundle`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from nbrisk_core.errors import InputError
from nbrisk_core.safe_csv import neutralise_cell
from nbrisk_core.store.db import (  # noqa: F401 (the trail's protection is checked where engines open)
    POSTGRES_TRIGGERS, SQLITE_TRIGGERS, protection_problems, serialize, transaction)
from nbrisk_core.store.models import AuditEvent, utc_now

#: every action the trail knows (an unknown action is a bug, not a new kind of event)
ACTIONS: tuple[str, ...] = (
    "sign_in", "sign_in_failed", "sign_in_blocked", "sign_out",
    "user_added", "user_disabled", "user_enabled", "password_changed",
    "case_created", "case_opened", "case_changed", "case_exported", "case_deleted",
    "case_shared", "case_unshared", "case_access_denied", "user_team_changed",
    "prediction", "audit_exported", "case_pushed",
    "slice_confirmed", "slice_rejected", "prognosis_bundle_saved",
)
#: ``prev_hash`` of the first event
GENESIS_HASH = "0" * 64

CSV_COLUMNS: tuple[str, ...] = ("id", "at", "username", "action", "case_uid", "model_sha256", "detail")


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    username: str
    action: str
    case_uid: str | None
    model_sha256: str | None
    detail: dict


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything NBRisk stores is UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def canonical_json(value) -> str:
    """Sorted keys, no spaces, ASCII: the same text for the same value on every run and database."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def canonical_time(value: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffff+00:00`` in UTC (both databases keep microseconds)."""
    return as_utc(value).astimezone(timezone.utc).isoformat(timespec="microseconds")


def event_hash(seq: int, at: datetime, username: str, action: str, case_uid: str | None,
               model_sha256: str | None, detail: dict, prev_hash: str) -> str:
    """SHA-256 (hex) of the canonical JSON of one event's fields and the previous event's hash."""
    fields = {"seq": int(seq), "at": canonical_time(at), "username": username, "action": action,
              "case_uid": case_uid, "model_sha256": model_sha256, "detail": detail, "prev_hash": prev_hash}
    return hashlib.sha256(canonical_json(fields).encode()).hexdigest()


def _append(session: Session, event: AuditEvent) -> None:
    # one appender at a time: the head read here is still the head when this transaction commits
    serialize(session, "audit_chain")
    head = session.execute(select(AuditEvent.seq, AuditEvent.hash).where(AuditEvent.seq.is_not(None))
                           .order_by(AuditEvent.seq.desc()).limit(1)).first()
    event.seq = 1 if head is None else head.seq + 1
    event.prev_hash = GENESIS_HASH if head is None else head.hash
    event.hash = event_hash(event.seq, event.at, event.username, event.action, event.case_uid,
                            event.model_sha256, event.detail, event.prev_hash)
    session.add(event)
    session.flush()  # in chain order: the next event of this transaction reads this one as the head


def record(target: Engine | Session, username: str, action: str, *, case_uid: str | None = None,
           model_sha256: str | None = None, detail: dict | None = None) -> None:
    """Append one event; inside ``target``'s transaction when it is a session (atomic with the change).

    Parameters
    ----------
    target : Engine or Session
        A session to write in the caller's transaction, or an engine for a transaction of its own.
    username : str
        Who did it ("-" when nobody is signed in, e.g. the local demo with sign-in off).
    action : str
        One of :data:`ACTIONS`.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; expected one of {ACTIONS}")
    # the stored detail is exactly what was hashed (JSON types only)
    event = AuditEvent(at=utc_now(), username=username or "-", action=action, case_uid=case_uid,
                       model_sha256=model_sha256, detail=json.loads(canonical_json(dict(detail or {}))))
    if isinstance(target, Session):
        _append(target, event)
        return
    with transaction(target) as session:
        _append(session, event)


def list_events(engine: Engine, *, username: str | None = None, action: str | None = None,
                case_uid: str | None = None, since: datetime | None = None, until: datetime | None = None,
                limit: int | None = 1000) -> list[AuditEntry]:
    """Events, newest first, filtered by user, action, case and time."""
    if action is not None and action not in ACTIONS:
        raise InputError(f"audit filter action = {action!r} is unknown (expected one of {', '.join(ACTIONS)})")
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    if username:
        query = query.where(AuditEvent.username == username)
    if action:
        query = query.where(AuditEvent.action == action)
    if case_uid:
        query = query.where(AuditEvent.case_uid == case_uid)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at <= until)
    if limit is not None:
        query = query.limit(limit)
    with transaction(engine, readonly=True) as session:
        return [AuditEntry(e.id, as_utc(e.at), e.username, e.action, e.case_uid, e.model_sha256,
                           dict(e.detail or {})) for e in session.scalars(query)]


def count_events(engine: Engine, actions: tuple[str, ...] = ACTIONS) -> dict[str, dict[str, int]]:
    """Number of events per user and action (one ``GROUP BY`` query), only for ``actions``."""
    unknown = sorted(set(actions) - set(ACTIONS))
    if unknown:
        raise InputError(f"audit count actions = {unknown} are unknown "
                         f"(expected some of {', '.join(ACTIONS)})")
    query = (select(AuditEvent.username, AuditEvent.action, func.count())
             .where(AuditEvent.action.in_(actions))
             .group_by(AuditEvent.username, AuditEvent.action)
             .order_by(AuditEvent.username, AuditEvent.action))
    counts: dict[str, dict[str, int]] = {}
    with transaction(engine, readonly=True) as session:
        for username, action, n in session.execute(query):
            counts.setdefault(username, {})[action] = int(n)
    return counts


@dataclass(frozen=True)
class ChainReport:
    """What :func:`verify_chain` found: ``ok``, the events checked, the head, and the first problem."""

    ok: bool
    events: int
    head_seq: int
    head_hash: str
    problem: str | None = None
    broken_seq: int | None = None
    broken_id: int | None = None


def verify_chain(engine: Engine, *, anchor: tuple[int, str] | None = None) -> ChainReport:
    """Recompute the hash chain of the whole trail, in ``seq`` order, and name the first broken event.

    It finds an edited field (the hash no longer matches), a removed event (a gap in ``seq``, or the
    next event's ``prev_hash`` no longer matches), events moved or re-numbered (the link breaks), and
    events written without the chain. Removing the newest events and rewriting every later hash are
    not visible from inside the database: compare with an ``anchor`` (``seq``, ``hash``) kept elsewhere,
    e.g. the head printed by an earlier ``nbrisk audit verify``.
    """
    expected_prev, expected_seq, checked = GENESIS_HASH, 1, 0
    head_seq, head_hash = 0, GENESIS_HASH
    query = select(AuditEvent).order_by(AuditEvent.seq.is_(None), AuditEvent.seq, AuditEvent.id)

    def broken(event: AuditEvent, why: str) -> ChainReport:
        name = f"event seq {event.seq}" if event.seq is not None else "event"
        return ChainReport(False, checked, head_seq, head_hash,
                           f"{name} (id {event.id}, {event.action} by {event.username}): {why}",
                           event.seq, event.id)

    with transaction(engine, readonly=True) as session:
        for event in session.execute(query.execution_options(yield_per=1000)).scalars():
            if event.seq is None or event.hash is None:
                return broken(event, "is not part of the chain "
                                     "(no seq or hash: written around the application)")
            if event.seq != expected_seq:
                gap = event.seq - expected_seq
                why = f"{gap} event(s) before it are missing" if gap > 0 else "seq repeated or reordered"
                why = f"expected seq {expected_seq}: {why}"
                return broken(event, why)
            if event.prev_hash != expected_prev:
                return broken(event, "prev_hash does not match the hash of the event before it "
                                     "(an event before it was changed, removed or moved)")
            recomputed = event_hash(event.seq, event.at, event.username, event.action, event.case_uid,
                                    event.model_sha256, dict(event.detail or {}), event.prev_hash)
            if recomputed != event.hash:
                return broken(event, "its fields do not match its hash (the event was edited)")
            checked += 1
            expected_prev, expected_seq = event.hash, event.seq + 1
            head_seq, head_hash = event.seq, event.hash
            if anchor is not None and event.seq == anchor[0] and event.hash != anchor[1]:
                return broken(event, f"its hash differs from the anchor {anchor[1][:16]}... "
                                     f"kept for seq {anchor[0]}")
    if anchor is not None and head_seq < anchor[0]:
        return ChainReport(False, checked, head_seq, head_hash,
                           f"event seq {head_seq + 1} is missing: the trail ends at seq {head_seq}, "
                           "the anchor "
                           f"names seq {anchor[0]} (newest events removed)", head_seq + 1, None)
    return ChainReport(True, checked, head_seq, head_hash)


def events_to_csv(events: list[AuditEntry]) -> str:
    """CSV text of ``events`` (detail as compact JSON), for the admin's export; a text cell that a
    spreadsheet would run as a formula is neutralised (:func:`nbrisk_core.safe_csv.neutralise_cell`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for e in events:
        writer.writerow([neutralise_cell(cell) for cell in (
            e.id, e.at.isoformat(), e.username, e.action, e.case_uid or "", e.model_sha256 or "",
            json.dumps(e.detail, sort_keys=True, separators=(",", ":")))])
    return buffer.getvalue()
