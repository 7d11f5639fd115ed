"""Two Streamlit app servers on one PostgreSQL, behind nginx with sticky sessions (deploy/nginx.conf).

The test runs the shipped nginx config on loopback (only its listen address, upstream ports and file
paths rewritten), routes one browser session to each server through the proxy (the route cookie the
proxy sets), runs the clinician's whole flow in both at once (upload through the proxy, websocket,
save, report, reopen), and checks: each save is there once, with its own label and user (none lost,
none crossed); the proxy kept every request of a session on one server and upgraded the websocket;
a stale save through the other server's connection pool is refused (optimistic locking across
servers); the audit trail holds every sign-in, save and sign-out and `nbrisk audit verify` passes.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.e2e import harness
from tests.e2e.harness import (REPO_ROOT, Flow, browser_context, chromium_missing_reason, clinician_flow,
                               free_port, make_demo_zip, models_missing_reason, start_server, stop_server)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.postgres]

PG_URL = os.environ.get("NBRISK_TEST_PG_URL", "").strip()
NGINX_CONF = REPO_ROOT / "deploy" / "nginx.conf"
LOG_LINE = re.compile(r'"(?P<method>\S+) (?P<uri>\S+)" (?P<status>\d+) route=(?P<route>\S+) '
                      r"upstream=(?P<upstream>.+?) rt=")


def _servers(line: dict) -> set[str]:
    """The servers a logged request was tried on ($upstream_addr is "A, B" after a retry)."""
    return set(re.split(r"[,:] ", line["upstream"]))


def _nginx_missing_reason() -> str | None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        return "nginx is not installed (apt-get install nginx-light; .ci/system-packages.sh does)"
    return None


def nginx_config_for(prefix: Path, listen_port: int, upstream_ports: tuple[int, int]) -> str:
    """deploy/nginx.conf with the loopback test's port and paths; everything else as shipped."""
    text = NGINX_CONF.read_text()
    replacements = [("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{listen_port};"),
                    ("server 127.0.0.1:8501 ", f"server 127.0.0.1:{upstream_ports[0]} "),
                    ("server 127.0.0.1:8502 ", f"server 127.0.0.1:{upstream_ports[1]} "),
                    ("/var/log/nginx/", f"{prefix}/"), ("/var/lib/nginx/", f"{prefix}/"),
                    ("pid /run/", f"pid {prefix}/")]
    for old, new in replacements:
        assert old in text, f"deploy/nginx.conf no longer holds {old!r}: update this test with it"
        text = text.replace(old, new)
    return text


class Nginx:
    def __init__(self, prefix: Path, port: int, upstream_ports: tuple[int, int]):
        self.prefix, self.port = prefix, port
        self.url = f"http://127.0.0.1:{port}"
        (prefix / "nginx.conf").write_text(nginx_config_for(prefix, port, upstream_ports))
        self.command = ["nginx", "-p", str(prefix), "-e", str(prefix / "startup-error.log"),
                        "-c", str(prefix / "nginx.conf")]
        check = subprocess.run([*self.command, "-t"], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        # the master stays in the foreground (a child of this test), so stopping it is certain
        self.process = subprocess.Popen([*self.command, "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("nginx did not start: " + self.error_log())
                time.sleep(0.3)

    def error_log(self) -> str:
        path = self.prefix / "nbrisk-error.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def access_log(self) -> list[dict]:
        lines = (self.prefix / "nbrisk-access.log").read_text(errors="replace").splitlines()
        return [m.groupdict() for m in map(LOG_LINE.search, lines) if m]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: fast shutdown of the master and its workers
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@pytest.fixture(scope="module")
def pg_database():
    """A fresh database on the PostgreSQL server of NBRISK_TEST_PG_URL (dropped after)."""
    if not PG_URL:
        pytest.skip("NBRISK_TEST_PG_URL is not set (bash .ci/postgres.sh starts a throwaway PostgreSQL)")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(PG_URL)
    name = f"nbrisk_two_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


USERS = [("twoa", "two-servers-password-a", "clinician"), ("twob", "two-servers-password-b", "clinician")]


@pytest.fixture(scope="module")
def deployment(pg_database, tmp_path_factory, request):
    """Server A (migrates the database, adds the users), server B on the same database, nginx in front."""
    for reason in (chromium_missing_reason(), models_missing_reason(), _nginx_missing_reason()):
        if reason:
            pytest.skip(reason)
    request.getfixturevalue("demo_bundle")   # the clinicians' Prognosis step loads it (no fit at start)
    cohort = REPO_ROOT / "data" / "demo"
    servers = []
    proxy = None
    try:
        # no warm start: two servers importing everything at once while four sessions start their pages made
        # the Case page miss its 90 s once on 2 cores (this test checks saves across servers, not start-up speed)
        quiet = {"NBRISK_WARM_START": "off"}
        servers.append(start_server(USERS, data_dir=cohort, database_url=pg_database, env=quiet))
        servers.append(start_server([], data_dir=cohort, database_url=pg_database, env=quiet))
        ports = tuple(int(s.url.rsplit(":", 1)[1]) for s in servers)
        proxy = Nginx(tmp_path_factory.mktemp("nginx"), free_port(), ports)
        yield {"servers": servers, "proxy": proxy, "database_url": pg_database, "cohort": cohort}
    finally:
        if proxy is not None:
            proxy.stop()
        for server in servers:
            stop_server(server)


def _upstream_of_routes(proxy: Nginx, routes: list[str]) -> dict[str, str]:
    """Send one request per route cookie through the proxy; which server each route landed on."""
    for route in routes:
        request = urllib.request.Request(f"{proxy.url}/_stcore/health",
                                         headers={"Cookie": f"nbrisk_route={route}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.read().strip() == b"ok"
            assert any(c.startswith(f"nbrisk_route={route};") for c in response.headers.get_all("Set-Cookie"))
    seen = {}
    for line in proxy.access_log():
        if line["route"] in routes and line["uri"] == "/_stcore/health":
            seen.setdefault(line["route"], set()).update(_servers(line))
    assert all(len(upstreams) == 1 for upstreams in seen.values()), f"a route moved between servers: {seen}"
    return {route: upstreams.pop() for route, upstreams in seen.items()}


def _session(proxy_url: str, route: str, username: str, password: str, label: str, study_zip: Path,
             demo_patient: str) -> dict:
    """One browser through the proxy, pinned to a server by its route cookie (a thread of its own)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, browser_context(pw) as context:
        context.add_cookies([{"name": "nbrisk_route", "value": route, "url": proxy_url}])
        flow = Flow(context.new_page(), proxy_url, name=username)
        outcome = clinician_flow(flow, username, password, label=label, demo_patient=demo_patient,
                                 study_zip=study_zip)
    return {**outcome, "route": route, "username": username, "label": label}


def test_two_servers_behind_nginx_share_one_postgresql(deployment, tmp_path):
    from nbrisk_core.cli import main
    from nbrisk_core.store import audit
    from nbrisk_core.store import cases as store_cases
    from nbrisk_core.store.access import system
    from nbrisk_core.store.db import make_engine

    proxy = deployment["proxy"]
    servers = {s.url.replace("http://", ""): s for s in deployment["servers"]}
    # 1. a new client gets a route cookie; the same cookie always reaches the same server, and
    #    different routes spread over both servers
    with urllib.request.urlopen(f"{proxy.url}/", timeout=10) as response:
        assert any(c.startswith("nbrisk_route=") for c in response.headers.get_all("Set-Cookie") or [])
        assert b"<html" in response.read().lower()
    landing = _upstream_of_routes(proxy, [f"route-{k:02d}" for k in range(24)])
    assert set(landing.values()) == set(servers), f"the routes did not reach both servers: {landing}"
    pinned = {upstream: next(r for r, u in landing.items() if u == upstream) for upstream in servers}

    # 2. the clinician's whole flow at once, one session on each server, through the proxy
    meta = json.loads((deployment["cohort"] / "cohort.json").read_text())
    patient = (meta.get("example_patients") or ["P0001"])[0]
    study_zip = make_demo_zip(deployment["cohort"], patient, tmp_path / "studies")
    jobs = [(upstream, route, *USERS[k][:2], f"TWO-SERVERS-{k}") for k, (upstream, route) in
            enumerate(sorted(pinned.items()))]
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(_session, proxy.url, route, user, password, label, study_zip, patient)
                   for _, route, user, password, label in jobs]
        outcomes = [f.result(timeout=harness.STEP_TIMEOUT_MS / 1000 * 12) for f in futures]

    # 3. the proxy kept each session on its server, upgraded its websocket, and took the upload there
    log = proxy.access_log()
    for (upstream, route, *_), outcome in zip(jobs, outcomes):
        lines = [line for line in log if line["route"] == route]
        left = [line for line in lines if _servers(line) != {upstream}]
        assert not left, f"session {route} left {upstream}: {left[:5]}"
        assert any(line["uri"] == "/_stcore/stream" and line["status"] == "101" for line in lines), \
            f"no websocket upgrade through the proxy for {route}"
        assert any(line["method"] == "PUT" and line["uri"].startswith("/_stcore/upload_file")
                   for line in lines), f"the upload of {route} did not go through the proxy"

    # 4. no lost or cross-wired save: one case per session, with its own label and user
    engine = make_engine(deployment["database_url"])
    try:
        uids = [o["case_uid"] for o in outcomes]
        assert all(uids) and len(set(uids)) == len(uids)
        for outcome in outcomes:
            record = store_cases.load_case(engine, outcome["case_uid"], system("test"), record_open=False)
            assert (record.label, record.created_by) == (outcome["label"], outcome["username"])
        listed = store_cases.list_cases(engine, system("test"))
        assert sorted(c.case_uid for c in listed) == sorted(uids)

        # 5. optimistic locking across servers: each server holds its own connection pool
        other = make_engine(deployment["database_url"])
        try:
            owner = outcomes[0]["username"]
            here = store_cases.load_case(engine, uids[0], owner, record_open=False)
            there = store_cases.load_case(other, uids[0], owner, record_open=False)
            assert here.version == there.version
            here.notes = "saved first, through server A's pool"
            store_cases.save_case(engine, here, owner)
            there.notes = "stale: must not overwrite"
            with pytest.raises(store_cases.CaseConflictError):
                store_cases.save_case(other, there, owner)
            assert store_cases.load_case(other, uids[0], owner, record_open=False).notes == here.notes
        finally:
            other.dispose()

        # 6. the audit trail is complete and intact
        counts = audit.count_events(engine, ("sign_in", "sign_out", "case_created", "case_opened",
                                             "case_exported"))
        for outcome in outcomes:
            user = counts.get(outcome["username"], {})
            assert user.get("sign_in", 0) >= 1 and user.get("sign_out", 0) >= 1, (outcome["username"], user)
            assert user.get("case_created") == 1 and user.get("case_opened", 0) >= 1
            assert user.get("case_exported", 0) >= 1
    finally:
        engine.dispose()
    assert main(["audit", "--database-url", deployment["database_url"], "verify"]) == 0
