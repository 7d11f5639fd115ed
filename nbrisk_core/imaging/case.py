"""The imaging half of a case: which series is which phase, and the slice chosen in each.

The Case page and the CLI build the same objects here: :func:`chosen_slice` is the contract with
the Risk page (``nbrisk_ui.state.CHOSEN_SLICES``), :func:`case_meta` the de-identified case
summary (``nbrisk_ui.state.CASE``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from nbrisk_core.errors import InputError
from nbrisk_core.imaging.deid import age_months
from nbrisk_core.imaging.dicom_io import CTSeries, Study

PHASE_ORDER: tuple[str, ...] = ("nc", "art", "pv")


def chosen_slice(series: CTSeries, index: int) -> dict:
    """The Risk page's record of one phase's chosen slice.

    Returns
    -------
    dict
        ``hu`` (int16 2-D HU slice; for a 2-D image upload ``None`` and ``grey`` holds the uint8
        image), ``index`` (0-based, ascending z), ``z_mm``, ``pixel_spacing`` (row, col) in mm,
        ``series_uid`` (the remapped UID, never the original) and ``burned_in_annotation`` (the
        header flag and the pixel-text finding of :mod:`.burned_in`; a flagged slice is masked or
        confirmed before it is stored).
    """
    from nbrisk_core.imaging.burned_in import META_KEY, assess

    if not 0 <= int(index) < series.n_slices:
        raise InputError(f"slice index {index} is out of range; expected 0-{series.n_slices - 1}")
    plane = series.hu[int(index)]
    entry = {
        "hu": None, "index": int(index), "z_mm": float(series.z_mm[int(index)]),
        "pixel_spacing": (float(series.pixel_spacing[0]), float(series.pixel_spacing[1])),
        "series_uid": series.series_uid,
    }
    if series.header.get("image_file"):
        entry["grey"] = np.array(plane, dtype=np.uint8)
    elif series.is_hu:
        entry["hu"] = _as_int16(plane)
    else:
        raise InputError(f"{series.label}: modality {series.header.get('Modality')} has no Hounsfield units; "
                         "NBRisk reads CT slices")
    is_hu = entry["hu"] is not None
    entry[META_KEY] = assess(entry["hu"] if is_hu else entry["grey"], is_hu, series.header).to_dict()
    return entry


def _as_int16(plane: np.ndarray) -> np.ndarray:
    values = np.asarray(plane)
    if values.dtype == np.int16:
        return values.copy()
    # a fractional rescale slope gives float HU: rounding to whole HU is below CT's precision
    return np.clip(np.rint(values), -32768, 32767).astype(np.int16)


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
