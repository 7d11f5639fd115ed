"""``nbrisk bench score``: batch scoring throughput (images/s, per core) and its scaling with workers.

Synthetic patients from the demo generator (:func:`nbrisk_core.batch_score.synthetic_plan`): each
partition renders its patients' chosen slices on the fly with the demo renderer, builds the model inputs
with the model card's input builder and runs the classifier, exactly as ``nbrisk score`` does. For each
worker count a loopback Dask ``LocalCluster`` of that many one-thread worker processes is started (its
start is not timed) and ``score_cohort(..., backend="dask")`` scores every patient into a parquet file.

Reported per count: wall seconds, images/s, images/s per worker core (patients over the summed
partition seconds, loading the model left out: the rate of one core), the share of a
partition spent rendering and building inputs, and the speed-up over the first count. A speed-up is
bounded by the cores that are free, not by the workers.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

DEFAULT_PATIENTS = 2000


def add_arguments(parser) -> None:
    parser.add_argument("--patients", type=int, default=DEFAULT_PATIENTS,
                        help="synthetic patients (default: %(default)s)")
    parser.add_argument("--workers", default="1,2",
                        help="worker counts, comma-separated (default: %(default)s)")
    parser.add_argument("--partition-size", type=int, default=50, help="patients per partition (default: 50)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per forward pass (default: nbrisk score's)")
    parser.add_argument("--model", help="classifier .safetensors (default: the shipped Swin-ART)")
    parser.add_argument("--seed", type=int, default=2025, help="synthetic cohort seed (default: %(default)s)")


def run(args) -> dict:
    from distributed import Client, LocalCluster

    from nbrisk_core.batch_score import DEFAULT_BATCH_SIZE, score_cohort, synthetic_plan
    from nbrisk_core.classifier.model_io import shipped_model_path
    from nbrisk_core.errors import InputError

    n = int(getattr(args, "patients", DEFAULT_PATIENTS))
    counts = [int(w) for w in str(getattr(args, "workers", "1,2")).split(",") if w.strip()]
    if n < 2 or not counts or min(counts) < 1:
        raise InputError(f"--patients {n} / --workers {getattr(args, 'workers', None)}: expected >= 2 "
                         "patients and worker counts >= 1, e.g. --workers 1,2")
    model = Path(args.model) if getattr(args, "model", None) else shipped_model_path("art")
    if not model.is_file():
        raise InputError(f"{model}: classifier not found; train it with `nbrisk train` or give --model")
    size = int(getattr(args, "partition_size", 50))
    batch = int(getattr(args, "batch_size", None) or DEFAULT_BATCH_SIZE)
    plan = synthetic_plan(n, int(getattr(args, "seed", 2025)))
    print(f"batch scoring: {n} synthetic patients (slices rendered on the fly), partitions of {size}, "
          f"batch {batch}, model {model.name}, {os.cpu_count()} CPU(s) visible")
    figures: dict = {"patients": n, "partition_size": size, "batch_size": batch, "cpus": os.cpu_count(),
                     "model": model.name, "workers": {}}
    with tempfile.TemporaryDirectory(prefix="nbrisk-bench-score-") as tmp:
        for count in counts:
            with LocalCluster(n_workers=count, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=None) as cluster, Client(cluster) as client:
                client.wait_for_workers(count)
                out = Path(tmp) / f"w{count}.parquet"
                started = time.perf_counter()
                result = score_cohort(None, model, out, backend="dask", scheduler=cluster.scheduler_address,
                                      partition_size=size, threads=1, batch_size=batch, plan=plan,
                                      progress=lambda line: None)
                wall = time.perf_counter() - started
            parts = result.summaries
            # one core's rate: patients over partition seconds, model loading (once per worker) left out
            busy = sum(s["seconds"] - s["model_load_seconds"] for s in parts)
            per_core = result.scored / busy
            inputs = sum(s["input_seconds"] for s in parts) / busy
            row = {"wall_seconds": round(wall, 2), "images_per_s": round(result.scored / wall, 2),
                   "images_per_s_per_core": round(per_core, 2), "input_share": round(inputs, 3)}
            figures["workers"][str(count)] = row
            print(f"{count} worker(s): {result.scored} patients in {wall:.1f} s = {row['images_per_s']:.1f} "
                  f"images/s; {per_core:.2f} images/s per core; {100 * inputs:.0f}% of a partition rendering "
                  "slices and building inputs")
    base = figures["workers"][str(counts[0])]["wall_seconds"]
    figures["speed_up"] = {str(c): round(base / figures["workers"][str(c)]["wall_seconds"], 2)
                           for c in counts}
    print("speed-up over " + f"{counts[0]} worker(s): "
          + ", ".join(f"{c} -> {v:.2f}x" for c, v in figures["speed_up"].items()))
    return figures
