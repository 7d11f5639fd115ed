"""The DICOM studies: valid CT Image Storage, consistent UIDs and geometry, bit-identical pixels."""

from __future__ import annotations

import zipfile

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut

from nbrisk_core.demo import load_cohort, write_study
from nbrisk_core.errors import InputError

FOLDERS = {"NC": "nc", "ART": "art", "PV": "pv"}


def _read_study(root):
    series = {}
    for folder in FOLDERS:
        files = sorted((root / folder).glob("*.dcm"))
        series[folder] = [pydicom.dcmread(f) for f in files]
    return series


def _check_study(root, cohort, pid):
    series = _read_study(root)
    datasets = [ds for group in series.values() for ds in group]
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 3
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets)
    assert all(ds.StudyInstanceUID.startswith("2.25.") and ds.SOPInstanceUID.startswith("2.25.")
               for ds in datasets)
    truth = cohort.truth.set_index("patient_id").loc[pid]
    clinical = cohort.clinical.set_index("patient_id").loc[pid]
    times = {}
    for folder, group in series.items():
        phase = FOLDERS[folder]
        first = group[0]
        assert first.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"   # CT Image Storage
        assert first.Modality == "CT"
        assert folder in first.SeriesDescription
        assert str(first.PatientName) == f"SYNTHETIC^{pid}" and first.PatientID == f"SYNTH-{pid}"
        assert first.PatientAge == f"{int(clinical['age_months']):03d}M"
        assert first.PatientSex == clinical["sex"]
        assert ("ContrastBolusAgent" in first) == (phase != "nc")
        assert first.RescaleSlope == 1 and first.RescaleIntercept == -1024 and "RescaleType" in first
        z = np.array([float(ds.ImagePositionPatient[2]) for ds in group])
        assert np.all(np.diff(z) > 0)
        assert np.allclose(np.diff(z), float(first.SliceThickness))
        assert [float(ds.SliceLocation) for ds in group] == pytest.approx(list(z))
        assert [int(ds.InstanceNumber) for ds in group] == list(range(1, len(group) + 1))
        assert list(map(float, first.ImageOrientationPatient)) == [1, 0, 0, 0, 1, 0]
        assert float(first.PixelSpacing[0]) == pytest.approx(truth["pixel_spacing_mm"], abs=1e-4)
        times[phase] = float(first.SeriesTime)
        # the max-area slice is bit-identical to the cohort's stored slice
        k = int(truth[f"max_area_slice_{phase}"])
        hu = apply_modality_lut(group[k].pixel_array, group[k])
        assert np.array_equal(hu.astype(np.int16), cohort.slice_hu(pid, phase))
        assert hu.min() >= -1024
    assert times["nc"] < times["art"] < times["pv"]
    return datasets


def test_prebuilt_example_study(tiny_cohort):
    out, _ = tiny_cohort
    cohort = load_cohort(out)
    pid = cohort.meta["example_patients"][0]
    _check_study(out / "studies" / pid, cohort, pid)


def test_on_demand_study_matches_and_zips(tiny_cohort, tmp_path):
    out, _ = tiny_cohort
    cohort = load_cohort(out)
    pid = next(p for p in cohort.patient_ids if p not in cohort.meta["example_patients"])
    paths = write_study(out, pid, tmp_path, as_zip=True)
    datasets = _check_study(tmp_path / pid, cohort, pid)
    assert len([p for p in paths if p.suffix == ".dcm"]) == len(datasets) == 3 * cohort.meta["n_slices"]
    with zipfile.ZipFile(tmp_path / f"{pid}.zip") as archive:
        names = archive.namelist()
        assert len(names) == len(datasets)
        assert archive.read(f"{pid}/ART/IM0001.dcm") == (tmp_path / pid / "ART" / "IM0001.dcm").read_bytes()


def test_unknown_patient_is_an_input_error(tiny_cohort, tmp_path):
    out, _ = tiny_cohort
    for bad in ("P9999", "P0000", "7", "P07", "../P0001"):
        with pytest.raises(InputError, match="not in the demo cohort"):
            write_study(out, bad, tmp_path)
    with pytest.raises(InputError, match="cohort.json"):
        write_study(tmp_path / "missing", "P0001", tmp_path)
