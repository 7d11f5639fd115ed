"""Users, roles, teams, argon2 password hashes and rate-limited sign-in.

Passwords are hashed with argon2id (argon2-cffi's ``PasswordHasher`` defaults, RFC 9106) and are
never stored, logged or returned in clear; the policy is :mod:`nbrisk_core.store.passwords`.

Sign-in rate limit (:func:`authenticate`), all in the database, over a sliding
:data:`FAILURE_WINDOW` of 15 minutes, counted on the account name and the client's address:

- :data:`MAX_FAILURES_PER_ACCOUNT_ADDRESS` (5) failures for one account from one address stop that
  address from trying that account: a guesser gets 5 tries per window per address;
- :data:`MAX_FAILURES_PER_ADDRESS` (20) failures from one address, over any accounts, stop that
  address (password spraying and name probing from one place);
- :data:`MAX_FAILURES_PER_ACCOUNT` (50) failures for one account, from any addresses, stop the
  account for everyone (a distributed guess). Because one address counts at most 5 towards it,
  locking somebody out takes at least 10 addresses; from one address anyone can only lock out
  themselves, for that account, and the real user elsewhere can still sign in.

Check and reservation are one serialized transaction: the attempt is written (``pending``) before the
password is verified and counts as a failure until it is settled, so parallel attempts cannot all
pass the check (7 at once with a limit of 5: 5 are verified, 2 refused). The verification itself
(argon2, about 50 ms) runs outside any lock. A success removes that attempt and the failures of
the same (account, address); failures from other addresses stay counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.engine import Engine

from nbrisk_core.errors import InputError
from nbrisk_core.store import audit
from nbrisk_core.store.db import serialize, transaction
from nbrisk_core.store.models import ROLES, SignInFailure, User, utc_now
from nbrisk_core.store.passwords import MIN_PASSWORD_LENGTH, validate_password as _check_password

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
TEAM_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
#: sliding window and limits of the sign-in rate limit (see the module docstring)
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT_ADDRESS = 5
MAX_FAILURES_PER_ADDRESS = 20
MAX_FAILURES_PER_ACCOUNT = 50
#: failed attempts older than this are removed (they no longer count)
RETENTION = timedelta(days=1)
#: the client address recorded when the server does not know it (a browser on the same host)
LOCAL_ADDRESS = "local"


class SignInError(InputError):
    """Wrong user name or password (the message does not say which)."""


class RateLimitedError(SignInError):
    """Too many failed sign-ins for this account, this address, or both; try again later."""


class FailureCounts(NamedTuple):
    """Failed (or still pending) sign-ins within :data:`FAILURE_WINDOW`."""

    account_address: int
    account: int
    address: int


@dataclass(frozen=True)
class UserInfo:
    """What the app knows about a signed-in user (no password hash)."""

    username: str
    role: str
    active: bool
    created_at: datetime | None = None
    team: str | None = None

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


def validate_password(password: str, username: str | None = None) -> None:
    """The password policy (:mod:`nbrisk_core.store.passwords`); the value itself is never echoed."""
    _check_password(password, username)


def validate_team(team: str | None) -> str | None:
    if team is None or not str(team).strip():
        return None
    name = str(team).strip().lower()
    if not TEAM_PATTERN.match(name):
        raise InputError(f"team {team!r} is not valid (expected 1-64 characters: lower-case letters, digits, "
                         "'.', '_' or '-', starting with a letter or digit)", source="team")
    return name


def _info(u: User) -> UserInfo:
    return UserInfo(u.username, u.role, u.active, audit.as_utc(u.created_at), u.team)


def add_user(engine: Engine, username: str, password: str, role: str = "clinician", *, by: str = "-",
             team: str | None = None) -> UserInfo:
    """Create a user with an argon2id hash of ``password`` (and an optional ``team``).

    Raises
    ------
    InputError
        Invalid name or team, a password the policy refuses, unknown role, or the name is taken.
    """
    name = validate_username(username)
    validate_password(password, name)
    team = validate_team(team)
    if role not in ROLES:
        raise InputError(f"role = {role!r} is not known (expected one of {', '.join(ROLES)})", source="role")
    password_hash = _hasher().hash(password)
    with transaction(engine) as session:
        if session.scalar(select(User.id).where(User.username == name)) is not None:
            raise InputError(f"user {name!r} already exists", source="username")
        user = User(username=name, password_hash=password_hash, role=role, team=team, active=True,
                    created_at=utc_now())
        session.add(user)
        audit.record(session, by, "user_added", detail={"user": name, "role": role, "team": team})
    return UserInfo(name, role, True, user.created_at, team)


def list_users(engine: Engine) -> list[UserInfo]:
    with transaction(engine, readonly=True) as session:
        return [_info(u) for u in session.scalars(select(User).order_by(User.username))]


def get_user(engine: Engine, username: str) -> UserInfo | None:
    with transaction(engine, readonly=True) as session:
        u = session.scalar(select(User).where(User.username == (username or "").strip().lower()))
        return None if u is None else _info(u)


def set_team(engine: Engine, username: str, team: str | None, *, by: str = "-") -> None:
    """Put a user in ``team`` (None: no team). Cases already shared with their old team stay shared
    with that team."""
    name = (username or "").strip().lower()
    team = validate_team(team)
    with transaction(engine) as session:
        user = session.scalar(select(User).where(User.username == name))
        if user is None:
            raise InputError(f"user {username!r} does not exist", source="username")
        before, user.team = user.team, team
        audit.record(session, by, "user_team_changed", detail={"user": name, "team": team, "before": before})


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
    name = (username or "").strip().lower()
    validate_password(password, name)
    password_hash = _hasher().hash(password)
    with transaction(engine) as session:
        user = session.scalar(select(User).where(User.username == name))
        if user is None:
            raise InputError(f"user {username!r} does not exist", source="username")
        user.password_hash = password_hash
        audit.record(session, by, "password_changed", detail={"user": name})


def _address(client_address: str | None) -> str:
    return (str(client_address).strip() if client_address else "")[:64] or LOCAL_ADDRESS


def _counts(session, name: str, address: str, since: datetime) -> FailureCounts:
    """The three counts in one query over the window's rows of this account or this address."""
    account, here = SignInFailure.username == name, SignInFailure.client_address == address

    def count(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    row = session.execute(select(count(and_(account, here)), count(account), count(here))
                          .where(SignInFailure.at >= since, or_(account, here))).one()
    return FailureCounts(*(int(n) for n in row))


def failure_counts(engine: Engine, username: str, client_address: str | None,
                   now: datetime | None = None) -> FailureCounts:
    """Failed or pending sign-ins within :data:`FAILURE_WINDOW` for (account, address), account, address."""
    name = (username or "").strip().lower()[:64]
    with transaction(engine, readonly=True) as session:
        return _counts(session, name, _address(client_address), (now or utc_now()) - FAILURE_WINDOW)


def _limit_reached(counts: FailureCounts) -> str | None:
    if counts.account_address >= MAX_FAILURES_PER_ACCOUNT_ADDRESS:
        return "account_address"
    if counts.address >= MAX_FAILURES_PER_ADDRESS:
        return "address"
    if counts.account >= MAX_FAILURES_PER_ACCOUNT:
        return "account"
    return None


def authenticate(engine: Engine, username: str, password: str, client_address: str | None) -> UserInfo:
    """Check a user name and password under the rate limit; record the attempt in the audit trail.

    Parameters
    ----------
    client_address : str or None
        The client's network address (the dashboard passes ``st.context.ip_address``; None, a
        browser on the same host, counts as :data:`LOCAL_ADDRESS`). Never a value the client chooses
        freely, such as a session id.

    Raises
    ------
    RateLimitedError
        A limit of the module docstring is reached (audited ``sign_in_blocked``, nothing verified).
    SignInError
        Unknown user, disabled user or wrong password (one message for all three).
    """
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    name = (username or "").strip().lower()[:64]
    address = _address(client_address)
    now = utc_now()
    # 1. check and reserve, one at a time across processes: the attempt counts from here on
    with transaction(engine) as session:
        serialize(session, "sign_in")
        # rows past the window count for nothing: the table stays small
        session.execute(delete(SignInFailure).where(SignInFailure.at < now - RETENTION))
        counts = _counts(session, name, address, now - FAILURE_WINDOW)
        user = session.scalar(select(User).where(User.username == name))
        limit = _limit_reached(counts)
        if limit is not None:
            audit.record(session, name if user is not None else "(unknown)", "sign_in_blocked",
                         detail={"limit": limit, "failures_account_address": counts.account_address,
                                 "failures_account": counts.account, "failures_address": counts.address})
        else:
            attempt = SignInFailure(username=name, session_key="-", client_address=address, pending=True,
                                    at=now)
            session.add(attempt)
            session.flush()
            attempt_id = attempt.id
            stored = user.password_hash if user is not None else None
            active = user is not None and user.active
    if limit is not None:
        minutes = int(FAILURE_WINDOW.total_seconds() // 60)
        raise RateLimitedError(f"too many failed sign-ins; try again in up to {minutes} minutes",
                               source="username")
    # 2. verify outside any transaction (argon2 takes a while); the unknown-user case takes as long
    hasher = _hasher()
    try:
        ok = hasher.verify(stored or _dummy_hash(), password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    ok = ok and stored is not None and active
    # 3. settle the attempt
    with transaction(engine) as session:
        if not ok:
            session.execute(update(SignInFailure).where(SignInFailure.id == attempt_id).values(pending=False))
            # an unknown name may be a mistyped password: it is not written to the trail
            audit.record(session, name if stored is not None else "(unknown)", "sign_in_failed",
                         detail={"reason": "inactive" if stored is not None and not active
                                 else "credentials"})
            info = None
        else:
            user = session.scalar(select(User).where(User.username == name))
            if hasher.check_needs_rehash(user.password_hash):
                user.password_hash = hasher.hash(password)
            # this attempt and the earlier failures of this (account, address): the user is here
            session.execute(delete(SignInFailure).where(SignInFailure.username == name,
                                                        SignInFailure.client_address == address))
            audit.record(session, name, "sign_in")
            info = _info(user)
    if info is None:
        raise SignInError("unknown user name or wrong password", source="username")
    return info


def sign_out(engine: Engine, username: str) -> None:
    audit.record(engine, username, "sign_out")
