"""Side-by-side comparison of the clinical, image and combined models (issue 26 items 2-3).

- :mod:`~nbrisk_core.compare.data`: :class:`CompareData` and :func:`load_compare_data` (one cohort as arrays);
- :mod:`~nbrisk_core.compare.candidates`: the :class:`Candidate` protocol and :data:`CANDIDATES`;
- :mod:`~nbrisk_core.compare.protocol`: cross-validation on the development cohort, the 8:2 test split, an
  external cohort with frozen models, and the outputs (``report.json``, ``predictions.csv``, ``report.html``);
- :mod:`~nbrisk_core.compare.reclassification`: NRI and IDI;
- :mod:`~nbrisk_core.compare.report`: the figures and the HTML page.

``nbrisk compare`` (docs/compare.md) and the Models page call these.
"""
