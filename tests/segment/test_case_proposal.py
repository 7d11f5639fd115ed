"""The Case page proposes every phase's max-area slice on loading; one button confirms them."""

from __future__ import annotations

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from nbrisk_core.segment.model import shipped_seg_model_path
from nbrisk_ui import segment_proposal, state


def load_seg_card_sha() -> str:
    from nbrisk_core.segment.model import read_seg_card

    return read_seg_card(shipped_seg_model_path())["sha256"]

PAGE = "pages/1_Case.py"


@pytest.mark.skipif(not shipped_seg_model_path().is_file(), reason="no shipped segmentation model")
def test_demo_study_opens_on_the_proposed_slices_and_confirm_all_takes_them(repo_root, demo_dir):
    at = AppTest.from_file(str(repo_root / PAGE), default_timeout=240).run()
    at.button(key="case.load_demo").click().run()
    assert not at.exception, at.exception
    patient = at.session_state["case.demo_patient"]
    truth = pd.read_csv(demo_dir / "truth.csv").set_index("patient_id").loc[patient]
    for phase in ("nc", "art", "pv"):
        # each viewer opens on the proposal, which is within one slice of the truth
        assert abs(at.session_state[f"case.slice.{phase}"] - int(truth[f"max_area_slice_{phase}"])) <= 1
    at.button(key="case.confirm_all").click().run()
    assert not at.exception
    confirmed = at.session_state[state.CONFIRMED_SLICES]
    assert set(confirmed) == {"nc", "art", "pv"}
    assert all(abs(confirmed[p].index - int(truth[f"max_area_slice_{p}"])) <= 1 for p in confirmed)
    # each confirmed slice carries the tumour's measurements for the saved case and the report
    proposals = at.session_state[segment_proposal.PROPOSALS][1]
    for phase, chosen in confirmed.items():
        measured = chosen.segmentation
        assert measured is not None and measured.source == "automatic" and measured.found
        assert measured.volume_ml == pytest.approx(proposals[phase].volume_ml) and measured.volume_ml > 0
        assert measured.longest_diameter_mm == pytest.approx(proposals[phase].longest_diameter_mm)
        assert measured.model_sha256 == load_seg_card_sha()
    # the same button sent them on to the Risk page's state
    assert set(at.session_state[state.CHOSEN_SLICES]) == {"nc", "art", "pv"}


@pytest.mark.slow
@pytest.mark.skipif(not shipped_seg_model_path().is_file(), reason="no shipped segmentation model")
def test_a_seed_click_replaces_its_phases_proposal_in_confirm_all(repo_root):
    """Bug: "Confirm all proposals" confirmed the network's slice in a phase the user had corrected
    with a seed click; the click's segmentation must replace the proposal (slice and measurements)."""
    import numpy as np

    from nbrisk_core.imaging.segmentation import Segmentation

    at = AppTest.from_file(str(repo_root / PAGE), default_timeout=240).run()
    at.button(key="case.load_demo").click().run()
    assert not at.exception, at.exception
    proposals = at.session_state[segment_proposal.PROPOSALS][1]
    study = at.session_state[state.IMAGING_STUDY]
    art_uid = next(uid for uid, p in at.session_state[state.PHASE_ASSIGNMENT].items() if p == "art")
    series = study.by_uid(art_uid)
    # what the click's contour gives (a stand-in: the image component cannot be clicked in AppTest)
    clicked = (proposals["art"].max_area_slice + 3) % series.n_slices
    mask = np.zeros(series.hu.shape, dtype=bool)
    mask[clicked, 100:120, 90:130] = True
    mask[clicked - 1, 104:116, 100:120] = True
    pixel_mm2 = series.pixel_spacing[0] * series.pixel_spacing[1]
    areas = mask.reshape(mask.shape[0], -1).sum(axis=1) * pixel_mm2
    click = Segmentation(mask, (clicked, 110, 110), (0.0, 100.0), areas, clicked)
    at.session_state[state.SEGMENTATIONS] = {"art": click}
    at.button(key="case.confirm_all").click().run()
    assert not at.exception, at.exception
    confirmed = at.session_state[state.CONFIRMED_SLICES]
    assert confirmed["art"].index == clicked != proposals["art"].max_area_slice
    measured = confirmed["art"].segmentation
    assert measured.source == "seed click" and measured.max_area_slice == clicked
    assert measured.volume_ml == pytest.approx(mask.sum() * pixel_mm2 * series.slice_spacing_mm / 1000)
    assert measured.area_mm2 == pytest.approx(800 * pixel_mm2)
    assert measured.longest_diameter_mm == pytest.approx(np.hypot(19 * series.pixel_spacing[0],
                                                                  39 * series.pixel_spacing[1]))
    for phase in ("nc", "pv"):
        assert confirmed[phase].index == proposals[phase].max_area_slice
        assert confirmed[phase].segmentation.source == "automatic"
