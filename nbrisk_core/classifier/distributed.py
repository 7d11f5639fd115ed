"""Data-parallel training on several processes and machines.

``nbrisk train --nproc-per-node N`` launches itself through torch's elastic launcher (the machinery
behind ``torchrun``) via its Python API, :func:`torch.distributed.launcher.api.elastic_launch`, with a
rendezvous on 127.0.0.1. Across machines, ``torchrun`` starts the processes and ``nbrisk train``
joins the world it finds in the environment (:func:`launched_by_torchrun`, :func:`join`)::

    torchrun --nnodes 2 --node-rank R --nproc-per-node N --rdzv-backend c10d \
        --rdzv-endpoint HOST:PORT --rdzv-id RUN -m nbrisk_core -- train --run DIR ...

(the ``--`` is needed: without it torchrun's own parser takes ``--run`` as an abbreviation of its
``--run-path`` and stops). Each process joins a process group (gloo on the CPU, NCCL on CUDA) and
:func:`nbrisk_core.classifier.training.fit` then wraps the model in ``DistributedDataParallel``,
reads the training cohort through a ``DistributedSampler`` (each rank ``batch_size / N`` images of
the same global batch), draws its own augmentation/stochastic-depth stream
(:func:`nbrisk_core.classifier.training.rank_seed`), checks after every step that the ranks hold
identical weights, and lets rank 0 alone write the checkpoints, the history, ``run.json`` and the
model card (which record ``world_size`` and, per epoch, the world sizes of a resumed run).
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
    _check(recipe, nproc_per_node, f"--nproc-per-node {nproc_per_node}", "--nproc-per-node")
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


#: what torchrun (and any env:// launcher) sets for every process it starts
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """True in a process that torchrun (or another env:// launcher) started: all of
    :data:`TORCHRUN_ENV` are set and no process group is open yet."""
    import os

    import torch.distributed as dist

    return all(os.environ.get(name) for name in TORCHRUN_ENV) and not (
        dist.is_available() and dist.is_initialized())


def join(args: argparse.Namespace, recipe) -> str:
    """Train as one rank of the world torchrun started (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/
    ``MASTER_ADDR``/``MASTER_PORT`` from the environment); returns rank 0's summary, "" elsewhere."""
    import os

    for name in TORCHRUN_ENV:
        value = os.environ.get(name, "")
        if name != "MASTER_ADDR" and not value.isdigit():
            raise InputError(f"environment variable {name}={value!r}: expected a non-negative integer "
                             "(set by torchrun)")
    world_size = int(os.environ["WORLD_SIZE"])
    if getattr(args, "nproc_per_node", None):
        raise InputError(f"--nproc-per-node {args.nproc_per_node}: this process was started by torchrun "
                         f"(WORLD_SIZE={world_size}); give the process count to torchrun, not to nbrisk")
    _check(recipe, world_size, f"WORLD_SIZE={world_size} (torchrun)", "torchrun's --nproc-per-node x --nnodes")
    return _worker(args, recipe)


def _check(recipe, world_size: int, what: str, count_flag: str) -> None:
    if recipe.stage != "finetune":
        raise InputError(f"{what} with --stage {recipe.stage}: only the fine-tuning stage is "
                         "data-parallel (the synthetic stream would give every rank the same batch)")
    if recipe.batch_size % world_size:
        raise InputError(f"--batch-size {recipe.batch_size}: the global batch must split evenly over "
                         f"{count_flag} {world_size}")


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
