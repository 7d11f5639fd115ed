"""The typed case (nbrisk_core/case.py): one phase spelling, no alias guessing, no dict round trips."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from nbrisk_core.case import PHASES, Case, ChosenSlice, Phase

ROOT = Path(__file__).resolve().parents[2]
#: where the product's code lives; left out: the migrations (frozen history: they spell the phases as
#: the database held them)
SOURCES = [p for folder in ("nbrisk_core", "nbrisk_ui", "pages")
           for p in sorted((ROOT / folder).rglob("*.py"))
           if p.relative_to(ROOT).as_posix() != "nbrisk_core/case.py"
           and "migrations" not in p.parts]


def _phase_sequences(path: Path) -> list[str]:
    """Tuple, list and set literals in ``path`` that spell out the three phases (a phase definition; a
    list of model variants such as ``("nc", "art", "pv", "mp")`` is not one)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            words = {e.value.lower() for e in node.elts
                     if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if words == {"nc", "art", "pv"}:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_phases_are_spelled_in_one_place():
    assert len(SOURCES) > 50
    assert [hit for path in SOURCES for hit in _phase_sequences(path)] == []


def test_the_phase_constants_are_the_phase_type():
    from nbrisk_core.cli import predict
    from nbrisk_core.cohort import format as cohort_format
    from nbrisk_core.demo import render
    from nbrisk_core.imaging import case, model_input, phases
    from nbrisk_core.store import models

    for constant in (predict.PHASES, cohort_format.PHASES, render.PHASES, case.PHASE_ORDER,
                     model_input.PHASES, phases.PHASE_CODES, models.PHASES):
        assert constant is PHASES
    assert [str(p) for p in PHASES] == ["nc", "art", "pv"] and Phase("art") is Phase.ART
    with pytest.raises(ValueError, match="'ART' is not a valid Phase"):
        Phase("ART")


@pytest.mark.parametrize("pattern", [r"\bFIELD_NAMES\b", r"\bfields_of\(", r"(?<![.\w])lookup\((?!self)",
                                     r"\b_phase_key\b", r"\bcurve_from\b", r"\bgradcam_by_phase\b"])
def test_no_alias_guessing_is_left(pattern):
    # (a method such as the web-session registry's REGISTRY.lookup(token) is another thing)
    hits = [f"{p.relative_to(ROOT)}" for p in SOURCES if re.search(pattern, p.read_text())]
    assert hits == []


def test_pages_keep_typed_objects_without_dict_round_trips():
    for page in sorted((ROOT / "pages").glob("*.py")):
        text = page.read_text()
        assert "asdict(" not in text and "SimpleNamespace(" not in text, page.name


def test_a_case_keys_its_slices_by_phase_and_checks_them():
    import numpy as np

    art = ChosenSlice("art", 3, 12.0, hu=np.zeros((4, 4), np.int16))
    case = Case(slices={"art": art})
    assert list(case.slices) == [Phase.ART] and case.slices["art"] is art
    with pytest.raises(ValueError, match="chosen slice of phase art stored under nc"):
        Case(slices={"nc": art})
    with pytest.raises(ValueError, match="either HU or a grey image"):
        ChosenSlice("pv", 0, 0.0)
