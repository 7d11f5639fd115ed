"""Viewer rendering, click mapping, the area figure, and one model input from the CLI and page paths."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nbrisk_core.errors import InputError
from nbrisk_core.imaging import load_study, read_phase_input
from nbrisk_core.imaging.case import case_meta, chosen_slice
from nbrisk_core.imaging.model_input import build_model_input, build_model_input_from_chosen, hu_to_uint8
from nbrisk_core.imaging.render import (
    CONTOUR_RGB, area_curve_figure, render_slice, thumbnail, view_to_slice, zoom_window,
)
from nbrisk_core.imaging.windowing import window_to_uint8


def test_render_windows_and_draws_the_contour():
    plane = np.full((32, 32), 40, dtype=np.int16)
    mask = np.zeros((32, 32), dtype=bool)
    mask[8:16, 8:16] = True
    rgb = render_slice(plane, 400, 40, mask=mask)
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[8, 10]) == CONTOUR_RGB  # outline pixel
    assert tuple(rgb[12, 12]) == (128, 128, 128)  # inside: plain windowed grey (W400/L40 maps 40 HU to 128)
    assert tuple(rgb[0, 0]) == (128, 128, 128)


def test_zoom_and_click_mapping_round_trip():
    shape = (100, 100)
    r0, c0, h, w = zoom_window(shape, 2.0, (30, 70))
    assert (h, w) == (50, 50) and r0 == 5 and c0 == 45
    plane = np.arange(100 * 100, dtype=np.int16).reshape(shape)
    # a click at display pixel (x=40, y=20) on a 200-px-wide display of a 2x zoom
    row, col = view_to_slice(40, 20, shape, 2.0, (30, 70), displayed_width=200)
    assert (row, col) == (r0 + 10 // 2, c0 + 20 // 2)
    zoomed = render_slice(plane, 20000, 5000, zoom=2.0, center_rc=(30, 70))
    expected = window_to_uint8(plane[row, col], 20000, 5000)
    assert zoomed[20 * 100 // 200, 40 * 100 // 200, 0] == expected


def test_area_figure_marks_the_proposed_maximum():
    fig = area_curve_figure([0, 10, 30, 20], z_mm=[0, 2, 4, 6], proposed=2, chosen=1)
    names = [trace.name for trace in fig.data]
    assert any("proposed maximum (slice 2)" == n for n in names)
    assert any("chosen (slice 1)" == n for n in names)
    assert list(fig.data[0].y) == [0, 10, 30, 20]


def test_thumbnail_is_small():
    assert max(thumbnail(np.zeros((512, 512)), 400, 40, size=128).shape[:2]) <= 128


def test_cli_and_page_paths_give_the_same_tensor(three_phase_dir):
    """``nbrisk predict`` reads each phase with read_phase_input; the Case page stores the chosen HU
    slice (chosen_slice) and the Risk page windows it: the model input must be identical."""
    index = {"nc": 5, "art": 6, "pv": 4}
    folders = {"nc": "NC", "art": "ART", "pv": "PV"}
    cli_grey = {p: read_phase_input(three_phase_dir / folders[p], index[p])[0] for p in index}
    study = load_study(three_phase_dir)
    page = {}
    for series, phase in zip(study.series, ("nc", "art", "pv")):
        page[phase] = chosen_slice(series, index[phase], phase)
        assert page[phase].hu.dtype == np.int16 and page[phase].index == index[phase]
    for variant in ("nc", "art", "pv", "mp"):
        np.testing.assert_array_equal(build_model_input(cli_grey, variant), build_model_input_from_chosen(page, variant))
    meta = case_meta(study, {s.series_uid: p for s, p in zip(study.series, ("nc", "art", "pv"))})
    assert set(meta["phases"]) == {"nc", "art", "pv"} and meta["age_months"] == pytest.approx(37.0)


def test_read_phase_input_images_and_errors(tmp_path, series_dir, phantom):
    hu, _ = phantom
    grey = hu_to_uint8(hu[3])
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "art.bmp")  # RGB export of a grey slice
    image, info = read_phase_input(tmp_path / "art.bmp")
    np.testing.assert_array_equal(image, grey)
    assert info["source"] == "image"
    entry = chosen_slice(load_study(tmp_path / "art.bmp").series[0], 0, "art")
    assert entry.hu is None and entry.grey.dtype == np.uint8
    np.testing.assert_array_equal(build_model_input_from_chosen({"art": entry}, "art"),
                                  build_model_input({"art": image}, "art"))
    with pytest.raises(InputError, match=r"needs a slice index \(0-11"):
        read_phase_input(series_dir)
    with pytest.raises(InputError, match="out of range; expected 0-11"):
        read_phase_input(series_dir, 12)
    with pytest.raises(InputError, match="no such file"):
        read_phase_input(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match="not a readable image"):
        read_phase_input(tmp_path / "junk.png")
    grey_dicom, info = read_phase_input(series_dir, 3)
    np.testing.assert_array_equal(grey_dicom, grey)
    assert info["slice_index"] == 3 and info["z_mm"] == pytest.approx(6.0)
