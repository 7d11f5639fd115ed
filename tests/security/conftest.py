"""Red-team tests against a live dashboard: the server fixture (sign-in on, throwaway database).

Each module that asks for ``live_server`` gets its own server (module scope), started with
the browser harness (:func:`tests.e2e.harness.start_server`): ``NBRISK_AUTH=on``, a fresh
SQLite database in a temporary folder holding the users of :data:`USERS`, the demo cohort. Browser tests
are marked ``browser`` and skipped, with the reason, where Debian's Chromium or Playwright is missing.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.e2e.harness import browser_context, chromium_missing_reason, start_server, stop_server

#: (user name, password, role) of the live server's accounts
ADMIN = ("alice", "alice-admin-pass-2931", "admin")
CLINICIAN = ("bob", "bob-clinician-pass-8164", "clinician")
USERS = [ADMIN, CLINICIAN]


@pytest.fixture(scope="module")
def live_server(demo_dir):
    """A running dashboard with sign-in on and its own database; stopped after the module."""
    # no warm start: its imports and bundle load grow the server's memory while the upload test measures it
    server = start_server(USERS, data_dir=demo_dir, env={"NBRISK_WARM_START": "off"})
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def store_engine(live_server):
    """An engine on the live server's database (to read its audit trail)."""
    from nbrisk_core.store.db import make_engine

    engine = make_engine(live_server.database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def playwright_instance():
    reason = chromium_missing_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def new_browser(playwright_instance):
    """``new_browser()`` opens a fresh Chromium context (its own cookies); all are closed afterwards."""
    with contextlib.ExitStack() as stack:
        yield lambda: stack.enter_context(browser_context(playwright_instance))


@pytest.fixture
def store_url(tmp_path, monkeypatch):
    """A throwaway SQLite case store that the pages under AppTest open (``NBRISK_DATABASE_URL``)."""
    from nbrisk_core.store.db import dispose_engines

    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("NBRISK_DATABASE_URL", url)
    yield url
    dispose_engines()
