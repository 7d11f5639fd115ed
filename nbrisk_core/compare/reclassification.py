"""Net reclassification improvement (NRI) and integrated discrimination improvement (IDI).

Plain functions ``(y_true, p_old, p_new) -> result`` of a new model against a reference model on the
same patients (Pencina, D'Agostino & D'Agostino Jr, Stat Med 2008;27:157-172; Pencina, D'Agostino &
Steyerberg, Stat Med 2011;30:11-21 for the category-free NRI). ``y_true`` 1 = event (high risk).

- **NRI**: ``[P(up | event) - P(down | event)] + [P(down | non-event) - P(up | non-event)]``.
  Category-free (``threshold=None``): "up" is ``p_new > p_old``. At a threshold t: "up" is moving from
  ``p < t`` to ``p >= t`` (the two categories of a decision at t). Standard error (Pencina 2008, eq. 3
  under independence of the two components): ``sqrt((n_up_e + n_down_e) / n_e^2 + (n_up_ne + n_down_ne)
  / n_ne^2)``.
- **IDI**: ``[mean p_new - mean p_old]_events - [mean p_new - mean p_old]_non-events``; standard error
  ``sqrt(se_e^2 + se_ne^2)`` with ``se`` the standard error of the paired differences ``p_new - p_old``
  in each group (Pencina 2008, section 3.3).

CIs are Wald intervals on these standard errors, with a two-sided p-value (R ``PredictABEL``'s
``reclassification`` reports the same quantities).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from nbrisk_core.errors import InputError


@dataclass(frozen=True)
class Reclassification:
    """NRI or IDI with its two components, Wald 95 % CI and p-value."""

    name: str
    value: float
    events: float
    non_events: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float

    def __repr__(self) -> str:
        return (f"{self.name} = {self.value:.3f} (95% CI {self.ci_low:.3f}-{self.ci_high:.3f}, p = "
                f"{self.p_value:.3g}; events {self.events:+.3f}, non-events {self.non_events:+.3f})")

    def to_dict(self) -> dict:
        return {"value": self.value, "events": self.events, "non_events": self.non_events, "se": self.se,
                "ci": [self.ci_low, self.ci_high], "p_value": self.p_value}


def _arrays(y_true, p_old, p_new):
    y = np.asarray(y_true)
    old = np.asarray(p_old, dtype=float)
    new = np.asarray(p_new, dtype=float)
    if not (y.ndim == old.ndim == new.ndim == 1 and len(y) == len(old) == len(new)):
        raise InputError(f"y_true, p_old and p_new have shapes {y.shape}, {old.shape}, {new.shape}; "
                         "expected three 1-D arrays of one length")
    if not np.isin(y, (0, 1)).all():
        raise InputError(f"y_true has values {sorted(set(y.tolist()))[:5]}; expected 0/1 (1 = event)")
    if not (np.isfinite(old).all() and np.isfinite(new).all()):
        raise InputError("p_old or p_new has non-finite values")
    events, non_events = y == 1, y == 0
    if not events.any() or not non_events.any():
        raise InputError(f"NRI/IDI need events and non-events; got {int(events.sum())} and "
                         f"{int(non_events.sum())}")
    return events, non_events, old, new


def _wald(name, value, events, non_events, se, level=0.95) -> Reclassification:
    z = stats.norm.ppf(0.5 + level / 2)
    p = float(2 * stats.norm.sf(abs(value) / se)) if se > 0 else (1.0 if value == 0 else 0.0)
    return Reclassification(name, float(value), float(events), float(non_events), float(se),
                            float(value - z * se), float(value + z * se), p)


def nri(y_true, p_old, p_new, threshold: float | None = None) -> Reclassification:
    """Net reclassification improvement of ``p_new`` over ``p_old``: category-free when ``threshold``
    is None, else with the two categories ``p < threshold`` / ``p >= threshold``.

    Examples
    --------
    >>> nri([1, 1, 0, 0], [0.4, 0.6, 0.5, 0.3], [0.7, 0.5, 0.2, 0.3])
    NRI = 0.500 (95% CI -1.197-2.197, p = 0.564; events +0.000, non-events +0.500)
    """
    events, non_events, old, new = _arrays(y_true, p_old, p_new)
    if threshold is None:
        up, down = new > old, new < old
        name = "NRI"
    else:
        up = (old < threshold) & (new >= threshold)
        down = (old >= threshold) & (new < threshold)
        name = f"NRI(t={threshold:g})"
    n_e, n_ne = events.sum(), non_events.sum()
    up_e, down_e = up[events].sum(), down[events].sum()
    up_ne, down_ne = up[non_events].sum(), down[non_events].sum()
    nri_e = (up_e - down_e) / n_e
    nri_ne = (down_ne - up_ne) / n_ne
    se = np.sqrt((up_e + down_e) / n_e**2 + (up_ne + down_ne) / n_ne**2)
    return _wald(name, nri_e + nri_ne, nri_e, nri_ne, se)


def idi(y_true, p_old, p_new) -> Reclassification:
    """Integrated discrimination improvement of ``p_new`` over ``p_old``.

    Examples
    --------
    >>> idi([1, 1, 0, 0], [0.4, 0.6, 0.5, 0.3], [0.7, 0.5, 0.2, 0.3])
    IDI = 0.250 (95% CI -0.240-0.740, p = 0.317; events +0.100, non-events +0.150)
    """
    events, non_events, old, new = _arrays(y_true, p_old, p_new)
    diff = new - old
    d_e, d_ne = diff[events], diff[non_events]

    def se_mean(d):
        return float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0

    value = d_e.mean() - d_ne.mean()
    se = np.sqrt(se_mean(d_e) ** 2 + se_mean(d_ne) ** 2)
    return _wald("IDI", value, d_e.mean(), -d_ne.mean(), se)
