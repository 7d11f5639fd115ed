"""Shared fixtures: the demo cohort the app opens on, and repository paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "data" / "demo"


def pytest_report_header(config):
    """One line naming the CPU the run is on and what the probe measured, so that a reader of a CI
    log knows which branch of the precision code (``bf16-matmul`` or fp32) the run exercised."""
    from nbrisk_core.classifier.probe import cpu_probe

    return f"cpu: {cpu_probe().summary()}"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    """The default demo cohort (``make test`` builds it before pytest runs; built here if missing)."""
    if not (DEMO_DIR / "cohort.json").exists():
        from nbrisk_core.demo import build_cohort

        build_cohort(DEMO_DIR)
    return DEMO_DIR


@pytest.fixture(autouse=True)
def _no_auth_for_local_tests(monkeypatch):
    # The local demo runs without sign-in; tests that need it set NBRISK_AUTH=on themselves.
    if "NBRISK_AUTH" not in os.environ:
        monkeypatch.setenv("NBRISK_AUTH", "off")
