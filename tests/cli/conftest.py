"""Tests of the ``nbrisk`` command line: the fixtures they share with the tests of the layers below."""

from tests.imaging.conftest import phantom, series_dir, three_phase_dir  # noqa: F401 - DICOM series on disk
from tests.demo.conftest import tiny_cohort  # noqa: F401 - a small demo cohort (`nbrisk demo case`)
