"""IBSI-compliant radiomics over numpy/scipy (no Streamlit).

``extract(image, mask, spacing, Settings(...))`` returns a flat ``{feature: value}`` dict; feature names
are ``<family>_<name>`` with IBSI's family prefixes (``stat``, ``ih``, ``loc``, ``morph``, ``cm``,
``rlm``, ``szm``, ``dzm``, ``ngt``, ``ngl``) plus ``shape2d`` for a slice. :data:`IBSI_CODES` maps
each to its permanent IBSI identifier. Validated against the IBSI 1 digital phantom reference values
(tests/radiomics). ``cohort_radiomics`` (``nbrisk radiomics``) extracts a cohort's chosen slices.
"""

from nbrisk_core.radiomics.extract import IBSI_CODES, Settings, extract

__all__ = ["IBSI_CODES", "Settings", "extract"]
