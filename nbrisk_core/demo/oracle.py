"""Oracle figures of a synthetic cohort: how well the *true* quantities rank the outcomes.

The oracle AUC is the AUC of the true ``p_high_risk`` against the realised HR/NHR label; the oracle
C-index is Harrell's C of the true linear predictor against the observed overall survival. They
are the ceilings a trained pipeline can approach on the same cohort. Both are plain functions of
arrays (kept in numpy so that importing :mod:`nbrisk_core.demo` stays light); the tests compare them
with scikit-learn and lifelines.
"""

from __future__ import annotations

import numpy as np


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their average rank (``scipy.stats.rankdata``'s default),
    in numpy so that importing this module stays cheap."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    return (upper - (counts - 1) / 2.0)[inverse]


def auc(label: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos * n_neg)), ties counted as one half.

    Examples
    --------
    >>> auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    label = np.asarray(label).astype(bool)
    score = np.asarray(score, dtype=float)
    n_pos, n_neg = int(label.sum()), int((~label).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(score)
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def harrell_c_index(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's concordance index; higher ``risk`` should mean shorter survival.

    A pair is comparable when the shorter time is an observed event; ties in risk count one half.
    Pairs with equal times are comparable only if exactly one is an event (that one should have
    the higher risk), as in scikit-survival's ``concordance_index_censored``.
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    risk = np.asarray(risk, dtype=float)
    concordant = 0.0
    comparable = 0
    # chunked O(n^2): fine for cohorts of a few thousand patients
    for start in range(0, len(time), 512):
        sl = slice(start, start + 512)
        t_i, e_i, r_i = time[sl, None], event[sl, None], risk[sl, None]
        comp = e_i & ((time[None, :] > t_i) | ((time[None, :] == t_i) & ~event[None, :]))
        comparable += int(comp.sum())
        concordant += float((comp & (r_i > risk[None, :])).sum())
        concordant += 0.5 * float((comp & (r_i == risk[None, :])).sum())
    return concordant / comparable if comparable else float("nan")
