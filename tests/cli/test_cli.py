"""The ``nbrisk`` command line: help is cheap, bad arguments give one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nbrisk_core.cli import COMMAND_MODULES, build_parser, main

HEAVY_MODULES = ("torch", "timm", "sksurv", "lifelines", "sqlalchemy", "streamlit", "pydicom")


def _nbrisk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbrisk_core", *args], capture_output=True, text=True,
                          timeout=60)


def test_parser_declares_every_subcommand_without_heavy_imports():
    code = (
        "import sys; from nbrisk_core.cli import build_parser; build_parser(); "
        f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"building the CLI parser imported heavy modules: {out.stdout}"


def test_help_lists_all_commands():
    out = _nbrisk("--help")
    assert out.returncode == 0
    for command in COMMAND_MODULES:
        assert command in out.stdout


@pytest.mark.parametrize("command", sorted(COMMAND_MODULES))
def test_each_command_has_help(command):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["no-such-command"],
        ["demo", "build", "--patients", "many"],
        ["demo", "build", "--patients", "0"],
        ["demo", "build", "--studies", "-1"],
        ["demo"],
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(argv):
    out = _nbrisk(*argv)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert "error" in lines[0]
    assert "Traceback" not in out.stderr


def test_input_error_maps_to_exit_2(capsys, monkeypatch):
    from nbrisk_core.errors import InputError

    def boom(args):
        raise InputError("labs.json: nse = -3 ng/mL is outside 0-5000 ng/mL")

    parser = build_parser()
    monkeypatch.setattr("nbrisk_core.cli.build_parser", lambda: parser)
    for action in parser._subparsers._group_actions[0].choices.values():
        action.set_defaults(handler=boom)
    assert main(["inspect"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "nbrisk inspect: error: labs.json: nse = -3 ng/mL is outside 0-5000 ng/mL"
