"""Short training runs on the tiny Swin: the loss falls, resume equals an uninterrupted run,
and `nbrisk train` writes a complete model card with the split saved."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from nbrisk_core.classifier.architectures import TINY_SWIN_KWARGS, build_model
from nbrisk_core.classifier.data import Augmentation, load_cohort_images
from nbrisk_core.classifier.training import Recipe, cohort_batches, evaluate_loss_auc, fit
from nbrisk_core.cli import main

NO_AUG = Augmentation(rotation_deg=0, translate_fraction=0, brightness=(1, 1), contrast=(1, 1), saturation=(1, 1))


def _recipe(**kw):
    base = Recipe(max_lr=1e-3, batch_size=4, max_epochs=3, early_stop_after=100, t_max=100, seed=1,
                  augmentation=NO_AUG)
    return dataclasses.replace(base, **kw)


def test_short_training_lowers_the_loss(tiny_cohort, tmp_path):
    data = load_cohort_images(tiny_cohort, "art")
    images, labels = data.images[:8], data.labels[:8]  # 4 HR, 4 NHR
    torch.manual_seed(0)
    model = build_model("swin_t", backbone_kwargs=TINY_SWIN_KWARGS)
    before, _ = evaluate_loss_auc(model, images, labels)
    history = fit(model, tmp_path, _recipe(max_lr=3e-4, max_epochs=5), cohort_batches(images, labels, 4), images,
                  labels, progress=False, log=lambda _: None)
    after, auc = evaluate_loss_auc(model, images, labels)
    assert len(history) == 5
    assert after < before - 0.015, (before, after)
    assert auc > 0.9
    assert (tmp_path / "history.csv").exists() and len(pd.read_csv(tmp_path / "history.csv")) == 5


def test_resume_equals_an_uninterrupted_run(tiny_cohort, tmp_path):
    data = load_cohort_images(tiny_cohort, "art")
    images, labels = data.images[:8], data.labels[:8]
    augmented = _recipe(max_epochs=2, augmentation=Augmentation())  # RNG-driven augmentation too

    def new_model():
        torch.manual_seed(0)
        return build_model("swin_t", backbone_kwargs=TINY_SWIN_KWARGS)

    whole = new_model()
    fit(whole, tmp_path / "whole", augmented, cohort_batches(images, labels, 4), images, labels,
        progress=False, log=lambda _: None)
    split = new_model()
    fit(split, tmp_path / "split", dataclasses.replace(augmented, max_epochs=1),
        cohort_batches(images, labels, 4), images, labels, progress=False, log=lambda _: None)
    resumed = new_model()
    fit(resumed, tmp_path / "split", augmented, cohort_batches(images, labels, 4), images, labels,
        resume=True, progress=False, log=lambda _: None)
    # best.safetensors is reloaded at the end of both; compare the last checkpoints and the best
    from safetensors.torch import load_file

    for name in ("checkpoint.safetensors", "best.safetensors"):
        a, b = load_file(str(tmp_path / "whole" / name)), load_file(str(tmp_path / "split" / name))
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert pd.read_csv(tmp_path / "split" / "history.csv")["epoch"].tolist() == [1, 2]


def test_cli_train_writes_card_and_split(tiny_cohort, tmp_path, capsys):
    run_dir, out = tmp_path / "run", tmp_path / "models" / "tiny_art"
    code = main(["train", "--tiny", "--cohort", str(tiny_cohort), "--run", str(run_dir), "--out", str(out),
                 "--epochs", "1", "--batch-size", "8", "--no-progress", "--threads", "1"])
    assert code == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["architecture"] == "swin_t" and card["variant"] == "art" and card["synthetic_data"] is True
    assert card["training"]["recipe"]["max_lr"] == 1e-5 and card["training"]["recipe"]["batch_size"] == 8
    assert card["training"]["early_stopping_monitor"].startswith("validation")
    assert set(card["metrics"]) == {"train", "val", "test"} and card["split"]["counts"]["test"] == 4
    split = pd.read_csv(run_dir / "split.csv")
    assert len(split) == 20 and (split["cohort"] == "test").sum() == 4
    assert len(card["sha256"]) == 64
    assert "AUC" in capsys.readouterr().out


def test_cli_monitor_test_is_marked_optimistic(tiny_cohort, tmp_path, capsys):
    code = main(["train", "--tiny", "--cohort", str(tiny_cohort), "--run", str(tmp_path / "r"), "--epochs", "1",
                 "--batch-size", "8", "--no-progress", "--threads", "1", "--monitor-test"])
    assert code == 0
    out = capsys.readouterr().out
    assert "OPTIMISTIC" in out
    card = json.loads((tmp_path / "r" / "run.json").read_text())["card"]
    assert card["optimistic"] is True


def test_token_fractions_and_dense_loss():
    from nbrisk_core.classifier.pipeline import token_fractions
    from nbrisk_core.classifier.training import dense_loss

    mask = np.zeros((1, 224, 224), dtype=np.uint8)  # 7 cells of 32 pixels
    mask[0, 96:136, 96:130] = 1
    fractions = token_fractions(mask)
    assert fractions.shape == (1, 7, 7)
    # equal cells tiling the slice: the mean fraction is the mask's share of the slice
    assert fractions.mean() == pytest.approx(mask.mean(), rel=1e-5)
    assert fractions[0, 3, 3] > 0.5 and fractions[0, 0, 0] == 0
    # a 7x7 target on a 14x14 token grid is spread evenly over the 2x2 tokens of each cell
    logits = torch.zeros(1, 14, 14, 1, requires_grad=True)
    target = torch.zeros(1, 7, 7)
    target[0, 2, 3] = 1.0
    dense_loss(logits, target).backward()
    grad = logits.grad[0, ..., 0]
    assert (grad[4:6, 6:8] < 0).all() and (grad[:4] > 0).all()


def test_pretrain_recipe_gives_the_head_its_own_learning_rate(tiny_model):
    from nbrisk_core.classifier.training import PRETRAIN_RECIPE, _make_optimizer

    optimizer = _make_optimizer(tiny_model, PRETRAIN_RECIPE)
    multipliers = [g["lr_mult"] for g in optimizer.param_groups]
    assert multipliers == [1.0, PRETRAIN_RECIPE.head_lr_mult]
    n_head = sum(p.numel() for p in optimizer.param_groups[1]["params"])
    assert n_head == sum(p.numel() for p in tiny_model.head.parameters())
    # geometric augmentation would move the tumour away from its token targets
    assert PRETRAIN_RECIPE.augmentation.rotation_deg == 0 and PRETRAIN_RECIPE.augmentation.translate_fraction == 0


def test_cli_missing_cohort_exits_2(tmp_path, capsys):
    code = main(["train", "--tiny", "--cohort", str(tmp_path / "none"), "--run", str(tmp_path / "r")])
    assert code == 2
    assert "no clinical.csv" in capsys.readouterr().err


def test_cli_pretrain_then_finetune(tiny_cohort, tmp_path, capsys):
    """The two stages chain: synthetic pretraining (dense-truth auxiliary head), then the paper's recipe."""
    pre = tmp_path / "pre"
    code = main(["train", "--stage", "pretrain", "--tiny", "--run", str(pre), "--out", str(pre / "model"),
                 "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--no-progress", "--threads", "1"])
    assert code == 0
    card = json.loads((pre / "model.json").read_text())
    assert card["training"]["stage"] == "pretrain" and len(card["training"]["aux_targets"]) == 8
    assert "tumour fraction per token" in card["training"]["dense_target"]
    # the written model carries the paper's head only; the run keeps the pretraining outputs
    assert card["head"]["n_aux"] == 0
    head_keys = {k.split(".")[1] for k in load_file(str(pre / "model.safetensors")) if k.startswith("head.")}
    assert head_keys == {"hidden", "out"}
    run_head = {k.split(".")[1] for k in load_file(str(pre / "best.safetensors")) if k.startswith("head.")}
    assert run_head == {"hidden", "out", "aux", "dense", "norm"}
    assert card["training_cohort"]["synthetic"] is True and card["synthetic_data"] is True
    # auxiliary targets are z-scored (centre and scale of the synthetic validation set, kept with the run)
    center, scale = np.loadtxt(pre / "aux_center.txt"), np.loadtxt(pre / "aux_scale.txt")
    assert center.shape == scale.shape == (8,) and center[0] > 100 and (scale > 0).all()  # [0]: area in mm^2
    code = main(["train", "--tiny", "--cohort", str(tiny_cohort), "--run", str(tmp_path / "ft"), "--init",
                 str(pre / "best.safetensors"), "--epochs", "1", "--batch-size", "8", "--no-progress",
                 "--threads", "1"])
    assert code == 0
    card = json.loads((tmp_path / "ft" / "run.json").read_text())["card"]
    assert card["head"]["n_aux"] == 0 and card["pretraining"]["stage"] == "pretrain"
    assert len(card["training"]["init_sha256"]) == 64


def test_precision_and_device_choice():
    from nbrisk_core.classifier.probe import cpu_probe
    from nbrisk_core.classifier.training import resolve_device, resolve_precision
    from nbrisk_core.errors import InputError

    assert resolve_precision("fp32", "cpu") is False and resolve_precision("bf16", "cpu") is True
    assert resolve_precision("auto", "cpu") is cpu_probe().pays_off("bf16")
    assert resolve_precision("auto", "cuda") is True
    with pytest.raises(InputError, match="--precision 'fp16'"):
        resolve_precision("fp16", "cpu")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA device"):
            resolve_device("cuda")


def test_bf16_autocast_training_learns_and_is_recorded(tiny_cohort, tmp_path, capsys):
    """Training under bf16 autocast (the fast path on AVX512-BF16/AMX CPUs and CUDA) lowers the loss
    like fp32 does, keeps fp32 weights, and the card says which precision and device trained it."""
    data = load_cohort_images(tiny_cohort, "art")
    images, labels = data.images[:8], data.labels[:8]
    torch.manual_seed(0)
    model = build_model("swin_t", backbone_kwargs=TINY_SWIN_KWARGS)
    before, _ = evaluate_loss_auc(model, images, labels)
    fit(model, tmp_path / "fit", _recipe(max_lr=3e-4, max_epochs=5), cohort_batches(images, labels, 4), images,
        labels, progress=False, log=lambda _: None, precision="bf16")
    after, _ = evaluate_loss_auc(model, images, labels)
    assert after < before - 0.015, (before, after)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    code = main(["train", "--tiny", "--cohort", str(tiny_cohort), "--run", str(tmp_path / "r"), "--epochs", "1",
                 "--batch-size", "8", "--no-progress", "--threads", "1", "--precision", "bf16", "--device", "cpu"])
    assert code == 0
    assert "training on cpu, bf16 autocast" in capsys.readouterr().out
    card = json.loads((tmp_path / "r" / "run.json").read_text())["card"]
    assert card["training"]["hardware"]["precision"] == "bf16 autocast"
    assert card["training"]["hardware"]["device"] == "cpu" and card["training"]["hardware"]["cpu"]
