"""Fixtures of the imaging tests: tiny synthetic CT series written with pydicom (64 x 64, a few slices)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nbrisk_core.imaging.synthetic import phantom_volume, write_ct_series

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / "data" / "demo"


@pytest.fixture(scope="session")
def phantom():
    """``(hu, mask)`` of a 12-slice 64 x 64 phantom whose tumour is largest at slice 5/6."""
    return phantom_volume(12, 64, 64, seed=3)


@pytest.fixture()
def series_dir(tmp_path, phantom):
    """One CT series in shuffled file order (names do not follow z)."""
    hu, _ = phantom
    folder = tmp_path / "series"
    write_ct_series(folder, hu, shuffle_seed=7, description="arterial phase", contrast_agent="Iohexol")
    return folder


@pytest.fixture()
def three_phase_dir(tmp_path, phantom):
    """NC / ART / PV series of one study with descriptions, contrast agent and acquisition times."""
    hu, mask = phantom
    study_uid = "1.2.826.0.1.3680043.8.498.1"
    enhancement = {"NC": (0, 0, "", "101000", "plain abdomen"), "ART": (220, 40, "Iohexol", "101230", "arterial"),
                   "PV": (120, 60, "Iohexol", "101310", "portal venous")}
    aorta = np.zeros(hu.shape, dtype=bool)
    aorta[:, 34:41, 22:29] = True
    for number, (name, (vessel, tumour, agent, time, description)) in enumerate(enhancement.items(), start=1):
        volume = hu.astype(np.int32).copy()
        volume[aorta] += vessel
        volume[mask.astype(bool)] += tumour
        write_ct_series(tmp_path / name, volume.astype(np.int16), description=description, contrast_agent=agent,
                        acquisition_time=time, series_number=number, study_uid=study_uid)
    return tmp_path


@pytest.fixture(scope="session")
def demo_dir_or_skip() -> Path:
    if not (DEMO / "cohort.json").exists() or not (DEMO / "studies").is_dir():
        pytest.skip("the demo cohort (data/demo/cohort.json with studies/) is not built; run `nbrisk demo build`")
    return DEMO
