"""The segmentation network's files (SHA check) and the resumable training run, on a tiny config."""

from __future__ import annotations

import json

import pytest

from nbrisk_core.errors import InputError
from nbrisk_core.segment.data import SegDataConfig, choose_slices, patient_geometry, patient_samples
from nbrisk_core.segment.model import SegNetConfig, base_card, build_network, load_seg_model, save_seg_model
from nbrisk_core.segment.training import SegRecipe, train_seg

TINY_NET = SegNetConfig(channels=(4, 8), strides=(2,), num_res_units=1, input_size=32)
TINY_DATA = SegDataConfig(input_size=32, patients_per_epoch=2, tumour_slices=1, margin_slices=1, far_slices=0)


def test_saved_model_loads_and_a_changed_file_is_refused(tmp_path):
    card = save_seg_model(build_network(TINY_NET), tmp_path / "m", base_card(TINY_NET))
    assert card["weights_dtype"] == "float16" and len(card["sha256"]) == 64
    loaded = load_seg_model(tmp_path / "m.safetensors")
    assert loaded.config == TINY_NET and loaded.sha256 == card["sha256"]
    weights = tmp_path / "m.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match="SHA-256"):
        load_seg_model(weights)


def test_card_naming_a_path_outside_its_folder_is_refused(tmp_path):
    save_seg_model(build_network(TINY_NET), tmp_path / "m", base_card(TINY_NET))
    card_path = tmp_path / "m.json"
    card = json.loads(card_path.read_text())
    card["weights_file"] = "../m.safetensors"
    card_path.write_text(json.dumps(card))
    with pytest.raises(InputError, match="bare file name"):
        load_seg_model(card_path)


def test_training_samples_cover_the_max_area_slice_and_slices_without_tumour():
    geom = patient_geometry(TINY_DATA.seed, 0)
    import numpy as np

    chosen = choose_slices(geom, "art", SegDataConfig(), np.random.default_rng(0))
    assert chosen[0] == geom.max_area_slice("art")
    samples = patient_samples(TINY_DATA.seed, 0, TINY_DATA)
    assert {s["phase"] for s in samples} == {"nc", "art", "pv"}
    assert samples[0]["image"].shape == (3, 32, 32) and samples[0]["label"].shape == (1, 32, 32)
    assert samples[0]["label"].sum() > 0                               # the max-area slice has tumour
    assert any(s["label"].sum() == 0 for s in samples)                 # and some slices have none


def test_training_resumes_after_the_last_checkpoint(tmp_path):
    lines = []
    first = train_seg(tmp_path / "m", tmp_path / "ckpt", TINY_DATA, TINY_NET,
                      SegRecipe(epochs=1, batch_size=4, validation_patients=1), precision="fp32",
                      log=lines.append)
    state = json.loads((tmp_path / "ckpt" / "state.json").read_text())
    assert state["epochs_done"] == 1 and len(first["history"]) == 1
    # the same settings with more epochs would be other settings: refused, not silently mixed
    with pytest.raises(InputError, match="other settings"):
        train_seg(tmp_path / "m", tmp_path / "ckpt", TINY_DATA, TINY_NET,
                  SegRecipe(epochs=2, batch_size=4, validation_patients=1), precision="fp32")
    # the same command again resumes: nothing left to train, the same history, a loadable model
    lines.clear()
    again = train_seg(tmp_path / "m", tmp_path / "ckpt", TINY_DATA, TINY_NET,
                      SegRecipe(epochs=1, batch_size=4, validation_patients=1), precision="fp32",
                      log=lines.append)
    assert any("resuming after epoch 1" in line for line in lines)
    assert again["history"] == first["history"]
    assert load_seg_model(tmp_path / "m.safetensors").card["training_data"]["seed"] == TINY_DATA.seed


def test_a_tampered_checkpoint_is_refused(tmp_path):
    recipe = SegRecipe(epochs=1, batch_size=4, validation_patients=1)
    train_seg(tmp_path / "m", tmp_path / "ckpt", TINY_DATA, TINY_NET, recipe, precision="fp32",
              log=lambda _: None)
    path = tmp_path / "ckpt" / "checkpoint.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="SHA-256"):
        train_seg(tmp_path / "m", tmp_path / "ckpt", TINY_DATA, TINY_NET, recipe, precision="fp32")
