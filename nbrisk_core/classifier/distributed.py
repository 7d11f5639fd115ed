"""Data-parallel training on several processes: ``nbrisk train --nproc-per-node N``.

The CLI launches itself through torch's elastic launcher (the machinery behind ``torchrun``) via its
Python API, :func:`torch.distributed.launcher.api.elastic_launch`: ``torchrun ... nbrisk train --run
DIR`` fails because torchrun's own parser takes ``--run`` as an abbreviation of its ``--run-path``.
Each process joins a process group (gloo on the CPU, NCCL on CUDA, rendezvous on 127.0.0.1) and
:func:`nbrisk_core.classifier.training.fit` then wraps the model in ``DistributedDataParallel``,
reads the training cohort through a ``DistributedSampler`` (each rank ``batch_size / N`` images of
the same global batch), checks after every step that the ranks hold identical weights, and lets
rank 0 alone write the checkpoints, the history, ``run.json`` and the model card (which record
``world_size``). A multi-node launch is not wired up (see docs/classifier.md).
"""

from __future__ import annotations

import argparse
import copy
import uuid

from nbrisk_core.errors import InputError


def launch(nproc_per_node: int, args: argparse.Namespace, recipe) -> str:
    """Run ``train_run(args, recipe)`` in ``nproc_per_node`` processes; returns rank 0's summary."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc_per_node < 1:
        raise InputError(f"--nproc-per-node {nproc_per_node}: expected 1 or more")
    if recipe.stage != "finetune":
        raise InputError(f"--nproc-per-node with --stage {recipe.stage}: only the fine-tuning stage is "
                         "data-parallel (the synthetic stream would give every rank the same batch)")
    if recipe.batch_size % nproc_per_node:
        raise InputError(f"--batch-size {recipe.batch_size}: the global batch must split evenly over "
                         f"--nproc-per-node {nproc_per_node}")
    child = copy.copy(args)
    child.nproc_per_node = None
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc_per_node,
                          run_id=f"nbrisk-{uuid.uuid4().hex[:12]}", rdzv_backend="c10d",
                          rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=0.2,
                          start_method="spawn")
    try:
        results = elastic_launch(config, _worker)(child, recipe)
    except ChildFailedError as error:
        raise InputError(f"--nproc-per-node {nproc_per_node}: a training process failed "
                         f"({error.get_first_failure()[1].message})") from error
    return results[0]


def _worker(args: argparse.Namespace, recipe) -> str:
    """One rank: join the group, train, leave."""
    import os

    import torch
    import torch.distributed as dist

    from nbrisk_core.classifier import pipeline
    from nbrisk_core.classifier.inference import resolve_device

    device = resolve_device(getattr(args, "device", "auto"))
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        torch.set_num_threads(max(1, args.threads))
        return pipeline.train_run(args, recipe)["summary"]
    finally:
        dist.destroy_process_group()
