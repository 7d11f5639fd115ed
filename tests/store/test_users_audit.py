"""Users, argon2 hashes, rate-limited sign-in, append-only audit trail, migrations."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import inspect, select, text

from nbrisk_core.errors import InputError
from nbrisk_core.store import audit, users
from nbrisk_core.store.models import AuditEvent, User

PASSWORD = "correct horse battery"


def test_password_is_stored_as_argon2id_only(engine):
    users.add_user(engine, "Alice", PASSWORD, "admin")
    with engine.connect() as conn:
        stored = conn.execute(select(User.password_hash).where(User.username == "alice")).scalar_one()
        trail = " ".join(str(r) for r in conn.execute(select(AuditEvent)).all())
    assert stored.startswith("$argon2id$") and PASSWORD not in stored and PASSWORD not in trail
    assert users.authenticate(engine, "alice", PASSWORD, "s1").role == "admin"


def test_wrong_password_unknown_user_and_disabled_user_get_one_message(engine):
    users.add_user(engine, "bob", PASSWORD)
    users.add_user(engine, "carol", PASSWORD)
    users.disable_user(engine, "carol", by="admin")
    for name, password in (("bob", "wrong password!"), ("nobody", PASSWORD), ("carol", PASSWORD)):
        with pytest.raises(users.SignInError, match="^unknown user name or wrong password$"):
            users.authenticate(engine, name, password, f"s-{name}")
    failed = audit.list_events(engine, action="sign_in_failed")
    assert sorted(e.username for e in failed) == ["(unknown)", "bob", "carol"]
    assert [u.active for u in users.list_users(engine)] == [True, False]


def test_rate_limit_per_account_and_address_survives_a_new_engine(engine):
    users.add_user(engine, "dave", PASSWORD)
    for _ in range(users.MAX_FAILURES_PER_ACCOUNT_ADDRESS):
        with pytest.raises(users.SignInError):
            users.authenticate(engine, "dave", "not the password", "10.0.0.5")
    # counted in the database: a new engine (a restarted server) still refuses, even the right password
    from nbrisk_core.store.db import make_engine

    fresh = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        with pytest.raises(users.RateLimitedError, match="too many failed sign-ins"):
            users.authenticate(fresh, "dave", PASSWORD, "10.0.0.5")
    finally:
        fresh.dispose()
    blocked = audit.list_events(engine, action="sign_in_blocked")[0]
    assert (blocked.username, blocked.detail["limit"]) == ("dave", "account_address")
    # the guesser's address does not lock the account out for the real user elsewhere
    assert users.authenticate(engine, "dave", PASSWORD, "10.0.0.9").username == "dave"


def test_rate_limit_per_address_across_user_names(engine, monkeypatch):
    monkeypatch.setattr(users, "MAX_FAILURES_PER_ADDRESS", 7)  # fewer argon2 checks; the rule is the same
    users.add_user(engine, "erin", PASSWORD)
    for i in range(users.MAX_FAILURES_PER_ADDRESS):
        with pytest.raises(users.SignInError):
            users.authenticate(engine, f"guess{i}", PASSWORD, "192.0.2.1")
    with pytest.raises(users.RateLimitedError):
        users.authenticate(engine, "erin", PASSWORD, "192.0.2.1")
    assert users.authenticate(engine, "erin", PASSWORD, "192.0.2.2").username == "erin"


def test_success_clears_the_failures_of_that_account_and_address(engine):
    users.add_user(engine, "frank", PASSWORD)
    for address in ("s", "s", "s", "elsewhere"):
        with pytest.raises(users.SignInError):
            users.authenticate(engine, "frank", "nope nope nope", address)
    users.authenticate(engine, "frank", PASSWORD, "s")
    # the failures from the other address stay counted (they may be a guesser's)
    assert users.failure_counts(engine, "frank", "s") == (0, 1, 0)


@pytest.mark.parametrize("name, password, role, message", [
    ("a", PASSWORD, "clinician", "user name 'a' is not valid"),
    ("good.name", "short", "clinician", "password is too short"),
    ("good.name", PASSWORD, "nurse", "role = 'nurse' is not known"),
])
def test_add_user_validates(engine, name, password, role, message):
    with pytest.raises(InputError, match=message):
        users.add_user(engine, name, password, role)


def test_duplicate_user_is_refused(engine):
    users.add_user(engine, "gina", PASSWORD)
    with pytest.raises(InputError, match="user 'gina' already exists"):
        users.add_user(engine, "GINA", PASSWORD)


def test_audit_trail_is_append_only_in_the_database(engine):
    audit.record(engine, "alice", "sign_in")
    for statement in ("UPDATE audit_events SET username = 'mallory'", "DELETE FROM audit_events"):
        # SQLite: the triggers; PostgreSQL: the privilege is revoked (and the triggers are behind it)
        with pytest.raises(Exception, match="append-only|permission denied"):
            with engine.begin() as conn:
                conn.execute(text(statement))
    assert [e.username for e in audit.list_events(engine)] == ["alice"]
    assert not any(hasattr(audit, name) for name in ("update", "delete", "remove_event", "delete_event"))


def test_audit_csv_export(engine):
    audit.record(engine, "alice", "case_exported", case_uid="C0000000001", detail={"format": "pdf"})
    lines = audit.events_to_csv(audit.list_events(engine)).splitlines()
    assert lines[0] == "id,at,username,action,case_uid,model_sha256,detail"
    assert lines[1].endswith(',alice,case_exported,C0000000001,,"{""format"":""pdf""}"')


def test_audit_counts_per_user_and_action(engine):
    """``count_events``: one GROUP BY, only the asked actions, an unknown action named."""
    for username, action in [("alice", "sign_in"), ("alice", "sign_in"), ("alice", "sign_out"),
                             ("bob", "sign_in_failed"), ("bob", "case_opened")]:
        audit.record(engine, username, action)
    assert audit.count_events(engine, ("sign_in", "sign_in_failed", "sign_out")) == {
        "alice": {"sign_in": 2, "sign_out": 1}, "bob": {"sign_in_failed": 1}}
    assert audit.count_events(engine)["bob"] == {"case_opened": 1, "sign_in_failed": 1}
    with pytest.raises(InputError, match="'log_in'"):
        audit.count_events(engine, ("sign_in", "log_in"))


def test_unknown_action_is_a_bug(engine):
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record(engine, "alice", "case_teleported")


def test_migrations_create_the_schema_and_are_idempotent(engine):
    from nbrisk_core.store.db import migrate

    migrate(engine)  # a second run is a no-op
    tables = set(inspect(engine).get_table_names())
    assert {"users", "sign_in_failures", "cases", "case_slices", "predictions", "audit_events",
            "alembic_version", "case_shares"} <= tables
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0003"


def test_models_match_the_migration(engine):
    # the ORM models and the migration must describe the same schema (alembic autogenerate finds no diff)
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from nbrisk_core.store.models import Base

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_default_url_is_sqlite_under_data(monkeypatch, tmp_path):
    from nbrisk_core import config
    from nbrisk_core.store import db

    monkeypatch.delenv("NBRISK_DATABASE_URL", raising=False)
    monkeypatch.setenv("NBRISK_HOME", str(tmp_path))
    url = config.database_url()
    assert url == f"sqlite:///{tmp_path / 'data' / 'nbrisk.db'}"
    engine = db.get_engine(url)
    try:
        assert (tmp_path / "data" / "nbrisk.db").exists()
        assert users.list_users(engine) == []
    finally:
        db.dispose_engines()


def test_bad_database_url_is_an_input_error():
    from nbrisk_core.store.db import make_engine

    with pytest.raises(InputError, match="database 'mysql' is not supported"):
        make_engine("mysql://u:p@localhost/db")


def test_plain_postgresql_url_uses_psycopg3():
    from nbrisk_core.store.db import make_engine

    engine = make_engine("postgresql://nbrisk:secret@localhost:5433/nbrisk")  # no connection is made here
    try:
        assert engine.url.drivername == "postgresql+psycopg"
    finally:
        engine.dispose()


def test_audit_csv_export_neutralises_formula_cells(engine):
    """A name the trail was given (e.g. a CLI ``--by``) that a spreadsheet would run is exported as text."""
    audit.record(engine, "=HYPERLINK(1)", "sign_out")
    rows = list(csv.reader(io.StringIO(audit.events_to_csv(audit.list_events(engine)))))
    assert rows[0][2] == "username" and rows[1][2] == "'=HYPERLINK(1)"
