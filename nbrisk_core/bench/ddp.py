"""``nbrisk bench ddp``: the data-parallel training step time against one process, measured in one run.

For each process count N of ``--nproc`` (default 1,2) the bench launches N processes through torch's
elastic launcher, as ``nbrisk train --nproc-per-node N`` does (gloo on the CPU, NCCL on CUDA; one
process is plain training, no DistributedDataParallel, as ``fit`` does with one process). Each
process builds the model (``--arch tiny``, the default: the tests' tiny Swin-T; ``swin_t``: the real
one; or another of ``nbrisk train --arch``), then runs ``--warmup`` untimed and ``--steps`` timed
fine-tuning steps on random images: its ``--batch-size / N`` share of the global batch, the paper's
augmentation, forward, cross-entropy, backward (the gradient all-reduce), Adam. Reported per N: the
median step time of the global batch, images/s, the speed-up over the first count and the efficiency
(speed-up / N x first count). ``--threads`` torch threads per process (default 1), so N processes use
N times the cores of one: the figure is the scaling with cores, bounded by the cores that are free.
The load average is printed with the figures: on a shared machine they are pessimistic.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid

DEFAULT_NPROC = "1,2"


def add_arguments(parser) -> None:
    parser.add_argument("--nproc", default=DEFAULT_NPROC, help="process counts, comma-separated (default: %(default)s)")
    parser.add_argument("--arch", default="tiny",
                        help="tiny (the tests' tiny Swin-T, default), swin_t (the real model) or another "
                             "`nbrisk train --arch`")
    parser.add_argument("--batch-size", type=int, default=8, help="global batch (default: %(default)s, the paper's)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per count (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (default: %(default)s)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu",
                        help="cpu (default), cuda (one GPU per process) or auto")


def run(args) -> dict:
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from nbrisk_core.classifier.inference import resolve_device
    from nbrisk_core.classifier.onednn import cpu_name
    from nbrisk_core.errors import InputError

    text = str(getattr(args, "nproc", DEFAULT_NPROC))
    try:
        counts = [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        counts = []
    batch = int(getattr(args, "batch_size", 8))
    steps, warmup = int(getattr(args, "steps", 10)), int(getattr(args, "warmup", 2))
    threads = int(getattr(args, "threads", 1))
    if not counts or min(counts) < 1:
        raise InputError(f"--nproc {text!r}: expected process counts >= 1, comma-separated, e.g. 1,2")
    uneven = [n for n in counts if batch % n]
    if uneven:
        raise InputError(f"--batch-size {batch}: the global batch must split evenly over --nproc {uneven[0]}")
    if steps < 1 or warmup < 0 or threads < 1:
        raise InputError(f"--steps {steps} / --warmup {warmup} / --threads {threads}: expected steps >= 1, "
                         "warmup >= 0, threads >= 1")
    device = resolve_device(getattr(args, "device", "cpu"))
    arch = str(getattr(args, "arch", "tiny"))
    config = {"arch": arch, "batch": batch, "steps": steps, "warmup": warmup, "threads": threads, "device": device}
    load_before = os.getloadavg()[0]
    print(f"DDP training step: {arch}{' (tiny Swin-T)' if arch == 'tiny' else ''}, global batch {batch}, "
          f"{steps} timed steps after {warmup}, {threads} thread(s) per process, {device}; "
          f"{cpu_name()}, {os.cpu_count()} CPU(s) visible, load average {load_before:.2f}")
    figures: dict = {**config, "cpu": cpu_name(), "cpus": os.cpu_count(), "load_average_before": load_before,
                     "nproc": {}}
    for n in counts:
        launch = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=n, run_id=f"bench-{uuid.uuid4().hex[:12]}",
                              rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0,
                              monitor_interval=0.2, start_method="spawn")
        row = elastic_launch(launch, _worker)(config)[0]
        row["images_per_s"] = round(batch / row["step_seconds"], 2)
        figures["nproc"][str(n)] = row
        print(f"{n} process(es): {row['step_seconds'] * 1000:.0f} ms per step of {batch} images "
              f"(quartiles {row['q1_seconds'] * 1000:.0f}-{row['q3_seconds'] * 1000:.0f} ms) = "
              f"{row['images_per_s']:.1f} images/s")
    first = counts[0]
    base = figures["nproc"][str(first)]["step_seconds"]
    figures["speed_up"] = {str(n): round(base / figures["nproc"][str(n)]["step_seconds"], 2) for n in counts}
    figures["efficiency"] = {str(n): round(figures["speed_up"][str(n)] * first / n, 2) for n in counts}
    figures["load_average_after"] = os.getloadavg()[0]
    print(f"step-time ratio over {first} process(es): "
          + ", ".join(f"{n} -> {figures['speed_up'][str(n)]:.2f}x (efficiency {figures['efficiency'][str(n)]:.2f})"
                      for n in counts)
          + f"; load average {figures['load_average_after']:.2f} after")
    return figures


def _worker(config: dict) -> dict:
    """One rank: time ``config['steps']`` training steps on its share of random global batches."""
    import numpy as np
    import torch
    import torch.distributed as dist

    from nbrisk_core.classifier.architectures import TINY_SWIN_KWARGS, build_model
    from nbrisk_core.classifier.data import Augmentation, to_tensor_batch
    from nbrisk_core.classifier.training import Recipe, _make_optimizer, _train_forward_class, rank_seed

    device = config["device"]
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        device = f"cuda:{torch.cuda.current_device()}"
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        torch.set_num_threads(config["threads"])
        size, rank = dist.get_world_size(), dist.get_rank()
        tiny = config["arch"] == "tiny"
        torch.manual_seed(2025)
        model = build_model("swin_t" if tiny else config["arch"],
                            backbone_kwargs=dict(TINY_SWIN_KWARGS) if tiny else {}).to(device).train()
        recipe = Recipe(max_lr=1e-5)
        optimizer = _make_optimizer(model, recipe)
        step_model = _train_forward_class()(model)
        if size > 1:
            from torch.nn.parallel import DistributedDataParallel

            step_model = DistributedDataParallel(step_model)
        augment = Augmentation().transform()
        local = config["batch"] // size
        rng = np.random.default_rng(rank_seed(2025, rank, 0))
        images = rng.integers(0, 256, (local, 224, 224, 3), dtype=np.uint8)
        labels = torch.as_tensor(rng.integers(0, 2, local), dtype=torch.long, device=device)
        times = []
        for step in range(config["warmup"] + config["steps"]):
            if cuda:
                torch.cuda.synchronize()
            started = time.perf_counter()
            x = to_tensor_batch(images, augment).to(device)
            logits, _, _ = step_model(x, False, False)
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if cuda:
                torch.cuda.synchronize()
            if step >= config["warmup"]:
                times.append(time.perf_counter() - started)
        # the slowest rank sets the pace: take each step's maximum over the ranks
        spread = torch.tensor(times, dtype=torch.float64)
        if size > 1:
            spread = spread.to(device)
            dist.all_reduce(spread, op=dist.ReduceOp.MAX)
        times = spread.cpu().tolist()
        median = statistics.median(times)
        q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else (times[0],) * 3
        return {"step_seconds": round(median, 4), "q1_seconds": round(q1, 4), "q3_seconds": round(q3, 4),
                "steps": len(times), "local_batch": local, "backend": dist.get_backend()}
    finally:
        dist.destroy_process_group()
