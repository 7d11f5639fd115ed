"""Sign-in is on unless ``NBRISK_AUTH=off`` is set explicitly (issue 18, finding 9's sign-in default).

Before, a server bound to localhost ran without sign-in, so a reverse proxy on the same host published an
app where everyone was an administrator. Where a server listens says nothing about who reaches it.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .conftest import USERS
from .wire import RawClient


@pytest.mark.parametrize("value, required", [
    (None, True), ("", True), ("on", True), ("off", False), (" OFF ", False), ("Off", False),
    ("0", True), ("false", True), ("no", True), ("of", True),  # anything but "off" fails closed
])
def test_sign_in_is_required_unless_explicitly_off(monkeypatch, value, required):
    from nbrisk_ui.auth import auth_required

    if value is None:
        monkeypatch.delenv("NBRISK_AUTH", raising=False)
    else:
        monkeypatch.setenv("NBRISK_AUTH", value)
    assert auth_required() is required


@pytest.fixture(scope="module")
def localhost_server_without_setting(demo_dir):
    """A server on 127.0.0.1 started with no NBRISK_AUTH at all (what a reverse proxy would publish)."""
    from tests.e2e.harness import start_server, stop_server

    server = start_server(USERS, data_dir=demo_dir, auth=None)
    yield server
    stop_server(server)


def test_a_localhost_server_without_the_setting_asks_for_sign_in(localhost_server_without_setting):
    with RawClient(localhost_server_without_setting.url) as anonymous:
        anonymous.rerun()
        anonymous.read_until("script_finished")
    assert anonymous.saw(b"Sign in to continue"), "no sign-in form on a localhost server without NBRISK_AUTH"
    # the home page's cohort figures stay behind the gate
    assert not anonymous.saw(b"Median follow-up") and not anonymous.saw(b"Overall survival by risk group")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("args, auth", [([], "off"), (["HOST=0.0.0.0"], "on"), (["NBRISK_AUTH=on"], "on")])
def test_make_run_turns_sign_in_off_only_for_the_local_demo_and_says_so(repo_root, monkeypatch, args, auth):
    monkeypatch.delenv("NBRISK_AUTH", raising=False)
    # -n: print the recipe without running it (nor its setup prerequisites' commands)
    out = subprocess.run(["make", "-n", "run", *args], cwd=repo_root,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    run_line = next(line for line in out.splitlines() if "streamlit run streamlit_app.py" in line)
    assert run_line.startswith(f"NBRISK_AUTH={auth} ")
    assert f'if [ "{auth}" = "off" ]' in out  # the notice the recipe prints (sign-in OFF / ON)
    assert "Sign-in is OFF (NBRISK_AUTH=off)" in out and "Sign-in is ON" in out
