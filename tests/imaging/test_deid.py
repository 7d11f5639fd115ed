"""De-identification: PS3.15 Table E.1-1 in full, each attribute handled per the profile and its options."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pydicom
import pytest
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.tag import Tag

from nbrisk_core.imaging import load_study
from nbrisk_core.imaging.deid import (
    BASIC_PROFILE, KEPT_ATTRIBUTES, OPTION_ACTIONS, PROFILE_EDITION, PROFILE_REPEATING, Deidentifier,
    age_from_dates, profile_action,
)
from nbrisk_core.imaging.phases import suggest_phases
from nbrisk_core.imaging.synthetic import write_ct_series

#: Entries of Table E.1-1 (2026c) with their action, most of them missing from the hand-written
#: ~150-attribute table NBRisk had before (marked ``new``).
KNOWN_ENTRIES = {
    (0x0010, 0x0010): "Z",        # Patient's Name
    (0x0010, 0x0020): "Z/D",      # Patient ID
    (0x0008, 0x0080): "X/Z/D",    # Institution Name
    (0x0008, 0x0032): "X/Z",      # Acquisition Time
    (0x0008, 0x0031): "X/D",      # Series Time
    (0x0008, 0x103E): "X",        # Series Description
    (0x0018, 0x0010): "Z/D",      # Contrast/Bolus Agent (new)
    (0x0020, 0x000D): "U",        # Study Instance UID
    (0x0008, 0x1140): "X/Z/U*",   # Referenced Image Sequence (new)
    (0x0008, 0x2112): "X/Z/U*",   # Source Image Sequence (new)
    (0x0012, 0x0040): "D",        # Clinical Trial Subject ID (new)
    (0x0040, 0xA730): "D",        # Content Sequence (new)
    (0x0018, 0x9424): "X",        # Acquisition Protocol Description (new)
    (0x0040, 0x0555): "X/Z",      # Acquisition Context Sequence (new)
    (0x0008, 0x0082): "X/Z/D",    # Institution Code Sequence (new)
    (0x0018, 0x1400): "X/D",      # Acquisition Device Processing Description (new)
    (0x0020, 0x9161): "U",        # Concatenation UID (new)
    (0x0088, 0x0200): "X",        # Icon Image Sequence (new)
    (0x0016, 0x0076): "X",        # GPS Latitude (new)
    (0x0010, 0x2154): "X",        # Patient's Telephone Numbers
    (0x0012, 0x0060): "Z",        # Clinical Trial Coordinating Center Name (new)
}
#: Old-table misses that the filled-file test must see handled (a selection across the table).
MISSED_BY_OLD_TABLE = ("ClinicalTrialSubjectID", "ContentSequence", "AcquisitionProtocolDescription",
                       "InstitutionCodeSequence", "ReferencedImageSequence", "SourceImageSequence",
                       "ConcatenationUID", "IconImageSequence", "GPSLatitude", "ContrastBolusAgent",
                       "PerformedProcedureStepStartDateTime", "DischargeDate", "FrameComments",
                       "ROIInterpreter", "VerifyingOrganization", "PatientTelecomInformation")

#: How NBRisk resolves the profile's combined actions for CT (the attributes are Type 3 or Type 2 there).
EXPECTED_RESOLUTION = {"D": "D", "Z": "Z", "X": "X", "U": "U", "Z/D": "Z", "X/Z": "X", "X/D": "X",
                       "X/Z/D": "X", "X/Z/U*": "X"}
PATIENT_CHARACTERISTICS = ("PatientSex", "PatientAge", "PatientSize", "PatientWeight")
ALREADY_IN_FILE = ("SeriesInstanceUID", "SOPInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID")


def _sample(tag, vr: str):
    """A recognisable value per attribute and VR, so its survival anywhere can be searched for."""
    secret = f"SECRET{int(tag):08X}"   # hex digits only: never a phase keyword
    if vr in ("PN", "LO", "SH", "LT", "ST", "UT", "CS", "AE", "UC", "UR"):
        return secret
    return {"DA": "20190412", "TM": "093015", "DT": "20190412093015", "UI": f"1.2.3.4.{int(tag)}",
            "AS": "004Y", "DS": "12.5", "IS": "7", "US": 3, "SS": 3, "UL": 3, "FD": 1.5, "FL": 1.5,
            "OB": b"SECRETBY", "OW": b"SECRETBY", "UN": b"SECRETBY"}.get(vr)


@pytest.fixture()
def phi_file(tmp_path, phantom):
    """A CT slice with every Table E.1-1 attribute pydicom knows filled, plus private and repeating groups."""
    hu, _ = phantom
    path = write_ct_series(tmp_path, hu[:2], description="arterial", contrast_agent="Iohexol")[0]
    ds = pydicom.dcmread(path)
    filled = {}
    for tag in BASIC_PROFILE:
        keyword = keyword_for_tag(tag)
        if not keyword or tag.group in (0x0000, 0x0002, 0x0004) or keyword in ALREADY_IN_FILE:
            continue  # command, file meta and DICOMDIR groups do not belong in a dataset
        vr = dictionary_VR(tag).split(" or ")[0]
        if vr == "SQ":
            item = pydicom.Dataset()
            item.PatientName = "Nested^Secret"
            ds.add_new(tag, vr, pydicom.Sequence([item]))
            continue
        value = _sample(tag, vr)
        if value is None:
            continue
        ds.add_new(tag, vr, value)
        filled[keyword] = value
    ds.add_new(0x00091010, "LO", "PRIVATE-SECRET")
    ds.add_new(0x50000005, "US", 1)                  # curve data, (50xx,xxxx)
    ds.add_new(0x60004000, "LT", "OVERLAY-SECRET")   # overlay comments, (60xx,4000)
    ds.save_as(path)
    return path, pydicom.dcmread(path), filled


def test_the_table_is_the_full_standard_table():
    assert PROFILE_EDITION == "dicomfields_2026c"
    assert len(BASIC_PROFILE) >= 640  # Table E.1-1 of 2026c: 652 attributes + 3 repeating groups
    assert len(PROFILE_REPEATING) == 3
    counts = {action: sum(a == action for a in BASIC_PROFILE.values()) for action in EXPECTED_RESOLUTION}
    assert counts["X"] > 400 and counts["D"] > 80 and counts["U"] > 50 and counts["X/Z/U*"] == 2
    for (group, element), action in KNOWN_ENTRIES.items():
        assert profile_action(Tag(group, element)) == action, (hex(group), hex(element))
    assert [profile_action(tag) for tag in (0x50000030, 0x60023000, 0x60004000)] == ["X", "X", "X"]
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
                    "RescaleSlope", "RescaleIntercept", "Rows", "Columns", "Modality"):
        assert profile_action(tag_for_keyword(keyword)) is None, keyword  # geometry is never touched


def test_kept_attributes_that_the_profile_lists_are_kept_by_an_option():
    listed = [k for k in KEPT_ATTRIBUTES if profile_action(tag_for_keyword(k)) is not None]
    assert set(listed) == {"ContrastBolusAgent", *PATIENT_CHARACTERISTICS}
    assert all(k in OPTION_ACTIONS for k in listed)


def _expected_date(text: str, key: Deidentifier) -> str:
    day = datetime.strptime(text[:8], "%Y%m%d") - timedelta(days=key.date_shift_days)
    return day.strftime("%Y%m%d") + text[8:]


def test_every_table_attribute_is_handled_per_the_profile(phi_file, tmp_path):
    _, ds, filled = phi_file
    assert len(filled) > 450
    sequences = {k for k in MISSED_BY_OLD_TABLE if dictionary_VR(k) == "SQ"}
    assert set(MISSED_BY_OLD_TABLE) <= set(filled) | sequences
    key = Deidentifier(salt=b"k")
    out = key.deidentify_dataset(ds)
    checked = set()
    for element in ds:
        tag, keyword = element.tag, element.keyword
        action = profile_action(tag)
        if action is None or tag.is_private:
            continue
        checked.add(keyword)
        vr, original = element.VR, element.value
        option = OPTION_ACTIONS.get(keyword)
        if option and option[0] == "K":
            assert out[tag].value == original, keyword
        elif keyword == "ContrastBolusAgent":
            assert out[tag].value == "CONTRAST"
        elif keyword in ("SeriesDescription", "ProtocolName"):
            # only the phase keywords stay; a description without one goes (basic action)
            assert (out[tag].value == "ART") if "arterial" in str(original) else (tag not in out), keyword
        elif vr in ("DA", "DT") and keyword not in ("PatientBirthDate",):
            assert out[tag].value == _expected_date(str(original), key), keyword
        elif vr == "TM" and keyword != "PatientBirthTime":
            assert out[tag].value == original, keyword  # whole-day shift: time of day kept
        else:
            applied = EXPECTED_RESOLUTION[action]
            if applied == "X":
                assert tag not in out, keyword
            elif applied == "Z":
                assert out[tag].value in ("", None, b"") or (vr == "SQ" and len(out[tag].value) == 0), keyword
            elif applied == "U" or vr == "UI":
                assert out[tag].value == key.uid(str(original)), keyword
                assert str(out[tag].value).startswith("2.25."), keyword
            else:
                assert out[tag].value not in ("", None, b"") and out[tag].value != original, keyword
                if vr == "SQ":
                    assert len(out[tag].value) == 1 and len(out[tag].value[0]) == 0, keyword
    assert set(MISSED_BY_OLD_TABLE) <= checked
    assert len(checked) > 500
    text = str(out)
    for keyword, value in filled.items():
        if isinstance(value, str) and value.startswith("SECRET") and keyword not in PATIENT_CHARACTERISTICS:
            assert value not in text, keyword
    for secret in ("Nested^Secret", "PRIVATE-SECRET", "OVERLAY-SECRET", "SYNTHETIC^PATIENT", "SYN0001"):
        assert secret not in text
    assert 0x50000005 not in out and 0x60004000 not in out
    assert out.PatientIdentityRemoved == "YES" and out.LongitudinalTemporalInformationModified == "MODIFIED"
    methods = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert methods == ["113100", "113105", "113107", "113108"]
    # class UIDs stay, instance UIDs are remapped consistently (file meta too)
    assert out.SOPClassUID == ds.SOPClassUID
    assert out.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID == key.uid(ds.SOPInstanceUID)
    assert Deidentifier(salt=b"k").uid(ds.SeriesInstanceUID) == out.SeriesInstanceUID
    assert Deidentifier(salt=b"other").uid(ds.SeriesInstanceUID) != out.SeriesInstanceUID
    # the result is still a DICOM file pydicom writes and reads back
    out.save_as(tmp_path / "deid.dcm")
    again = pydicom.dcmread(tmp_path / "deid.dcm")
    assert again.PatientAge == "004Y" and again.PatientSex == ds.PatientSex


def test_unlisted_instance_uids_are_remapped_and_age_is_derived():
    ds = pydicom.Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.CreatorVersionUID = "1.2.3.99"  # not in Table E.1-1: an instance UID all the same
    ds.PatientBirthDate, ds.StudyDate = "20200115", "20230301"
    ds.AcquisitionDate = "20230301"
    out = Deidentifier(salt=b"k").deidentify_dataset(ds)
    assert out.CreatorVersionUID == Deidentifier(salt=b"k").uid("1.2.3.99")
    assert out.SOPClassUID == ds.SOPClassUID
    assert out.PatientAge == "037M" and out.PatientBirthDate == ""
    assert out.StudyDate == out.AcquisitionDate != "20230301"   # same shift for every date of the study


def test_nothing_identifying_leaves_the_reader(phi_file):
    path, ds, filled = phi_file
    study = load_study(path.parent)
    series = study.series[0]
    kept = json.dumps({"header": series.header, "summary": series.summary(), "meta": study.meta,
                       "uid": series.series_uid}, default=str)
    for keyword, value in filled.items():
        if keyword in PATIENT_CHARACTERISTICS:
            continue  # Retain Patient Characteristics option
        if isinstance(value, str) and len(value) >= 6:
            assert value not in kept, keyword
    assert str(ds.SeriesInstanceUID) not in kept and str(ds.StudyInstanceUID) not in kept
    assert "SYNTHETIC^PATIENT" not in kept and "SYN0001" not in kept and "Iohexol" not in kept
    assert series.header["PatientAge"] == "004Y"  # kept for the clinical model
    assert series.header["ContrastBolusAgent"] == "CONTRAST"  # the phase cue survives, the text does not
    assert "acquisition_seconds" in series.header and series.header["acquisition_seconds"] == 0.0


def _deidentify_tree(source, target, key: Deidentifier) -> None:
    for path in sorted(source.rglob("*.dcm")):
        out = target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        key.deidentify_dataset(pydicom.dcmread(path)).save_as(out)


def _assert_same_study(original, deidentified) -> None:
    assert len(original.series) == len(deidentified.series)
    for a, b in zip(original.series, deidentified.series):
        np.testing.assert_array_equal(a.hu, b.hu)
        np.testing.assert_array_equal(a.z_mm, b.z_mm)
        assert a.pixel_spacing == b.pixel_spacing
        for field in ("description_keywords", "acquisition_seconds", "PatientAge", "PatientSex",
                      "SeriesNumber", "ImageOrientationPatient", "RescaleSlope", "RescaleIntercept"):
            assert a.header.get(field) == b.header.get(field), field
        assert bool(a.header.get("ContrastBolusAgent")) == bool(b.header.get("ContrastBolusAgent"))
    phases = [g.phase for g in suggest_phases(original.series)]
    assert [g.phase for g in suggest_phases(deidentified.series)] == phases


def test_a_deidentified_three_phase_study_works_like_the_original(three_phase_dir, tmp_path_factory):
    target = tmp_path_factory.mktemp("deid")  # three_phase_dir is the test's tmp_path: write beside it
    _deidentify_tree(three_phase_dir, target, Deidentifier(salt=b"study"))
    original, deidentified = load_study(three_phase_dir), load_study(target)
    _assert_same_study(original, deidentified)
    assert [g.phase for g in suggest_phases(deidentified.series)] == ["nc", "art", "pv"]
    for path in target.rglob("*.dcm"):
        raw = path.read_bytes()
        assert b"SYNTHETIC^PATIENT" not in raw and b"SYN0001" not in raw and b"20200115" not in raw


def test_a_deidentified_demo_study_works_like_the_original(demo_dir_or_skip, tmp_path):
    patient = sorted((demo_dir_or_skip / "studies").iterdir())[0]
    _deidentify_tree(patient, tmp_path / "deid", Deidentifier(salt=b"demo"))
    _assert_same_study(load_study(patient), load_study(tmp_path / "deid"))


def test_age_from_birth_and_study_dates():
    assert age_from_dates("20200115", "20230301") == "037M"
    assert age_from_dates("20000101", "20230301") == "023Y"
    assert age_from_dates("garbage", "20230301") is None
