"""De-identification: every PS3.15 Basic Profile attribute filled in a file is gone from what NBRisk keeps."""

from __future__ import annotations

import json

import pydicom
import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword

from nbrisk_core.imaging import load_study
from nbrisk_core.imaging.deid import BASIC_PROFILE, Deidentifier, age_from_dates
from nbrisk_core.imaging.synthetic import write_ct_series

_SAMPLES = {"PN": "Doe^Jane", "DA": "20190412", "TM": "093015", "DT": "20190412093015", "UI": "1.2.3.4.5.6.7",
            "AS": "004Y", "DS": "12.5", "IS": "7", "SQ": None, "US": 3, "SS": 3, "UL": 3, "FD": 1.5, "FL": 1.5}


def _secret(keyword: str, vr: str):
    """A recognisable value per attribute, so its survival anywhere can be searched for."""
    if vr in ("PN", "LO", "SH", "LT", "ST", "UT", "CS", "AE", "UC"):
        return f"SECRET{abs(hash(keyword)) % 10**6}"[: 16 if vr in ("SH", "CS", "AE") else 64]
    return _SAMPLES.get(vr)


@pytest.fixture()
def phi_file(tmp_path, phantom):
    hu, _ = phantom
    path = write_ct_series(tmp_path, hu[:2])[0]
    ds = pydicom.dcmread(path)
    filled = {}
    for keyword in BASIC_PROFILE:
        tag = tag_for_keyword(keyword)
        if tag is None:
            continue
        vr = dictionary_VR(tag).split(" or ")[0]
        value = _secret(keyword, vr)
        if vr == "SQ":
            item = pydicom.Dataset()
            item.PatientName = "Nested^Secret"
            setattr(ds, keyword, pydicom.Sequence([item]))
            continue
        if value is None or keyword in ("SeriesInstanceUID", "SOPInstanceUID", "MediaStorageSOPInstanceUID",
                                        "StudyInstanceUID", "FrameOfReferenceUID"):
            continue
        setattr(ds, keyword, value)
        filled[keyword] = value
    ds.add_new(0x00091010, "LO", "PRIVATE-SECRET")
    ds.save_as(path)
    return path, ds, filled


def test_profile_attributes_removed_blanked_or_remapped(phi_file):
    _, ds, filled = phi_file
    assert len(filled) > 60  # the table covers the profile's CT attributes
    out = Deidentifier(salt=b"k").deidentify_dataset(ds)
    for keyword, action in BASIC_PROFILE.items():
        if keyword not in ds:
            continue
        if action == "X":
            assert keyword not in out, keyword
        elif action == "Z":
            assert out[keyword].value in ("", None, []) or out[keyword].VR == "SQ", keyword
        elif action == "U":
            assert str(out[keyword].value).startswith("2.25."), keyword
            assert out[keyword].value != ds[keyword].value
        elif action == "D":
            assert out[keyword].value != ds[keyword].value, keyword
    text = str(out)
    for value in filled.values():
        if isinstance(value, str) and value.startswith("SECRET"):
            assert value not in text
    assert "Nested^Secret" not in text and "PRIVATE-SECRET" not in text
    assert out.PatientIdentityRemoved == "YES"
    # UID remapping is consistent within a study and differs between keys
    same = Deidentifier(salt=b"k")
    assert same.uid(ds.SeriesInstanceUID) == out.SeriesInstanceUID
    assert Deidentifier(salt=b"other").uid(ds.SeriesInstanceUID) != out.SeriesInstanceUID


def test_nothing_identifying_leaves_the_reader(phi_file):
    path, ds, filled = phi_file
    study = load_study(path.parent)
    series = study.series[0]
    kept = json.dumps({"header": series.header, "summary": series.summary(), "meta": study.meta,
                       "uid": series.series_uid}, default=str)
    for keyword, value in filled.items():
        if keyword in ("PatientSex", "PatientAge", "PatientSize", "PatientWeight"):
            continue  # Retain Patient Characteristics option
        if isinstance(value, str) and len(value) >= 6:
            assert value not in kept, keyword
    assert str(ds.SeriesInstanceUID) not in kept and str(ds.StudyInstanceUID) not in kept
    assert "SYNTHETIC^PATIENT" not in kept and "SYN0001" not in kept
    assert series.header["PatientAge"] == "004Y"  # kept for the clinical model
    assert "acquisition_seconds" in series.header and series.header["acquisition_seconds"] == 0.0


def test_age_from_birth_and_study_dates():
    assert age_from_dates("20200115", "20230301") == "037M"
    assert age_from_dates("20000101", "20230301") == "023Y"
    assert age_from_dates("garbage", "20230301") is None
