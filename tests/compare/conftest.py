"""A small synthetic CompareData (no cohort folder, no images on disk) for the protocol tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.compare.data import CompareData, clinical_predictors


def synthetic_data(n: int = 120, seed: int = 0, *, images: bool = True, truth: bool = True,
                   name: str = "synthetic-test") -> CompareData:
    """Patients whose HR label depends on stage, MYCN, NSE and an image score; 10 % of each lab missing."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=n)
    high_risk = (latent + rng.normal(scale=0.8, size=n) > 0).astype(int)
    clinical = pd.DataFrame(index=pd.Index([f"S{i:04d}" for i in range(n)], name="patient_id"))
    for column in clinical_predictors([]):
        clinical[column] = np.nan
    clinical["age_months"] = rng.uniform(1, 120, n).round(1)
    clinical["sex"] = rng.choice(["F", "M"], n)
    clinical["inrg_stage"] = np.where(latent > 0.5, "M", rng.choice(["L1", "L2", "MS"], n))
    clinical["histology"] = rng.choice(["favourable", "unfavourable"], n)
    clinical["mycn_amplified"] = (latent + rng.normal(size=n) > 1).astype(int)
    for lab in ("nse", "ferritin", "ldh", "crp", "hemoglobin"):
        values = np.exp(3 + 0.5 * latent * (lab == "nse") + rng.normal(scale=0.5, size=n)).round(2)
        values[rng.random(n) < 0.1] = np.nan
        clinical[lab] = values
    time = rng.exponential(1000 * np.exp(-0.7 * latent)).round() + 1
    event = rng.random(n) < 0.6
    ct = pd.DataFrame(rng.normal(size=(n, 16)) + latent[:, None] * 0.3, index=clinical.index,
                      columns=[f"ct{i:02d}" for i in range(1, 17)])
    swin = 1 / (1 + np.exp(-(1.2 * latent + rng.normal(scale=0.8, size=n))))
    truth_table = pd.DataFrame({"patient_id": clinical.index, "p_high_risk": 1 / (1 + np.exp(-1.5 * latent)),
                                "true_linear_predictor": 0.7 * latent}) if truth else None
    return CompareData(cohort_dir=None, patient_id=clinical.index.to_numpy(dtype=str), high_risk=high_risk,
                       time=time, event=event, clinical=clinical,
                       ct_features=ct if images else None, swin_prob=swin if images else None,
                       name=name, synthetic=True, truth=truth_table,
                       missing={} if images else {"images": "no images in this test cohort"})


@pytest.fixture(scope="module")
def small_data() -> CompareData:
    return synthetic_data()


def write_tiny_comparison(out) -> dict:
    """A small but complete ``nbrisk compare`` output (synthetic cohort, three models, 3 folds, no
    figures) for the Models page's AppTest and the browser walk; returns the report."""
    from nbrisk_core.compare.protocol import run_compare, write_outputs

    result = run_compare(synthetic_data(90, seed=5), models=["clinical_lr", "swin_art", "oracle"], folds=3,
                         n_bootstrap=50)
    write_outputs(result, out, figures=False)
    return result.report
