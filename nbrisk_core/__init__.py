"""NBRisk core library: neuroblastoma risk and prognosis from multiphase CT and clinical data.

Data flows one way: input (DICOM/images, labs) -> imaging -> classifier -> embedding ->
prognosis -> report. Each stage is a subpackage that depends only on the stages before it.
This package never imports Streamlit; the dashboard (``streamlit_app.py``, ``pages/``,
``nbrisk_ui``) is a thin layer over it, and so is the ``nbrisk`` command line.
"""

__version__ = "0.1.0"

RESEARCH_USE = "Research use only, not for clinical decisions."
SYNTHETIC_MODELS = "Demo models are trained on synthetic data."
RESEARCH_NOTICE = f"{RESEARCH_USE} {SYNTHETIC_MODELS}"


def research_notice(synthetic: bool = True) -> str:
    """The notice to show: :data:`RESEARCH_NOTICE` with a synthetic cohort or demo model, only the
    research-use line on a real cohort (``cohort.json`` ``synthetic: false``)."""
    return RESEARCH_NOTICE if synthetic else RESEARCH_USE
