"""Shared fixtures: the demo cohort the app opens on, and repository paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "data" / "demo"


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
