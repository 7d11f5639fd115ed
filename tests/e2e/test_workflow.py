"""The clinician's workflow in a real browser (Debian's Chromium, headless), against a live server.

Steps: sign in, upload a three-phase demo study (zip), confirm the slices, risk with Grad-CAM,
labs, survival curve, save the case, download the PDF, reopen it from the Saved cases page, sign
out. Screenshots of each step go to test-artifacts/e2e/. Every step must pass: none is skipped.
"""

from __future__ import annotations

import pytest

from nbrisk_core.store import audit, cases
from nbrisk_core.store.access import system
from nbrisk_core.store.db import make_engine
from tests.e2e.harness import Flow

from .conftest import ADMIN, CLINICIAN

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def test_sign_in_navigation_saved_cases_sign_out(server, context):
    from playwright.sync_api import expect

    flow = Flow(context.new_page(), server.url, name="basic")
    with flow.step("sign_in"):
        flow.sign_in(*CLINICIAN[:2])
    with flow.step("saved_cases"):
        flow.go_to("Saved cases")
        expect(flow.page.get_by_text("No saved cases match")).to_be_visible()
    with flow.step("admin_refused"):
        flow.go_to("Admin")
        expect(flow.page.get_by_text("This page is for administrators")).to_be_visible()
    with flow.step("models"):
        flow.go_to("Models")
        table = flow.page.locator('[data-testid="stDataFrame"]').first
        expect(table).to_be_visible()
        expect(flow.page.get_by_text("Paired tests: DeLong vs")).to_be_visible()
        # a clinician may read the comparison, not run it
        expect(flow.page.get_by_text("Run the comparison (administrators)")).to_have_count(0)
    with flow.step("sign_out"):
        flow.sign_out()
    engine = make_engine(server.database_url)
    try:
        actions = [e.action for e in audit.list_events(engine, username=CLINICIAN[0])]
    finally:
        engine.dispose()
    assert actions[:2] == ["sign_out", "sign_in"]


def test_wrong_password_is_refused_and_nothing_is_shown(server, context):
    from playwright.sync_api import expect

    page = context.new_page()
    flow = Flow(page, server.url, name="refused")
    with flow.step("wrong_password"):
        page.goto(server.url)
        page.get_by_role("textbox", name="User name").fill(CLINICIAN[0])
        page.get_by_role("textbox", name="Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("unknown user name or wrong password")).to_be_visible()
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    # a page URL typed directly is gated as well
    page.goto(f"{server.url}/Cases")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_admin_sees_the_audit_trail(server, context):
    from playwright.sync_api import expect

    flow = Flow(context.new_page(), server.url, name="admin")
    with flow.step("sign_in"):
        flow.sign_in(*ADMIN[:2])
    with flow.step("audit_trail"):
        flow.go_to("Admin")
        flow.page.get_by_role("tab", name="Audit trail").click()
        expect(flow.page.get_by_role("button", name="Export CSV")).to_be_visible()
    with flow.step("sign_out"):
        flow.sign_out()


def test_full_clinician_flow(server, context, demo_dir, tmp_path):
    """Sign in, upload, slices, risk + Grad-CAM, labs, survival, save, PDF, reopen, sign out: every step
    must happen (a run that saves nothing fails), and the store and the audit trail show each one."""
    import json
    import time

    from tests.e2e.harness import clinician_flow, make_demo_zip, models_missing_reason

    reason = models_missing_reason()
    if reason:
        pytest.skip(f"the Risk step needs the shipped model: {reason}")
    patient = json.loads((demo_dir / "cohort.json").read_text())["example_patients"][0]
    study_zip = make_demo_zip(demo_dir, patient, tmp_path)
    flow = Flow(context.new_page(), server.url, name="flow")
    started = time.perf_counter()
    outcome = clinician_flow(flow, *CLINICIAN[:2], label="E2E-0001", demo_patient=patient, study_zip=study_zip)
    elapsed = time.perf_counter() - started
    print(f"flow: {elapsed:.1f} s; steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in outcome["timings"].items()))
    assert outcome["steps"] == ["sign_in", "case_upload", "risk", "prognosis", "save_case", "saved_cases",
                                "reopen", "sign_out"]
    assert outcome["case_uid"], "the flow saved no case"
    assert outcome["pdf_bytes"] > 10_000
    engine = make_engine(server.database_url)
    try:
        events = audit.list_events(engine, case_uid=outcome["case_uid"])
        stored = cases.load_case(engine, outcome["case_uid"], system("test"), record_open=False)
        user_actions = [e.action for e in audit.list_events(engine, username=CLINICIAN[0])]
    finally:
        engine.dispose()
    actions = {e.action for e in events}
    assert {"case_created", "prediction", "case_exported", "case_opened"} <= actions
    assert stored.label == "E2E-0001" and stored.created_by == CLINICIAN[0]
    assert stored.hr_probability is not None and stored.mlrs is not None
    assert {"sign_in", "sign_out"} <= set(user_actions)
