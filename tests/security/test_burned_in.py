"""Replays issue 18 finding 7 (burned-in annotation part): a name in the pixels, or a header saying
(0028,0301) BurnedInAnnotation = YES, reached the stored slices and every PDF with no warning.

Now the reader keeps the header flag, a pixel heuristic finds text outside the body, the Case page
warns, and a flagged slice is stored masked, or as shown only with a reviewer's recorded
confirmation; with neither it is not stored.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from streamlit.testing.v1 import AppTest

from nbrisk_core.case import ChosenSlice
from nbrisk_core.errors import InputError
from nbrisk_core.imaging.burned_in import (META_KEY, assess, body_mask, clear_for_storage, find_pixel_text,
                                           flagged_slices, mask_outside_body)
from nbrisk_core.imaging.case import chosen_slice
from nbrisk_core.imaging.dicom_io import load_study
from nbrisk_core.store import cases
from nbrisk_core.store.db import get_engine
from nbrisk_ui import state
from nbrisk_ui.text import plain

TIMEOUT = 120
SATURATED_HU = 3071  # the top of a 12-bit CT range: where scanners draw their text
PATIENT = "P0001"


def burn_text(plane: np.ndarray, text: str, xy: tuple[int, int], value: float, size: float | None = None):
    """``plane`` with ``text`` drawn at ``xy`` (PIL ImageDraw, the default font) at grey level ``value``."""
    canvas = Image.new("L", plane.shape[::-1], 0)
    font = ImageFont.load_default() if size is None else ImageFont.load_default(size)
    ImageDraw.Draw(canvas).text(xy, text, fill=255, font=font)
    out = plane.copy()
    out[np.asarray(canvas) > 127] = value
    return out


@pytest.fixture(scope="module")
def demo_study(demo_dir):
    return load_study(demo_dir / "studies" / PATIENT)


@pytest.fixture(scope="module")
def clean_slice(demo_study) -> np.ndarray:
    art = next(s for s in demo_study.series if "art" in s.label.lower())
    return art.hu[art.n_slices // 2].copy()


# ------------------------------------------------------------------ the pixel heuristic
CORNERS = {"top-left": (3, 3), "top-right": (190, 3), "bottom-left": (3, 240), "bottom-right": (200, 240)}


@pytest.mark.parametrize("corner", sorted(CORNERS))
@pytest.mark.parametrize("text, size", [("DOE^JOHN", None), ("ID 1234567", 12), ("J DOE", 9)])
def test_text_in_a_corner_is_found(clean_slice, corner, text, size):
    marked = burn_text(clean_slice, text, CORNERS[corner], SATURATED_HU, size)
    assert (marked != clean_slice).sum() > 0
    assert find_pixel_text(marked) >= 3


def test_no_false_positive_on_the_demo_slices(demo_study, demo_dir):
    planes = [plane for series in demo_study.series for plane in series.hu]
    assert len(planes) >= 100
    assert [i for i, plane in enumerate(planes) if find_pixel_text(plane)] == []
    # the paper's 2-D input: W400/L40 grey exports of the demo cohort's chosen slices
    pngs = sorted((demo_dir / "slices").glob("*/*.png"))[:90]
    assert len(pngs) >= 30
    greys = {p: np.asarray(Image.open(p).convert("L")) for p in pngs}
    assert [p.name for p, grey in greys.items() if find_pixel_text(grey, is_hu=False)] == []


def test_text_in_a_grey_image_upload_is_found(demo_dir):
    grey = np.asarray(Image.open(demo_dir / "slices" / PATIENT / "art.png").convert("L"))
    assert find_pixel_text(grey, is_hu=False) == 0
    assert find_pixel_text(burn_text(grey, "DOE^JOHN 12.03.1970", (4, 4), 255), is_hu=False) >= 3


def test_masking_removes_the_text_and_keeps_the_body(clean_slice):
    marked = burn_text(clean_slice, "DOE^JOHN 1970", (3, 240), SATURATED_HU)
    masked = mask_outside_body(marked)
    body = body_mask(clean_slice)
    assert find_pixel_text(masked) == 0 and (masked >= SATURATED_HU).sum() == 0
    np.testing.assert_array_equal(masked[body], clean_slice[body])
    assert masked.dtype == clean_slice.dtype and (masked[~body] == -1000).all()


# ------------------------------------------------------------------ the header flag, in the reader
def _study_copy(demo_dir: Path, out: Path, *, header_flag: bool, text_in_slice: int | None = None) -> Path:
    """The demo patient's ART series, copied; optionally flagged (0028,0301) and with a name burned in."""
    import pydicom

    target = out / "ART"
    shutil.copytree(demo_dir / "studies" / PATIENT / "ART", target)
    files = sorted(p for p in target.iterdir() if p.is_file())
    for path in files:
        ds = pydicom.dcmread(path)
        if header_flag:
            ds.BurnedInAnnotation = "YES"
        if text_in_slice is not None and int(ds.InstanceNumber) == text_in_slice:
            stored = ds.pixel_array
            top = (SATURATED_HU - float(ds.RescaleIntercept)) / float(ds.RescaleSlope)
            ds.PixelData = burn_text(stored, "DOE^JOHN", (3, 3), top).astype(stored.dtype).tobytes()
        ds.save_as(path)
    return out


def test_reader_keeps_the_burned_in_annotation_flag(demo_dir, tmp_path):
    flagged = load_study(_study_copy(demo_dir, tmp_path / "flagged", header_flag=True))
    clean = load_study(_study_copy(demo_dir, tmp_path / "clean", header_flag=False))
    assert [s.header.get("BurnedInAnnotation") for s in flagged.series] == ["YES"]
    assert [s.header.get("BurnedInAnnotation") for s in clean.series] == [None]
    # the chosen slice carries the finding: header flag, clean pixels
    entry = chosen_slice(flagged.series[0], 10, "art")
    assert entry.burned_in == {"header": True, "pixel_text": False, "text_marks": 0, "flagged": True}
    assert chosen_slice(clean.series[0], 10, "art").burned_in["flagged"] is False


# ------------------------------------------------------------------ before storing
def _chosen(plane, header=False) -> dict:
    """A chosen slice as the Case page makes it (its finding recorded by ``chosen_slice``)."""
    finding = assess(plane, True, {"BurnedInAnnotation": "YES" if header else ""})
    return {"art": ChosenSlice("art", 5, 12.0, hu=plane, series_uid="2.25.1", burned_in=finding.to_dict())}


def test_a_flagged_slice_is_refused_without_a_decision(clean_slice):
    marked = burn_text(clean_slice, "DOE^JOHN", (3, 3), SATURATED_HU)
    with pytest.raises(InputError) as info:
        clear_for_storage(_chosen(marked), None, "alice")
    message = str(info.value)
    assert "ART" in message and "text-like marks" in message and "not saved" in message
    with pytest.raises(InputError, match="BurnedInAnnotation = YES"):
        clear_for_storage(_chosen(clean_slice, header=True), None, "alice")
    with pytest.raises(InputError, match="decision = 'keep'"):
        clear_for_storage(_chosen(marked), "keep", "alice")
    assert clear_for_storage(_chosen(clean_slice), None, "alice")["art"].hu is clean_slice


def test_mask_and_confirm_are_recorded_with_the_slice(clean_slice):
    marked = burn_text(clean_slice, "DOE^JOHN", (3, 3), SATURATED_HU)
    original = _chosen(marked)
    masked = clear_for_storage(original, "mask", "alice")["art"]
    assert find_pixel_text(masked.hu) == 0 and original["art"].hu is marked  # the caller's copy kept
    assert masked.burned_in["decision"] == "mask" and masked.burned_in["decided_by"] == "alice"
    assert masked.burned_in["pixel_text"] is True and masked.burned_in["text_marks_after_mask"] == 0
    confirmed = clear_for_storage(original, "confirm", "bob")["art"]
    assert confirmed.hu is marked
    assert confirmed.burned_in["decision"] == "confirm" and confirmed.burned_in["decided_by"] == "bob"
    assert confirmed.burned_in["decided_at"]
    # once decided, the slice is not asked about again (a reopened case saved anew)
    assert clear_for_storage({"art": confirmed}, None, "carol")["art"] is confirmed


def test_a_slice_without_a_recorded_finding_is_checked_in_its_pixels(clean_slice):
    """A case saved before NBRisk checked, reopened: no finding recorded, so its pixels are looked at."""
    marked = burn_text(clean_slice, "DOE^JOHN", (3, 3), SATURATED_HU)
    slices = {"art": ChosenSlice("art", hu=marked), "nc": ChosenSlice("nc", hu=clean_slice)}
    assert list(flagged_slices(slices)) == ["art"]
    with pytest.raises(InputError, match="ART: .*text-like marks"):
        clear_for_storage({"art": ChosenSlice("art", hu=marked)}, None, "alice")


# ------------------------------------------------------------------ pages
def _save_box_page():
    from nbrisk_ui.cases import save_case_widget

    save_case_widget()


@pytest.mark.parametrize("decision", ["mask", "confirm"])
def test_save_box_warns_and_stores_masked_or_confirmed(store_url, clean_slice, decision):
    marked = burn_text(clean_slice, "DOE^JOHN 1970", (3, 240), SATURATED_HU)
    at = AppTest.from_function(_save_box_page, default_timeout=TIMEOUT)
    at.session_state[state.CHOSEN_SLICES] = {"art": ChosenSlice("art", 24, 10.0, hu=marked, burned_in={
        "header": False, "pixel_text": True, "text_marks": 9, "flagged": True})}
    at.run()
    assert not at.exception
    assert any("Burned-in annotation" in w.value and "text-like marks" in plain(w.value) for w in at.warning)
    at.radio(key="nbrisk.save.burned_in").set_value(decision)
    at.button(key="nbrisk.save.button").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    stored = cases.load_case(get_engine(store_url), at.session_state[state.CASE_ID], "local")
    art = stored.slices["art"]
    record = art.meta[META_KEY]
    assert record["decision"] == decision and record["decided_by"] == "local" and record["pixel_text"]
    if decision == "mask":
        assert find_pixel_text(art.hu) == 0
        np.testing.assert_array_equal(art.hu[body_mask(clean_slice)], clean_slice[body_mask(clean_slice)])
    else:
        np.testing.assert_array_equal(art.hu, marked)
    # the working slice in the session is the unmasked one (the Risk page's input does not change)
    np.testing.assert_array_equal(at.session_state[state.CHOSEN_SLICES]["art"].hu, marked)


def test_case_page_warns_of_a_flagged_series_and_a_slice_with_text(demo_dir, tmp_path, monkeypatch):
    cohort = tmp_path / "cohort"
    _study_copy(demo_dir, cohort / "studies" / "P9999", header_flag=True, text_in_slice=24)
    monkeypatch.setenv("NBRISK_DATA_DIR", str(cohort))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "pages" / "1_Case.py"),
                           default_timeout=TIMEOUT).run()
    at.button(key="case.load_demo").click().run()
    assert not at.exception
    assert any("BurnedInAnnotation = YES" in w.value for w in at.warning)
    series = at.session_state[state.IMAGING_STUDY].series[0]
    index = int(np.flatnonzero(series.hu.reshape(series.n_slices, -1).max(axis=1) >= SATURATED_HU)[0])
    at.session_state["case.slice.art"] = index
    at.run()
    at.button(key="case.confirm.art").click().run()
    assert not at.exception
    confirmed = at.session_state[state.CONFIRMED_SLICES]["art"]
    assert confirmed.burned_in["header"] and confirmed.burned_in["pixel_text"]
    assert any("text-like marks outside the body" in w.value for w in at.warning)


# ------------------------------------------------------------------ the PDF report
@pytest.mark.parametrize("decision", [None, "mask", "confirm"])
def test_pdf_says_what_was_done_and_masks_a_slice_stored_before_the_check(clean_slice, decision, tmp_path):
    import subprocess

    from nbrisk_core.case import Case, StoredInfo
    from nbrisk_core.report import render_pdf
    from nbrisk_core.report.pdf import burned_in_view

    marked = burn_text(clean_slice, "DOE^JOHN 1970", (3, 240), SATURATED_HU)
    record = {}
    if decision is not None:
        record = clear_for_storage(_chosen(marked), decision, "alice")["art"].burned_in
    stored = mask_outside_body(marked) if decision == "mask" else marked
    sl = ChosenSlice("art", 24, 10.0, hu=stored, burned_in=record)
    plane, note = burned_in_view(sl)
    # printed: masked unless a reviewer confirmed the slice as shown
    assert (find_pixel_text(plane) > 0) == (decision == "confirm")
    if decision is None:  # a case saved before the check: the report prints the masked slice
        assert find_pixel_text(plane) == 0 and "blacked out in this report" in note
    pdf = render_pdf(Case(label="P0001", slices={"art": sl}, stored=StoredInfo("C0000000002", 1)))
    if shutil.which("pdftotext"):
        (tmp_path / "case.pdf").write_bytes(pdf)
        text = " ".join(subprocess.run(["pdftotext", str(tmp_path / "case.pdf"), "-"], capture_output=True,
                                       text=True, check=True).stdout.split())
        expected = {None: "blacked out in this report", "mask": "blacked out before storing",
                    "confirm": "alice confirmed it shows no identifying text"}[decision]
        assert "Burned-in annotation" in text and expected in text, text


def test_pdf_reuses_the_finding_recorded_when_the_slice_was_chosen(clean_slice, monkeypatch):
    """A slice saved since the check carries its finding: the report does not run the heuristic again."""
    from nbrisk_core.imaging import burned_in
    from nbrisk_core.report.pdf import burned_in_view

    record = assess(clean_slice).to_dict()
    assert not record["flagged"]

    def not_again(*_args, **_kwargs):
        raise AssertionError("find_pixel_text ran again on a slice whose finding is recorded")

    monkeypatch.setattr(burned_in, "find_pixel_text", not_again)
    plane, note = burned_in_view(ChosenSlice("art", 24, 10.0, hu=clean_slice, burned_in=record))
    assert plane is clean_slice and note is None
