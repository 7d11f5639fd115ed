"""The imaging half of a case: which series is which phase, and the slice chosen in each.

The Case page and the CLI build the same objects here: :func:`chosen_slice` is the contract with
the Risk page (``nbrisk_ui.state.CHOSEN_SLICES``), :func:`case_meta` the de-identified case
summary (``nbrisk_ui.state.CASE``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from nbrisk_core.case import PHASES as _PHASES
from nbrisk_core.case import ChosenSlice, Phase
from nbrisk_core.errors import InputError
from nbrisk_core.imaging.deid import age_months
from nbrisk_core.imaging.dicom_io import CTSeries, Study

PHASE_ORDER = _PHASES  # nbrisk_core.case.Phase, in acquisition order


def chosen_slice(series: CTSeries, index: int, phase: str | Phase) -> ChosenSlice:
    """The Risk page's record of one phase's chosen slice.

    Returns
    -------
    ChosenSlice
        ``hu`` (2-D HU slice: int16, or float32 unrounded when a fractional (0028,1053) RescaleSlope
        gives fractional HU, so the model input equals the CLI's; for a 2-D image upload ``grey``
        holds the uint8 image instead),
        ``index`` (0-based, ascending z), ``z_mm``, ``pixel_spacing`` (row, col) in mm, ``series_uid``
        (the remapped UID, never the original) and ``burned_in`` (the header flag and the pixel-text
        finding of :mod:`.burned_in`; a flagged slice is masked or confirmed before it is stored).
    """
    from nbrisk_core.imaging.burned_in import assess

    if not 0 <= int(index) < series.n_slices:
        raise InputError(f"slice index {index} is out of range; expected 0-{series.n_slices - 1}")
    plane = series.hu[int(index)]
    hu = grey = None
    if series.header.get("image_file"):
        grey = np.array(plane, dtype=np.uint8)
    elif series.is_hu:
        hu = _hu_copy(plane)
    else:
        raise InputError(f"{series.label}: modality {series.header.get('Modality')} has no Hounsfield units; "
                         "NBRisk reads CT slices")
    return ChosenSlice(Phase(phase), int(index), float(series.z_mm[int(index)]), hu=hu, grey=grey,
                       pixel_spacing=(float(series.pixel_spacing[0]), float(series.pixel_spacing[1])),
                       series_uid=series.series_uid,
                       burned_in=assess(grey if hu is None else hu, hu is not None, series.header).to_dict())


def with_series(slices: Mapping[Phase, ChosenSlice], study: Study | None,
                assignment: Mapping[str, str | None] | None) -> dict[Phase, ChosenSlice]:
    """The chosen slices, each with its phase's whole series (``series_hu``) from the loaded study.

    For "Also store the whole series": a phase whose series is not loaded (a reopened case) keeps
    what it has.
    """
    by_phase = {Phase(p): s for s in (study.series if study is not None else ())
                for uid, p in (assignment or {}).items() if p and uid == s.series_uid}
    return {phase: chosen.replace(series_hu=np.asarray(by_phase[phase].hu)) if phase in by_phase else chosen
            for phase, chosen in slices.items()}


def _hu_copy(plane: np.ndarray) -> np.ndarray:
    # int16, or float32 for a fractional rescale: rounding here made the page's 8-bit input differ from
    # the CLI's (which windows the float HU) by one grey level at some pixels
    values = np.asarray(plane)
    return values.astype(np.int16 if values.dtype == np.int16 else np.float32, copy=True)


def case_meta(study: Study, assignment: Mapping[str, str | None]) -> dict:
    """The de-identified case summary: age, sex and per phase the series' geometry (no identifiers).

    Parameters
    ----------
    assignment : mapping series_uid -> phase code or None
    """
    phases = {}
    for series in study.series:
        phase = assignment.get(series.series_uid)
        if phase:
            phases[phase] = {
                "series_uid": series.series_uid, "n_slices": series.n_slices,
                "pixel_spacing": list(series.pixel_spacing), "slice_spacing_mm": series.slice_spacing_mm,
                "contrast_agent": bool(series.header.get("ContrastBolusAgent")),
                "acquisition_seconds": series.header.get("acquisition_seconds"),
                "warnings": list(series.warnings),
            }
    age = study.meta.get("age")
    meta = {"age": age, "age_months": age_months(age), "sex": study.meta.get("sex"), "phases": phases,
            "deidentified": True, "n_skipped_files": len(study.skipped)}
    if study.meta.get("archive"):  # a study pulled from a PACS whose site keeps the link (nbrisk_core.pacs)
        meta["archive"] = dict(study.meta["archive"])
    return meta


def check_assignment(assignment: Mapping[str, str | None]) -> list[str]:
    """Problems with a series -> phase assignment (a phase given to two series)."""
    problems = []
    for phase in PHASE_ORDER:
        holders = [uid for uid, p in assignment.items() if p == phase]
        if len(holders) > 1:
            problems.append(f"{phase.upper()} is assigned to {len(holders)} series; assign each phase once")
    return problems


def demo_study_ids(cohort_dir) -> list[str]:
    """Patient IDs with a full DICOM study under ``cohort_dir/studies`` (sorted)."""
    root = Path(cohort_dir) / "studies"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir())
