"""Architecture, head, embedding, save/load round trip and the tampered-file error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nbrisk_core.classifier import CLASS_ORDER
from nbrisk_core.classifier.architectures import TINY_SWIN_KWARGS, RiskClassifier, RiskHead, build_model
from nbrisk_core.classifier.model_io import base_card, load_model, save_model
from nbrisk_core.errors import InputError


def test_head_is_the_papers_and_embedding_is_16d(tiny_model):
    head = tiny_model.head
    assert isinstance(tiny_model, RiskClassifier) and isinstance(head, RiskHead)
    assert head.hidden.out_features == 16 and head.out.out_features == len(CLASS_ORDER) == 2
    # timm's surface on the whole model: features -> head (pre_logits = the embedding) -> logits
    tiny_model.eval()
    x = torch.randn(3, 3, 224, 224)
    with torch.no_grad():
        logits, embedding = tiny_model.forward_with_embedding(x)
        features = tiny_model.forward_features(x)
        direct = tiny_model.forward_head(features)
        pre_logits = tiny_model.forward_head(features, pre_logits=True)
        embedded = tiny_model.embed(x)
        called = tiny_model(x)
    assert logits.shape == (3, 2) and embedding.shape == (3, 16)
    for other in (direct, called, head.out(embedding)):
        torch.testing.assert_close(logits, other, rtol=0, atol=0)
    for other in (pre_logits, embedded):
        torch.testing.assert_close(embedding, other, rtol=0, atol=0)
    assert tiny_model.get_classifier() is head.out


def test_the_timm_backbone_is_timms_without_a_classifier_and_unpatched(tiny_model):
    backbone = tiny_model.backbone
    assert type(backbone).__module__.startswith("timm.") and backbone.num_classes == 0
    # reset_classifier(0), not an attribute swapped by path
    assert isinstance(backbone.get_classifier(), torch.nn.Identity)
    assert not hasattr(backbone, "nbrisk_arch") and tiny_model.arch == "swin_t"
    assert set(tiny_model.state_dict()) == ({f"backbone.{k}" for k in backbone.state_dict()}
                                            | {f"head.{k}" for k in tiny_model.head.state_dict()})


@pytest.mark.parametrize("arch, pooled", [("resnet50", 2048), ("densenet121", 1024), ("vgg16", 4096),
                                          ("alexnet", 4096)])
def test_cnn_baselines_take_the_same_head(arch, pooled):
    model = build_model(arch).eval()
    assert model.head.hidden.in_features == pooled
    assert model.head.out.out_features == 2
    assert isinstance(model.backbone.get_classifier(), torch.nn.Identity)
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 2)


@pytest.mark.parametrize("arch, grid", [("swin_t", 7), ("resnet50", 7), ("alexnet", 6)])
def test_dense_pretraining_output_reads_the_last_feature_map(arch, grid):
    kwargs = TINY_SWIN_KWARGS if arch == "swin_t" else None
    model = build_model(arch, n_aux=3, n_dense=1, backbone_kwargs=kwargs).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        logits, embedding, dense = model.forward_tokens(x)
        plain_logits, plain_embedding = model.forward_with_embedding(x)
    assert dense.shape == (2, grid, grid, 1)
    # the class path is the paper's whatever the pretraining outputs
    torch.testing.assert_close(logits, plain_logits)
    torch.testing.assert_close(embedding, plain_embedding)
    assert build_model(arch, backbone_kwargs=kwargs).eval().forward_tokens(x)[2] is None


def test_pool_norm_folds_into_the_papers_hidden_layer():
    from nbrisk_core.classifier.architectures import fold_pool_norm

    torch.manual_seed(0)
    head = RiskHead(32, pool_norm=True)
    head.train()
    for _ in range(20):  # running statistics of features with a large common offset and a small spread
        head.embed(1.0 + 0.05 * torch.randn(16, 32))
    head.eval()
    x = 1.0 + 0.05 * torch.randn(8, 32)
    with torch.no_grad():
        before = head(x)
        state = fold_pool_norm(head.state_dict(), "")
        head.fold_norm()
        after = head(x)
    assert head.norm is None and set(head.state_dict()) == {"hidden.weight", "hidden.bias", "out.weight", "out.bias"}
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(state["hidden.weight"], head.hidden.weight)
    assert fold_pool_norm({"hidden.weight": 1}, "") == {"hidden.weight": 1}


def test_unknown_architecture_is_an_input_error():
    with pytest.raises(InputError, match="unknown architecture 'swin_xl'"):
        build_model("swin_xl")


def _save(tiny_model, tmp_path, half=True):
    card = base_card("swin_t", "art", {"embed_dim": 24, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1]})
    return save_model(tiny_model, tmp_path / "m", card, half=half)


def test_save_load_round_trip_gives_identical_outputs(tiny_model, tmp_path):
    card = _save(tiny_model, tmp_path, half=False)
    loaded = load_model(tmp_path / "m.safetensors")
    assert loaded.sha256 == card["sha256"] and loaded.card["class_order"] == ["HR", "NHR"]
    x = torch.randn(2, 3, 224, 224)
    tiny_model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), tiny_model(x), rtol=0, atol=0)


def test_fp16_shipping_stays_close(tiny_model, tmp_path):
    _save(tiny_model, tmp_path, half=True)
    loaded = load_model(tmp_path / "m.json")
    x = torch.randn(2, 3, 224, 224)
    tiny_model.eval()
    with torch.no_grad():
        a, b = torch.softmax(loaded.model(x), 1), torch.softmax(tiny_model(x), 1)
    assert float((a - b).abs().max()) < 1e-2


def test_tampered_weights_are_refused(tiny_model, tmp_path):
    _save(tiny_model, tmp_path)
    path = tmp_path / "m.safetensors"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="SHA-256 .* does not match"):
        load_model(path)


def test_truncated_weights_are_refused(tiny_model, tmp_path):
    _save(tiny_model, tmp_path)
    path = tmp_path / "m.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(InputError, match="truncated"):
        load_model(path)


def test_architecture_mismatch_is_refused(tiny_model, tmp_path):
    _save(tiny_model, tmp_path)
    card_path = tmp_path / "m.json"
    card = json.loads(card_path.read_text())
    card["backbone_kwargs"]["embed_dim"] = 48  # the card now names another network
    card_path.write_text(json.dumps(card))
    with pytest.raises(InputError, match="do not fit architecture"):
        load_model(card_path)


def test_missing_card_is_refused(tiny_model, tmp_path):
    _save(tiny_model, tmp_path)
    (tmp_path / "m.json").unlink()
    with pytest.raises(InputError, match="model card not found"):
        load_model(tmp_path / "m.safetensors")


def test_pretrained_backbone_file_leaves_the_head_fresh(tiny_model, tmp_path):
    from safetensors.torch import save_file

    from nbrisk_core.classifier.architectures import TINY_SWIN_KWARGS
    from nbrisk_core.classifier.model_io import load_backbone_weights

    # a timm checkpoint: the bare model's keys, with its ImageNet classifier
    path = tmp_path / "backbone.safetensors"
    checkpoint = {k: v.contiguous() for k, v in tiny_model.backbone.state_dict().items()}
    checkpoint |= {"head.fc.weight": torch.ones(1000, 192), "head.fc.bias": torch.ones(1000)}
    save_file(checkpoint, str(path))
    torch.manual_seed(123)
    fresh = build_model("swin_t", backbone_kwargs=dict(TINY_SWIN_KWARGS))
    head_before = {k: v.clone() for k, v in fresh.head.state_dict().items()}
    skipped = load_backbone_weights(fresh, path)
    assert skipped == []  # every backbone tensor found its place
    # the head starts fresh
    assert all(torch.equal(fresh.head.state_dict()[k], head_before[k]) for k in head_before)
    source = tiny_model.backbone.state_dict()
    assert all(torch.equal(v, source[k]) for k, v in fresh.backbone.state_dict().items())
