"""A tiny cohort and tiny Swin-ART for the batch scoring tests, and the unpartitioned reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbrisk_core.batch_score import EMBEDDING_COLUMNS
from tests.classifier.conftest import make_cohort

N = 20
SIZE = 6  # 4 partitions: 6, 6, 6, 2


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    return make_cohort(tmp_path_factory.mktemp("score-cohort"), n=N, seed=3)


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    import torch

    from nbrisk_core.classifier.architectures import TINY_SWIN_KWARGS, build_model
    from nbrisk_core.classifier.model_io import base_card, save_model

    folder = tmp_path_factory.mktemp("score-models")
    torch.manual_seed(1)
    save_model(build_model("swin_t", backbone_kwargs=TINY_SWIN_KWARGS), folder / "swin_art_tiny",
               base_card("swin_t", "art", TINY_SWIN_KWARGS))
    return folder / "swin_art_tiny.safetensors"


@pytest.fixture(scope="session")
def direct(cohort, model):
    """p(HR) and embedding of every patient, computed in one go without partitions."""
    from nbrisk_core.classifier.data import cohort_model_inputs
    from nbrisk_core.classifier.inference import Predictor
    from nbrisk_core.classifier.model_io import load_model

    loaded = load_model(model)
    data, x = cohort_model_inputs(cohort, loaded.model_card.data, labels=False)
    proba, embedding = Predictor(loaded).predict_batches(x)
    return pd.DataFrame({"patient_id": data.patient_ids, "p_high_risk": proba[:, 0],
                         **{c: embedding[:, k] for k, c in enumerate(EMBEDDING_COLUMNS)}})


def check_against(direct, table: pd.DataFrame, atol=1e-5):
    assert list(table["patient_id"]) == list(direct["patient_id"])
    np.testing.assert_allclose(table["p_high_risk"], direct["p_high_risk"], rtol=0, atol=atol)
    columns = list(EMBEDDING_COLUMNS)
    np.testing.assert_allclose(table[columns], direct[columns], rtol=0, atol=atol)
    assert set(table["risk_class"]) <= {"HR", "NHR"}
    assert ((table["p_high_risk"] >= 0.5) == (table["risk_class"] == "HR")).all()


