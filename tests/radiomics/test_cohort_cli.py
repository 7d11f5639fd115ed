"""``nbrisk radiomics --cohort DIR --out FILE``: features of each chosen slice, cached by content."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.cli import main


def _cohort(root, n=3, empty_mask_for=None):
    rng = np.random.default_rng(1)
    (root / "slices").mkdir(parents=True)
    ids = [f"P{i:04d}" for i in range(1, n + 1)]
    pd.DataFrame({"patient_id": ids, "risk_group": ["HR", "IR", "LR"][:n]}).to_csv(root / "clinical.csv",
                                                                                  index=False)
    slices = []
    for k, pid in enumerate(ids):
        arrays = {}
        for phase in ("nc", "art", "pv"):
            img = rng.normal(40 + 20 * k, 15, size=(64, 64)).astype(np.int16)
            mask = np.zeros((64, 64), dtype=np.uint8)
            mask[20:40 + 3 * k, 18:44] = 0 if pid == empty_mask_for else 1
            arrays[phase], arrays[f"mask_{phase}"] = img, mask
            slices.append({"patient_id": pid, "phase": phase, "area_mm2": float(mask.sum()) * 0.8 ** 2})
        (root / "slices" / pid).mkdir()
        np.savez(root / "slices" / pid / "hu.npz", **arrays)
    pd.DataFrame(slices).to_csv(root / "slices.csv", index=False)
    return ids


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("NBRISK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_extracts_every_patient_and_reads_the_cache_second_time(tmp_path, home, capsys):
    ids = _cohort(tmp_path / "c")
    out = tmp_path / "r.parquet"
    assert main(["radiomics", "--cohort", str(tmp_path / "c"), "--out", str(out)]) == 0
    table = pd.read_parquet(out)
    assert table.index.tolist() == ids
    assert {"art_stat_mean", "art_cm_contrast", "art_ngt_busyness", "art_shape2d_area"} <= set(table.columns)
    # area from the slice's spacing (0.8 mm from slices.csv), resampled to 1 mm: about 20 x 26 x 0.64 mm^2
    assert table.loc["P0001", "art_shape2d_area"] == pytest.approx(20 * 26 * 0.64, rel=0.1)
    assert table["art_stat_mean"].is_monotonic_increasing  # intensities rise with k
    cached = list((home / "data" / "radiomics").glob("*.parquet"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    assert main(["radiomics", "--cohort", str(tmp_path / "c"), "--out", str(tmp_path / "r.csv")]) == 0
    assert cached[0].stat().st_mtime_ns == stamp  # read, not rewritten
    again = pd.read_csv(tmp_path / "r.csv", index_col="patient_id")
    assert np.allclose(again.to_numpy(), table.to_numpy(), equal_nan=True)


def test_changed_data_recomputes(tmp_path, home):
    _cohort(tmp_path / "c")
    out = tmp_path / "r.parquet"
    assert main(["radiomics", "--cohort", str(tmp_path / "c"), "--out", str(out)]) == 0
    before = pd.read_parquet(out)
    path = tmp_path / "c" / "slices" / "P0002" / "hu.npz"
    arrays = dict(np.load(path))
    arrays["art"] = (arrays["art"] + 100).astype(np.int16)
    np.savez(path, **arrays)
    assert main(["radiomics", "--cohort", str(tmp_path / "c"), "--out", str(out)]) == 0
    after = pd.read_parquet(out)
    shifted = before.loc["P0002", "art_stat_mean"] + 100
    assert after.loc["P0002", "art_stat_mean"] == pytest.approx(shifted, abs=1)


def test_a_new_feature_definition_does_not_read_an_old_cache(tmp_path, home, monkeypatch):
    import importlib

    radiomics_cohort = importlib.import_module("nbrisk_core.radiomics.cohort")
    # the module, not the function of the same name
    radiomics_extract = importlib.import_module("nbrisk_core.radiomics.extract")

    _cohort(tmp_path / "c")
    out = tmp_path / "r.parquet"
    assert main(["radiomics", "--cohort", str(tmp_path / "c"), "--out", str(out)]) == 0
    monkeypatch.setattr(radiomics_cohort, "FORMAT", radiomics_cohort.FORMAT + 1)
    assert main(["radiomics", "--cohort", str(tmp_path / "c"), "--out", str(out)]) == 0
    monkeypatch.setitem(radiomics_extract.IBSI_CODES, "stat_renamed", "XXXX")
    assert main(["radiomics", "--cohort", str(tmp_path / "c"), "--out", str(out)]) == 0
    assert len(list((home / "data" / "radiomics").glob("*.parquet"))) == 3


def test_empty_mask_is_left_out_and_said(tmp_path, home, capsys):
    _cohort(tmp_path / "c", empty_mask_for="P0002")
    out = tmp_path / "r.parquet"
    assert main(["radiomics", "--cohort", str(tmp_path / "c"), "--out", str(out), "--phase", "pv"]) == 0
    assert pd.read_parquet(out).index.tolist() == ["P0001", "P0003"]
    assert "1 with empty mask" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--out", "x.txt"], "expected a .parquet or .csv"),
    (["--out", "x.csv", "--bin-width", "0"], "--bin-width 0.0: expected a positive"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, home, capsys, args, message):
    _cohort(tmp_path / "c")
    assert main(["radiomics", "--cohort", str(tmp_path / "c"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_not_a_cohort(tmp_path, home, capsys):
    assert main(["radiomics", "--cohort", str(tmp_path), "--out", str(tmp_path / "x.csv")]) == 2
    assert "not a cohort directory" in capsys.readouterr().err


@pytest.mark.slow
def test_baseline_fits_the_model_and_compares_with_the_oracle(tmp_path, home, capsys):
    import json

    rng = np.random.default_rng(3)
    root = tmp_path / "c"
    (root / "slices").mkdir(parents=True)
    n = 30
    ids = [f"P{i:04d}" for i in range(1, n + 1)]
    hr = np.array([i % 2 for i in range(n)])
    pd.DataFrame({"patient_id": ids, "risk_group": np.where(hr == 1, "HR", "IR")}).to_csv(
        root / "clinical.csv", index=False)
    pd.DataFrame({"patient_id": ids, "p_high_risk": np.clip(hr * 0.6 + rng.uniform(0, 0.4, n), 0, 1)}).to_csv(
        root / "truth.csv", index=False)
    for pid, h in zip(ids, hr):
        img = rng.normal(40 + 40 * h, 10 + 20 * h, size=(48, 48)).astype(np.int16)  # HR: brighter, coarser
        mask = np.zeros((48, 48), dtype=np.uint8)
        mask[10:36, 12:38] = 1
        (root / "slices" / pid).mkdir()
        np.savez(root / "slices" / pid / "hu.npz", art=img, mask_art=mask)
    pd.DataFrame({"patient_id": ids, "phase": "art", "area_mm2": 26 * 26 * 0.64}).to_csv(root / "slices.csv",
                                                                                       index=False)
    report = tmp_path / "baseline.json"
    assert main(["radiomics", "--cohort", str(root), "--out", str(tmp_path / "r.parquet"),
                 "--baseline", str(report), "--model", str(tmp_path / "none.safetensors")]) == 0
    result = json.loads(report.read_text())
    assert result["n_test"] == 6 and result["n_train"] == 24
    assert result["test_auc"]["value"] >= 0.8  # the classes differ in mean and texture
    assert result["selected_features"] and result["n_robust"] <= result["n_features"]
    assert set(result["heads"]) == {"logistic", "lda", "svm"}
    assert "rad_score_survival" not in result  # the test cohort has no survival columns
    assert set(result["comparisons"]) == {"oracle"}
    assert 0 <= result["comparisons"]["oracle"]["delong_vs_radiomics"]["p"] <= 1
    assert "radiomics model: test AUC" in capsys.readouterr().out
