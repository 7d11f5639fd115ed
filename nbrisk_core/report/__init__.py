"""Case report: one-click PDF (fpdf2) and CSV/JSON export of a saved case.

>>> from nbrisk_core.report import render_pdf, case_to_json, case_to_csv   # doctest: +SKIP
"""

from nbrisk_core.report.export import (EXPORT_FORMATS, case_to_csv, case_to_dict, case_to_json, clinical_values,
                                       export_case, render_export)
from nbrisk_core.report.pdf import render_pdf

__all__ = ["render_pdf", "case_to_csv", "case_to_dict", "case_to_json", "clinical_values", "export_case",
           "render_export", "EXPORT_FORMATS"]
