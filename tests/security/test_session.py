"""Sessions against a live server (issue 18, findings 1, 4 and 7's Grad-CAM): replayed as an attacker would.

The attacker is a raw client that speaks Streamlit's websocket protocol (protobuf ``BackMsg`` out,
``ForwardMsg`` in; the XSRF token and the session id to resume travel in ``Sec-WebSocket-Protocol``,
as the frontend sends them) and plain HTTP. It knows what URLs and logs show (a session id) but holds
no sign-in cookie.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from .conftest import ADMIN
from .wire import RawClient, own_xsrf_cookie, put_upload

browser = pytest.mark.browser
CASE_LABEL = "TAKEOVER-4711"  # a saved case's label: must never reach the attacker


# ===================================================================== measures
def rss_bytes(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def cache_bytes(base_url: str) -> dict[str, float]:
    """Bytes held per st.cache_data / st.cache_resource entry, from the server's own metrics."""
    with urllib.request.urlopen(base_url + "/_stcore/metrics", timeout=30) as response:
        text = response.read().decode()
    held: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("cache_memory_bytes{"):
            labels, value = line.rsplit(" ", 1)
            held[labels] = held.get(labels, 0.0) + float(value)
    return held


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


# ===================================================================== the signed-in victim
class Tab:
    """A signed-in Chromium tab; records the session id and the last rerun request its websocket sent."""

    def __init__(self, context, base_url: str, name: str):
        from tests.e2e.harness import Flow

        self.page = context.new_page()
        self.session_ids: list[str] = []
        self.received: list[bytes] = []
        self.last_rerun = None
        self.page.on("websocket", self._watch)
        self.flow = Flow(self.page, base_url, name=name, screenshots=False)

    def _watch(self, ws) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        def received(payload):
            if isinstance(payload, bytes):
                self.received.append(payload)
                msg = ForwardMsg()
                msg.ParseFromString(payload)
                if msg.WhichOneof("type") == "new_session":
                    self.session_ids.append(msg.new_session.initialize.session_id)

        def sent(payload):
            if isinstance(payload, bytes):
                msg = BackMsg()
                msg.ParseFromString(payload)
                if msg.WhichOneof("type") == "rerun_script":
                    self.last_rerun = msg.rerun_script

        ws.on("framereceived", received)
        ws.on("framesent", sent)

    @property
    def session_id(self) -> str:
        return self.session_ids[-1]


@pytest.fixture(scope="module")
def saved_case(live_server, store_engine):
    from nbrisk_core.store import cases

    rng = np.random.default_rng(7)
    hu = rng.integers(-50, 150, (16, 16)).astype(np.int16)
    record = cases.CaseRecord(label=CASE_LABEL, age_months=30.0, sex="F", risk_class="HR", hr_probability=0.8,
                              clinical_entered={"nse": 95.0}, clinical_imputed={},
                              slices={"art": cases.SliceRecord("art", hu, 5, 30.0)})
    return cases.save_case(store_engine, record, ADMIN[0])


@pytest.fixture(scope="module")
def alice(live_server, playwright_instance, saved_case):
    """Alice, signed in, on the Saved cases page (her case on screen)."""
    from tests.e2e.harness import browser_context

    with browser_context(playwright_instance) as context:
        tab = Tab(context, live_server.url, "alice")
        tab.flow.sign_in(*ADMIN[:2])
        tab.flow.go_to("Saved cases")
        tab.flow.wait_idle()
        # the control: her own websocket brought her case (what the attacker must not get)
        assert any(CASE_LABEL.encode() in payload for payload in tab.received), "her case is not on her page"
        yield tab


# ===================================================================== finding 4: server-wide effects
def test_an_anonymous_session_cannot_upload_into_server_memory(live_server):
    with RawClient(live_server.url) as anonymous:
        anonymous.rerun()
        anonymous.read_until("script_finished")
        size = 64 * 2**20
        before = rss_bytes(live_server.process.pid)
        status = put_upload(live_server.url, anonymous.session_id, b"\0" * size, xsrf=anonymous.xsrf)
        time.sleep(0.5)
        grown = rss_bytes(live_server.process.pid) - before
    print(f"anonymous PUT of {size >> 20} MiB: status {status}, server RSS grew {grown / 2**20:.1f} MiB")
    assert status in {403, None}, f"an anonymous session's upload was accepted ({status})"
    assert grown < size / 4, f"server RSS grew {grown / 2**20:.0f} MiB for an anonymous {size >> 20} MiB PUT"


@browser
def test_an_anonymous_clear_cache_leaves_every_cache_warm(live_server, alice):
    from streamlit.proto.BackMsg_pb2 import BackMsg

    alice.flow.go_to("Home", expect_heading="NBRisk")  # the cohort tables are cached (st.cache_data)
    warm = cache_bytes(live_server.url)  # the first read of the metrics is fresh
    assert sum(warm.values()) > 0, f"no cache entries to begin with: {warm}"
    with RawClient(live_server.url) as anonymous:
        anonymous.rerun()
        anonymous.read_until("script_finished")
        msg = BackMsg()
        msg.clear_cache = True
        anonymous.send(msg)
        time.sleep(1.0)
    time.sleep(5.5)  # the metrics endpoint caches cache_memory_bytes for 5 s
    after = cache_bytes(live_server.url)
    print(f"cache bytes before {sum(warm.values()):.0f}, after an anonymous clear_cache "
          f"{sum(after.values()):.0f}")
    assert set(warm) <= set(after) and all(after[k] > 0 for k in warm if warm[k] > 0), \
        f"an anonymous clear_cache emptied caches: before {warm}, after {after}"


def test_the_guard_drops_clear_cache_unless_an_admin_sent_it_and_gates_fragment_reruns():
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from streamlit.proto.BackMsg_pb2 import BackMsg

    from nbrisk_ui.websession import SessionGuard, SessionRegistry

    registry = SessionRegistry()
    admin_token, _ = registry.redeem(registry.issue_code("alice", "admin"))
    clinician_token, _ = registry.redeem(registry.issue_code("bob", "clinician"))
    clear, fragment = BackMsg(), BackMsg()
    clear.clear_cache = True
    fragment.rerun_script.fragment_id = "slice-viewer"
    frames = [clear.SerializeToString(), fragment.SerializeToString()]

    async def received(token: str | None) -> list[tuple[str, str]]:
        queue = [{"type": "websocket.receive", "bytes": f} for f in frames]

        async def receive():
            return queue.pop(0) if queue else {"type": "websocket.disconnect"}

        filtered = SessionGuard(None, registry)._filtered(receive, token)
        out = []
        while (message := await filtered())["type"] == "websocket.receive":
            back = BackMsg()
            back.ParseFromString(message["bytes"])
            out.append((back.WhichOneof("type"), back.rerun_script.fragment_id))
        return out

    # a thread of its own: Playwright's event loop may be running in this one
    with ThreadPoolExecutor(1) as pool:
        def run(token):
            return pool.submit(asyncio.run, received(token)).result()

        assert run(admin_token) == [("clear_cache", ""), ("rerun_script", "slice-viewer")]
        assert run(clinician_token) == [("rerun_script", "slice-viewer")]
        assert run(None) == [("rerun_script", "")]  # no cookie: a full run, through the gate
        registry.revoke(admin_token)  # signed out in another tab
        assert run(admin_token) == [("rerun_script", "")]


def test_the_registry_codes_are_single_use_and_sessions_need_their_own_cookie():
    from nbrisk_ui.websession import SessionRegistry

    registry = SessionRegistry()
    code = registry.issue_code("alice", "admin")
    token, who = registry.redeem(code)
    assert (who.username, who.role) == ("alice", "admin") and registry.redeem(code) is None
    other, _ = registry.redeem(registry.issue_code("bob", "clinician"))
    registry.bind("s-alice", token)
    assert registry.session_accepts("s-alice", token)
    assert not registry.session_accepts("s-alice", other) and not registry.session_accepts("s-alice", None)
    assert not registry.session_accepts("s-unbound", token)
    assert registry.revoke(token) == ["s-alice"]
    assert registry.lookup(token) is None and not registry.is_bound("s-alice")
    expired = SessionRegistry(code_ttl_s=0.0)
    assert expired.redeem(expired.issue_code("alice", "admin")) is None


# ===================================================================== finding 1: session takeover
@browser
def test_a_session_id_alone_does_not_take_over_a_signed_in_session(live_server, alice, store_engine):
    from playwright.sync_api import expect

    from nbrisk_core.store import audit

    assert alice.last_rerun is not None and alice.last_rerun.page_script_hash
    with RawClient(live_server.url, session_id=alice.session_id) as attacker:
        attacker.rerun(alice.last_rerun)  # her own last request, replayed on her session id
        attacker.read_until("script_finished")
    assert not attacker.saw(ADMIN[0].encode()), "her user name reached a client without her cookie"
    assert not attacker.saw(CASE_LABEL.encode()), "saved-case data reached a client without the cookie"
    assert attacker.saw(b"Sign in"), "the attacker's run should have ended at the sign-in form"
    assert attacker.session_id and attacker.session_id != alice.session_id
    refused = [e for e in audit.list_events(store_engine, username=ADMIN[0], action="sign_out")
               if "without its sign-in cookie" in (e.detail or {}).get("reason", "")]
    assert refused, "the refused resume is not in the audit trail"
    # her own browser was neither taken over nor signed out
    alice.flow.go_to("Home", expect_heading="NBRisk")
    expect(alice.page.get_by_text(f"Signed in as {ADMIN[0]}")).to_be_visible()


def test_a_session_at_the_sign_in_form_is_not_up_for_grabs_either(live_server):
    """The run that checks a password hands its one-time code to whoever is connected: another browser
    (another XSRF token) that names the session id gets a fresh session, the creator resumes its own."""
    with RawClient(live_server.url) as victim:
        victim.rerun()
        victim.read_until("script_finished")
        victim_xsrf = victim.xsrf
    with RawClient(live_server.url, session_id=victim.session_id) as attacker:
        attacker.rerun()
        attacker.read_until("script_finished")
    assert attacker.session_id and attacker.session_id != victim.session_id
    with RawClient(live_server.url, session_id=victim.session_id, xsrf=victim_xsrf) as again:
        again.rerun()
        again.read_until("script_finished")
    assert again.session_id == victim.session_id  # a reconnect of the same browser still resumes


def test_gate_signs_out_a_run_whose_cookie_does_not_prove_the_session(tmp_path, monkeypatch):
    """The second line: a run whose connection carries no matching cookie is signed out before drawing."""
    from streamlit.testing.v1 import AppTest

    from nbrisk_core.store import audit, users
    from nbrisk_core.store.db import dispose_engines, get_engine
    from nbrisk_ui import auth, state

    url = f"sqlite:///{tmp_path / 'gate.db'}"
    monkeypatch.setenv("NBRISK_DATABASE_URL", url)
    monkeypatch.setenv("NBRISK_AUTH", "on")
    users.add_user(get_engine(url), "alice", "correct horse battery", "admin")
    # a served run (a browser behind it) whose websocket carried no sign-in cookie
    monkeypatch.setattr(auth, "_session_proof", lambda: auth._Proof(served=True, session_id="s-1"))
    at = AppTest.from_function(_gated_app, default_timeout=60)
    at.session_state[state.USER] = {"username": "alice", "role": "admin"}
    at.session_state[state.CHOSEN_SLICES] = {"art": "her slices"}
    at.run()
    try:
        assert not at.exception
        assert state.USER not in at.session_state and state.CHOSEN_SLICES not in at.session_state
        assert not [m for m in at.markdown if "content for" in m.value]
        assert at.button[0].label == "Sign in"
        [event] = audit.list_events(get_engine(url), action="sign_out")
        assert event.username == "alice" and "mismatch" in event.detail["reason"]
    finally:
        dispose_engines()


def _gated_app():
    import streamlit as st

    from nbrisk_ui import auth

    user = auth.gate()
    st.write(f"content for {user['username'] if user else 'everyone'}")


@browser
def test_uploads_into_a_signed_in_session_need_its_cookie(live_server, alice):
    cookies = {c["name"]: c["value"] for c in alice.page.context.cookies()}
    assert cookies.get("nbrisk_session"), "the signed-in browser holds no sign-in cookie"
    # an outsider who read her session id from an upload URL or a log: refused
    outsider_xsrf = own_xsrf_cookie(live_server.url)
    assert put_upload(live_server.url, alice.session_id, b"x" * 1024, xsrf=outsider_xsrf) == 403
    # her browser's own upload (its cookies, her session): accepted
    assert put_upload(live_server.url, alice.session_id, b"x" * 1024, xsrf=cookies["_streamlit_xsrf"],
                      cookies=cookies) == 204


# ===================================================================== finding 7: media after sign-out
@browser
def test_signing_out_stops_serving_the_sessions_media(live_server, new_browser, demo_dir):
    """Grad-CAM on one tab, the audit export on a second tab of the same sign-in; sign out: both 404."""
    import json

    from playwright.sync_api import expect

    from tests.e2e.harness import models_missing_reason, step_risk

    if models_missing_reason():
        pytest.skip(models_missing_reason())
    patient = json.loads((demo_dir / "cohort.json").read_text())["example_patients"][0]
    context = new_browser()
    risk = Tab(context, live_server.url, "risk")
    risk.flow.sign_in(*ADMIN[:2])
    step_risk(risk.flow, demo_patient=patient)
    cams = risk.page.locator('[data-testid="stImage"] img').evaluate_all("els => els.map(e => e.src)")
    assert cams and all("/media/" in src for src in cams)

    admin = Tab(context, live_server.url, "admin")  # a second tab: signed in by the same cookie
    admin.page.goto(live_server.url)
    expect(admin.page.get_by_text(f"Signed in as {ADMIN[0]}")).to_be_visible()
    admin.flow.go_to("Admin")
    admin.page.get_by_role("tab", name="Audit trail").click()
    with admin.page.expect_download() as download:
        admin.page.get_by_role("button", name="Export CSV").click()
    export_url = download.value.url
    assert "/media/" in export_url and status_of(export_url) == 200
    assert all(status_of(src) == 200 for src in cams)

    admin.flow.sign_out()
    assert {src: status_of(src) for src in cams + [export_url]} == {src: 404 for src in cams + [export_url]}
    # the first tab's sign-in ended too: its next run shows the sign-in form, not the page
    risk.page.get_by_role("link", name="Home").first.click()
    expect(risk.page.get_by_role("button", name="Sign in")).to_be_visible()
