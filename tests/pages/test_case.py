"""The Case page (AppTest): loads a demo study, confirms slices, sends them to the Risk page state."""

from __future__ import annotations

import numpy as np
from streamlit.testing.v1 import AppTest

from nbrisk_core.imaging.model_input import build_model_input, build_model_input_from_chosen
from nbrisk_ui import state

PAGE = "pages/1_Case.py"


def test_page_renders_without_a_case(repo_root):
    at = AppTest.from_file(str(repo_root / PAGE), default_timeout=120).run()
    assert not at.exception
    assert any("Load a demo study" in info.value for info in at.info) or at.button


def test_demo_case_flow(repo_root, demo_dir_or_skip):
    at = AppTest.from_file(str(repo_root / PAGE), default_timeout=180).run()
    assert not at.exception
    at.button(key="case.load_demo").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assignment = at.session_state[state.PHASE_ASSIGNMENT]
    assert sorted(p for p in assignment.values() if p) == ["art", "nc", "pv"]
    # step to the next slice, then confirm ART there; the others start at the nearest position
    start = at.session_state["case.slice.art"]
    at.button(key="case.next.art").click().run()
    assert at.session_state["case.slice.art"] == start + 1
    at.selectbox(key="case.window.art").select("liver").run()
    at.button(key="case.confirm.art").click().run()
    assert not at.exception
    confirmed = at.session_state[state.CONFIRMED_SLICES]
    assert confirmed["art"].index == start + 1 and confirmed["art"].hu.dtype == np.int16
    # the display window is kept with the slice, so a reopened case shows it as confirmed
    assert confirmed["art"].window == {"name": "liver", "width": 150.0, "level": 30.0}
    at.button(key="case.send").click().run()
    assert not at.exception
    chosen = at.session_state[state.CHOSEN_SLICES]
    case = at.session_state[state.CASE]
    assert set(chosen) == {"art"} and case["deidentified"] and "P000" not in str(case)
    # the page's slice gives the model input the CLI gets from the same study and index
    from nbrisk_core.imaging import read_phase_input

    patient = at.session_state["case.demo_patient"]
    grey, _ = read_phase_input(demo_dir_or_skip / "studies" / patient / "ART", start + 1)
    np.testing.assert_array_equal(build_model_input_from_chosen(chosen, "art"), build_model_input({"art": grey}, "art"))
