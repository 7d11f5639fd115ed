"""Issue 18, finding 3: one atomic sign-in rate limiter, in the database, per account and per address.

The check and the reservation of an attempt are one serialized transaction, so parallel wrong
passwords cannot all be verified (SQLite and PostgreSQL); nothing lives in the Streamlit session
(a reload does not reset it); one address can lock nobody out but itself.
"""

from __future__ import annotations

import threading

import pytest

from nbrisk_core.store import audit, users
from tests.store.conftest import engine  # noqa: F401  (the store fixture, reused as it is)

PASSWORD = "correct horse battery"


def _attempt_in_parallel(engine, n, username, password, address):  # noqa: F811
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def one():
        barrier.wait()
        try:
            users.authenticate(engine, username, password, address)
            result = "ok"
        except users.RateLimitedError:
            result = "blocked"
        except users.SignInError:
            result = "wrong"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return sorted(outcomes)


def test_parallel_wrong_passwords_are_not_all_checked(engine):  # noqa: F811
    users.add_user(engine, "alice", PASSWORD)
    limit = users.MAX_FAILURES_PER_ACCOUNT_ADDRESS
    outcomes = _attempt_in_parallel(engine, limit + 2, "alice", "wrong password 1", "198.51.100.7")
    assert outcomes == ["blocked"] * 2 + ["wrong"] * limit
    # exactly `limit` passwords were verified (each verification is a sign_in_failed event)
    assert len(audit.list_events(engine, action="sign_in_failed")) == limit
    assert len(audit.list_events(engine, action="sign_in_blocked")) == 2
    assert users.failure_counts(engine, "alice", "198.51.100.7").account_address == limit


def test_a_reload_does_not_reset_the_limit(monkeypatch, tmp_path):
    """The sign-in form in two fresh Streamlit sessions (a reload): the second one is still refused."""
    from streamlit.testing.v1 import AppTest

    from nbrisk_core.store import get_engine
    from nbrisk_core.store.db import dispose_engines

    url = f"sqlite:///{tmp_path / 'ui.db'}"
    monkeypatch.setenv("NBRISK_DATABASE_URL", url)
    monkeypatch.setenv("NBRISK_AUTH", "on")

    def app():
        from nbrisk_ui.auth import gate

        gate()

    try:
        users.add_user(get_engine(url), "dora", PASSWORD)
        for i in range(users.MAX_FAILURES_PER_ACCOUNT_ADDRESS):
            at = AppTest.from_function(app, default_timeout=60).run()  # a new session each time
            at.text_input(key="nbrisk.auth.username").input("dora")
            at.text_input(key="nbrisk.auth.password").input(f"wrong password {i}")
            at.button[0].click().run()
            assert at.error[0].value == "unknown user name or wrong password"
        at = AppTest.from_function(app, default_timeout=60).run()
        at.text_input(key="nbrisk.auth.username").input("dora")
        at.text_input(key="nbrisk.auth.password").input(PASSWORD)
        at.button[0].click().run()
        assert "too many failed sign-ins" in at.error[0].value
    finally:
        dispose_engines()


def test_one_address_cannot_lock_the_account_for_others(engine):  # noqa: F811
    users.add_user(engine, "bob", PASSWORD)
    attacker, clinic = "203.0.113.66", "10.1.2.3"
    for _ in range(users.MAX_FAILURES_PER_ACCOUNT_ADDRESS + 3):
        with pytest.raises(users.SignInError):
            users.authenticate(engine, "bob", "guess guess guess", attacker)
    assert users.authenticate(engine, "bob", PASSWORD, clinic).username == "bob"
    with pytest.raises(users.RateLimitedError):
        users.authenticate(engine, "bob", PASSWORD, attacker)
    # refused attempts were not counted: the attacker's share of the account's failures stays at the limit
    assert users.failure_counts(engine, "bob", attacker) == (users.MAX_FAILURES_PER_ACCOUNT_ADDRESS,) * 3


def test_many_addresses_do_lock_the_account(engine, monkeypatch):  # noqa: F811
    """The per-account ceiling against a distributed guess (lowered here to keep the test fast)."""
    monkeypatch.setattr(users, "MAX_FAILURES_PER_ACCOUNT", 2 * users.MAX_FAILURES_PER_ACCOUNT_ADDRESS)
    users.add_user(engine, "carol", PASSWORD)
    for address in ("192.0.2.10", "192.0.2.11"):
        for _ in range(users.MAX_FAILURES_PER_ACCOUNT_ADDRESS):
            with pytest.raises(users.SignInError):
                users.authenticate(engine, "carol", "guess guess guess", address)
    with pytest.raises(users.RateLimitedError):
        users.authenticate(engine, "carol", PASSWORD, "192.0.2.99")
    blocked = audit.list_events(engine, action="sign_in_blocked")[0]
    assert blocked.detail["limit"] == "account"


def test_an_attempt_counts_while_it_is_checked(engine):  # noqa: F811
    """A reservation left behind (a crash between check and verification) counts as a failure."""
    from nbrisk_core.store.db import transaction
    from nbrisk_core.store.models import SignInFailure, utc_now

    users.add_user(engine, "erin", PASSWORD)
    with transaction(engine) as session:
        for _ in range(users.MAX_FAILURES_PER_ACCOUNT_ADDRESS):
            session.add(SignInFailure(username="erin", client_address="local", pending=True, at=utc_now()))
    with pytest.raises(users.RateLimitedError):
        users.authenticate(engine, "erin", PASSWORD, None)


def test_attempts_past_the_retention_are_removed(engine):  # noqa: F811
    from datetime import timedelta

    from nbrisk_core.store.db import transaction
    from nbrisk_core.store.models import SignInFailure, utc_now

    users.add_user(engine, "fay", PASSWORD)
    with transaction(engine) as session:
        session.add(SignInFailure(username="someone", client_address="y", at=utc_now() - users.RETENTION
                                  - timedelta(minutes=1)))
    assert users.authenticate(engine, "fay", PASSWORD, "x").username == "fay"
    with transaction(engine, readonly=True) as session:
        assert session.query(SignInFailure).count() == 0
