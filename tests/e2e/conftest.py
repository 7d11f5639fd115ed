"""Browser tests: one dashboard server (sign-in on, throwaway DB) per module, Debian's Chromium."""

from __future__ import annotations

import pytest

from tests.e2e.harness import browser_context, chromium_missing_reason, start_server, stop_server

CLINICIAN = ("clara", "clinician-pass-1234", "clinician")
ADMIN = ("adam", "admin-pass-123456", "admin")


def pytest_collection_modifyitems(items):
    reason = chromium_missing_reason()
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def compare_output(tmp_path_factory):
    """A small ``nbrisk compare`` output for the Models page (synthetic cohort, three models)."""
    from tests.compare.conftest import write_tiny_comparison

    out = tmp_path_factory.mktemp("e2e-compare") / "compare"
    write_tiny_comparison(out)
    return out


@pytest.fixture(scope="module")
def server(monkeypatch_module, demo_dir, demo_bundle, compare_output):
    # demo_bundle: the Prognosis step loads the frozen bundle, it does not fit (step_prognosis checks)
    srv = start_server([CLINICIAN, ADMIN], data_dir=demo_dir, env={"NBRISK_COMPARE_DIR": str(compare_output)})
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def playwright_instance():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def context(playwright_instance):
    with browser_context(playwright_instance) as ctx:
        yield ctx
