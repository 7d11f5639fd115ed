"""Tiny inputs for the classifier tests: a tiny Swin and a few-patient cohort on disk."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest


def _slice(rng: np.random.Generator, high_risk: bool, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A soft-tissue background with a round 'tumour': larger and brighter in high risk."""
    yy, xx = np.mgrid[:size, :size]
    radius = rng.uniform(14, 20) if high_risk else rng.uniform(5, 9)
    cy, cx = rng.uniform(size * 0.35, size * 0.65, 2)
    mask = ((yy - cy) ** 2 + (xx - cx) ** 2) <= radius**2
    hu = rng.normal(40, 15, (size, size))
    hu[mask] = 160 if high_risk else 90
    return np.round(hu).astype(np.int16), mask.astype(np.uint8)


def make_cohort(path, n: int = 20, seed: int = 0):
    """A cohort directory in the layout of docs/architecture.md (only what the classifier reads)."""
    rng = np.random.default_rng(seed)
    groups = ["HR" if i % 2 == 0 else "NHR" for i in range(n)]
    ids = [f"T{i:04d}" for i in range(n)]
    for pid, group in zip(ids, groups):
        folder = path / "slices" / pid
        folder.mkdir(parents=True)
        arrays = {}
        for phase in ("nc", "art", "pv"):
            hu, mask = _slice(rng, group == "HR")
            arrays[phase], arrays[f"mask_{phase}"] = hu, mask
        np.savez(folder / "hu.npz", **arrays)
    pd.DataFrame({"patient_id": ids, "risk_group": groups}).to_csv(path / "clinical.csv", index=False)
    (path / "cohort.json").write_text(json.dumps({"name": "tiny-test", "synthetic": True, "seed": seed,
                                                  "n_patients": n, "oracle_auc": 1.0}))
    return path


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    return make_cohort(tmp_path_factory.mktemp("cohort"))


@pytest.fixture()
def tiny_model():
    import torch

    from nbrisk_core.classifier.architectures import TINY_SWIN_KWARGS, build_model

    torch.manual_seed(0)
    return build_model("swin_t", backbone_kwargs=TINY_SWIN_KWARGS)


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory):
    """A models folder holding a tiny (untrained) Swin-ART as ``swin_art_demo``, with its card."""
    import torch

    from nbrisk_core.classifier.architectures import TINY_SWIN_KWARGS, build_model
    from nbrisk_core.classifier.model_io import base_card, save_model

    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = build_model("swin_t", backbone_kwargs=TINY_SWIN_KWARGS)
    card = base_card("swin_t", "art", TINY_SWIN_KWARGS)
    card["synthetic_data"] = True
    save_model(model, folder / "swin_art_demo", card)
    return folder
