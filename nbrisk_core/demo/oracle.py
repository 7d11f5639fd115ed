"""Oracle figures of a synthetic cohort: how well the *true* quantities rank the outcomes.

The oracle AUC is the AUC of the true ``p_high_risk`` against the realised HR/NHR label; the oracle
C-index is Harrell's C of the true linear predictor against the observed overall survival. They
are the ceilings a trained pipeline can approach on the same cohort. Both call the product's one AUC
and one C-index (imported when called, so that importing :mod:`nbrisk_core.demo` stays light).
"""

from __future__ import annotations

import numpy as np


def auc(label: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve, ties counted as one half: NBRisk's one AUC
    (:func:`nbrisk_core.classifier.metrics.roc_auc`); NaN when one class is absent.

    Examples
    --------
    >>> auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    from nbrisk_core.classifier.metrics import roc_auc

    label = np.asarray(label).astype(int)
    if np.unique(label).size < 2:
        return float("nan")
    return roc_auc(label, np.asarray(score, dtype=float))


def harrell_c_index(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's concordance index, higher ``risk`` = shorter survival: NBRisk's one C-index
    (:func:`nbrisk_core.prognosis.metrics.concordance_index`, scikit-survival's definition); NaN when
    no pair is comparable.
    """
    from nbrisk_core.errors import InputError
    from nbrisk_core.prognosis.metrics import concordance_index

    try:
        return concordance_index(np.asarray(event), np.asarray(time, dtype=float), np.asarray(risk, dtype=float))
    except InputError:
        return float("nan")
