"""Malformed header values never crash the reader or ``nbrisk inspect`` (issue 17, item 3).

Each attribute the reader converts (:data:`nbrisk_core.imaging.header.HEADER_RULES`, plus the
window attributes the reader ignores) is overwritten, in every slice of a small series, with raw
bytes as a broken scanner or PACS export writes them: wrong VR content, empty, negative, huge,
NaN, infinite, several values where one is expected, one where several are. Bases: a synthetic
series, two slices of a demo study (when the demo cohort is built) and pydicom's own CT/MR files.
For every mutation: ``load_study`` returns or raises ``InputError`` only; a value the checked
accessor refuses either skips the file with a reason naming the attribute (rule ``skip``) or
leaves a series warning naming it (rule ``ignore``); no reason is the reader's last-resort
"unexpected" one; ``nbrisk inspect`` exits 0 or 2 without a traceback.
"""

from __future__ import annotations

import io
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from nbrisk_core.cli import main as cli_main
from nbrisk_core.errors import InputError
from nbrisk_core.imaging import load_study
from nbrisk_core.imaging.header import HEADER_RULES, SKIP, HeaderValueError, header_value
from nbrisk_core.imaging.synthetic import phantom_volume, write_ct_series

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_STUDIES = REPO_ROOT / "data" / "demo" / "studies"
#: pydicom's own single-frame greyscale CT/MR files that the reader loads (no download)
PYDICOM_FILES = ("CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
                 "MR_small_RLE.dcm")
#: read by pydicom's decoder or kept for display, not converted by the reader: fuzzed to prove harmless
UNCHECKED = ("WindowCenter", "WindowWidth", "BitsStored", "PixelRepresentation", "PatientSex", "Modality")
#: the reader takes the first of AcquisitionTime, ContentTime, SeriesTime that is present
PRECEDED_BY = {"ContentTime": ("AcquisitionTime",), "SeriesTime": ("AcquisitionTime", "ContentTime")}
ATTRIBUTES = tuple(HEADER_RULES) + UNCHECKED

#: raw values of text VRs (IS, DS, TM, AS)
TEXT_MUTATIONS = (b"1A", b"", b" ", b"-5", b"0", b"99999999999999999999", b"1e9999", b"-1e9999", b"nan",
                  b"inf", b"1\\2", b"1\\2\\3\\4\\5\\6\\7", b"0.5", b"1.5", b"\\", b"\xff\xfe\x00",
                  b"12:30:99", b"2.5e3\\x")
#: raw values of binary VRs (US)
BINARY_MUTATIONS = (b"", b"\x00\x00", b"\xff\xff", b"\x01\x00\x02\x00", b"\x01", b"\x00\x80\x00\x80")


def _set_raw(ds, keyword: str, raw: bytes, vr: str | None = None) -> None:
    tag = Tag(tag_for_keyword(keyword))
    vr = vr or dictionary_VR(tag)
    if len(raw) % 2:
        raw += b"\x00" if vr in ("US", "UN") else b" "
    ds._dict[tag] = RawDataElement(tag, vr, len(raw), raw, 0, False, True)


def _mutations(keyword: str) -> list[tuple[str, bytes]]:
    vr = dictionary_VR(tag_for_keyword(keyword))
    if vr == "US":
        # also "wrong VR content": the number written as text under a text VR
        return [("US", m) for m in BINARY_MUTATIONS] + [("IS", b"1A"), ("DS", b"nan"), ("IS", b"70000")]
    return [(vr, m) for m in TEXT_MUTATIONS] + [("US", b"\x01\x00")]


def _synthetic(folder: Path) -> list[Path]:
    hu, _ = phantom_volume(2, 16, 16, seed=1)
    return write_ct_series(folder, hu)


def _bases(tmp_path_factory) -> dict[str, list[bytes]]:
    bases = {"synthetic": [p.read_bytes() for p in _synthetic(tmp_path_factory.mktemp("synthetic"))]}
    studies = sorted(DEMO_STUDIES.iterdir()) if DEMO_STUDIES.is_dir() else []
    if studies:
        art = sorted((studies[0] / "ART").glob("*.dcm"))
        if art:
            middle = len(art) // 2
            bases["demo"] = [p.read_bytes() for p in art[middle:middle + 2]]
    for name in PYDICOM_FILES:
        path = pydicom.data.get_testdata_file(name, download=False)
        if path is not None:
            bases[name] = [Path(path).read_bytes()]
    return bases


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, list[bytes]]:
    found = _bases(tmp_path_factory)
    for name, blobs in found.items():
        assert load_study([(f"{name}-{i}.dcm", b) for i, b in enumerate(blobs)]).series, f"base {name} loads"
    return found


def _mutate(blob: bytes, keyword: str, vr: str, raw: bytes) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(blob))
        for earlier in PRECEDED_BY.get(keyword, ()):
            if earlier in ds:
                del ds[earlier]
        _set_raw(ds, keyword, raw, vr)
        out = io.BytesIO()
        ds.save_as(out)
    return out.getvalue()


def _accessor_verdict(blob: bytes, keyword: str) -> HeaderValueError | None:
    """What the checked accessor says about the mutated value (None: accepted or not a checked one)."""
    if keyword not in HEADER_RULES:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(blob))
    try:
        header_value(ds, keyword)
    except HeaderValueError as error:
        return error
    return None


def _check_study(uploads, keyword: str, verdict: HeaderValueError | None) -> None:
    try:
        study = load_study(uploads)
    except InputError:
        return
    reasons = [f.reason for f in study.skipped]
    assert not any("unexpected" in r for r in reasons), reasons
    if verdict is None:
        return
    if verdict.on_bad == SKIP:
        assert reasons and all(keyword in r for r in reasons), (keyword, reasons)
        assert not study.series
    else:
        texts = [w for s in study.series for w in s.warnings] + reasons
        assert any(keyword in t for t in texts), (keyword, texts)


@pytest.mark.parametrize("keyword", ATTRIBUTES)
def test_load_study_survives_every_mutation(bases, keyword):
    for base, blobs in bases.items():
        for vr, raw in _mutations(keyword):
            mutated = [_mutate(b, keyword, vr, raw) for b in blobs]
            verdict = _accessor_verdict(mutated[0], keyword)
            _check_study([(f"{base}-{i}.dcm", m) for i, m in enumerate(mutated)], keyword, verdict)


INSPECTED = ("NumberOfFrames", "Rows", "PixelSpacing", "InstanceNumber", "ImagePositionPatient",
             "RescaleSlope", "AcquisitionTime", "SeriesNumber")


@pytest.mark.parametrize("keyword", INSPECTED)
def test_inspect_prints_no_traceback(bases, keyword, tmp_path, capsys):
    blobs = bases["synthetic"]
    for n, (vr, raw) in enumerate(_mutations(keyword)):
        folder = tmp_path / f"m{n}"
        folder.mkdir()
        for i, blob in enumerate(blobs):
            (folder / f"IM{i}.dcm").write_bytes(_mutate(blob, keyword, vr, raw))
        code = cli_main(["inspect", str(folder)])
        out, err = capsys.readouterr()
        assert code in (0, 2) and "Traceback" not in out + err
        if code == 2:
            assert len(err.strip().splitlines()) == 1, err
        verdict = _accessor_verdict((folder / "IM0.dcm").read_bytes(), keyword)
        if verdict is not None:
            assert keyword in out + err, (raw, out, err)


def test_number_of_frames_1a_is_a_named_skip(bases, tmp_path):
    """The issue's own example: NumberOfFrames '1A' raised ValueError out of the reader."""
    blob = _mutate(bases["synthetic"][0], "NumberOfFrames", "IS", b"1A")
    study = load_study([("IM1.dcm", blob)])
    assert not study.series
    assert "NumberOfFrames" in study.skipped[0].reason and "'1A'" in study.skipped[0].reason


@pytest.mark.parametrize(("keyword", "vr", "raw"), [("NumberOfFrames", "IS", b"1A"),
                                                    ("InstanceNumber", "IS", b"1e9999")])
def test_inspect_subprocess_one_line(bases, tmp_path, keyword, vr, raw):
    for i, blob in enumerate(bases["synthetic"]):
        (tmp_path / f"IM{i}.dcm").write_bytes(_mutate(blob, keyword, vr, raw))
    done = subprocess.run([sys.executable, "-m", "nbrisk_core", "inspect", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode in (0, 2)
    assert keyword in done.stdout + done.stderr


def test_ignored_value_is_a_named_warning_and_series_loads(bases):
    blobs = [_mutate(b, "SliceThickness", "DS", b"nan") for b in bases["synthetic"]]
    study = load_study([(f"IM{i}.dcm", b) for i, b in enumerate(blobs)])
    assert study.series and study.series[0].n_slices == len(blobs)
    assert any("SliceThickness" in w and "'nan'" in w for w in study.series[0].warnings)


def test_clock_time_is_never_echoed(bases):
    blobs = [_mutate(b, "AcquisitionTime", "TM", b"101530x") for b in bases["synthetic"]]
    study = load_study([(f"IM{i}.dcm", b) for i, b in enumerate(blobs)])
    text = " ".join(w for s in study.series for w in s.warnings)
    assert "AcquisitionTime" in text and "101530" not in text


def test_multiframe_per_frame_values_are_checked(tmp_path):
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("mf.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID, ds.Modality = generate_uid(), "CT"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 8, 8, 3
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    frames = []
    for k in range(3):
        item, position, transform = Dataset(), Dataset(), Dataset()
        position.ImagePositionPatient = [0.0, 0.0, 2.0 * k]
        transform.RescaleSlope, transform.RescaleIntercept = 1, -1024
        item.PlanePositionSequence = Sequence([position])
        item.PixelValueTransformationSequence = Sequence([transform])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = np.zeros((3, 8, 8), dtype=np.uint16).tobytes()
    _set_raw(frames[1].PixelValueTransformationSequence[0], "RescaleSlope", b"x")
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    study = load_study([("mf.dcm", out.getvalue())])
    assert not study.series
    assert "RescaleSlope (frame 2) = 'x'" in study.skipped[0].reason
