"""Grad-CAM, embeddings cache, `nbrisk predict` / `embed` / `evaluate` on tiny inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from nbrisk_core.classifier import embeddings as emb
from nbrisk_core.classifier.explain import CAM_METHODS, compute_cam, overlay
from nbrisk_core.classifier.model_io import load_model
from nbrisk_core.cli import main
from nbrisk_core.errors import InputError
from nbrisk_core.imaging.model_input import build_model_input

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "eigencam"])
def test_cam_shape_and_finiteness(tiny_model, method):
    tiny_model.eval()
    x = np.random.default_rng(0).normal(size=(3, 224, 224)).astype(np.float32)
    result = compute_cam(tiny_model, x, method, "HR")
    assert result.heatmap.shape == (224, 224) and np.isfinite(result.heatmap).all()
    assert result.heatmap.min() >= 0 and result.heatmap.max() <= 1 + 1e-6
    assert set(CAM_METHODS) >= {"gradcam", "gradcam++", "eigencam", "scorecam"}


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_cam_backward_stops_at_the_target_layer_and_gives_the_same_map(tiny_model, method):
    import contextlib

    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from nbrisk_core.classifier import explain

    tiny_model.eval()
    x = np.random.default_rng(1).normal(size=(1, 3, 224, 224)).astype(np.float32)
    spec = tiny_model.spec
    layer = tiny_model.cam_target_layer()
    cls = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus}[method]
    with cls(model=tiny_model, target_layers=[layer], reshape_transform=spec.cam_reshape) as cam:  # every grad
        reference = cam(input_tensor=torch.as_tensor(x), targets=[ClassifierOutputTarget(0)])[0]
    seen = []
    first = next(tiny_model.parameters())
    with contextlib.ExitStack() as stack:
        stack.enter_context(explain._gradients_only_in(tiny_model, layer))
        seen.append(first.requires_grad)
    grad_before = first.grad.clone()  # the reference run's backward walked every weight
    result = compute_cam(tiny_model, x, method, "HR")
    np.testing.assert_allclose(result.heatmap, reference, atol=1e-5)
    # the CAM runs on a private copy: the shared model's weights and gradients are untouched
    torch.testing.assert_close(first.grad, grad_before, rtol=0, atol=0)
    assert all(p.requires_grad for p in tiny_model.parameters())
    # on the copy, upstream weights are frozen during the CAM only, and no gradient was accumulated in them
    private_first = next(explain._CAM_COPIES[tiny_model][1].parameters())
    assert seen == [False] and private_first.requires_grad and private_first.grad is None


def test_overlay_keeps_slice_resolution_and_opacity():
    grey = np.full((300, 260), 100, np.uint8)
    heat = np.zeros((224, 224), np.float32)
    heat[100:120, 100:120] = 1.0
    assert overlay(grey, heat, 0.0).shape == (300, 260, 3)
    np.testing.assert_array_equal(overlay(grey, heat, 0.0)[..., 0], grey)
    assert not np.array_equal(overlay(grey, heat, 0.5), overlay(grey, heat, 0.0))
    with pytest.raises(InputError, match="opacity"):
        overlay(grey, heat, 1.5)


def test_unknown_cam_method_is_an_input_error(tiny_model):
    with pytest.raises(InputError, match="CAM method 'lime'"):
        compute_cam(tiny_model, np.zeros((3, 224, 224), np.float32), "lime")


def test_shipped_model_looks_at_the_tumour(demo_dir):
    """On demo cases, mean Grad-CAM inside the tumour mask exceeds the mean outside it."""
    from nbrisk_core.classifier.data import read_grey_slices
    from nbrisk_core.classifier.explain import resize_heatmap
    from nbrisk_core.classifier.model_io import shipped_model_path

    path = shipped_model_path("art")
    if not path.exists():
        pytest.skip(f"shipped model {path} is absent (train it with `nbrisk train`)")
    loaded = load_model(path)
    patients = sorted(p.name for p in (demo_dir / "slices").iterdir())[:6]
    inside_higher = 0
    for pid in patients:
        grey = read_grey_slices(demo_dir, pid, ("art",))
        with np.load(demo_dir / "slices" / pid / "hu.npz") as arrays:
            mask = arrays["mask_art"].astype(bool)
        heat = resize_heatmap(compute_cam(loaded.model, build_model_input(grey, "art"), "gradcam", "HR").heatmap,
                              mask.shape)
        inside_higher += heat[mask].mean() > heat[~mask].mean()
    assert inside_higher >= len(patients) // 2 + 1, f"{inside_higher}/{len(patients)} cases"


def test_cohort_embeddings_are_cached(tiny_cohort, tiny_models_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("NBRISK_HOME", str(tmp_path))
    monkeypatch.setenv("NBRISK_DATA_DIR", str(tiny_cohort))
    monkeypatch.setenv("NBRISK_MODELS_DIR", str(tiny_models_dir))
    frame = emb.cohort_embeddings()
    assert frame.shape == (20, 16) and list(frame.columns) == [f"ct{i:02d}" for i in range(1, 17)]
    assert frame.index.name == "patient_id" and np.isfinite(frame.to_numpy()).all()
    sha = load_model(tiny_models_dir / "swin_art_demo.safetensors").sha256
    cache = tmp_path / "data" / "embeddings" / f"{sha[:16]}.parquet"
    assert cache.exists()
    pd.testing.assert_frame_equal(pd.read_parquet(cache), frame)

    def fail(*_a, **_k):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(emb, "compute_embeddings", fail)
    pd.testing.assert_frame_equal(emb.cohort_embeddings(), frame)

    # a cached table needs only the model's SHA-256 (the weights file checked against its card): the network
    # is not built (the dashboard reads the table at start without importing torch)
    import nbrisk_core.classifier.model_io as model_io

    def no_network(*_a, **_k):
        raise AssertionError("the model was built although its embeddings are cached")

    monkeypatch.setattr(model_io, "load_model", no_network)
    pd.testing.assert_frame_equal(emb.cohort_embeddings(), frame)


def test_predict_cli_json(tiny_cohort, tiny_models_dir, tmp_path, capsys):
    from nbrisk_core.classifier.data import read_grey_slices

    grey = read_grey_slices(tiny_cohort, "T0000", ("art",))["art"]
    png = tmp_path / "art.png"
    Image.fromarray(grey).save(png)
    assert main(["predict", "--art", str(png), "--models", str(tiny_models_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"variants", "embedding", "model_sha256", "device", "seconds"}
    assert len(result["embedding"]) == 16 and 0 <= result["variants"]["art"]["p_high_risk"] <= 1
    assert result["variants"]["art"]["risk_class"] in ("HR", "NHR") and "nc" not in result["variants"]
    # --precision fp32 and fp16 give nearly the same probability, and the device says which ran
    command = ["predict", "--art", str(png), "--models", str(tiny_models_dir), "--json", "--precision"]
    assert main([*command, "fp16"]) == 0
    fp16 = json.loads(capsys.readouterr().out)
    assert main([*command, "fp32"]) == 0
    fp32 = json.loads(capsys.readouterr().out)
    assert "fp16 autocast" in fp16["device"] and "fp32" in fp32["device"]
    assert abs(fp16["variants"]["art"]["p_high_risk"] - fp32["variants"]["art"]["p_high_risk"]) < 1e-2


def test_predict_cli_bad_input_exits_2(tiny_models_dir, tmp_path, capsys):
    bad = tmp_path / "art.png"
    bad.write_text("not an image")
    assert main(["predict", "--art", str(tmp_path / "missing.png"), "--models", str(tiny_models_dir)]) == 2
    assert "missing.png" in capsys.readouterr().err
    assert main(["predict", "--art", str(bad), "--models", str(tiny_models_dir)]) == 2
    assert "art.png" in capsys.readouterr().err


def test_evaluate_cli_json(tiny_cohort, tiny_models_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NBRISK_HOME", str(tmp_path))  # the embedding cache it writes goes here
    code = main(["evaluate", "--model", str(tiny_models_dir / "swin_art_demo.safetensors"), "--cohort",
                 str(tiny_cohort), "--split", "train,test", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    result = out["results"]["Swin-ART"]
    assert set(result) == {"train", "test"} and result["test"]["n"] == 4
    assert 0 <= result["train"]["auc"]["ci_low"] <= result["train"]["auc"]["value"] <= result["train"]["auc"]["ci_high"]
    # the forward pass covers the whole cohort, so it also filled the embedding cache
    cached = list((tmp_path / "data" / "embeddings").glob("*.parquet"))
    assert len(cached) == 1 and pd.read_parquet(cached[0]).shape == (20, 16)


def test_evaluate_two_models_of_one_kind_keep_their_own_rows(tiny_cohort, tiny_models_dir, tmp_path, monkeypatch,
                                                             capsys):
    """Two Swin-ART files side by side (say a pretraining and a fine-tuned stage) are two rows, and
    --record writes each model's own numbers into its own card."""
    import shutil

    monkeypatch.setenv("NBRISK_HOME", str(tmp_path))
    first = tmp_path / "a" / "swin_art_demo.safetensors"
    shutil.copytree(tiny_models_dir, first.parent)
    other = tmp_path / "b"
    other.mkdir()
    second = other / "finetuned.safetensors"
    shutil.copy(first, second)
    card = json.loads(first.with_suffix(".json").read_text())
    card["weights_file"] = second.name
    second.with_suffix(".json").write_text(json.dumps(card))
    code = main(["evaluate", "--model", str(first), "--model", str(second), "--cohort", str(tiny_cohort),
                 "--split", "test", "--json", "--record", "--threshold", "0.5"])
    assert code == 0
    out = capsys.readouterr().out
    results = json.loads(out[out.index("{"):])["results"]
    assert set(results) == {"Swin-ART", "Swin-ART (finetuned)"}
    for path in (first, second):
        recorded = json.loads(path.with_suffix(".json").read_text())["evaluations"][-1]
        assert recorded["results"]["test"]["n"] == 4


def test_cam_is_not_disturbed_by_concurrent_predictions(tiny_model):
    """The dashboard serves predictions from the shared model while another session computes a CAM:
    the CAM's hooks must not record the other forward passes (bf16 ones broke the CAM; fp32 ones
    could give one session a heat map made of another's image)."""
    import threading

    import torch

    rng = np.random.default_rng(3)
    x_cam = rng.normal(size=(3, 224, 224)).astype(np.float32)
    x_other = torch.from_numpy(rng.normal(size=(1, 3, 224, 224)).astype(np.float32))
    alone = compute_cam(tiny_model, x_cam, "gradcam", "HR").heatmap
    stop, failures = threading.Event(), []

    def other_session():
        try:
            while not stop.is_set():
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                    tiny_model(x_other)
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(error)

    thread = threading.Thread(target=other_session)
    thread.start()
    try:
        maps = [compute_cam(tiny_model, x_cam, "gradcam", "HR").heatmap for _ in range(8)]
    finally:
        stop.set()
        thread.join()
    assert not failures
    for heat in maps:
        np.testing.assert_allclose(heat, alone, atol=1e-5)
    # the private copy follows the model's weights when they change
    with torch.no_grad():
        next(tiny_model.parameters()).mul_(1.5)
    changed = compute_cam(tiny_model, x_cam, "gradcam", "HR").heatmap
    from nbrisk_core.classifier import explain

    private = explain._CAM_COPIES[tiny_model][1]
    torch.testing.assert_close(next(private.parameters()), next(tiny_model.parameters()))
    assert changed.shape == alone.shape
