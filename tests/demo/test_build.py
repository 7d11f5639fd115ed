"""Layout, API and image content of a built (tiny) cohort."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nbrisk_core.clinical.schema import CLINICAL_VARIABLES
from nbrisk_core.demo import PHASES, TRUTH_COLUMNS, build_cohort, generate_cohort_tables, load_cohort
from nbrisk_core.demo.cohort import cohort_geometry
from nbrisk_core.demo.render import area_curve, render_slice
from nbrisk_core.errors import InputError
from nbrisk_core.imaging.windowing import window_to_uint8

from .conftest import TINY_PATIENTS, TINY_SEED


def test_layout_and_metadata(tiny_cohort):
    out, summary = tiny_cohort
    meta = json.loads((out / "cohort.json").read_text())
    assert meta["name"] == "nbrisk-synthetic-demo" and meta["synthetic"] is True
    assert (meta["seed"], meta["n_patients"]) == (TINY_SEED, TINY_PATIENTS)
    for key in ("generator_version", "oracle_auc", "oracle_c_index", "example_patients", "slice_shape",
                "n_slices", "pixel_spacing_mm", "slice_thickness_mm", "window"):
        assert key in meta
    assert meta["window"] == {"width": 400, "level": 40}
    assert meta["oracle_auc"] == pytest.approx(summary["oracle_auc"])
    assert len(meta["example_patients"]) == 1
    pid = meta["example_patients"][0]
    for folder in ("NC", "ART", "PV"):
        assert len(list((out / "studies" / pid / folder).glob("IM*.dcm"))) == meta["n_slices"]
    for number in range(1, TINY_PATIENTS + 1):
        folder = out / "slices" / f"P{number:04d}"
        assert sorted(p.name for p in folder.iterdir()) == ["art.png", "hu.npz", "nc.png", "pv.png"]


def test_tables_have_the_contract_columns(tiny_cohort):
    out, _ = tiny_cohort
    clinical = pd.read_csv(out / "clinical.csv")
    expected = ["patient_id", *(v.name for v in CLINICAL_VARIABLES), "os_days", "os_event"]
    assert list(clinical.columns) == expected
    truth = pd.read_csv(out / "truth.csv")
    assert list(truth.columns) == list(TRUTH_COLUMNS)
    assert (truth["patient_id"] == clinical["patient_id"]).all()
    # missing labs are blank cells, not a sentinel
    assert ",," in (out / "clinical.csv").read_text()


def test_load_cohort_api(tiny_cohort, monkeypatch):
    out, _ = tiny_cohort
    cohort = load_cohort(out)
    assert cohort.patient_ids[0] == "P0001" and len(cohort.patient_ids) == TINY_PATIENTS
    assert cohort.meta["synthetic"] is True
    hu = cohort.slice_hu("P0003", "art")
    assert hu.dtype == np.int16 and hu.ndim == 2 and hu.shape == tuple(cohort.meta["slice_shape"])
    mask = cohort.slice_mask("P0003", "art")
    assert mask.dtype == np.uint8 and mask.sum() > 0
    png = np.asarray(Image.open(cohort.slice_png("P0003", "art")))
    assert np.array_equal(png, window_to_uint8(hu, 400, 40))
    hu[:] = 0   # callers get their own copy
    assert cohort.slice_hu("P0003", "art").any()
    monkeypatch.setattr("nbrisk_core.cohort.format.SLICE_CACHE_PATIENTS", 5)
    for pid in cohort.patient_ids:
        cohort.slice_mask(pid, "nc")
    assert list(cohort._slices) == cohort.patient_ids[-5:]   # bounded memory on large cohorts
    with pytest.raises(InputError, match="P9999"):
        cohort.slice_hu("P9999", "art")
    with pytest.raises(InputError, match="venous"):
        cohort.slice_hu("P0003", "venous")


def test_load_cohort_errors_name_the_path(tmp_path):
    with pytest.raises(InputError, match=str(tmp_path / "nowhere")):
        load_cohort(tmp_path / "nowhere")
    (tmp_path / "cohort.json").write_text("{not json")
    with pytest.raises(InputError, match="cohort.json"):
        load_cohort(tmp_path)
    (tmp_path / "cohort.json").write_text(json.dumps({"name": "x", "synthetic": True, "seed": 1,
                                                      "n_patients": 2, "generator_version": "1"}))
    with pytest.raises(InputError, match="clinical.csv"):
        load_cohort(tmp_path)


def test_build_refuses_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a demo cohort"):
        build_cohort(tmp_path, n_patients=4, n_studies=0)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("number", [2, 5])
def test_recorded_slice_is_the_argmax_of_the_volume_masks(tiny_cohort, number):
    out, _ = tiny_cohort
    truth = pd.read_csv(out / "truth.csv").set_index("patient_id")
    row = generate_cohort_tables(TINY_PATIENTS, TINY_SEED).iloc[number - 1]
    geom = cohort_geometry(row, TINY_SEED, number)
    stored = np.load(out / "slices" / f"P{number:04d}" / "hu.npz")
    for phase in PHASES:
        areas = area_curve(geom, phase)
        recorded = int(truth.loc[f"P{number:04d}", f"max_area_slice_{phase}"])
        assert int(np.argmax(areas)) == recorded
        assert (areas < areas[recorded]).sum() == len(areas) - 1   # one strict maximum
        assert areas[0] == 0 and areas[-1] == 0   # the whole tumour lies inside the series
        assert areas[recorded] == stored[f"mask_{phase}"].sum()
        hu, mask = render_slice(geom, phase, recorded)
        assert np.array_equal(hu, stored[phase]) and np.array_equal(mask, stored[f"mask_{phase}"])


def test_hounsfield_units_look_like_ct(tiny_cohort):
    out, _ = tiny_cohort
    cohort = load_cohort(out)
    truth = cohort.truth.set_index("patient_id")
    for pid in cohort.patient_ids[:8]:
        nc = cohort.slice_hu(pid, "nc").astype(float)
        corners = np.concatenate([nc[:8, :8].ravel(), nc[-8:, -8:].ravel()])
        assert abs(np.median(corners) + 1000) < 15   # air
        # subcutaneous fat: the fat band just inside the body outline, on the row through the centre
        row = nc[nc.shape[0] // 2]
        first = int(np.argmax(row > -500))
        fat = row[first + 2:first + 5]
        assert -140 < fat.mean() < -60, fat
        mask = cohort.slice_mask(pid, "nc").astype(bool)
        tumour = nc[mask]
        assert 15 < np.median(tumour) < 60   # unenhanced neuroblastoma soft tissue
        art = cohort.slice_hu(pid, "art").astype(float)
        assert np.median(art[cohort.slice_mask(pid, "art").astype(bool)]) > np.median(tumour)
        if truth.loc[pid, "calcification_count"] > 0:
            assert art[cohort.slice_mask(pid, "art").astype(bool)].max() > 130
    assert (truth["calcification_count"] > 0).mean() > 0.5   # calcification is frequent in NB


def test_calcification_pixels_exceed_130_hu(tiny_cohort):
    out, _ = tiny_cohort
    table = generate_cohort_tables(TINY_PATIENTS, TINY_SEED)
    checked = 0
    for number in range(1, TINY_PATIENTS + 1):
        geom = cohort_geometry(table.iloc[number - 1], TINY_SEED, number)
        hu, mask, detail = render_slice(geom, "art", geom.max_area_slice("art"), with_detail=True)
        if detail["calcification"] is not None and detail["calcification"].any():
            core = detail["calcification"]
            assert hu[core].max() > 130 and np.median(hu[core]) > 130
            checked += 1
        if checked == 3:
            break
    assert checked == 3


def test_image_findings_follow_the_latent_score():
    table = generate_cohort_tables(202, 20250416)
    # larger, more necrotic tumours with more encasement at higher latent score (parameters)
    hi = table["latent_score"] > 0.5
    lo = table["latent_score"] < -0.5
    assert table.loc[hi, "img_radius_fraction"].mean() > 1.2 * table.loc[lo, "img_radius_fraction"].mean()
    assert table.loc[hi, "img_necrotic_fraction"].mean() > 2 * table.loc[lo, "img_necrotic_fraction"].mean()
    assert table.loc[hi, "img_encasement_intent"].mean() > table.loc[lo, "img_encasement_intent"].mean() + 0.3


def test_dense_truth_follows_the_latent_score(tiny_cohort):
    out, _ = tiny_cohort
    truth = pd.read_csv(out / "truth.csv")
    assert truth[["latent_score", "tumour_area_mm2"]].corr(method="spearman").iloc[0, 1] > 0.4
    assert truth["encasement"].isin([0, 1]).all() and truth["crosses_midline"].isin([0, 1]).all()
    assert (truth["necrotic_fraction"].between(0, 1)).all()
    # slice selection has to search: the max-area slice moves between cases and between phases
    assert truth["max_area_slice_art"].nunique() >= 5
    assert (truth["max_area_slice_art"] != truth["max_area_slice_nc"]).any()
