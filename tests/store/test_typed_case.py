"""The typed case in the store: round trip, the whole series on request, and cases saved in the old format."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sqlalchemy import text

from nbrisk_core import service
from nbrisk_core.case import PHASES, Phase, Prognosis, RiskResult
from nbrisk_core.store import users
from nbrisk_core.store.db import make_engine, migrate

OLD_CASE = Path(__file__).parent / "data" / "case_v1.sqlite"


@pytest.fixture
def alice(engine):
    users.add_user(engine, "alice", "correct horse battery staple 42")
    return "alice"


def test_typed_case_round_trip(engine, alice, typed_case):
    case = typed_case()
    saved = service.save_case(engine, case, alice)
    loaded = service.open_case(engine, saved.stored.case_uid, alice)
    assert loaded.stored.case_uid == saved.stored.case_uid and loaded.stored.version == 1
    assert list(loaded.slices) == list(PHASES) and all(isinstance(p, Phase) for p in loaded.slices)
    for phase, chosen in case.slices.items():
        got = loaded.slices[phase]
        np.testing.assert_array_equal(got.hu, chosen.hu)
        assert (got.index, got.z_mm, got.pixel_spacing, got.series_uid, dict(got.window)) == \
            (chosen.index, chosen.z_mm, chosen.pixel_spacing, chosen.series_uid, dict(chosen.window))
    assert isinstance(loaded.risk, RiskResult) and loaded.risk.scores == case.risk.scores
    np.testing.assert_array_equal(loaded.risk.embedding, case.risk.embedding)
    np.testing.assert_array_equal(loaded.risk.cams[Phase.ART], case.risk.cams[Phase.ART])
    assert isinstance(loaded.prognosis, Prognosis) and loaded.prognosis.mlrs == case.prognosis.mlrs
    assert loaded.prognosis.reference_curves.keys() == case.prognosis.reference_curves.keys()
    assert loaded.imputed == {"ldh": 410.0} and loaded.age_months == 30.0 and loaded.sex == "F"
    with engine.connect() as conn:
        row = conn.execute(text("SELECT risk_class, hr_probability, mlrs_group FROM cases")).one()
        phases = sorted(conn.execute(text("SELECT phase FROM case_slices")).scalars())
    assert tuple(row) == ("HR", 0.81, "high") and phases == ["art", "nc", "pv"]


def test_saving_again_adds_no_prediction(engine, alice, typed_case):
    saved = service.save_case(engine, typed_case(), alice)
    again = service.save_case(engine, saved.replace(notes="seen"), alice)
    assert again.stored.version == 2 and len(again.stored.predictions) == 2


def test_whole_series_is_stored_when_asked(engine, alice, typed_case):
    """Bug: "Also store the whole series" stored nothing (series_npz was always NULL)."""
    from nbrisk_core.imaging.case import with_series

    case = typed_case()
    volumes = {p: np.stack([s.hu] * 4) + i for i, (p, s) in enumerate(case.slices.items())}
    study = SimpleNamespace(series=[SimpleNamespace(series_uid=f"uid-{p}", hu=v) for p, v in volumes.items()])
    assignment = {f"uid-{p}": str(p) for p in volumes}
    slices = with_series(case.slices, study, assignment)
    saved = service.save_case(engine, case.replace(slices=slices), alice, include_series=True)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT phase, series_npz IS NOT NULL FROM case_slices")).all()
    assert sorted(stored) == [("art", 1), ("nc", 1), ("pv", 1)]
    loaded = service.open_case(engine, saved.stored.case_uid, alice)
    for phase, volume in volumes.items():
        np.testing.assert_array_equal(loaded.slices[phase].series_hu, volume)
    # without the box ticked, no series is stored
    plain = service.save_case(engine, case.replace(slices=slices, label="P0008"), alice)
    assert all(s.series_hu is None for s in plain.slices.values())


@pytest.fixture
def old_store(tmp_path):
    """The fixture database: one case saved before the typed case (schema 0002, upper-case phases)."""
    path = tmp_path / "old.sqlite"
    shutil.copyfile(OLD_CASE, path)
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0002"
        assert sorted(conn.execute(text("SELECT phase FROM case_slices")).scalars()) == ["ART", "NC", "PV"]
    migrate(engine)
    yield engine
    engine.dispose()


def _old_uid(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT case_uid FROM cases")).scalar_one()


def test_migration_writes_one_phase_spelling(old_store):
    with old_store.connect() as conn:
        assert sorted(conn.execute(text("SELECT phase FROM case_slices")).scalars()) == ["art", "nc", "pv"]
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0003"


def test_a_case_stored_in_the_old_format_still_opens(old_store):
    uid = _old_uid(old_store)
    case = service.open_case(old_store, uid, "alice")
    assert case.label == "OLD-0001" and case.notes == "saved before 0003" and case.stored.version == 1
    assert list(case.slices) == [Phase.NC, Phase.ART, Phase.PV]
    art = case.slices[Phase.ART]
    assert (art.index, art.z_mm, art.series_uid, art.pixel_spacing) == (4, 15.0, "2.25.2", (0.8, 0.8))
    assert art.window == {"name": "abdomen", "width": 400.0, "level": 40.0} and art.is_hu
    assert case.risk.p_high_risk == pytest.approx(0.73) and case.risk.risk_class == "HR"
    assert case.risk.scores["mp"].p_high_risk == pytest.approx(0.61) and case.risk.model_sha256 == "a" * 64
    assert case.risk.embedding.shape == (16,) and list(case.risk.cams) == [Phase.ART]
    assert case.prognosis.mlrs == pytest.approx(1.25) and case.prognosis.group == "high"
    assert case.imputed == {"ldh": 410.0} and case.clinical == {"nse": 120.0, "mycn_amplified": 1}
    assert case.study["age_months"] == 36.0 and case.age_months == 36.0 and case.sex == "F"
    # and it is saved again in the typed format
    resaved = service.save_case(old_store, case.replace(notes="typed now"), "alice")
    again = service.open_case(old_store, uid, "alice")
    assert resaved.stored.version == 2 and again.notes == "typed now"
    assert again.risk.scores == case.risk.scores and again.prognosis.mlrs == case.prognosis.mlrs


def test_old_case_exports_pdf_csv_json(old_store):
    import json

    uid = _old_uid(old_store)
    data = json.loads(service.export_case(old_store, uid, "alice", "json"))
    assert data["risk"]["p_high_risk"] == pytest.approx(0.73) and set(data["slices"]) == {"nc", "art", "pv"}
    assert service.export_case(old_store, uid, "alice", "pdf").startswith(b"%PDF")


def test_tumour_measurements_are_stored_exported_and_printed(engine, alice, typed_case, tmp_path):
    """Issue 21: each phase's volume, longest diameter and area go into the saved case and its exports."""
    import json
    import shutil
    import subprocess

    from nbrisk_core.case import SegmentationSummary

    case = typed_case()
    measured = {p: SegmentationSummary(volume_ml=10.5 + i, longest_diameter_mm=31.25 + i, area_mm2=612.0 + i,
                                       max_area_slice=20 + i, confidence=0.9, model_sha256="5e" * 32)
                for i, p in enumerate(case.slices)}
    measured[Phase.PV] = SegmentationSummary(42.0, 50.5, 900.0, 7, source="seed click")
    case = case.replace(slices={p: s.replace(segmentation=measured[p]) for p, s in case.slices.items()})
    saved = service.save_case(engine, case, alice)
    loaded = service.open_case(engine, saved.stored.case_uid, alice)
    assert {p: s.segmentation for p, s in loaded.slices.items()} == measured
    data = json.loads(service.export_case(engine, saved.stored.case_uid, alice, "json"))
    assert data["slices"]["art"]["segmentation"]["volume_ml"] == measured[Phase.ART].volume_ml
    assert data["slices"]["pv"]["segmentation"]["source"] == "seed click"
    csv_text = service.export_case(engine, saved.stored.case_uid, alice, "csv")
    csv_text = csv_text.decode() if isinstance(csv_text, bytes) else csv_text
    assert '"slices.nc.segmentation.longest_diameter_mm","31.25"' in csv_text
    pdf = service.export_case(engine, saved.stored.case_uid, alice, "pdf")
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils (pdftotext) is not installed")
    (tmp_path / "r.pdf").write_bytes(pdf)
    text_lines = subprocess.run(["pdftotext", "-layout", str(tmp_path / "r.pdf"), "-"], capture_output=True,
                                text=True, check=True).stdout
    flat = " ".join(text_lines.split())
    assert "Tumour size (segmentation)" in flat
    assert "volume 11.5 mL, longest diameter 32.2 mm, area 613 mm² on slice 21 (automatic, confidence 0.90)" \
        in flat
    assert "volume 42.0 mL, longest diameter 50.5 mm, area 900 mm² on slice 7 (seed click)" in flat


def test_a_case_saved_before_the_measurements_opens_without_them(old_store):
    case = service.open_case(old_store, _old_uid(old_store), "alice")
    assert all(s.segmentation is None for s in case.slices.values())
    data = __import__("json").loads(service.export_case(old_store, _old_uid(old_store), "alice", "json"))
    assert data["slices"]["art"]["segmentation"] is None
