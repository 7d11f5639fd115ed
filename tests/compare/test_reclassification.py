"""NRI and IDI against values computed by hand (Pencina et al. 2008, 2011)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from nbrisk_core.compare.reclassification import idi, nri
from nbrisk_core.errors import InputError

Y = [1, 1, 1, 0, 0, 0]
OLD = [0.40, 0.60, 0.30, 0.50, 0.30, 0.70]
NEW = [0.70, 0.50, 0.30, 0.20, 0.60, 0.40]


def test_category_free_nri_by_hand():
    # events: up (0.4->0.7), down (0.6->0.5), same -> (1 - 1)/3 = 0
    # non-events: down (0.5->0.2), up (0.3->0.6), down (0.7->0.4) -> (2 - 1)/3
    result = nri(Y, OLD, NEW)
    assert result.events == pytest.approx(0.0)
    assert result.non_events == pytest.approx(1 / 3)
    assert result.value == pytest.approx(1 / 3)
    se = np.sqrt((1 + 1) / 9 + (1 + 2) / 9)
    assert result.se == pytest.approx(se)
    assert result.ci_low == pytest.approx(1 / 3 - 1.959963984540054 * se)
    assert result.p_value == pytest.approx(2 * stats.norm.sf((1 / 3) / se))


def test_nri_at_threshold_by_hand():
    # at 0.5: events 0.4->0.7 up (crosses), 0.6->0.5 stays >= 0.5, 0.3 stays -> events +1/3
    # non-events 0.5->0.2 down, 0.3->0.6 up, 0.7->0.4 down -> (2 - 1)/3
    result = nri(Y, OLD, NEW, threshold=0.5)
    assert result.events == pytest.approx(1 / 3)
    assert result.non_events == pytest.approx(1 / 3)
    assert result.value == pytest.approx(2 / 3)
    assert result.se == pytest.approx(np.sqrt(1 / 9 + 3 / 9))


def test_idi_by_hand():
    d_events = np.array([0.3, -0.1, 0.0])
    d_non = np.array([-0.3, 0.3, -0.3])
    result = idi(Y, OLD, NEW)
    assert result.value == pytest.approx(d_events.mean() - d_non.mean())
    assert result.events == pytest.approx(d_events.mean())
    assert result.non_events == pytest.approx(-d_non.mean())
    se = np.sqrt(d_events.var(ddof=1) / 3 + d_non.var(ddof=1) / 3)
    assert result.se == pytest.approx(se)
    assert result.ci_high == pytest.approx(result.value + 1.959963984540054 * se)


def test_identical_models_improve_nothing():
    p = np.linspace(0.1, 0.9, 6)
    assert nri(Y, p, p).value == 0 and nri(Y, p, p).p_value == 1.0
    assert idi(Y, p, p).value == pytest.approx(0.0)


def test_bad_input_names_the_problem():
    with pytest.raises(InputError, match="expected 0/1"):
        nri([0, 2, 1], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    with pytest.raises(InputError, match="events and non-events"):
        idi([1, 1], [0.1, 0.2], [0.3, 0.4])
    with pytest.raises(InputError, match="one length"):
        nri([1, 0], [0.1], [0.2, 0.3])
