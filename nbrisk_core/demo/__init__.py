"""The synthetic known-truth multiphase-CT neuroblastoma demo cohort.

No public neuroblastoma CT cohort can be shipped, so NBRisk generates one
(``../shared/spec/demo-cohort.md``): a latent tumour aggressiveness per patient drives, each with
its own noise, the HR/NHR label, the CT findings, the labs and overall survival; the truth is
stored so every step of the pipeline can be scored against it. Everything is labelled synthetic.

Public API (layout on disk: ``docs/architecture.md``, "Demo cohort on disk"):

- :func:`build_cohort` -- write a cohort directory, return a summary;
- :func:`load_cohort` -- read it back as a :class:`DemoCohort`;
- :func:`write_study` -- the full 3-phase DICOM study of any cohort patient, on demand;
- :func:`generate_cohort_tables` -- the patient table without images (fast);
- :func:`synth_training_batch` -- unlimited on-the-fly images with dense truth for pretraining.

Importing this package is light (numpy, pandas, scipy, pydicom; no torch).
"""

from nbrisk_core.demo.cohort import (COHORT_NAME, DEFAULT_PATIENTS, DEFAULT_SEED, DEFAULT_STUDIES,
                                     DENSE_TRUTH_COLUMNS, TRUTH_COLUMNS, DemoCohort, build_cohort,
                                     cohort_statistics, generate_cohort_tables, load_cohort, write_study)
from nbrisk_core.demo.oracle import auc, harrell_c_index
from nbrisk_core.demo.patients import GENERATOR_VERSION
from nbrisk_core.demo.render import PHASES
from nbrisk_core.demo.training import TrainingBatch, synth_training_batch

__all__ = [
    "COHORT_NAME", "DEFAULT_PATIENTS", "DEFAULT_SEED", "DEFAULT_STUDIES", "DENSE_TRUTH_COLUMNS",
    "GENERATOR_VERSION", "PHASES", "TRUTH_COLUMNS", "DemoCohort", "TrainingBatch", "auc",
    "build_cohort", "cohort_statistics", "generate_cohort_tables", "harrell_c_index", "load_cohort",
    "synth_training_batch", "write_study",
]
