"""Issue 18, finding 2: saved cases only for those allowed (owner, shared users or team, admins).

Every store function takes the acting user and enforces the rule (SQLite and PostgreSQL); a refusal
is a clear error and a ``case_access_denied`` event; sharing is audited. The browser test signs a
second clinician in and checks that the first one's unshared case is neither listed nor reachable.
"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import text

from nbrisk_core.service import export_case
from nbrisk_core.store import audit, cases, users
from nbrisk_core.store.access import CaseAccessError, system
from tests.store.conftest import engine, tiny_case  # noqa: F401  (the store fixtures, reused as they are)

PASSWORD = "correct horse battery"


@pytest.fixture
def team(engine):  # noqa: F811
    """alice and dave in team onco, bob in no team, carol in team neuro, root an admin."""
    users.add_user(engine, "alice", PASSWORD, team="onco")
    users.add_user(engine, "bob", PASSWORD)
    users.add_user(engine, "carol", PASSWORD, team="neuro")
    users.add_user(engine, "dave", PASSWORD, team="onco")
    users.add_user(engine, "root", PASSWORD, "admin")
    return engine


def _denied(engine, username):
    events = audit.list_events(engine, action="case_access_denied", username=username)
    return [(e.case_uid, e.detail["operation"]) for e in events][::-1]


def test_an_unshared_case_is_invisible_and_untouchable_for_another_clinician(team, tiny_case):  # noqa: F811
    engine = team
    mine = cases.save_case(engine, tiny_case, "alice")
    uid = mine.case_uid
    assert mine.owner == "alice"
    assert [c.case_uid for c in cases.list_cases(engine, "bob")] == []
    with pytest.raises(CaseAccessError, match=f"user 'bob' may not open case {uid}: it is not shared"):
        cases.load_case(engine, uid, "bob")
    with pytest.raises(CaseAccessError, match="may not export"):
        export_case(engine, uid, "bob", "json")
    with pytest.raises(CaseAccessError, match="may not export"):
        cases.record_export(engine, uid, "bob", "pdf")
    theirs = dataclasses.replace(mine, notes="overwritten by bob")
    with pytest.raises(CaseAccessError, match="may not change"):
        cases.save_case(engine, theirs, "bob")
    with pytest.raises(CaseAccessError, match=r"may not delete .*only its owner \(alice\) or an admin"):
        cases.delete_case(engine, uid, "bob", version=mine.version)
    with pytest.raises(CaseAccessError, match="may not share"):
        cases.set_sharing(engine, uid, "bob", users=["bob"])
    # nothing changed, nothing was exported, and every refusal is in the trail
    stored = cases.load_case(engine, uid, "alice", record_open=False)
    assert (stored.notes, stored.version, stored.deleted_at) == (mine.notes, mine.version, None)
    assert audit.list_events(engine, action="case_exported") == []
    operations = ("open", "export", "export", "change", "delete", "share")
    assert _denied(engine, "bob") == [(uid, op) for op in operations]
    # the owner and an admin see it; a name that is no user (sign-in off: "local") sees only its own
    assert [c.case_uid for c in cases.list_cases(engine, "alice")] == [uid]
    assert [c.case_uid for c in cases.list_cases(engine, "root")] == [uid]
    assert cases.list_cases(engine, "local") == []


def test_sharing_with_a_user_lets_them_review_but_not_delete_or_reshare(team, tiny_case):  # noqa: F811
    engine = team
    uid = cases.save_case(engine, tiny_case, "alice").case_uid
    shared = cases.set_sharing(engine, uid, "alice", users=["bob"])
    assert (shared.owner, shared.users, shared.team) == ("alice", ("bob",), None)
    listed = cases.list_cases(engine, "bob")
    assert [(c.case_uid, c.owner, c.shared) for c in listed] == [(uid, "alice", True)]
    record = cases.load_case(engine, uid, "bob")
    record.status = "reviewed"
    saved = cases.save_case(engine, record, "bob")
    assert (saved.reviewed_by, saved.owner) == ("bob", "alice")
    assert export_case(engine, uid, "bob", "json", version=saved.version).startswith(b"{")
    with pytest.raises(CaseAccessError, match="may not delete"):
        cases.delete_case(engine, uid, "bob")
    with pytest.raises(CaseAccessError, match="may not share"):
        cases.set_sharing(engine, uid, "bob", users=["bob", "carol"])
    assert cases.list_cases(engine, "carol") == []  # still nobody else's
    # unsharing takes it away again, and both changes are audited with whom
    cases.set_sharing(engine, uid, "alice", users=[])
    assert cases.list_cases(engine, "bob") == []
    with pytest.raises(CaseAccessError):
        cases.load_case(engine, uid, "bob")
    trail = [(e.action, e.username, e.detail["users"]) for e in audit.list_events(engine, case_uid=uid)
             if e.action in ("case_shared", "case_unshared")][::-1]
    assert trail == [("case_shared", "alice", ["bob"]), ("case_unshared", "alice", ["bob"])]


def test_sharing_with_the_owners_team(team, tiny_case):  # noqa: F811
    engine = team
    uid = cases.save_case(engine, tiny_case, "alice").case_uid
    assert cases.list_cases(engine, "dave") == []  # same team, not shared yet
    shared = cases.set_sharing(engine, uid, "alice", team=True)
    assert shared.team == "onco"
    assert [c.case_uid for c in cases.list_cases(engine, "dave")] == [uid]
    assert cases.load_case(engine, uid, "dave").case_uid == uid
    for outsider in ("bob", "carol"):
        assert cases.list_cases(engine, outsider) == []
    # an admin may manage it too; a team share needs the owner to have a team
    cases.set_sharing(engine, uid, "root", team=False)
    assert cases.list_cases(engine, "dave") == []
    bobs = cases.save_case(engine, tiny_case, "bob").case_uid
    with pytest.raises(Exception, match="its owner 'bob' has no team"):
        cases.set_sharing(engine, bobs, "bob", team=True)
    with pytest.raises(Exception, match="no such user"):
        cases.set_sharing(engine, bobs, "bob", users=["nobody"])
    events = [(e.action, e.username, e.detail["team"]) for e in audit.list_events(engine, case_uid=uid)
              if e.action in ("case_shared", "case_unshared")][::-1]
    assert events == [("case_shared", "alice", "onco"), ("case_unshared", "root", "onco")]


def test_admin_deletes_any_case_and_a_disabled_owner_loses_access(team, tiny_case):  # noqa: F811
    engine = team
    first = cases.save_case(engine, tiny_case, "alice")
    second = cases.save_case(engine, tiny_case, "alice")
    cases.delete_case(engine, first.case_uid, "root", version=first.version)
    users.disable_user(engine, "alice", by="root")
    assert cases.list_cases(engine, "alice") == []
    with pytest.raises(CaseAccessError, match="disabled"):
        cases.load_case(engine, second.case_uid, "alice")
    with pytest.raises(CaseAccessError, match="disabled"):
        cases.save_case(engine, tiny_case, "alice")


def test_existing_cases_belong_to_their_creator_after_the_migration(tmp_path):
    from nbrisk_core.store.db import make_engine, migrate

    eng = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        migrate(eng, "0001")
        with eng.begin() as conn:
            conn.execute(text(
                "INSERT INTO cases (case_uid, label, status, notes, clinical_entered, clinical_imputed, "
                "phase_meta, session_state, software_versions, include_series, created_at, created_by, "
                "updated_at, updated_by, version) VALUES ('C0000000001', 'OLD-1', 'draft', '', '{}', '{}', "
                "'{}', '{}', '{}', 0, '2026-11-30 10:00:00', 'alice', '2026-11-30 10:00:00', 'alice', 1)"))
        migrate(eng)
        users.add_user(eng, "alice", PASSWORD)
        users.add_user(eng, "bob", PASSWORD)
        assert [(c.case_uid, c.owner) for c in cases.list_cases(eng, "alice")] == [("C0000000001", "alice")]
        assert cases.list_cases(eng, "bob") == []
        assert [c.owner for c in cases.list_cases(eng, system())] == ["alice"]
    finally:
        eng.dispose()


def test_cli_sets_teams(tmp_path, capsys):
    import io
    import sys

    from nbrisk_core.cli import main
    from nbrisk_core.store import get_engine
    from nbrisk_core.store.db import dispose_engines

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    try:
        old_stdin, sys.stdin = sys.stdin, io.StringIO(PASSWORD + "\n")
        try:
            code = main(["users", "--database-url", url, "add", "erin", "--team", "Onco", "--password-stdin"])
            assert code == 0
        finally:
            sys.stdin = old_stdin
        assert main(["users", "--database-url", url, "team", "erin", "neuro"]) == 0
        assert users.get_user(get_engine(url), "erin").team == "neuro"
        assert main(["users", "--database-url", url, "team", "erin", "--none"]) == 0
        assert users.get_user(get_engine(url), "erin").team is None
        assert main(["users", "--database-url", url, "team", "erin", "bad team!"]) == 2
        assert "team 'bad team!' is not valid" in capsys.readouterr().err
    finally:
        dispose_engines()


def _cases_page_as(repo_root, username, role="clinician"):
    from streamlit.testing.v1 import AppTest

    from nbrisk_ui import state

    at = AppTest.from_file(str(repo_root / "pages" / "5_Cases.py"), default_timeout=60)
    at.session_state[state.USER] = {"username": username, "role": role}
    return at.run()


def test_saved_cases_page_lists_only_what_the_user_may_see_and_the_owner_shares(
        repo_root, tmp_path, monkeypatch, tiny_case):  # noqa: F811
    from nbrisk_core.store import get_engine
    from nbrisk_core.store.db import dispose_engines

    url = f"sqlite:///{tmp_path / 'ui.db'}"
    monkeypatch.setenv("NBRISK_DATABASE_URL", url)
    monkeypatch.setenv("NBRISK_AUTH", "on")
    try:
        eng = get_engine(url)
        users.add_user(eng, "alice", PASSWORD)
        users.add_user(eng, "bob", PASSWORD)
        uid = cases.save_case(eng, tiny_case, "alice").case_uid
        at = _cases_page_as(repo_root, "bob")
        assert not at.exception
        assert any("No saved cases match" in i.value for i in at.info)
        assert not at.dataframe and "cases.open" not in {b.key for b in at.button}
        # the owner sees it with a share control and no "only its owner" note; shares it with bob
        at = _cases_page_as(repo_root, "alice")
        assert not at.exception and list(at.dataframe[0].value["Case id"]) == [uid]
        at.multiselect(key=f"cases.share.users.{uid}").select("bob").run()
        at.button(key=f"cases.share.save.{uid}").click().run()
        assert not at.exception and f"Case {uid} is shared with bob." in at.success[0].value
        # bob now sees it, without a share control or a delete button
        at = _cases_page_as(repo_root, "bob")
        assert not at.exception and list(at.dataframe[0].value["Case id"]) == [uid]
        keys = {b.key for b in at.button}
        assert f"cases.share.save.{uid}" not in keys and f"cases.delete.{uid}" not in keys
        assert any("Only its owner (alice) or an admin can delete" in c.value for c in at.caption)
        shared = audit.list_events(eng, case_uid=uid, action="case_shared")
        assert [(e.username, e.detail["users"]) for e in shared] == [("alice", ["bob"])]
    finally:
        dispose_engines()


# ------------------------------------------------------------------ in the browser

@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_second_clinician_can_neither_see_nor_open_nor_delete_the_first_ones_case(demo_dir, tmp_path):
    """Two clinicians on a live server: bruno's Saved cases page shows nothing of clara's unshared case."""
    from tests.e2e.harness import (Flow, browser_context, chromium_missing_reason, start_server,
                                            stop_server)
    from nbrisk_core.store.db import make_engine

    reason = chromium_missing_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    first = ("clara", "clinician-pass-1234", "clinician")
    second = ("bruno", "clinician-pass-5678", "clinician")
    server = start_server([first, second], data_dir=demo_dir)
    try:
        engine = make_engine(server.database_url)
        try:
            import numpy as np

            hu = np.arange(256, dtype=np.int16).reshape(16, 16)
            record = cases.CaseRecord(label="CLARA-ONLY-7", risk_class="HR", hr_probability=0.9,
                                      slices={"art": cases.SliceRecord("art", hu, 3, 12.0)})
            uid = cases.save_case(engine, record, "clara").case_uid
        finally:
            engine.dispose()
        with sync_playwright() as pw, browser_context(pw) as context:
            flow = Flow(context.new_page(), server.url, name="second-clinician")
            flow.sign_in(*second[:2])
            flow.go_to("Saved cases")
            expect(flow.page.get_by_text("No saved cases match")).to_be_visible()
            body = flow.page.locator("body").inner_text()
            assert uid not in body and "CLARA-ONLY-7" not in body
            assert flow.page.get_by_role("button", name="Open case").count() == 0
            assert flow.page.get_by_role("button", name="Delete case").count() == 0
            flow.sign_out()
            # the owner, in another browser, does see it (the page works; only bruno is kept out)
            owner = Flow(context.new_page(), server.url, name="owner")
            owner.sign_in(*first[:2])
            owner.go_to("Saved cases")
            expect(owner.page.get_by_text(uid).first).to_be_visible()
            owner.sign_out()
        engine = make_engine(server.database_url)
        try:
            stored = cases.load_case(engine, uid, system("test"), record_open=False)
            assert stored.deleted_at is None and stored.owner == "clara"
            opened = [e.username for e in audit.list_events(engine, action="case_opened", case_uid=uid)]
            assert "bruno" not in opened
        finally:
            engine.dispose()
    finally:
        stop_server(server)
