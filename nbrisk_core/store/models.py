"""SQLAlchemy 2 models of the case store: users, sign-in failures, cases, slices, predictions, audit.

The schema is created and evolved only by the Alembic migrations in
``nbrisk_core/store/migrations`` (the same scripts serve SQLite and PostgreSQL); these classes
mirror it for the ORM. A case holds de-identified data only: a pseudonymous case label, age and
sex, the chosen slice per phase, clinical values, predictions and notes, never a name, a birth
date or a DICOM UID.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from nbrisk_core.case import PHASES as _PHASES

#: case review status, in workflow order
CASE_STATUSES: tuple[str, ...] = ("draft", "reviewed", "signed_off")
#: user roles: clinicians review cases; admins also manage users and read the audit trail
ROLES: tuple[str, ...] = ("clinician", "admin")
#: the phases of a multiphase contrast CT study, in acquisition order
PHASES = _PHASES  # nbrisk_core.case.Phase (lower case in the database since migration 0003)


def utc_now() -> datetime:
    """Timezone-aware now in UTC (stored as UTC on both SQLite and PostgreSQL)."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class User(Base):
    """A person who can sign in. Passwords are stored only as argon2id hashes."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    #: optional team: a case shared with its owner's team is visible to the team's members
    team: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utc_now)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SignInFailure(Base):
    """One sign-in attempt being checked (``pending``) or failed; counted per (account, client
    address), per account and per address by the rate limit (:mod:`nbrisk_core.store.users`).

    Kept in the database (not in memory) so that restarting the server does not reset the limit.
    """

    __tablename__ = "sign_in_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    #: no longer used (was the browser session's key); kept for old rows
    session_key: Mapped[str] = mapped_column(String(64), nullable=False, index=True, default="-")
    client_address: Mapped[str] = mapped_column(String(64), nullable=False, index=True, default="-")
    #: True while the password is being verified (counts as a failure until settled)
    pending: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utc_now, index=True)


class Case(Base):
    """A saved case. ``version`` is SQLAlchemy's ``version_id_col`` (optimistic locking)."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_uid: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    label: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    age_months: Mapped[float | None] = mapped_column(Float)
    sex: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="draft", index=True)
    risk_class: Mapped[str | None] = mapped_column(String(8), index=True)
    hr_probability: Mapped[float | None] = mapped_column(Float)
    mlrs: Mapped[float | None] = mapped_column(Float)
    mlrs_percentile: Mapped[float | None] = mapped_column(Float)
    mlrs_group: Mapped[str | None] = mapped_column(String(8), index=True)
    notes: Mapped[str] = mapped_column(Text, nullable=False, default="")
    clinical_entered: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    clinical_imputed: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    phase_meta: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    #: the session's working objects (case, risk, prognosis) encoded by ``store.codec``
    session_state: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    session_arrays: Mapped[bytes | None] = mapped_column(LargeBinary)
    software_versions: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    include_series: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utc_now,
                                                 index=True)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    #: who may delete and share it (the creator; see nbrisk_core.store.access)
    owner: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utc_now)
    updated_by: Mapped[str] = mapped_column(String(64), nullable=False)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    signed_off_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    signed_off_by: Mapped[str | None] = mapped_column(String(64))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    deleted_by: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    slices: Mapped[list["CaseSlice"]] = relationship(back_populates="case", cascade="all, delete-orphan",
                                                     order_by="CaseSlice.phase")
    predictions: Mapped[list["Prediction"]] = relationship(back_populates="case",
                                                           cascade="all, delete-orphan",
                                                           order_by="Prediction.id")
    shares: Mapped[list["CaseShare"]] = relationship(back_populates="case", cascade="all, delete-orphan",
                                                     order_by="CaseShare.id")

    __mapper_args__ = {"version_id_col": version}


#: whom a case can be shared with: named users, or its owner's team
SHARE_KINDS: tuple[str, ...] = ("user", "team")


class CaseShare(Base):
    """One grant: the case is visible to user ``grantee`` (kind ``user``) or to the members of team
    ``grantee`` (kind ``team``, the owner's team when it was shared)."""

    __tablename__ = "case_shares"
    __table_args__ = (UniqueConstraint("case_id", "grantee_kind", "grantee"),
                      Index("ix_case_shares_grantee", "grantee_kind", "grantee"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), nullable=False)
    grantee_kind: Mapped[str] = mapped_column(String(8), nullable=False)
    grantee: Mapped[str] = mapped_column(String(64), nullable=False)
    granted_by: Mapped[str] = mapped_column(String(64), nullable=False)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utc_now)

    case: Mapped[Case] = relationship(back_populates="shares")


class CaseSlice(Base):
    """The chosen (max-area) slice of one phase: 2-D HU array (npz bytes) and its position."""

    __tablename__ = "case_slices"
    __table_args__ = (UniqueConstraint("case_id", "phase"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), nullable=False)
    phase: Mapped[str] = mapped_column(String(8), nullable=False)
    slice_index: Mapped[int | None] = mapped_column(Integer)
    slice_position_mm: Mapped[float | None] = mapped_column(Float)
    rows: Mapped[int] = mapped_column(Integer, nullable=False)
    cols: Mapped[int] = mapped_column(Integer, nullable=False)
    hu_npz: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    hu_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    #: the whole series of the phase, only when the user opted in
    series_npz: Mapped[bytes | None] = mapped_column(LargeBinary)
    meta: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)

    case: Mapped[Case] = relationship(back_populates="slices")


class Prediction(Base):
    """One model output for a case, with the model's SHA-256, software versions and input hash."""

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    model_name: Mapped[str | None] = mapped_column(String(128))
    model_sha256: Mapped[str | None] = mapped_column(String(64))
    input_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    software_versions: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    result: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    result_arrays: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utc_now)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)

    case: Mapped[Case] = relationship(back_populates="predictions")


class AuditEvent(Base):
    """One line of the append-only audit trail (no update or delete API; the database refuses both).

    ``seq``, ``prev_hash`` and ``hash`` chain the events (:func:`nbrisk_core.store.audit.event_hash`).
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_seq", "seq", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utc_now, index=True)
    username: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    action: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    case_uid: Mapped[str | None] = mapped_column(String(32), index=True)
    model_sha256: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    seq: Mapped[int | None] = mapped_column(Integer)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
