"""Shared contracts: windowing, the model input builder, the split, the clinical schema."""

from __future__ import annotations

import numpy as np
import pytest

from nbrisk_core.clinical import CLINICAL_VARIABLES, LAB_VARIABLES, variable
from nbrisk_core.errors import InputError
from nbrisk_core.imaging.model_input import build_model_input, hu_to_uint8, to_model_image
from nbrisk_core.imaging.windowing import MODEL_WINDOW, WINDOW_PRESETS, window_to_uint8
from nbrisk_core.split import stratified_split


def test_window_matches_dicom_linear_function():
    # PS3.3 C.11.2.1.2.1 with c=40, w=400: x <= c-0.5-(w-1)/2 -> 0, x > c-0.5+(w-1)/2 -> 255
    hu = np.array([-1000, -160, -159.5, 40, 239, 240, 3000])
    out = window_to_uint8(hu, 400, 40)
    expected = np.clip(np.rint(((hu - 39.5) / 399 + 0.5) * 255), 0, 255)
    assert out.tolist() == expected.astype(int).tolist()
    assert out[0] == 0 and out[-1] == 255
    assert MODEL_WINDOW is WINDOW_PRESETS["abdomen"] and (MODEL_WINDOW.width, MODEL_WINDOW.level) == (400, 40)


def test_window_rejects_zero_width():
    with pytest.raises(ValueError, match="width"):
        window_to_uint8(np.zeros(3), 0, 40)


def test_single_phase_input_repeats_grey_and_multiphase_stacks():
    rng = np.random.default_rng(0)
    grey = {p: hu_to_uint8(rng.normal(40, 100, (256, 256))) for p in ("nc", "art", "pv")}
    art = to_model_image(grey, "art")
    assert art.shape == (224, 224, 3) and art.dtype == np.uint8
    assert np.array_equal(art[..., 0], art[..., 1]) and np.array_equal(art[..., 1], art[..., 2])
    mp = to_model_image(grey, "mp")
    assert np.array_equal(mp[..., 1], art[..., 0])
    assert not np.array_equal(mp[..., 0], mp[..., 1])
    x = build_model_input(grey, "mp")
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    # standardised with ImageNet statistics: a 0 pixel in channel 0 maps to -0.485/0.229
    zero = to_model_image({"art": np.zeros((224, 224), np.uint8)}, "art")
    assert np.allclose(build_model_input({"art": zero[..., 0]}, "art")[0], -0.485 / 0.229)


def test_builder_names_the_missing_phase():
    with pytest.raises(InputError, match="portal venous"):
        to_model_image({"nc": np.zeros((8, 8), np.uint8), "art": np.zeros((8, 8), np.uint8)}, "mp")
    with pytest.raises(InputError, match="unknown model variant"):
        to_model_image({"art": np.zeros((8, 8), np.uint8)}, "ct")


def test_split_is_stratified_seeded_and_paper_sized():
    ids = [f"P{i:04d}" for i in range(1, 203)]
    groups = ["HR"] * 121 + ["NHR"] * 81
    split = stratified_split(ids, groups, seed=7)
    assert (split["cohort"] == "test").sum() == 41 and (split["cohort"] == "train").sum() == 161
    test_hr = sum(g == "HR" for g, c in zip(groups, split["cohort"]) if c == "test")
    assert abs(test_hr / 41 - 121 / 202) < 0.03
    assert split.equals(stratified_split(ids, groups, seed=7))
    assert not split.equals(stratified_split(ids, groups, seed=8))


def test_schema_has_eleven_labs_with_ranges():
    assert len(LAB_VARIABLES) == 11
    assert len({v.name for v in CLINICAL_VARIABLES}) == len(CLINICAL_VARIABLES)
    for v in CLINICAL_VARIABLES:
        if v.kind == "numeric":
            assert v.low is not None and v.high is not None and v.low < v.high
        if v.kind == "categorical":
            assert len(v.categories) >= 2
    assert variable("crp").alt_units["mg/dL"] == 10.0
