"""Tiny demo cohorts shared by the demo tests (built once per session in a temp dir)."""

from __future__ import annotations

import pytest

TINY_PATIENTS = 24
TINY_SEED = 1234


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    """A 24-patient cohort with one example DICOM study, and its build summary."""
    from nbrisk_core.demo import build_cohort

    out = tmp_path_factory.mktemp("demo") / "cohort"
    summary = build_cohort(out, n_patients=TINY_PATIENTS, seed=TINY_SEED, n_studies=1)
    return out, summary


@pytest.fixture(scope="session")
def default_tables():
    """The default 202-patient cohort's tables (no images)."""
    from nbrisk_core.demo import DEFAULT_PATIENTS, DEFAULT_SEED, generate_cohort_tables

    return generate_cohort_tables(DEFAULT_PATIENTS, DEFAULT_SEED)
