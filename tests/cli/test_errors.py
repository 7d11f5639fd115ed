"""Every CLI failure a user or the site causes is one line on stderr with exit 2, never a traceback
(issue 18, item 11); a genuine bug keeps its traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nbrisk_core import cli

REPO_ROOT = Path(__file__).resolve().parents[2]


def _nbrisk(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    environment.pop("NBRISK_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "nbrisk_core", *args], capture_output=True, text=True,
                          timeout=180, env=environment, cwd=cwd or REPO_ROOT)


def _assert_one_line(done: subprocess.CompletedProcess, *names: str) -> str:
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def test_cli_package_runs_as_a_module():
    """``python -m nbrisk_core.cli`` (the form the README's dev notes use) answers like ``nbrisk``."""
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "nbrisk_core.cli", "inspect", ""], capture_output=True,
                          text=True, timeout=180, env=environment, cwd=REPO_ROOT)
    assert "No module named nbrisk_core.cli.__main__" not in done.stderr
    _assert_one_line(done, "empty path")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_postgresql_is_one_line(tmp_path):
    pytest.importorskip("psycopg")
    url = f"postgresql+psycopg://nbrisk:s3cret-pw@127.0.0.1:{_closed_port()}/nbrisk"
    done = _nbrisk("users", "list", env={"NBRISK_DATABASE_URL": url})
    line = _assert_one_line(done, "database", "127.0.0.1")
    assert "s3cret-pw" not in line  # the password in the URL is never printed
    line = _assert_one_line(_nbrisk("users", "--database-url", url, "list"), "database")
    assert "s3cret-pw" not in line


def test_demo_build_into_an_unwritable_place_is_one_line(tmp_path):
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("x")
    _assert_one_line(_nbrisk("demo", "build", "--out", str(in_the_way / "demo"), "--patients", "3",
                             "--studies", "0"), str(in_the_way))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the file-in-the-way case "
                    "above covers the same error family")
def test_demo_build_permission_denied_is_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        _assert_one_line(_nbrisk("demo", "build", "--out", str(locked / "demo"), "--patients", "3",
                                 "--studies", "0"), "Permission denied")
    finally:
        locked.chmod(0o700)


def test_inspect_empty_path_is_refused_not_the_current_folder(tmp_path, series_in):
    # a loadable series in the working directory: before the fix `inspect ""` listed it
    done = _nbrisk("inspect", "", cwd=series_in)
    line = _assert_one_line(done, "empty path")
    assert done.stdout == "" and "PATH" in line
    assert cli.main(["inspect", str(series_in)]) == 0  # the folder itself is readable


@pytest.mark.parametrize("weights_file", ["../x.safetensors", "/abs/x.safetensors", "sub/x.safetensors"])
def test_model_card_weights_file_with_a_path_is_refused(tmp_path, weights_file):
    card = {"architecture": "swin_art", "variant": "art", "sha256": "0" * 64, "class_order": ["nonHR", "HR"],
            "weights_file": weights_file}
    (tmp_path / "m.json").write_text(json.dumps(card))
    done = _nbrisk("evaluate", "--model", str(tmp_path / "m.json"))
    _assert_one_line(done, "weights_file", weights_file)


# --------------------------------------------------------------------------------------------
# the mechanism itself (in-process): expected families are one line, bugs are not swallowed

def _run_with_handler(monkeypatch, handler):
    import argparse

    parser = cli.build_parser()
    monkeypatch.setattr(type(parser), "parse_args",
                        lambda self, argv=None: argparse.Namespace(command="test", handler=handler))
    return cli.main([])


def test_a_bug_keeps_its_traceback(monkeypatch):
    def buggy(args):
        return 1 / 0

    with pytest.raises(ZeroDivisionError):
        _run_with_handler(monkeypatch, buggy)


def test_expected_family_is_one_line_and_debug_shows_it(monkeypatch, capsys):
    def refused(args):
        raise PermissionError(13, "Permission denied", "/data/out")

    assert _run_with_handler(monkeypatch, refused) == 2
    assert capsys.readouterr().err == "nbrisk test: error: /data/out: Permission denied\n"
    monkeypatch.setenv("NBRISK_DEBUG", "1")
    with pytest.raises(PermissionError):
        _run_with_handler(monkeypatch, refused)


def test_every_path_argument_refuses_the_empty_string(capsys, tmp_path, monkeypatch):
    # `demo case --out ""` and `demo build --out ""` would write into the current folder
    monkeypatch.chdir(tmp_path)
    for argv in (["demo", "case", "P0001", "--out", ""], ["demo", "build", "--out", " "]):
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == 2
        assert "empty path" in capsys.readouterr().err


@pytest.fixture()
def series_in(tmp_path) -> Path:
    from nbrisk_core.imaging.synthetic import phantom_volume, write_ct_series

    hu, _ = phantom_volume(2, 16, 16, seed=2)
    write_ct_series(tmp_path / "cwd", hu)
    return tmp_path / "cwd"
