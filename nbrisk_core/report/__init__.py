"""Case report: one-click PDF (fpdf2) and CSV/JSON export of a typed case.

The caller loads the case (:func:`nbrisk_core.service.export_case` from the store); nothing in this
package reads the store or runs a model.
"""

from nbrisk_core.report.clinical import clinical_values
from nbrisk_core.report.export import EXPORT_FORMATS, case_to_csv, case_to_dict, case_to_json, render_export
from nbrisk_core.report.pdf import find_model_card, render_pdf

__all__ = ["render_pdf", "case_to_csv", "case_to_dict", "case_to_json", "clinical_values", "find_model_card",
           "render_export", "EXPORT_FORMATS"]
