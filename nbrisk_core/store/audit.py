"""The append-only audit trail: who did what, when, to which case, with which model.

There is deliberately no update or delete function here, and the database refuses both (triggers
created by the initial migration, on SQLite and on PostgreSQL). Events name the case by its random
``case_uid`` and never carry patient identifiers or passwords.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from nbrisk_core.errors import InputError
from nbrisk_core.store.db import transaction
from nbrisk_core.store.models import AuditEvent, utc_now

#: every action the trail knows (an unknown action is a bug, not a new kind of event)
ACTIONS: tuple[str, ...] = (
    "sign_in", "sign_in_failed", "sign_in_blocked", "sign_out",
    "user_added", "user_disabled", "user_enabled", "password_changed",
    "case_created", "case_opened", "case_changed", "case_exported", "case_deleted",
    "prediction", "audit_exported",
)

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
    event = AuditEvent(at=utc_now(), username=username or "-", action=action, case_uid=case_uid,
                       model_sha256=model_sha256, detail=dict(detail or {}))
    if isinstance(target, Session):
        target.add(event)
        return
    with transaction(target) as session:
        session.add(event)


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
    with transaction(engine) as session:
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
    with transaction(engine) as session:
        for username, action, n in session.execute(query):
            counts.setdefault(username, {})[action] = int(n)
    return counts


def events_to_csv(events: list[AuditEntry]) -> str:
    """CSV text of ``events`` (detail as compact JSON), for the admin's export."""
    import json

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for e in events:
        writer.writerow([e.id, e.at.isoformat(), e.username, e.action, e.case_uid or "",
                         e.model_sha256 or "", json.dumps(e.detail, sort_keys=True, separators=(",", ":"))])
    return buffer.getvalue()
