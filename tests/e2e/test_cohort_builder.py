"""Issue 19 in a real browser: a reviewer confirms one patient of an imported cohort in the Cohort builder.

The server opens on a 2-patient imported cohort (``nbrisk cohort import`` with DICOM studies, slices
proposed by ``nbrisk cohort slices --auto``: the ``proposed_site`` fixture). Signed in as a clinician,
the reviewer confirms every phase of the first patient in the queue, the first one with the keyboard
(``A``), the others with the buttons, and skips the other patient's items (``Skip for now``). Asserted:
the progress counter moves with each decision, ``slices.csv`` names the reviewer in ``confirmed_by``,
the other patient is untouched, and the audit trail holds one ``slice_confirmed`` event per phase.
"""

from __future__ import annotations

import re
import shutil

import pytest

from tests.e2e.harness import Flow, start_server, stop_server

from .conftest import CLINICIAN

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(420)]

TITLE = re.compile(r"^(SB-\d{3}) · (\w+)")


def _progress(page) -> int:
    """The number of decided proposals the progress bar states ("N of M phase proposals reviewed")."""
    text = page.get_by_text(re.compile(r"\d+ of \d+ phase proposals reviewed")).first.inner_text()
    return int(re.search(r"(\d+) of \d+ phase proposals reviewed", text)[1])


@pytest.fixture(scope="module")
def builder_server(proposed_site, tmp_path_factory):
    cohort = tmp_path_factory.mktemp("e2e-builder") / "site-b"
    shutil.copytree(proposed_site["proposed"], cohort)
    srv = start_server([CLINICIAN], data_dir=cohort)
    yield srv, cohort
    stop_server(srv)


def test_a_reviewer_confirms_one_patient_in_the_cohort_builder(builder_server, context):
    from playwright.sync_api import expect

    from nbrisk_core.cohort.review import read_proposals, read_slices, review_queue
    from nbrisk_core.store import audit
    from nbrisk_core.store.db import make_engine

    server, cohort = builder_server
    queue = review_queue(cohort)
    patient = queue[0].patient_id
    phases = {i.phase.value for i in queue if i.patient_id == patient}
    total = len(queue)
    assert len(phases) == 3 and total == 6   # two patients, three phases each, none decided

    flow = Flow(context.new_page(), server.url, name="cohort_builder")
    page = flow.page
    with flow.step("sign_in"):
        flow.sign_in(*CLINICIAN[:2])
    with flow.step("open_builder"):
        flow.go_to("Cohort builder")
        expect(page.get_by_text(f"0 of {total} phase proposals reviewed")).to_be_visible()

    decided, first = 0, True
    with flow.step("confirm_patient"):
        for _ in range(2 * total):   # every item at most twice (skipped ones come back at the end)
            if decided == len(phases):
                break
            heading = page.get_by_role("heading", name=TITLE).first
            expect(heading).to_be_visible()
            title = heading.inner_text().strip()
            if TITLE.search(title)[1] != patient:
                page.get_by_role("button", name="Skip for now").click()
                expect(page.get_by_role("heading", name=title, exact=True)).to_have_count(0)
                flow.wait_idle()
                continue
            accept = page.get_by_role("button", name=re.compile(r"^Accept proposed slice \d+\b"))
            if first and accept.is_enabled():
                page.evaluate("document.activeElement && document.activeElement.blur()")   # no widget
                page.keyboard.press("a")
                first = False
            elif accept.is_enabled():
                accept.click()
            else:   # no tumour found: the reviewer uses the slice shown
                page.get_by_role("button", name=re.compile(r"^Use slice \d+ \(move\)")).click()
            decided += 1
            expect(page.get_by_text(f"{decided} of {total} phase proposals reviewed")).to_be_visible()
            flow.wait_idle()
            flow.assert_no_exception()
    assert decided == len(phases) and _progress(page) == len(phases)
    assert not first, "the keyboard shortcut A was not exercised (no proposal could be accepted)"

    slices = read_slices(cohort)
    mine = slices[slices["patient_id"] == patient]
    assert set(mine["phase"]) == phases
    assert set(mine["confirmed_by"]) == {CLINICIAN[0]} and all(mine["confirmed_at"])
    assert not any(slices.loc[slices["patient_id"] != patient, "confirmed_by"])
    proposals = read_proposals(cohort)
    assert set(proposals.loc[proposals["patient_id"] == patient, "decided_by"]) == {CLINICIAN[0]}
    assert not any(proposals.loc[proposals["patient_id"] != patient, "decision"])

    engine = make_engine(server.database_url)
    try:
        events = audit.list_events(engine, action="slice_confirmed")
        assert sorted(e.detail["phase"] for e in events) == sorted(phases)
        assert {e.username for e in events} == {CLINICIAN[0]}
        assert all(patient not in audit.canonical_json(e.detail) for e in events)
        assert audit.verify_chain(engine).ok
    finally:
        engine.dispose()
