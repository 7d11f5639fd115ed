"""Issue 18, finding 6: an append-only, tamper-evident audit trail, on SQLite and PostgreSQL.

SQLite refuses REPLACE, UPDATE and DELETE of audit rows (triggers); on PostgreSQL the application's
role holds no UPDATE, DELETE or TRUNCATE on the table (a start-up check warns when it does). Each
event carries the hash of the previous one; ``nbrisk audit verify`` exits 0 on an intact chain and 2
naming the first broken event after an edit, a removal or a reordering made around the protections.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from nbrisk_core.cli import main
from nbrisk_core.store import audit
from nbrisk_core.store.db import dispose_engines
from tests.store.conftest import engine  # noqa: F401  (the store fixture, reused as it is)


def _url(engine) -> str:  # noqa: F811
    return engine.url.render_as_string(hide_password=False)


def _verify(engine, capsys, *extra) -> tuple[int, str]:  # noqa: F811
    try:
        code = main(["audit", "--database-url", _url(engine), "verify", *extra])
    finally:
        dispose_engines()
    captured = capsys.readouterr()
    return code, (captured.out + captured.err).strip()


def _events(engine, n=5):  # noqa: F811
    for i in range(n):
        audit.record(engine, "alice", "case_opened", case_uid=f"C{i:010d}", detail={"version": i, "p": 0.25})


def _tamper(engine, *statements):  # noqa: F811
    """Run SQL around the application's protections, as someone with the database file or the owner role."""
    if engine.dialect.name == "sqlite":
        conn = sqlite3.connect(make_url(_url(engine)).database)
        try:
            conn.executescript("DROP TRIGGER IF EXISTS audit_events_no_update; "
                               "DROP TRIGGER IF EXISTS audit_events_no_delete; "
                               "DROP TRIGGER IF EXISTS audit_events_no_replace;"
                               + ";".join(statements))
        finally:
            conn.close()
        return
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        conn.execute(text("GRANT UPDATE, DELETE ON audit_events TO CURRENT_USER"))
        for statement in statements:
            conn.execute(text(statement))


def test_the_database_refuses_to_rewrite_events(engine):  # noqa: F811
    _events(engine, 2)
    first = audit.list_events(engine)[-1]
    statements = ["UPDATE audit_events SET username = 'mallory' WHERE seq = 1",
                  "DELETE FROM audit_events WHERE seq = 1"]
    if engine.dialect.name == "sqlite":
        # REPLACE deletes the old row without firing the delete trigger (recursive_triggers is off)
        statements += [
            "REPLACE INTO audit_events (id, at, username, action, detail, seq, prev_hash, hash) "
            f"VALUES ({first.id}, '2026-01-01 00:00:00', 'mallory', 'sign_in', '{{}}', 1, '{'0' * 64}', 'x')",
            "INSERT OR REPLACE INTO audit_events (at, username, action, detail, seq, prev_hash, hash) "
            f"VALUES ('2026-01-01 00:00:00', 'mallory', 'sign_in', '{{}}', 2, 'x', 'y')",
            # a well-formed new event that does not extend the chain
            "INSERT INTO audit_events (at, username, action, detail, seq, prev_hash, hash) "
            f"VALUES ('2026-01-01 00:00:00', 'mallory', 'sign_in', '{{}}', 3, '{'0' * 64}', 'y')",
        ]
    else:
        statements += ["TRUNCATE audit_events",
                       "INSERT INTO audit_events (at, username, action, detail, seq, prev_hash, hash) "
                       f"VALUES (now(), 'mallory', 'sign_in', '{{}}', 3, '{'0' * 64}', 'y')"]
    for statement in statements:
        with pytest.raises(Exception, match="append-only|permission denied"):
            with engine.begin() as conn:
                conn.execute(text(statement))
    assert [(e.username, e.id) for e in audit.list_events(engine)][-1] == ("alice", first.id)
    assert audit.verify_chain(engine).ok and audit.protection_problems(engine) == []


def test_postgres_role_has_no_update_or_delete_and_the_start_check_warns(engine, caplog):  # noqa: F811
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL privileges")
    from nbrisk_core.store import get_engine

    with engine.connect() as conn:
        for privilege in ("INSERT", "SELECT", "UPDATE", "DELETE", "TRUNCATE"):
            held = conn.execute(text("SELECT has_table_privilege('audit_events', :p)"),
                                {"p": privilege}).scalar()
            assert held == (privilege in ("INSERT", "SELECT")), privilege
    with engine.begin() as conn:
        conn.execute(text("GRANT UPDATE ON audit_events TO CURRENT_USER"))
    assert audit.protection_problems(engine) == [
        f"the database role {make_url(_url(engine)).username!r} holds UPDATE on audit_events "
        "(expected: revoked, see docs/security.md)"]
    try:
        with caplog.at_level("WARNING", logger="nbrisk_core.store.db"):
            get_engine(_url(engine))
    finally:
        dispose_engines()
    assert any("holds UPDATE on audit_events" in r.getMessage() for r in caplog.records)


def test_concurrent_appends_make_one_chain(engine):  # noqa: F811
    threads_n, per_thread = 6, 8
    barrier = threading.Barrier(threads_n)
    errors = []

    def writer(k):
        barrier.wait()
        try:
            for i in range(per_thread):
                audit.record(engine, f"user{k}", "prediction", detail={"i": i})
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    workers = [threading.Thread(target=writer, args=(k,)) for k in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert errors == []
    report = audit.verify_chain(engine)
    total = threads_n * per_thread
    assert (report.ok, report.events, report.head_seq) == (True, total, total)


def test_verify_passes_on_an_intact_chain_and_prints_the_head(engine, capsys):  # noqa: F811
    _events(engine)
    code, out = _verify(engine, capsys)
    head = audit.verify_chain(engine)
    assert code == 0 and out == f"audit chain intact: 5 events, head 5:{head.head_hash}"
    assert _verify(engine, capsys, "--anchor", f"5:{head.head_hash}")[0] == 0


@pytest.mark.parametrize("tampering, broken", [
    ("UPDATE audit_events SET username = 'mallory' WHERE seq = 3",
     "event seq 3 (id 3, case_opened by mallory): its fields do not match its hash"),
    ("UPDATE audit_events SET detail = '{\"p\": 0.5, \"version\": 2}' WHERE seq = 3", "event seq 3"),
    ("DELETE FROM audit_events WHERE seq = 2", "event seq 3 (id 3, case_opened by alice): expected seq 2"),
    ("UPDATE audit_events SET seq = -2 WHERE seq = 2; UPDATE audit_events SET seq = 2 WHERE seq = 3; "
     "UPDATE audit_events SET seq = 3 WHERE seq = -2",
     "event seq 2 (id 3, case_opened by alice): prev_hash does not match"),
    ("UPDATE audit_events SET seq = seq + 100 WHERE seq >= 4", "event seq 104 (id 4, case_opened by alice): "
                                                              "expected seq 4"),
], ids=["edit-user", "edit-detail", "delete", "reorder", "renumber"])
def test_verify_names_the_first_broken_event(engine, capsys, tampering, broken):  # noqa: F811
    _events(engine)
    _tamper(engine, *tampering.split("; "))
    code, out = _verify(engine, capsys)
    assert code == 2 and len(out.splitlines()) == 1 and "Traceback" not in out
    assert out.startswith("nbrisk audit: error: audit chain broken at ") and broken in out


def test_verify_fails_when_the_protections_are_gone(engine, capsys):  # noqa: F811
    _events(engine, 2)
    _tamper(engine)  # triggers dropped (SQLite) / disabled and privileges granted back (PostgreSQL)
    code, out = _verify(engine, capsys)
    assert code == 2 and "audit chain intact (2 events) but the trail is not protected" in out
    assert ("trigger audit_events_no_replace is missing" in out if engine.dialect.name == "sqlite"
            else "holds UPDATE on audit_events" in out)


def test_removing_the_newest_events_is_caught_by_the_anchor(engine, capsys):  # noqa: F811
    _events(engine)
    head = audit.verify_chain(engine)
    _tamper(engine, "DELETE FROM audit_events WHERE seq >= 4")
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:  # protections back, so that only the chain is judged
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
            conn.execute(text("REVOKE UPDATE, DELETE ON audit_events FROM CURRENT_USER"))
        code, _ = _verify(engine, capsys)
        assert code == 0  # a cut tail is invisible from inside the database...
    code, out = _verify(engine, capsys, "--anchor", f"{head.head_seq}:{head.head_hash}")
    assert code == 2 and "event seq 4 is missing: the trail ends at seq 3" in out  # ...but not to an anchor


def test_the_migration_chains_existing_events(tmp_path, capsys):
    from nbrisk_core.store.db import make_engine, migrate

    eng = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        migrate(eng, "0001")
        with eng.begin() as conn:
            for i in range(3):
                conn.execute(text("INSERT INTO audit_events (at, username, action, detail) VALUES "
                                  f"('2026-11-30 10:00:0{i}.000000', 'alice', 'sign_in', '{{\"n\": {i}}}')"))
        migrate(eng)
        audit.record(eng, "bob", "sign_in")
        report = audit.verify_chain(eng)
        assert (report.ok, report.events) == (True, 4)
        assert _verify(eng, capsys)[0] == 0
    finally:
        eng.dispose()
