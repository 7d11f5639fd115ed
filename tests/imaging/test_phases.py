"""Phase suggestion from descriptions, contrast agent, acquisition order and blood-pool enhancement."""

from __future__ import annotations

import pytest

from nbrisk_core.imaging import load_study
from nbrisk_core.imaging.phases import description_keywords, suggest_phases


@pytest.mark.parametrize(("text", "expected"), [
    ("ABD plain", ["nc"]), ("Non-contrast 5mm", ["nc"]), ("ART arterial phase", ["art"]),
    ("PV portal venous phase", ["pv"]), ("venous", ["pv"]), ("Abdomen 5mm B30f", []),
])
def test_description_keywords(text, expected):
    assert description_keywords(text) == expected


def test_three_phase_study_with_all_cues(three_phase_dir):
    study = load_study(three_phase_dir)
    guesses = {s.label: g for s, g in zip(study.series, suggest_phases(study.series))}
    assert [g.phase for g in guesses.values()] == ["nc", "art", "pv"]
    assert all(g.confidence > 0.9 for g in guesses.values())


def test_image_cues_alone_order_the_phases(three_phase_dir):
    study = load_study(three_phase_dir)
    for s in study.series:  # no description, no agent: only acquisition order and enhancement remain
        s.header["description_keywords"] = []
        s.header.pop("ContrastBolusAgent", None)
    guesses = suggest_phases(study.series)
    assert [g.phase for g in guesses] == ["nc", "art", "pv"]
    assert any("enhanced" in reason for g in guesses for reason in g.reasons)
    # reversed acquisition times alone would disagree with enhancement: confidence must drop
    for s, t in zip(study.series, (200.0, 100.0, 0.0)):
        s.header["acquisition_seconds"] = t
    mixed = suggest_phases(study.series)
    assert min(g.confidence for g in mixed if g.phase) < min(g.confidence for g in guesses)


def test_a_series_without_any_cue_is_left_to_the_user(series_dir):
    study = load_study(series_dir)
    study.series[0].header["description_keywords"] = []
    study.series[0].header.pop("ContrastBolusAgent", None)
    (guess,) = suggest_phases(study.series)
    assert guess.phase is None and guess.confidence == 0.0


def test_demo_studies_phases(demo_dir_or_skip):
    for patient in sorted(p.name for p in (demo_dir_or_skip / "studies").iterdir()):
        study = load_study(demo_dir_or_skip / "studies" / patient)
        guesses = suggest_phases(study.series)
        folders = [s.source_names[0].split("/")[0].lower() for s in study.series]
        assert [g.phase for g in guesses] == folders, patient
