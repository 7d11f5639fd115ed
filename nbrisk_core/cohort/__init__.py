"""Cohorts: the on-disk format v1 shared by the demo and imported cohorts, and the import from a
research group's spreadsheet and DICOM studies (``docs/cohort-format.md``).

- :func:`load_cohort` -- read any cohort directory (format v1) as a :class:`Cohort`;
- :func:`nbrisk_core.cohort.importer.import_cohort` -- ``nbrisk cohort import``.

Importing this package is light (numpy, pandas): the importer is imported where it is used.
"""

from nbrisk_core.cohort.format import (CHOSEN_BY, FORMAT_VERSION, NO_KNOWN_TRUTH, PHASES, SLICES_COLUMNS,
                                       Cohort, load_cohort)

__all__ = ["CHOSEN_BY", "FORMAT_VERSION", "NO_KNOWN_TRUTH", "PHASES", "SLICES_COLUMNS", "Cohort",
           "load_cohort"]
