"""Users, roles, argon2 password hashes and rate-limited sign-in.

Passwords are hashed with argon2id (argon2-cffi's ``PasswordHasher`` defaults, RFC 9106) and are
never stored, logged or returned in clear. Failed sign-ins are written to the database and
counted per user and per browser session over a sliding window, so that restarting the server
does not reset the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine

from nbrisk_core.errors import InputError
from nbrisk_core.store import audit
from nbrisk_core.store.db import transaction
from nbrisk_core.store.models import ROLES, SignInFailure, User, utc_now

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
MIN_PASSWORD_LENGTH = 10
#: sliding window and limits of the sign-in rate limit
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_SESSION = 10


class SignInError(InputError):
    """Wrong user name or password (the message does not say which)."""


class RateLimitedError(SignInError):
    """Too many failed sign-ins for this user or this session; try again later."""


@dataclass(frozen=True)
class UserInfo:
    """What the app knows about a signed-in user (no password hash)."""

    username: str
    role: str
    active: bool
    created_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


# verified against when the user does not exist, so that the answer takes as long either way
_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = _hasher().hash("nbrisk-timing-equaliser")
    return _DUMMY_HASH


def validate_username(username: str) -> str:
    name = (username or "").strip().lower()
    if not USERNAME_PATTERN.match(name):
        raise InputError(f"user name {username!r} is not valid (expected 2-64 characters: lower-case "
                         "letters, digits, '.', '_' or '-', starting with a letter or digit)", source="username")
    return name


def validate_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        # the value itself is never echoed
        raise InputError(f"password is too short (expected at least {MIN_PASSWORD_LENGTH} characters)",
                         source="password")


def add_user(engine: Engine, username: str, password: str, role: str = "clinician", *, by: str = "-") -> UserInfo:
    """Create a user with an argon2id hash of ``password``.

    Raises
    ------
    InputError
        Invalid name, short password, unknown role, or the name is taken.
    """
    name = validate_username(username)
    validate_password(password)
    if role not in ROLES:
        raise InputError(f"role = {role!r} is not known (expected one of {', '.join(ROLES)})", source="role")
    password_hash = _hasher().hash(password)
    with transaction(engine) as session:
        if session.scalar(select(User.id).where(User.username == name)) is not None:
            raise InputError(f"user {name!r} already exists", source="username")
        user = User(username=name, password_hash=password_hash, role=role, active=True, created_at=utc_now())
        session.add(user)
        audit.record(session, by, "user_added", detail={"user": name, "role": role})
    return UserInfo(name, role, True, user.created_at)


def list_users(engine: Engine) -> list[UserInfo]:
    with transaction(engine) as session:
        return [UserInfo(u.username, u.role, u.active, audit.as_utc(u.created_at))
                for u in session.scalars(select(User).order_by(User.username))]


def get_user(engine: Engine, username: str) -> UserInfo | None:
    with transaction(engine) as session:
        u = session.scalar(select(User).where(User.username == (username or "").strip().lower()))
        return None if u is None else UserInfo(u.username, u.role, u.active, audit.as_utc(u.created_at))


def set_active(engine: Engine, username: str, active: bool, *, by: str = "-") -> None:
    """Disable (or re-enable) a user; disabled users cannot sign in. Users are never deleted."""
    name = (username or "").strip().lower()
    with transaction(engine) as session:
        user = session.scalar(select(User).where(User.username == name))
        if user is None:
            raise InputError(f"user {username!r} does not exist", source="username")
        user.active = active
        user.disabled_at = None if active else utc_now()
        audit.record(session, by, "user_enabled" if active else "user_disabled", detail={"user": name})


def disable_user(engine: Engine, username: str, *, by: str = "-") -> None:
    set_active(engine, username, False, by=by)


def set_password(engine: Engine, username: str, password: str, *, by: str = "-") -> None:
    validate_password(password)
    name = (username or "").strip().lower()
    password_hash = _hasher().hash(password)
    with transaction(engine) as session:
        user = session.scalar(select(User).where(User.username == name))
        if user is None:
            raise InputError(f"user {username!r} does not exist", source="username")
        user.password_hash = password_hash
        audit.record(session, by, "password_changed", detail={"user": name})


def failure_counts(engine: Engine, username: str, session_key: str, now: datetime | None = None) -> tuple[int, int]:
    """Failed sign-ins within :data:`FAILURE_WINDOW` for (this user, this session)."""
    since = (now or utc_now()) - FAILURE_WINDOW
    name = (username or "").strip().lower()
    with transaction(engine) as session:
        by_user = session.scalar(select(func.count()).select_from(SignInFailure)
                                 .where(SignInFailure.username == name, SignInFailure.at >= since))
        by_session = session.scalar(select(func.count()).select_from(SignInFailure)
                                    .where(SignInFailure.session_key == session_key, SignInFailure.at >= since))
    return int(by_user or 0), int(by_session or 0)


def authenticate(engine: Engine, username: str, password: str, session_key: str) -> UserInfo:
    """Check a user name and password; record the attempt in the audit trail.

    Parameters
    ----------
    session_key : str
        An opaque key of the browser session (the per-session rate limit counts on it).

    Raises
    ------
    RateLimitedError
        Too many failures for this user or session within :data:`FAILURE_WINDOW`.
    SignInError
        Unknown user, disabled user or wrong password (one message for all three).
    """
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    name = (username or "").strip().lower()[:64]
    session_key = (session_key or "-")[:64]
    by_user, by_session = failure_counts(engine, name, session_key)
    if by_user >= MAX_FAILURES_PER_USER or by_session >= MAX_FAILURES_PER_SESSION:
        audit.record(engine, name if get_user(engine, name) else "(unknown)", "sign_in_blocked",
                     detail={"failures_user": by_user, "failures_session": by_session})
        minutes = int(FAILURE_WINDOW.total_seconds() // 60)
        raise RateLimitedError(f"too many failed sign-ins; try again in up to {minutes} minutes",
                               source="username")
    hasher = _hasher()
    with transaction(engine) as session:
        user = session.scalar(select(User).where(User.username == name))
        stored = user.password_hash if user is not None else _dummy_hash()
        try:
            ok = hasher.verify(stored, password or "")
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        ok = ok and user is not None and user.active
        if not ok:
            session.add(SignInFailure(username=name, session_key=session_key, at=utc_now()))
            # an unknown name may be a mistyped password: it is not written to the trail
            audit.record(session, name if user is not None else "(unknown)", "sign_in_failed",
                         detail={"reason": "inactive" if user is not None and not user.active
                                 else "credentials"})
        else:
            if hasher.check_needs_rehash(user.password_hash):
                user.password_hash = hasher.hash(password)
            session.execute(delete(SignInFailure).where(SignInFailure.username == name))
            audit.record(session, name, "sign_in")
            info = UserInfo(user.username, user.role, user.active, audit.as_utc(user.created_at))
    if not ok:
        raise SignInError("unknown user name or wrong password", source="username")
    return info


def sign_out(engine: Engine, username: str) -> None:
    audit.record(engine, username, "sign_out")
