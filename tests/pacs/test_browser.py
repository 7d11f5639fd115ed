"""The Case page's "From PACS" walked once in a real browser (Debian's Chromium) against the test Orthanc."""

from __future__ import annotations

import pytest

from tests.e2e.harness import chromium_missing_reason

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

CLINICIAN = ("petra", "pacs-clinician-pass-1234", "clinician")


def test_from_pacs_search_pick_pull(orthanc, demo_dir):
    reason = chromium_missing_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    from tests.e2e.harness import Flow, browser_context, start_server, stop_server

    env = {"NBRISK_DICOMWEB_URL": orthanc.dicomweb, "NBRISK_DICOMWEB_USER": orthanc.username,
           "NBRISK_DICOMWEB_PASSWORD": orthanc.password, "NBRISK_PACS_KEEP_STUDY_LINK": "1",
           "NBRISK_PACS_CONFIG": "/nonexistent/nbrisk-pacs.toml"}
    server = start_server([CLINICIAN], data_dir=demo_dir, env=env)
    try:
        with sync_playwright() as pw, browser_context(pw) as context:
            flow = Flow(context.new_page(), server.url, name="pacs")
            page = flow.page
            with flow.step("sign_in"):
                flow.sign_in(*CLINICIAN[:2])
            with flow.step("case_page"):
                flow.go_to("Case")
                page.get_by_text("From PACS", exact=True).click()
                flow.wait_idle()
            with flow.step("search"):
                box = page.get_by_role("textbox", name="Patient ID")
                box.fill("SYNTH-P0001")
                box.press("Enter")
                flow.wait_idle()
                page.get_by_role("button", name="Search").click()
                flow.wait_idle()
                expect(page.get_by_role("button", name="Pull study")).to_be_visible(timeout=60_000)
            with flow.step("pull"):
                page.get_by_role("button", name="Pull study").click()
                pulled = page.get_by_text("archive study from env (study link kept)")
                expect(pulled).to_be_visible(timeout=120_000)
                flow.assert_no_exception()
                expect(page.get_by_text("3 image series")).to_be_visible()
    finally:
        stop_server(server)
