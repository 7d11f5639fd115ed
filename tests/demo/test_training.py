"""On-the-fly training batches: same generative model, dense truth consistent with the images."""

from __future__ import annotations

import numpy as np
import pytest

from nbrisk_core.demo import DENSE_TRUTH_COLUMNS, synth_training_batch
from nbrisk_core.errors import InputError


def test_batch_shapes_and_targets():
    batch = synth_training_batch(3, seed=5, phases=("nc", "art"), size=128)
    assert set(batch.hu) == {"nc", "art"}
    assert batch.hu["art"].shape == (3, 128, 128) and batch.hu["art"].dtype == np.int16
    assert batch.mask["nc"].dtype == np.uint8 and (batch.mask["art"].reshape(3, -1).sum(1) > 0).all()
    for column in (*DENSE_TRUTH_COLUMNS, "latent_score", "p_high_risk", "label"):
        assert column in batch.targets
    area = batch.mask["nc"].reshape(3, -1).sum(1) * batch.targets["pixel_spacing_mm"] ** 2
    assert np.allclose(area, batch.targets["tumour_area_mm2"])
    assert set(batch.labels) <= {0, 1}


def test_batches_are_deterministic_and_seed_dependent():
    a = synth_training_batch(2, seed=11, size=64)
    b = synth_training_batch(2, seed=11, size=64)
    c = synth_training_batch(2, seed=12, size=64)
    assert np.array_equal(a.hu["art"], b.hu["art"]) and a.targets.equals(b.targets)
    assert not np.array_equal(a.hu["art"], c.hu["art"])


def test_images_carry_the_risk_signal():
    batch = synth_training_batch(60, seed=3, phases=("art",), size=64)
    targets = batch.targets
    assert targets[["latent_score", "tumour_area_mm2"]].corr(method="spearman").iloc[0, 1] > 0.4
    assert targets[["latent_score", "necrotic_fraction"]].corr(method="spearman").iloc[0, 1] > 0.3
    hr = targets["label"] == 1
    assert 0.3 < hr.mean() < 0.9
    assert targets.loc[hr, "tumour_area_mm2"].mean() > targets.loc[~hr, "tumour_area_mm2"].mean()


@pytest.mark.parametrize("kwargs", [{"phases": ("venous",)}, {"phases": ()}, {"size": 8}, {"n": 0}])
def test_bad_arguments(kwargs):
    args = {"n": 1, "seed": 1, **kwargs}
    with pytest.raises(InputError):
        synth_training_batch(**args)
