"""The store fixture runs every store test on SQLite and, when ``NBRISK_TEST_PG_URL`` is set, on PostgreSQL."""

from __future__ import annotations

import os
import uuid

import pytest

PG_URL = os.environ.get("NBRISK_TEST_PG_URL", "").strip()

BACKENDS = [pytest.param("sqlite", id="sqlite"),
            pytest.param("postgres", id="postgres", marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not PG_URL, reason="NBRISK_TEST_PG_URL is not set (bash .ci/postgres.sh starts "
                                   "a throwaway PostgreSQL and prints it)")])]


@pytest.fixture(params=BACKENDS)
def engine(request, tmp_path):
    """A freshly migrated, empty store: a SQLite file, or a new database on the PostgreSQL server."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from nbrisk_core.store.db import make_engine, migrate

    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'nbrisk.db'}")
        migrate(eng)
        yield eng
        eng.dispose()
        return
    base = make_url(PG_URL)
    name = f"nbrisk_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    eng = make_engine(base.set(database=name).render_as_string(hide_password=False))
    try:
        migrate(eng)
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def tiny_case():
    """A small case as the pages would hand it over: three 16x16 slices, a risk and a prognosis result."""
    import numpy as np

    from nbrisk_core.store.cases import CaseRecord, PredictionRecord, SliceRecord

    rng = np.random.default_rng(7)
    slices = {p: SliceRecord(p, rng.integers(-100, 200, size=(16, 16)).astype(np.int16), i + 3, 10.0 + 5 * i,
                             {"pixel_spacing_mm": [0.8, 0.8]})
              for i, p in enumerate(("nc", "art", "pv"))}
    risk = {"p_high_risk": 0.81, "model_sha256": "a" * 64, "embedding": rng.normal(size=16).astype(np.float32),
            "gradcam": rng.random((16, 16)).astype(np.float32)}
    return CaseRecord(label="P0007", age_months=30.0, sex="F", clinical_entered={"nse": 120.0, "ldh": None},
                      clinical_imputed={"ldh": 410.0}, slices=slices,
                      predictions=[PredictionRecord("risk", risk, "swin_art_demo", "a" * 64, "b" * 64)],
                      risk_class="HR", hr_probability=0.81, mlrs=1.3, mlrs_percentile=82.0, mlrs_group="high")
