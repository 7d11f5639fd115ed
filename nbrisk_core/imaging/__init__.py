"""Imaging: CT ingest (DICOM and 2-D images), windowing, phase assignment, slice selection,
and the model input builder shared by the dashboard, the CLI and training.

``read_phase_input`` (one phase's 8-bit model image from a file) and ``load_study`` (every series
of an upload) are the entry points; see :mod:`.dicom_io`, :mod:`.phases`, :mod:`.segmentation`
and :mod:`.render` for the steps of the Case page.
"""

from nbrisk_core.imaging.dicom_io import CTSeries, SkippedFile, Study, load_study
from nbrisk_core.imaging.phase_input import read_phase_input

__all__ = ["CTSeries", "SkippedFile", "Study", "load_study", "read_phase_input"]
