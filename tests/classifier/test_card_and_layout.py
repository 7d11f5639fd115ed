"""The model card type, the state-dict key map of older weights files, and the shipped model's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nbrisk_core.classifier.architectures import (TINY_SWIN_KWARGS, build_model, detect_layout,
                                                  upgrade_state_dict)
from nbrisk_core.classifier.card import DataConfig, ModelCard
from nbrisk_core.classifier.model_io import base_card, load_model, read_card, save_model
from nbrisk_core.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "swin_art_demo.safetensors"
REFERENCE = Path(__file__).parent / "data" / "swin_art_demo_reference.npz"


def golden_hu(n: int = 10) -> list[np.ndarray]:
    """Ten 160 x 160 float HU slices: a body ellipse, noise, a round 'tumour' growing in size and density.

    ``data/swin_art_demo_reference.npz`` holds what the shipped Swin-ART gave on them before the
    classifier became one module (state-dict layout 1 code, commit 52e2db5, fp32, 1 thread)."""
    rng = np.random.default_rng(2024)
    yy, xx = np.mgrid[:160, :160]
    body = ((yy - 80) / 70) ** 2 + ((xx - 80) / 60) ** 2 <= 1
    slices = []
    for i in range(n):
        hu = np.where(body, 35.0, -1000.0) + rng.normal(0, 12, (160, 160))
        tumour = (yy - 70) ** 2 + (xx - 85) ** 2 <= (8 + 3 * i) ** 2
        hu[tumour] = 60 + 15 * i + rng.normal(0, 20, int(tumour.sum()))
        slices.append(hu)
    return slices


def _to_layout1(state: dict) -> dict:
    """A Swin-T state dict as layout 1 wrote it: the head in timm's classifier slot, no prefix."""
    return {(f"head.fc.{k[5:]}" if k.startswith("head.") else k[len("backbone."):]): v
            for k, v in state.items()}


def _layout1_model_file(tmp_path, model) -> Path:
    """``tmp_path/old.safetensors`` + card as the code before layout 2 wrote them (no state_dict_layout)."""
    card = save_model(model, tmp_path / "new", base_card("swin_t", "art", TINY_SWIN_KWARGS), half=False)
    from safetensors.torch import save_file

    old = _to_layout1(model.state_dict())
    save_file({k: v.contiguous() for k, v in old.items()}, str(tmp_path / "old.safetensors"))
    from nbrisk_core.classifier.model_io import sha256_file

    card = {k: v for k, v in card.items() if k != "state_dict_layout"}
    card.update(weights_file="old.safetensors", sha256=sha256_file(tmp_path / "old.safetensors"))
    (tmp_path / "old.json").write_text(json.dumps(card))
    return tmp_path / "old.safetensors"


def test_a_layout1_weights_file_loads_with_its_keys_mapped(tiny_model, tmp_path):
    path = _layout1_model_file(tmp_path, tiny_model)
    assert detect_layout(_to_layout1(tiny_model.state_dict())) == 1
    assert detect_layout(tiny_model.state_dict()) == 2
    loaded = load_model(path)
    assert loaded.model_card.state_dict_layout == 1
    x = torch.randn(2, 3, 224, 224)
    tiny_model.eval()
    with torch.no_grad():
        for got, want in zip(loaded.model.forward_with_embedding(x), tiny_model.forward_with_embedding(x)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    # a new file records its layout, and an unknown one is refused
    assert json.loads((tmp_path / "new.json").read_text())["state_dict_layout"] == 2
    with pytest.raises(InputError, match="state-dict layout 7"):
        upgrade_state_dict({}, "swin_t", 7)


def test_the_shipped_model_gives_the_numbers_it_gave_before(tmp_path):
    """models/swin_art_demo (layout 1, card unchanged) loads and reproduces the recorded outputs."""
    from nbrisk_core.classifier.inference import InferenceConfig, Predictor

    reference = np.load(REFERENCE)
    loaded = load_model(SHIPPED)
    assert loaded.sha256 == str(reference["sha256"]) and loaded.model_card.state_dict_layout == 1
    picked = [0, 3, 6, 9]  # 4 of the 10 recorded: the forward passes are most of this test's time
    hu = golden_hu()
    x = np.stack([loaded.model_card.data.model_input({"art": hu[i]}) for i in picked])
    proba, embedding = Predictor(loaded, InferenceConfig()).logits_and_embedding(x)
    np.testing.assert_allclose(proba, reference["proba"][picked], rtol=0, atol=1e-6)
    # embeddings reach ~8: 1e-5 is a few float32 ulps, what another BLAS kernel's summation order may give
    np.testing.assert_allclose(embedding, reference["embedding"][picked], rtol=0, atol=1e-5)


def test_the_card_parses_into_a_frozen_type_with_the_data_config(tiny_models_dir):
    card = ModelCard.from_record(read_card(tiny_models_dir / "swin_art_demo.json"), "m.json")
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert card.data == DataConfig("art", ("art",), card.window, 224, *imagenet)
    assert (card.window.width, card.window.level) == (400.0, 40.0)
    assert (card.decision_threshold, card.phases) == (0.5, ("art",))
    with pytest.raises(AttributeError):
        card.decision_threshold = 0.3  # frozen


def _bad(record: dict, path: str, value):
    record = json.loads(json.dumps(record))
    *parents, leaf = path.split(".")
    target = record
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[leaf]
    else:
        target[leaf] = value
    return record


@pytest.mark.parametrize("field, value, message", [
    ("window.width", 0, "field 'window.width' = 0; expected a finite number >= 1.0"),
    ("window.level", "40", "field 'window.level' = '40'; expected a finite number"),
    ("window", KeyError, "lacks the field 'window'"),
    ("input_size", 22.4, "field 'input_size' = 22.4; expected an integer >= 1"),
    ("normalisation.std", [0.2, 0.0, 0.2],
     "field 'normalisation.std' = [0.2, 0.0, 0.2]; expected 3 finite positive"),
    ("normalisation.mean", [0.5], "field 'normalisation.mean' = [0.5]; expected 3 finite numbers"),
    ("phases", ["pv"], "field 'phases' = ['pv']; variant 'art' reads ['art']"),
    ("variant", "xx", "field 'variant' = 'xx'; expected one of"),
    ("architecture", "swin_xl", "field 'architecture' = 'swin_xl'; expected one of"),
    ("class_order", ["NHR", "HR"], "field 'class_order' = ['NHR', 'HR']; expected ['HR', 'NHR']"),
    ("decision_threshold", 1.5, "field 'decision_threshold' = 1.5; expected a finite number in [0.0, 1.0]"),
    ("sha256", "abc", "field 'sha256' = 'abc'; expected 64 lower-case hex digits"),
    ("card_version", 9, "card_version = 9; this NBRisk reads versions up to 1"),
    ("state_dict_layout", 3, "field 'state_dict_layout' = 3; expected an integer in 1-2"),
    ("head.hidden_units", 32, "field 'head.hidden_units' = 32; expected 16"),
])
def test_a_bad_card_names_the_field_the_value_and_what_was_expected(tiny_models_dir, field, value, message):
    record = read_card(tiny_models_dir / "swin_art_demo.json")
    with pytest.raises(InputError) as error:
        ModelCard.from_record(_bad(record, field, value), "models/m.json")
    assert str(error.value).startswith("models/m.json: ") and message in str(error.value)


def test_an_old_card_without_threshold_or_layout_still_loads(tiny_models_dir):
    record = {k: v for k, v in read_card(tiny_models_dir / "swin_art_demo.json").items()
              if k not in ("decision_threshold", "state_dict_layout", "head")}
    card = ModelCard.from_record(record)
    assert (card.decision_threshold, card.state_dict_layout, card.n_aux) == (0.5, 1, 0)


def test_inference_reads_the_window_of_the_card(tiny_model, tmp_path):
    """A model recorded with another window is fed with that window (it used to get W400/L40)."""
    from nbrisk_core.classifier.inference import InferenceConfig, Predictor, predict_case
    from nbrisk_core.imaging.model_input import build_model_input, hu_to_uint8
    from nbrisk_core.imaging.windowing import WINDOW_PRESETS

    card = base_card("swin_t", "art", TINY_SWIN_KWARGS)
    liver = WINDOW_PRESETS["liver"]
    card["window"] = {"width": liver.width, "level": liver.level}
    save_model(tiny_model, tmp_path / "liver", card, half=False)
    loaded = load_model(tmp_path / "liver.safetensors")
    hu = golden_hu(1)[0]
    x = loaded.model_card.data.model_input({"art": hu})
    np.testing.assert_array_equal(x, build_model_input({"art": hu_to_uint8(hu, liver)}, "art"))
    assert not np.array_equal(x, build_model_input({"art": hu_to_uint8(hu)}, "art"))
    predictor = Predictor(loaded, InferenceConfig())
    result = predict_case(predictor, {"art": hu})
    p_liver = predictor.logits_and_embedding(x[None])[0][0, 0]
    assert result.p_high_risk == pytest.approx(float(p_liver), abs=0)
    # an 8-bit image (the paper's BMP export) is taken as it is, whatever the window
    grey = hu_to_uint8(hu)
    np.testing.assert_array_equal(loaded.model_card.data.model_input({"art": grey}),
                                  build_model_input({"art": grey}, "art"))


def test_a_training_run_checkpoint_of_layout1_initialises_a_new_model(tiny_model, tmp_path):
    """``nbrisk train --init runs/x/best.safetensors`` of a run made before layout 2 (no card: keys tell)."""
    from types import SimpleNamespace

    from safetensors.torch import save_file

    from nbrisk_core.classifier.pipeline import _initial_weights

    save_file({k: v.contiguous() for k, v in _to_layout1(tiny_model.state_dict()).items()},
              str(tmp_path / "best.safetensors"))
    torch.manual_seed(5)
    fresh = build_model("swin_t", backbone_kwargs=TINY_SWIN_KWARGS)
    _initial_weights(fresh, SimpleNamespace(pretrained=None, init=str(tmp_path / "best.safetensors")))
    want = tiny_model.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in fresh.state_dict().items())


def test_reading_a_model_card_imports_neither_torch_nor_timm(tmp_path):
    """The dashboard reads the shipped classifier's card at start (its SHA-256 matches the prognosis bundle):
    the card needs the architecture names only (nbrisk_core.classifier.ARCHITECTURE_NAMES), not the networks."""
    import subprocess
    import sys

    from nbrisk_core.classifier import ARCHITECTURE_NAMES, STATE_DICT_LAYOUT
    from nbrisk_core.classifier import architectures

    assert tuple(architectures.ARCHITECTURES) == ARCHITECTURE_NAMES
    assert architectures.STATE_DICT_LAYOUT == STATE_DICT_LAYOUT
    path = tmp_path / "m"
    save_model(build_model("swin_t", backbone_kwargs=TINY_SWIN_KWARGS), path,
               base_card("swin_t", "art", TINY_SWIN_KWARGS))
    script = ("import sys; from nbrisk_core.classifier.model_io import read_model_card; "
              f"card = read_model_card({str(path)!r}); "
              "print(card.architecture, 'torch' in sys.modules, 'timm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["swin_t", "False", "False"]
