"""Imaging: CT ingest (DICOM and 2-D images), windowing, phase assignment, slice selection,
and the model input builder shared by the dashboard, the CLI and training.

``read_phase_input`` (one phase's 8-bit model image from a file) and ``load_study`` (every series
of an upload) are the entry points; see :mod:`.dicom_io`, :mod:`.phases`, :mod:`.segmentation`
and :mod:`.render` for the steps of the Case page.

The names below are resolved lazily (PEP 562), so importing a light submodule such as
:mod:`.model_input` or :mod:`.windowing` does not import pydicom.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "CTSeries": "nbrisk_core.imaging.dicom_io",
    "SkippedFile": "nbrisk_core.imaging.dicom_io",
    "Study": "nbrisk_core.imaging.dicom_io",
    "load_study": "nbrisk_core.imaging.dicom_io",
    "read_phase_input": "nbrisk_core.imaging.phase_input",
    "read_phase_slice": "nbrisk_core.imaging.phase_input",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
