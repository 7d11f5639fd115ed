"""AppTests of the workflow pages and the sign-in gate (fast suite: no browser)."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from nbrisk_core.store import audit, cases, users
from nbrisk_core.store.access import system
from nbrisk_core.store.db import dispose_engines, get_engine

PASSWORD = "correct horse battery"
TIMEOUT = 60


@pytest.fixture
def store_url(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'ui.db'}"
    monkeypatch.setenv("NBRISK_DATABASE_URL", url)
    yield url
    dispose_engines()


def _saved_case(url, label, risk_class, p):
    rng = np.random.default_rng(len(label))
    record = cases.CaseRecord(label=label, age_months=24.0, sex="M", risk_class=risk_class, hr_probability=p,
                              clinical_entered={"nse": 80.0, "ldh": None}, clinical_imputed={"ldh": 300.0},
                              slices={"art": cases.SliceRecord(
                                  "art", rng.integers(-50, 150, (24, 24)).astype(np.int16), 7, 35.0)})
    # the pages run with sign-in off: their user is "local", who sees the cases "local" saved
    return cases.save_case(get_engine(url), record, "local")


def test_cases_page_lists_filters_and_compares(store_url, repo_root):
    a = _saved_case(store_url, "P0007", "HR", 0.8)
    b = _saved_case(store_url, "P0042", "NHR", 0.2)
    at = AppTest.from_file(str(repo_root / "pages" / "5_Cases.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    shown = at.dataframe[0].value
    assert set(shown["Case id"]) == {a.case_uid, b.case_uid}
    at.selectbox(key="cases.risk").select("NHR").run()
    assert not at.exception
    assert list(at.dataframe[0].value["Case id"]) == [b.case_uid]
    at.selectbox(key="cases.risk").select("any").run()
    # the compare tab loads both cases: the audit trail records the openings
    assert not at.exception
    opened = {e.case_uid for e in audit.list_events(get_engine(store_url), action="case_opened")}
    assert opened == {a.case_uid, b.case_uid}
    # each format has its Make button (a file is made only when asked for)
    assert {b.label for b in at.button if b.label.startswith("Make ")} == {"Make PDF", "Make CSV", "Make JSON"}


def test_cases_page_opens_a_case_into_the_session(store_url, repo_root):
    from nbrisk_ui import state

    saved = _saved_case(store_url, "P0099", "HR", 0.9)
    at = AppTest.from_file(str(repo_root / "pages" / "5_Cases.py"), default_timeout=TIMEOUT).run()
    at.button(key="cases.open").click().run()
    assert at.session_state[state.CASE_ID] == saved.case_uid
    assert at.session_state[state.CASE_VERSION] == 1
    np.testing.assert_array_equal(at.session_state[state.CHOSEN_SLICES]["art"].hu, saved.slices["art"].hu)


def test_cases_page_soft_deletes_after_confirmation(store_url, repo_root):
    saved = _saved_case(store_url, "P0100", "NHR", 0.1)
    at = AppTest.from_file(str(repo_root / "pages" / "5_Cases.py"), default_timeout=TIMEOUT).run()
    delete = at.button(key=f"cases.delete.{saved.case_uid}")
    assert delete.disabled
    at.checkbox(key=f"cases.confirm.{saved.case_uid}").check().run()
    at.button(key=f"cases.delete.{saved.case_uid}").click().run()
    assert not at.exception
    assert cases.list_cases(get_engine(store_url), "local") == []
    assert audit.list_events(get_engine(store_url), action="case_deleted")[0].username == "local"


def test_cases_page_without_cases(store_url, repo_root):
    at = AppTest.from_file(str(repo_root / "pages" / "5_Cases.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "No saved cases match" in at.info[0].value


def test_admin_page_adds_users_and_shows_the_trail(store_url, repo_root):
    at = AppTest.from_file(str(repo_root / "pages" / "6_Admin.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    at.text_input(key="admin.add.name").input("bob")
    at.text_input(key="admin.add.password").input(PASSWORD)
    at.text_input(key="admin.add.repeat").input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    assert [u.username for u in users.list_users(get_engine(store_url))] == ["bob"]
    events = at.dataframe[-1].value
    assert list(events["Action"]) == ["user_added"] and list(events["User"]) == ["local"]


def test_admin_page_refuses_clinicians(store_url, repo_root, monkeypatch):
    from nbrisk_ui import state

    monkeypatch.setenv("NBRISK_AUTH", "on")
    users.add_user(get_engine(store_url), "carol", PASSWORD, "clinician")
    at = AppTest.from_file(str(repo_root / "pages" / "6_Admin.py"), default_timeout=TIMEOUT)
    at.session_state[state.USER] = {"username": "carol", "role": "clinician"}
    at.run()
    assert not at.exception
    assert "for administrators" in at.error[0].value
    assert not at.tabs


def _gated_app():
    import streamlit as st

    from nbrisk_ui import auth

    st.write(f"menu shown: {auth.signed_in()}")  # what the entry point decides before the gate
    user = auth.gate()
    st.write(f"content for {user['username'] if user else 'everyone'}")


def test_gate_is_open_when_sign_in_is_off(store_url):
    at = AppTest.from_function(_gated_app, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert [m.value for m in at.markdown] == ["menu shown: True", "content for everyone"]


def test_gate_signs_in_rejects_bad_passwords_and_signs_out(store_url, monkeypatch):
    from nbrisk_ui import state

    monkeypatch.setenv("NBRISK_AUTH", "on")
    engine = get_engine(store_url)
    users.add_user(engine, "alice", PASSWORD, "admin")
    at = AppTest.from_function(_gated_app, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert not [m for m in at.markdown if "content for" in m.value]  # nothing behind the gate
    assert at.markdown[0].value == "menu shown: False"
    at.text_input(key="nbrisk.auth.username").input("alice")
    at.text_input(key="nbrisk.auth.password").input("wrong password")
    at.button[0].click().run()
    assert at.error[0].value == "unknown user name or wrong password"
    at.text_input(key="nbrisk.auth.password").input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state[state.USER] == {"username": "alice", "role": "admin"}
    assert any(m.value == "content for alice" for m in at.markdown)
    at.run()  # the next run (the menu is decided before the gate signs in within a run)
    assert at.markdown[0].value == "menu shown: True"
    at.button(key="nbrisk.auth.sign_out").click().run()
    assert not at.exception
    assert state.USER not in at.session_state
    actions = [e.action for e in audit.list_events(engine)]
    assert actions[:3] == ["sign_out", "sign_in", "sign_in_failed"]


def test_disabled_user_is_signed_out_at_the_next_run(store_url, monkeypatch):
    from nbrisk_ui import state

    monkeypatch.setenv("NBRISK_AUTH", "on")
    engine = get_engine(store_url)
    users.add_user(engine, "dave", PASSWORD)
    at = AppTest.from_function(_gated_app, default_timeout=TIMEOUT)
    at.session_state[state.USER] = {"username": "dave", "role": "clinician"}
    at.run()
    assert any(m.value == "content for dave" for m in at.markdown)
    users.disable_user(engine, "dave", by="admin")
    at.run()
    assert state.USER not in at.session_state
    assert not [m for m in at.markdown if "content for" in m.value]


def test_streamlit_config_keeps_xsrf_on_and_caps_uploads(repo_root):
    import tomllib

    cfg = tomllib.loads((repo_root / ".streamlit" / "config.toml").read_text())["server"]
    assert cfg["enableXsrfProtection"] is True
    assert 0 < cfg["maxUploadSize"] <= 1024


def _save_box_app():
    import numpy as np
    import streamlit as st

    from nbrisk_ui import state
    from nbrisk_ui.cases import save_case_widget

    from nbrisk_core.case import ChosenSlice, RiskResult, VariantScore

    if state.CHOSEN_SLICES not in st.session_state:
        st.session_state[state.CHOSEN_SLICES] = {"art": ChosenSlice("art", 3, None,
                                                                    hu=np.full((8, 8), 40, np.int16))}
        st.session_state[state.RISK_RESULT] = RiskResult(
            scores={"art": VariantScore("art", "Swin-ART", 0.66, "HR", 0.5, "a" * 64)},
            embedding=np.zeros(16))
    save_case_widget()


def test_save_box_creates_then_updates_and_reports_conflicts(store_url):
    from nbrisk_ui import state

    at = AppTest.from_function(_save_box_app, default_timeout=TIMEOUT).run()
    assert not at.exception
    at.text_input(key="nbrisk.save.label").input("P0555")
    at.text_area(key="nbrisk.save.notes").input("first look")
    at.button(key="nbrisk.save.button").click().run()
    assert not at.exception
    uid = at.session_state[state.CASE_ID]
    assert at.success[0].value == f"Saved as case **{uid}**, version 1."
    engine = get_engine(store_url)
    stored = cases.load_case(engine, uid, system("t"), record_open=False)
    assert (stored.label, stored.notes, stored.risk_class, stored.created_by) == ("P0555", "first look", "HR", "local")
    # someone else changes the case; saving again from this session must not overwrite it
    other = cases.load_case(engine, uid, system("bob"), record_open=False)
    other.notes = "bob was here"
    cases.save_case(engine, other, system("bob"))
    at.text_area(key="nbrisk.save.notes").input("second look")
    at.button(key="nbrisk.save.button").click().run()
    assert "was changed by bob" in at.error[0].value
    assert cases.load_case(engine, uid, system("t"), record_open=False).notes == "bob was here"


def test_save_box_with_nothing_to_save(store_url):
    def app():
        from nbrisk_ui.cases import save_case_widget

        save_case_widget()

    at = AppTest.from_function(app, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.info[0].value.startswith("Nothing to save yet")


def test_export_buttons_make_and_audit_the_file_only_when_asked(store_url, repo_root):
    saved = _saved_case(store_url, "P0123", "HR", 0.7)
    at = AppTest.from_file(str(repo_root / "pages" / "5_Cases.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    engine = get_engine(store_url)
    assert at.get("download_button") == []  # showing the page makes no file
    assert audit.list_events(engine, action="case_exported") == []
    make_pdf = at.button(key=f"cases.export.{saved.case_uid}.make.pdf")
    make_pdf.click().run()
    assert not at.exception
    buttons = at.get("download_button")
    assert len(buttons) == 1  # only the PDF was asked for
    pdf = buttons[0].proto
    assert pdf.label == "Download PDF" and pdf.url and not pdf.deferred_file_id  # a file referenced by the session
    events = audit.list_events(engine, action="case_exported")
    assert [(e.username, e.case_uid, e.detail["format"], e.detail["version"]) for e in events] == [
        ("local", saved.case_uid, "pdf", 1)]
    # the session keeps the file for this case version: a rerun neither remakes nor audits it again
    at.run()
    assert len(at.get("download_button")) == 1
    assert len(audit.list_events(engine, action="case_exported")) == 1
    made = at.session_state["nbrisk.exports"]
    assert list(made) == [(saved.case_uid, 1, "pdf")] and made[(saved.case_uid, 1, "pdf")].startswith(b"%PDF")


def test_export_of_a_case_changed_meanwhile_is_of_the_version_shown_after_the_click(store_url, repo_root):
    saved = _saved_case(store_url, "P0124", "HR", 0.7)
    at = AppTest.from_file(str(repo_root / "pages" / "5_Cases.py"), default_timeout=TIMEOUT).run()
    assert any("version 1" in c.value for c in at.caption)
    engine = get_engine(store_url)
    changed = cases.load_case(engine, saved.case_uid, system("bob"), record_open=False)
    changed.notes = "changed elsewhere"
    cases.save_case(engine, changed, system("bob"))  # now version 2; the page still shows version 1
    at.button(key=f"cases.export.{saved.case_uid}.make.json").click().run()
    assert not at.exception
    assert len(at.get("download_button")) == 1
    assert any(f"Downloads of case {saved.case_uid}, version 2" in c.value for c in at.caption)
    events = audit.list_events(engine, action="case_exported")
    assert [(e.detail["format"], e.detail["version"]) for e in events] == [("json", 2)]
    assert "changed elsewhere" in at.session_state["nbrisk.exports"][(saved.case_uid, 2, "json")].decode()


def _open_from_cases_page(repo_root, case_uid, before: dict | None = None) -> AppTest:
    """Click "Open case" on the Saved cases page; returns that AppTest (its session holds the case)."""
    at = AppTest.from_file(str(repo_root / "pages" / "5_Cases.py"), default_timeout=TIMEOUT)
    for key, value in (before or {}).items():
        at.session_state[key] = value
    at.run()
    at.selectbox(key="cases.chosen").select(case_uid).run()
    at.button(key="cases.open").click().run()
    # outside the app's navigation there is no page to switch to: a message, not a page-not-found error
    assert not at.exception, [e.value for e in at.exception]
    assert any("is open in this session" in m.value for m in at.success)
    return at


def _case_page_with_session_of(repo_root, other: AppTest) -> AppTest:
    """The Case page in the same browser session as ``other`` (AppTests do not share sessions)."""
    from nbrisk_ui import state

    at = AppTest.from_file(str(repo_root / "pages" / "1_Case.py"), default_timeout=TIMEOUT)
    for key in (*state.CASE_OBJECT_KEYS, *state.IMAGING_KEYS, state.CASE_ID, state.CASE_VERSION, state.CASE_LABEL):
        if key in other.session_state:
            at.session_state[key] = other.session_state[key]
    return at.run()


def test_case_page_shows_the_chosen_slices_of_a_reopened_case(store_url, repo_root):
    from nbrisk_core.case import Case, ChosenSlice, SegmentationSummary
    from nbrisk_core.service import save_case
    from nbrisk_ui import state

    rng = np.random.default_rng(3)
    art, nc = (rng.integers(-100, 300, (32, 32)).astype(np.int16) for _ in range(2))
    measured = SegmentationSummary(volume_ml=12.25, longest_diameter_mm=40.5, area_mm2=700.0,
                                   max_area_slice=17, confidence=0.91)
    chosen = {"art": ChosenSlice("art", 17, 42.5, hu=art, pixel_spacing=(0.8, 0.8), series_uid="2.25.7",
                                 window={"name": "liver", "width": 150.0, "level": 30.0},
                                 segmentation=measured),
              "nc": ChosenSlice("nc", 16, 40.0, hu=nc, pixel_spacing=(0.8, 0.8), series_uid="2.25.5")}
    case = {"age_months": 30.0, "sex": "F", "deidentified": True,
            "phases": {"nc": {"series_uid": "2.25.5", "n_slices": 40, "pixel_spacing": [0.8, 0.8]},
                       "art": {"series_uid": "2.25.7", "n_slices": 41, "pixel_spacing": [0.8, 0.8]}}}
    saved = save_case(get_engine(store_url), Case(label="P0314", slices=chosen, study=case), "local").stored
    other = _saved_case(store_url, "P0999", "NHR", 0.2)

    # a study loaded earlier in this session must not be shown under the reopened case
    opened = _open_from_cases_page(repo_root, saved.case_uid, before={
        state.IMAGING_STUDY: "the study of another case", state.CONFIRMED_SLICES: {"art": chosen["art"]}})
    assert opened.session_state[state.CASE_ID] == saved.case_uid
    assert state.IMAGING_STUDY not in opened.session_state and state.CONFIRMED_SLICES not in opened.session_state

    at = _case_page_with_session_of(repo_root, opened)
    assert not at.exception
    assert "Reopened saved case" in [h.value for h in at.subheader]
    assert any(saved.case_uid in i.value and "reopened" in i.value for i in at.info)
    assert not any("Load a demo study" in i.value for i in at.info)
    table = at.dataframe[0].value
    assert list(table["phase"]) == ["NC", "ART"] and list(table["chosen slice"]) == [16, 17]
    assert list(table["z (mm)"]) == [40.0, 42.5] and list(table["slices in series"]) == [40, 41]
    assert list(table["window"]) == ["–", "liver W150/L30"]
    # the tumour's measurements stored with the slice are shown with it
    assert table["tumour"].iloc[0] == "–" and table["tumour"].iloc[1].startswith(
        "volume 12.2 mL, longest diameter 40.5 mm, area 700 mm² on slice 17 (automatic, confidence 0.91)")
    captions = [caption for image in at.get("image") for caption in image.captions]
    assert captions == ["NC · slice 16 · z 40.0 mm", "ART · slice 17 · z 42.5 mm"]
    # ART opens in the window it was confirmed with; another window can be chosen
    window = at.selectbox(key=f"case.reopened.window.{saved.case_uid}.ART")
    assert window.value == "as saved"
    window.select("bone").run()
    assert not at.exception
    # the slices shown are the stored HU arrays, unchanged
    views = at.session_state[state.CHOSEN_SLICES]
    assert list(views) == ["nc", "art"] and views["art"].index == 17
    np.testing.assert_array_equal(views["art"].plane, art)
    np.testing.assert_array_equal(views["nc"].plane, nc)

    # a case saved without the Case page's objects (only its slices) shows them too
    at = _case_page_with_session_of(repo_root, _open_from_cases_page(repo_root, other.case_uid))
    assert not at.exception
    assert [caption for image in at.get("image") for caption in image.captions] == ["ART · slice 7 · z 35.0 mm"]
