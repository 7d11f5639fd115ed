"""`nbrisk train --nproc-per-node N`: two CPU processes (gloo) on the tiny Swin against one.

Launched through torch's elastic launcher API (spawned processes); the global batch is the same, so
the losses and weights must match a 1-process run, and the ranks must agree after every step. Also:
two "nodes" started by torchrun on loopback, resuming with another world size, one random stream
per rank.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from nbrisk_core.classifier import pipeline
from nbrisk_core.classifier.data import Augmentation
from nbrisk_core.classifier.distributed import launch
from nbrisk_core.classifier.training import rank_seed
from nbrisk_core.cli import build_parser, main
from nbrisk_core.cli.train import build_recipe
from nbrisk_core.errors import InputError

NO_AUG = Augmentation(rotation_deg=0, translate_fraction=0, brightness=(1, 1), contrast=(1, 1),
                      saturation=(1, 1))


#: the two long launches (2-4 min on 2 cores) run on request only, to keep `make test` in its 15-minute budget
long_ddp = pytest.mark.skipif(os.environ.get("NBRISK_TEST_DDP_LONG") != "1",
                              reason="long DDP launch (2-4 min): runs with NBRISK_TEST_DDP_LONG=1")


ROOT = Path(__file__).resolve().parents[2]


def _flags(cohort, run_dir, epochs: int = 2) -> list[str]:
    return ["train", "--tiny", "--cohort", str(cohort), "--run", str(run_dir), "--epochs", str(epochs),
            "--batch-size", "4", "--lr", "1e-3", "--t-max", "100", "--no-progress", "--threads", "1",
            "--device", "cpu", "--precision", "fp32"]


def _args(cohort, run_dir, epochs: int = 2):
    args = build_parser().parse_args(_flags(cohort, run_dir, epochs))
    # no augmentation and no stochastic depth: both draw per image, so with them on the ranks' draws
    # are not the 1-process run's (the losses then agree only to ~1 %)
    args.backbone_overrides = {"drop_path_rate": 0.0}
    recipe = dataclasses.replace(build_recipe(args), augmentation=NO_AUG, early_stop_after=100)
    return args, recipe


def _assert_same_weights(path_a, path_b, atol):
    a, b = load_file(str(path_a)), load_file(str(path_b))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=atol)


def test_two_processes_match_one_with_the_same_global_batch(tiny_cohort, tmp_path):
    runs = {}
    for n in (1, 2):
        args, recipe = _args(tiny_cohort, tmp_path / f"n{n}")
        summary = launch(n, args, recipe)
        assert "AUC" in summary
        runs[n] = json.loads((tmp_path / f"n{n}" / "run.json").read_text())
    assert runs[1]["world_size"] == 1 and runs[2]["world_size"] == 2
    assert runs[2]["card"]["training"]["world_size"] == 2
    sync = json.loads((tmp_path / "n2" / "distributed.json").read_text())
    assert sync["backend"] == "gloo" and sync["epochs"] == 2
    assert sync["max_rank_weight_difference"] == 0.0  # checked after every optimizer step
    loss1 = [h["train_loss"] for h in runs[1]["card"]["history"]]
    loss2 = [h["train_loss"] for h in runs[2]["card"]["history"]]
    assert len(loss1) == len(loss2) == 2
    assert loss1 == pytest.approx(loss2, rel=1e-4, abs=1e-5)
    a = load_file(str(tmp_path / "n1" / "checkpoint.safetensors"))
    b = load_file(str(tmp_path / "n2" / "checkpoint.safetensors"))
    assert a.keys() == b.keys()
    # gloo's sum of two half-batch gradients is not bitwise the one-batch gradient, and Adam divides by
    # sqrt(v): near-zero gradients amplify float rounding to a few % of one step (lr 1e-3) after 6 steps
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=2e-4)


def test_uneven_global_batch_and_pretrain_are_refused(tiny_cohort, tmp_path, capsys):
    args, recipe = _args(tiny_cohort, tmp_path / "r")
    with pytest.raises(InputError, match="split evenly over --nproc-per-node 3"):
        launch(3, args, recipe)
    code = main(["train", "--stage", "pretrain", "--tiny", "--run", str(tmp_path / "p"),
                 "--nproc-per-node", "2"])
    assert code == 2 and "only the fine-tuning stage" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@long_ddp
def test_two_nodes_started_by_torchrun_join_one_world(tiny_cohort, tmp_path):
    """The documented multi-node launch: two torchrun agents (node ranks 0 and 1, one process each, c10d
    rendezvous on 127.0.0.1, gloo), `-m nbrisk_core -- train ...`; nbrisk joins torchrun's world."""
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    port, run_dir = _free_port(), tmp_path / "nodes"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(
        [*launcher, "--nnodes", "2", "--node-rank", str(rank), "--nproc-per-node", "1",
         "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "nbrisk-test",
         "--max-restarts", "0", "-m", "nbrisk_core", "--", *_flags(tiny_cohort, run_dir)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in (0, 1)]
    try:
        outputs = [node.communicate(timeout=300)[0] for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(outputs)
    # rank 0 (on whichever node the rendezvous made it) printed the summary and wrote the run
    assert sum("AUC" in out and "train:" in out for out in outputs) == 1, "\n".join(outputs)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["world_size"] == 2 and run["card"]["training"]["world_size"] == 2
    assert run["world_sizes"] == [{"first_epoch": 1, "last_epoch": 2, "world_size": 2}]
    sync = json.loads((run_dir / "distributed.json").read_text())
    assert sync["backend"] == "gloo" and sync["max_rank_weight_difference"] == 0.0 and sync["epochs"] == 2
    # the same run through `nbrisk train --nproc-per-node 2` (same flags: augmentation and stochastic
    # depth on, each rank its own stream) holds the same weights
    args = build_parser().parse_args(_flags(tiny_cohort, tmp_path / "elastic"))
    launch(2, args, build_recipe(args))
    _assert_same_weights(run_dir / "checkpoint.safetensors", tmp_path / "elastic" / "checkpoint.safetensors",
                         atol=1e-6)


@pytest.mark.slow
@long_ddp
def test_resume_with_another_world_size(tiny_cohort, tmp_path):
    """2 processes for epoch 1 then 1 for epoch 2, and the other way round, land on the weights of an
    uninterrupted 1-process run (same global batches, optimizer state, sampler seed), and run.json
    records which world size trained which epochs."""
    def plain(run_dir, epochs, resume=False):
        args, recipe = _args(tiny_cohort, run_dir, epochs)
        args.resume = resume
        pipeline.train_run(args, recipe)

    def elastic(run_dir, epochs, resume=False):
        args, recipe = _args(tiny_cohort, run_dir, epochs)
        args.resume = resume
        launch(2, args, recipe)

    plain(tmp_path / "whole", 2)
    elastic(tmp_path / "two_one", 1)
    plain(tmp_path / "two_one", 2, resume=True)
    plain(tmp_path / "one_two", 1)
    elastic(tmp_path / "one_two", 2, resume=True)
    for name, sizes in (("two_one", (2, 1)), ("one_two", (1, 2))):
        run = json.loads((tmp_path / name / "run.json").read_text())
        assert run["world_size"] == sizes[1]
        assert run["world_sizes"] == [{"first_epoch": 1, "last_epoch": 1, "world_size": sizes[0]},
                                      {"first_epoch": 2, "last_epoch": 2, "world_size": sizes[1]}]
        assert [h["world_size"] for h in run["card"]["history"]] == list(sizes)
        state = torch.load(tmp_path / name / "state.pt", weights_only=True)
        assert state["epoch"] == 1 and state["world_size"] == sizes[1]
        # as in the 2-vs-1 test: gloo's two half-batch sums are not bitwise one batch's sum
        _assert_same_weights(tmp_path / "whole" / "checkpoint.safetensors",
                             tmp_path / name / "checkpoint.safetensors", atol=2e-4)
    whole = json.loads((tmp_path / "whole" / "run.json").read_text())["card"]["history"]
    for name in ("two_one", "one_two"):
        resumed = json.loads((tmp_path / name / "run.json").read_text())["card"]["history"]
        assert [h["train_loss"] for h in resumed] == pytest.approx([h["train_loss"] for h in whole], rel=1e-4)


def test_each_rank_draws_its_own_reproducible_stream():
    """Augmentation and stochastic depth draw from torch's global generator, which `fit` reseeds at each
    epoch with `rank_seed(seed, rank, epoch)`: ranks differ on the same image, a rerun repeats them."""
    from nbrisk_core.classifier.architectures import TINY_SWIN_KWARGS, build_model
    from nbrisk_core.classifier.data import to_tensor_batch

    seeds = {rank_seed(2025, rank, epoch) for rank in range(4) for epoch in range(3)}
    assert len(seeds) == 12 and all(0 <= s < 2 ** 63 for s in seeds)
    image = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    augment = Augmentation().transform()
    model = build_model("swin_t", backbone_kwargs={**TINY_SWIN_KWARGS, "drop_path_rate": 0.5}).train()

    def draw(rank, epoch=0):
        torch.manual_seed(rank_seed(2025, rank, epoch))
        augmented = to_tensor_batch(image, augment)
        with torch.no_grad():  # stochastic depth on a fixed input
            logits = model(to_tensor_batch(image).repeat(4, 1, 1, 1))
        return augmented, logits

    rank0, rank1, again = draw(0), draw(1), draw(0)
    assert not torch.equal(rank0[0], rank1[0])  # augmentation: other rotation/shift/jitter
    assert not torch.equal(rank0[1], rank1[1])  # stochastic depth: other drop masks
    assert torch.equal(rank0[0], again[0]) and torch.equal(rank0[1], again[1])
    assert not torch.equal(draw(0, epoch=1)[0], rank0[0])  # and another draw each epoch
