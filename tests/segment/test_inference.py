"""Post-processing and measurements of the segmentation (stub networks: no training needed), and the
shipped model on one demo study."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from nbrisk_core.segment.inference import PhaseVolume, longest_diameter_mm, segment_phases
from nbrisk_core.segment.model import LoadedSegModel, SegNetConfig, load_seg_model, shipped_seg_model_path

SIZE = 64


class _Threshold(torch.nn.Module):
    """Tumour wherever the middle input channel is above 0.6 of the window (~160 HU)."""

    def forward(self, x):
        tumour = 40.0 * (x[:, 1:2] - 0.6)
        return torch.cat([torch.zeros_like(tumour), tumour], dim=1)


class _Nothing(torch.nn.Module):
    def forward(self, x):
        return torch.cat([torch.full_like(x[:, :1], 10.0), torch.zeros_like(x[:, :1])], dim=1)


def _stub(network) -> LoadedSegModel:
    return LoadedSegModel(network=network, config=SegNetConfig(input_size=SIZE), card={"sha256": "stub"},
                          path=None)


def _phase(hu) -> PhaseVolume:
    return PhaseVolume(hu=hu, z_mm=np.arange(hu.shape[0]) * 2.0, pixel_spacing=(0.5, 0.5),
                       slice_spacing_mm=2.0)


def test_the_component_the_phases_agree_on_wins_over_a_larger_one_in_one_phase():
    base = np.zeros((10, SIZE, SIZE), dtype=np.int16)
    base[3:7, 10:21, 10:21] = 200                    # in every phase: 4 x 11 x 11 voxels
    art = base.copy()
    art[2:7, 35:50, 35:50] = 200                     # only in ART, and larger: 5 x 15 x 15
    phases = {"nc": _phase(base), "art": _phase(art), "pv": _phase(base)}
    results = segment_phases(_stub(_Threshold()), phases)
    chosen = results["art"].mask
    assert chosen[3:7, 10:21, 10:21].all() and not chosen[:, 35:50, 35:50].any()
    assert results["art"].found and results["art"].confidence > 0.9
    assert results["art"].volume_ml == pytest.approx(4 * 11 * 11 * 0.25 * 2.0 / 1000)
    assert results["nc"].max_area_slice in range(3, 7)


def test_no_tumour_is_flagged_not_an_error():
    hu = np.zeros((6, SIZE, SIZE), dtype=np.int16)
    result = segment_phases(_stub(_Nothing()), {"art": _phase(hu)})["art"]
    record = result.to_dict()
    assert record["found"] is False and record["confidence"] == 0.0 and record["low_confidence"] is True
    assert record["volume_ml"] == 0.0 and not result.mask.any() and record["max_area_slice"] == 3
    assert set(record) >= {"series_uid", "max_area_slice", "area_mm2", "volume_ml", "longest_diameter_mm",
                           "confidence"}


def test_longest_diameter_of_a_rectangle_is_its_diagonal():
    mask = np.zeros((40, 40), dtype=bool)
    mask[5:15, 5:35] = True                           # centres 9 rows and 29 columns apart
    assert longest_diameter_mm(mask, (1.0, 2.0)) == pytest.approx(np.hypot(9 * 1.0, 29 * 2.0))


@pytest.mark.skipif(not shipped_seg_model_path().is_file(), reason="no shipped segmentation model")
def test_shipped_model_finds_the_max_area_slice_of_a_demo_study(demo_dir):
    from nbrisk_core.segment.inference import segment_study

    patient = "P0001"
    truth = pd.read_csv(demo_dir / "truth.csv").set_index("patient_id").loc[patient]
    results = segment_study(demo_dir / "studies" / patient, load_seg_model(shipped_seg_model_path()))
    assert set(results) == {"nc", "art", "pv"}
    for phase, result in results.items():
        assert result.found and abs(result.max_area_slice - int(truth[f"max_area_slice_{phase}"])) <= 1
    # P0001 encases the aorta and is 27 % necrotic: at the card's threshold 0.7 its ART area is 17 % under
    assert results["art"].area_mm2 == pytest.approx(truth["tumour_area_mm2"], rel=0.2)
