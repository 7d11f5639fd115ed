"""NBRisk core library: neuroblastoma risk and prognosis from multiphase CT and clinical data.

Data flows one way: input (DICOM/images, labs) -> imaging -> classifier -> embedding ->
prognosis -> report. Each stage is a subpackage that depends only on the stages before it.
This package never imports Streamlit; the dashboard (``streamlit_app.py``, ``pages/``,
``nbrisk_ui``) is a thin layer over it, and so is the ``nbrisk`` command line.
"""

__version__ = "0.1.0"

RESEARCH_NOTICE = (
    "Research use only, not for clinical decisions. "
    "Demo models are trained on synthetic data."
)
