"""One input builder: the Case/Risk page path and the `nbrisk predict` path give the same tensor."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from nbrisk_core.classifier.inference import InferenceConfig, Predictor, predict_case
from nbrisk_core.classifier.model_io import load_model
from nbrisk_core.imaging import load_study, read_phase_input, read_phase_slice
from nbrisk_core.imaging.case import chosen_slice
from nbrisk_core.imaging.model_input import build_model_input, grey_from_chosen_slice, hu_to_uint8
from nbrisk_core.imaging.synthetic import write_ct_series

SLOPE, INTERCEPT = 0.37, -500.0


@pytest.fixture()
def fractional_series(tmp_path):
    """A 3-slice CT series with (0028,1053) RescaleSlope 0.37: its HU are fractional, spanning W400/L40."""
    stored = np.arange(1024 * 3).reshape(3, 32, 32) % 1024 + 1024  # stored values 1024-2047
    folder = tmp_path / "ART"
    write_ct_series(folder, (stored - 1024).astype(np.int16), description="arterial")  # stored = value + 1024
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.RescaleSlope, ds.RescaleIntercept = SLOPE, INTERCEPT
        ds.save_as(path)
    return folder, stored * SLOPE + INTERCEPT


def test_page_and_cli_give_the_same_input_with_a_fractional_slope(fractional_series, tiny_models_dir):
    folder, expected_hu = fractional_series
    card = load_model(tiny_models_dir / "swin_art_demo.safetensors").model_card
    index = 1
    page_entry = chosen_slice(load_study(folder).series[0], index, "art")  # what the Case page stores
    cli_hu, info = read_phase_slice(folder, index)  # what `nbrisk predict --art FOLDER --slice-art 1` reads
    np.testing.assert_allclose(cli_hu, expected_hu[index], atol=1e-3)
    # the test can fail: rounding HU to whole numbers first (the page did: int16) moves some pixels
    # a grey level
    assert (hu_to_uint8(np.rint(cli_hu)) != hu_to_uint8(cli_hu)).sum() > 10
    page_x = card.data.model_input({"art": page_entry})
    np.testing.assert_array_equal(page_x, card.data.model_input({"art": cli_hu}))
    assert page_entry.hu.dtype == np.float32 and cli_hu.dtype == np.float32
    # and the page's own route today (grey of the chosen slice) and the windowed CLI image agree too
    np.testing.assert_array_equal(grey_from_chosen_slice(page_entry), read_phase_input(folder, index)[0])
    page_grey = grey_from_chosen_slice(page_entry)
    np.testing.assert_array_equal(page_x, build_model_input({"art": page_grey}, "art"))


def test_predict_cli_and_page_give_the_same_risk_and_embedding(fractional_series, tiny_models_dir):
    from nbrisk_core.cli.predict import predict_paths

    folder, _ = fractional_series
    cli = predict_paths({"art": folder}, {"art": 2}, tiny_models_dir, precision="fp32")
    predictor = Predictor(load_model(tiny_models_dir / "swin_art_demo.safetensors"), InferenceConfig())
    page = predict_case(predictor, {"art": chosen_slice(load_study(folder).series[0], 2, "art")})
    assert cli["variants"]["art"]["p_high_risk"] == page.p_high_risk
    assert cli["embedding"] == [float(v) for v in page.embedding]


def test_one_cam_overlay_for_page_and_pdf():
    """explain.overlay is imaging.render.cam_overlay (the PDF's): an 8-bit slice, one colour map."""
    from nbrisk_core.classifier.explain import CAM_OPACITY, overlay
    from nbrisk_core.errors import InputError
    from nbrisk_core.imaging import render

    assert overlay is render.cam_overlay
    hu = np.linspace(-200, 300, 40 * 48).reshape(40, 48)
    heat = np.tile(np.linspace(0, 1, 7, dtype=np.float32), (7, 1))  # a CAM at token resolution
    from_hu = overlay(hu_to_uint8(hu), heat, CAM_OPACITY)
    with pytest.raises(InputError, match="8-bit"):
        overlay(hu, heat)  # HU are windowed first, never drawn as grey levels
    assert from_hu.shape == (40, 48, 3) and from_hu.dtype == np.uint8
    # opacity 1: only the heat map, in jet (0 -> dark blue, 1 -> dark red)
    full = overlay(np.zeros((8, 8), np.uint8), np.ones((7, 7)), opacity=1.0)
    assert tuple(full[0, 0]) == (128, 0, 0)
    assert tuple(overlay(np.zeros((8, 8), np.uint8), np.zeros((7, 7)), opacity=1.0)[0, 0]) == (0, 0, 128)
    with pytest.raises(InputError, match="2-D heat map"):
        overlay(hu_to_uint8(hu), np.zeros((2, 7, 7)))
