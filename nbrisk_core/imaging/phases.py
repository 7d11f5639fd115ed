"""Which series is the non-contrast (NC), arterial (ART) and portal venous (PV) phase.

The suggestion combines four cues, each worth a number of points per (series, phase) pair:

==========================  =====================================================  ======
cue                         evidence                                               points
==========================  =====================================================  ======
description                 (0008,103E) SeriesDescription / (0018,1030)            +4 / -2
                            ProtocolName names the phase (or another phase)
contrast agent              (0018,0010) ContrastBolusAgent filled: not NC          -2 NC
acquisition order           (0008,0032) AcquisitionTime rank: NC, then ART, then   +1
                            PV (contrast phases always follow the plain scan)
enhancement                 blood-pool HU (aorta-like bright soft tissue):         +1.5/+1
                            lowest -> NC, highest -> ART, in between -> PV
==========================  =====================================================  ======

The assignment of phases to series that maximises the total is chosen (each phase used once).
A series' confidence is ``1 - exp(-margin)``, where ``margin`` is how many points the best
assignment beats the best one giving this series another phase. The suggestion is always shown
with its reasons and is always overridable by the user (never a silent guess).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field

import numpy as np

from nbrisk_core.case import PHASES as _PHASES

PHASE_CODES = _PHASES  # nbrisk_core.case.Phase, in acquisition order

#: description patterns per phase (matched case-insensitively on SeriesDescription + ProtocolName)
PHASE_PATTERNS: dict[str, tuple[str, ...]] = {
    "nc": (r"non[\s_-]?contrast", r"non[\s_-]?enhanced", r"un[\s_-]?enhanced", r"\bplain\b", r"\bnative\b",
           r"pre[\s_-]?contrast", r"without\s+contrast", r"\bw/?o\b", r"\bnc\b", r"\bpre\b", r"\bncct\b"),
    "art": (r"arterial", r"\bart\b", r"\barterial\b", r"\bcta\b", r"\bap\b", r"early\s+phase", r"\bart[\s_-]?phase"),
    "pv": (r"portal", r"\bpv\b", r"venous", r"\bvp\b", r"\bpvp\b"),
}
_COMPILED = {phase: [re.compile(p, re.IGNORECASE) for p in patterns] for phase, patterns in PHASE_PATTERNS.items()}

POINTS_DESCRIPTION = 4.0
POINTS_OTHER_DESCRIPTION = -2.0
POINTS_CONTRAST_AGENT = -2.0
POINTS_TIME_ORDER = 1.0
POINTS_ENHANCEMENT_NC = 1.5
POINTS_ENHANCEMENT = 1.0
#: below this difference between the most and least enhanced series the cue is not used
MIN_ENHANCEMENT_HU = 40.0


@dataclass
class PhaseSuggestion:
    """The suggested phase of one series, with a confidence in [0, 1] and the reasons."""

    series_uid: str
    phase: str | None
    confidence: float
    reasons: list[str] = field(default_factory=list)

    @property
    def confidence_label(self) -> str:
        return "high" if self.confidence >= 0.9 else "medium" if self.confidence >= 0.6 else "low"


def description_keywords(text: str) -> list[str]:
    """Phase codes named in a free-text description, e.g. ``"AP 1.0 B30f arterial"`` -> ``["art"]``.

    Only these codes are kept from the description (the text itself may name people; PS3.15).
    """
    text = str(text or "")
    if "portal" in text.lower():
        # "portal venous" must not also count as an arterial or plain keyword
        return ["pv"]
    return [phase for phase in PHASE_CODES if any(p.search(text) for p in _COMPILED[phase])]


def blood_pool_hu(hu: np.ndarray, max_slices: int = 8) -> float:
    """An aortic-enhancement proxy: the 99.5th percentile of HU in soft tissue and vessels, bone excluded.

    On a few central slices, bone is masked out (voxels above 600 HU with the marrow they enclose,
    grown by 3 pixels); the 99.5th percentile of the remaining voxels between 0 and 600 HU is the
    brightest blood: ~ 40-80 HU without contrast, ~ 250-400 HU at the arterial peak and ~ 150-200 HU
    in the portal venous phase (the contrast-arrival curve that separates the phases).
    """
    from scipy import ndimage

    volume = np.asarray(hu)
    n = volume.shape[0]
    picks = np.unique(np.linspace(n * 0.3, n * 0.7, num=min(max_slices, n)).astype(int).clip(0, n - 1))
    pooled = []
    for k in picks:
        plane = volume[k]
        bone = ndimage.binary_dilation(ndimage.binary_fill_holes(plane > 600), iterations=3)
        pooled.append(plane[~bone & (plane > 0) & (plane < 600)])
    values = np.concatenate(pooled) if pooled else np.zeros(0)
    if values.size == 0:
        return float("nan")
    return float(np.percentile(values, 99.5))


def suggest_phases(series) -> list[PhaseSuggestion]:
    """Suggest NC / ART / PV for each series of a study (see the module docstring for the rules).

    Parameters
    ----------
    series : list of :class:`~nbrisk_core.imaging.dicom_io.CTSeries`

    Returns
    -------
    list of PhaseSuggestion
        One per input series, in the same order; ``phase`` None for series left unassigned.
    """
    n = len(series)
    if n == 0:
        return []
    score = np.zeros((n, len(PHASE_CODES)))
    reasons: list[list[list[str]]] = [[[] for _ in PHASE_CODES] for _ in range(n)]

    def add(i: int, phase: str, points: float, why: str) -> None:
        j = PHASE_CODES.index(phase)
        score[i, j] += points
        reasons[i][j].append(why)

    for i, s in enumerate(series):
        keywords = s.header.get("description_keywords") or []
        for phase in PHASE_CODES:
            if phase in keywords:
                add(i, phase, POINTS_DESCRIPTION, f"description names the {phase.upper()} phase")
            elif keywords:
                add(i, phase, POINTS_OTHER_DESCRIPTION, "description names another phase")
        if s.header.get("ContrastBolusAgent"):
            add(i, "nc", POINTS_CONTRAST_AGENT, "ContrastBolusAgent is filled")

    times = [s.header.get("acquisition_seconds") for s in series]
    if sum(t is not None for t in times) >= 2:
        order = sorted((t, i) for i, t in enumerate(times) if t is not None)
        for rank, (_, i) in enumerate(order[: len(PHASE_CODES)]):
            add(i, PHASE_CODES[rank], POINTS_TIME_ORDER, f"acquired {_ordinal(rank + 1)}")

    volumes = [s for s in series if s.is_hu]
    if len(volumes) >= 2:
        pool = {id(s): blood_pool_hu(s.hu) for s in volumes}
        ranked = sorted((v, i) for i, s in enumerate(series) if s.is_hu and not math.isnan(v := pool[id(s)]))
        if len(ranked) >= 2 and ranked[-1][0] - ranked[0][0] >= MIN_ENHANCEMENT_HU:
            lowest_value, lowest = ranked[0]
            add(lowest, "nc", POINTS_ENHANCEMENT_NC, f"least enhanced (blood pool {lowest_value:.0f} HU)")
            highest_value, highest = ranked[-1]
            add(highest, "art", POINTS_ENHANCEMENT, f"most enhanced (blood pool {highest_value:.0f} HU)")
            for value, i in ranked[1:-1]:
                add(i, "pv", POINTS_ENHANCEMENT, f"intermediate enhancement (blood pool {value:.0f} HU)")

    best, best_total = _best_assignment(score)
    suggestions = []
    for i, s in enumerate(series):
        phase_index = best.get(i)
        if phase_index is None:
            suggestions.append(PhaseSuggestion(s.series_uid, None, 0.0, ["no phase left for this series"]))
            continue
        if not reasons[i][phase_index]:
            # no cue at all for this series: say so rather than guess
            suggestions.append(PhaseSuggestion(s.series_uid, None, 0.0, ["no cue for any phase; assign it by hand"]))
            continue
        alternative = _best_assignment(score, forbid=(i, phase_index))[1]
        margin = best_total - alternative if math.isfinite(alternative) else 5.0
        confidence = 1.0 - math.exp(-max(margin, 0.0))
        why = reasons[i][phase_index]
        suggestions.append(PhaseSuggestion(s.series_uid, PHASE_CODES[phase_index], round(confidence, 3), why))
    return suggestions


def _best_assignment(score: np.ndarray, forbid: tuple[int, int] | None = None) -> tuple[dict[int, int], float]:
    """Injective map series -> phase maximising the total (series beyond three stay unassigned)."""
    n, m = score.shape
    best: dict[int, int] = {}
    best_total = -math.inf
    if n >= m:
        candidates = ({series: phase for phase, series in enumerate(chosen)}
                      for chosen in itertools.permutations(range(n), m))
    else:
        candidates = (dict(enumerate(phases)) for phases in itertools.permutations(range(m), n))
    for pairs in candidates:
        if forbid is not None and pairs.get(forbid[0]) == forbid[1]:
            continue
        total = float(sum(score[i, j] for i, j in pairs.items()))
        if total > best_total + 1e-9:
            best, best_total = pairs, total
    return best, best_total


def _ordinal(k: int) -> str:
    return {1: "first", 2: "second", 3: "third"}.get(k, f"{k}th")
