"""Issue 21 in a real browser: from opening the Case page to the Swin-ART probability in three actions.

1. "Load demo study" (the Case page opens on the demo source): the study is read and the MONAI
   segmentation proposes every phase's max-area slice without a click (the proposal table, the
   contour and the area curve; each proposal within one slice of the generator's truth);
2. "Confirm all proposals": every confident phase is confirmed and the page goes on to the Risk page;
3. read the Swin-ART probability the Risk page scored from the confirmed slices.

And the upload path: dropping the study's zip reads it at once (no "Read" button) and the proposals
appear. Each step is asserted; only the listed clicks (and the drop) are made.
"""

from __future__ import annotations

import json
import re
import time

import pandas as pd
import pytest

from tests.e2e.harness import Flow

from .conftest import CLINICIAN

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

PROPOSED = re.compile(r"Proposed max-area slice: (\d+) \((\d+) mm², ([\d.]+) mL, longest diameter (\d+) mm, "
                      r"confidence (\d+)%\)")


def _skip_without_models():
    from nbrisk_core.segment.model import shipped_seg_model_path
    from tests.e2e.harness import models_missing_reason

    reason = models_missing_reason()
    if reason:
        pytest.skip(f"the Risk step needs the shipped model: {reason}")
    if not shipped_seg_model_path().is_file():
        pytest.skip("no shipped segmentation model (models/seg_demo)")


def _open_case_page(flow: Flow) -> None:
    from playwright.sync_api import expect

    flow.sign_in(*CLINICIAN[:2])
    flow.go_to("Case")
    expect(flow.page.get_by_text("1 · Study")).to_be_visible()
    flow.wait_idle()


def _assert_proposals(flow: Flow, truth: pd.Series) -> None:
    """The proposal panel and the first phase's viewer on its proposal, with no click on the image."""
    from playwright.sync_api import expect

    page = flow.page
    confirm_all = page.get_by_role("button", name="Confirm all proposals (NC, ART, PV)")
    expect(confirm_all).to_be_enabled()
    # the NC tab is open: its viewer shows the automatic proposal and the area curve
    sentence = page.get_by_text(PROPOSED).first
    expect(sentence).to_be_visible()
    found = PROPOSED.search(sentence.inner_text())
    assert found, sentence.inner_text()
    index, area_mm2, volume_ml, diameter_mm, confidence = (int(found[1]), int(found[2]), float(found[3]),
                                                          int(found[4]), int(found[5]))
    assert abs(index - int(truth["max_area_slice_nc"])) <= 1, (index, truth["max_area_slice_nc"])
    assert area_mm2 > 0 and volume_ml > 0 and diameter_mm > 0 and confidence >= 50
    expect(page.get_by_text("NC: tumour area per slice (automatic)")).to_be_attached()
    # the viewer of the open phase stands on the proposed slice (its confirm button names the slice shown)
    expect(page.get_by_role("button", name=f"Confirm slice {index} for NC", exact=True)).to_be_visible()


def test_demo_study_to_swin_art_probability_in_three_actions(server, context, demo_dir):
    from playwright.sync_api import expect

    _skip_without_models()
    patient = json.loads((demo_dir / "cohort.json").read_text())["example_patients"][0]
    truth = pd.read_csv(demo_dir / "truth.csv").set_index("patient_id").loc[patient]
    flow = Flow(context.new_page(), server.url, name="three_actions")
    page = flow.page
    _open_case_page(flow)
    # the Case page opens on the demo source with the example patient chosen: nothing to set first
    expect(page.get_by_role("button", name="Load demo study")).to_be_visible()

    actions: list[str] = []
    started = time.perf_counter()
    with flow.step("1_load_demo_study"):
        actions.append("click Load demo study")
        page.get_by_role("button", name="Load demo study").click()
        expect(page.get_by_text("3 · Max-area slice per phase")).to_be_visible()
        flow.wait_idle()
        flow.assert_no_exception()
        # the example patient was preselected: the study loaded is that patient's
        expect(page.get_by_text(f"Loaded: demo {patient}")).to_be_visible()
        _assert_proposals(flow, truth)
    with flow.step("2_confirm_all"):
        actions.append("click Confirm all proposals")
        page.get_by_role("button", name="Confirm all proposals (NC, ART, PV)").click()
        expect(page.get_by_role("heading", name="Risk").first).to_be_visible()
        flow.wait_idle()
        flow.assert_no_exception()
    with flow.step("3_read_risk"):
        actions.append("read the Swin-ART probability")
        # the Risk page scored the case it was sent (the Case page's source is the one chosen)
        expect(page.get_by_text(re.compile(r"Case: current case"))).to_be_visible()
        metric = page.locator('[data-testid="stMetric"]').filter(has_text="Swin-ART").first
        expect(metric).to_be_visible()
        value = metric.locator('[data-testid="stMetricValue"]').inner_text()
        assert re.fullmatch(r"\d{1,3}\.\d%", value.strip()), value
        assert 0.0 <= float(value.strip().rstrip("%")) <= 100.0
    elapsed = time.perf_counter() - started
    print(f"three actions: {elapsed:.1f} s; steps: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in flow.timings.items() if k[0].isdigit()))
    assert actions == ["click Load demo study", "click Confirm all proposals",
                       "read the Swin-ART probability"]


def test_dropping_a_study_reads_it_and_proposes_without_a_click(server, context, demo_dir, tmp_path):
    from playwright.sync_api import expect

    from tests.e2e.harness import make_demo_zip

    _skip_without_models()
    patient = json.loads((demo_dir / "cohort.json").read_text())["example_patients"][0]
    truth = pd.read_csv(demo_dir / "truth.csv").set_index("patient_id").loc[patient]
    study_zip = make_demo_zip(demo_dir, patient, tmp_path)
    flow = Flow(context.new_page(), server.url, name="read_on_drop")
    page = flow.page
    _open_case_page(flow)
    page.locator('[data-testid="stRadio"]').get_by_text("Upload", exact=True).click()
    dropzone = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    expect(dropzone).to_have_count(1)
    with flow.step("drop"):
        dropzone.first.set_input_files(str(study_zip))
        # no button is pressed: the drop alone reads the study and runs the segmentation
        expect(page.get_by_text("3 · Max-area slice per phase")).to_be_visible()
        flow.wait_idle()
        flow.assert_no_exception()
        assert page.get_by_role("button", name="Read upload").count() == 0
        expect(page.get_by_text(re.compile(r"Loaded: upload of 1 files"))).to_be_visible()
        _assert_proposals(flow, truth)


def test_one_seed_click_corrects_a_phase_before_confirm_all(server, context, demo_dir):
    """The correction path: one click on the tumour in the NC viewer replaces NC's proposal; "Confirm
    all proposals" then confirms the click's max-area slice there and the proposals elsewhere."""
    from playwright.sync_api import expect
    from scipy import ndimage

    from nbrisk_core.segment.inference import segment_study

    _skip_without_models()
    patient = json.loads((demo_dir / "cohort.json").read_text())["example_patients"][0]
    # where the tumour is on NC's proposed slice (the test's own run of the network)
    nc = segment_study(demo_dir / "studies" / patient)["nc"]
    row, col = ndimage.center_of_mass(nc.mask[nc.max_area_slice])
    rows, cols = nc.mask.shape[1:]
    flow = Flow(context.new_page(), server.url, name="seed_click")
    page = flow.page
    _open_case_page(flow)
    page.get_by_role("button", name="Load demo study").click()
    on_proposal = page.get_by_role("button", name=f"Confirm slice {nc.max_area_slice} for NC", exact=True)
    expect(on_proposal).to_be_visible()
    flow.wait_idle()
    with flow.step("seed_click"):
        image = page.frame_locator('iframe[title*="streamlit_image_coordinates"]').first.locator("img")
        expect(image).to_be_visible()
        box = image.bounding_box()
        image.click(position={"x": (col + 0.5) * box["width"] / cols,
                              "y": (row + 0.5) * box["height"] / rows})
        # the click's own contour and area curve replace the automatic proposal in NC
        seeded = page.get_by_text(re.compile(r"^Proposed max-area slice: \d+ \(\d+ mm²\)$"))
        expect(seeded).to_be_visible()
        expect(page.get_by_text("NC: tumour area per slice", exact=True)).to_be_attached()
        flow.wait_idle()
        flow.assert_no_exception()
        clicked_slice = int(re.search(r"slice: (\d+)", seeded.inner_text())[1])
        assert abs(clicked_slice - nc.max_area_slice) <= 1
    with flow.step("confirm_all"):
        page.get_by_role("button", name="Confirm all proposals (NC, ART, PV)").click()
        expect(page.get_by_role("heading", name="Risk").first).to_be_visible()
        metric = page.locator('[data-testid="stMetric"]').filter(has_text="Swin-ART").first
        expect(metric.locator('[data-testid="stMetricValue"]')).to_have_text(re.compile(r"^\d{1,3}\.\d%$"))
    with flow.step("chosen_slices"):
        flow.go_to("Case")
        expect(page.get_by_text(re.compile(rf"^NC · slice {clicked_slice} · z"))).to_be_visible()
