"""External validation of frozen models on another centre's cohort (``nbrisk validate``).

:mod:`~nbrisk_core.validation.scoring` applies a prognosis bundle to a cohort without refitting
anything; :mod:`~nbrisk_core.validation.case_mix` describes and compares cohorts;
:mod:`~nbrisk_core.validation.external` computes the metrics and writes the report
(:mod:`~nbrisk_core.validation.report`); :mod:`~nbrisk_core.validation.internal` is the repeated
cross-validation and bootstrap optimism of ``nbrisk benchmark --cv``.
"""
