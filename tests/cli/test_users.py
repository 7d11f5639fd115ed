"""`nbrisk users add|list|disable`: passwords from stdin or a prompt only, one-line errors, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PASSWORD = "correct horse battery"


def _nbrisk(args, url, stdin=""):
    env = {**os.environ, "NBRISK_DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "nbrisk_core", "users", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_add_list_disable(url):
    added = _nbrisk(["add", "alice", "--role", "admin", "--password-stdin"], url, PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "user alice added (role admin)"
    assert PASSWORD not in added.stdout + added.stderr
    assert _nbrisk(["disable", "alice"], url).returncode == 0
    listed = json.loads(_nbrisk(["list", "--json"], url).stdout)
    assert [(u["username"], u["role"], u["active"]) for u in listed] == [("alice", "admin", False)]
    from nbrisk_core.store import users
    from nbrisk_core.store.db import dispose_engines, get_engine

    try:
        with pytest.raises(users.SignInError):
            users.authenticate(get_engine(url), "alice", PASSWORD, "s")
    finally:
        dispose_engines()


def test_errors_are_one_line_and_exit_2(url):
    short = _nbrisk(["add", "bob", "--password-stdin"], url, "short\n")
    assert short.returncode == 2
    assert short.stderr.strip().splitlines() == [
        "nbrisk users: error: password is too short (expected at least 10 characters)"]
    missing = _nbrisk(["disable", "nobody"], url)
    assert (missing.returncode, missing.stderr.strip()) == (2, "nbrisk users: error: user 'nobody' does not exist")
    # no terminal and no --password-stdin: refuses instead of reading a password from a pipe silently
    no_tty = _nbrisk(["add", "carol"], url, PASSWORD + "\n")
    assert no_tty.returncode == 2 and "--password-stdin" in no_tty.stderr


def test_password_is_never_an_argument():
    from nbrisk_core.cli import build_parser

    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["users", "add", "dave", "--password", PASSWORD])
    assert exit_info.value.code == 2
