"""Benchmark of the demo cohort generator: build time, size on disk and per-study time.

Targets (``shared/spec/demo-cohort.md`` and the Foundation issue): the default 202-patient cohort
with 5 example DICOM studies builds in under 2 minutes on 2 cores and takes under 200 MB; one
on-demand study (3 series) is written in under 5 s; an on-the-fly training sample renders in under
30 ms per phase on one core. Figures are measured in one run and printed with their target ratio
(measured / target: below 1 meets the target).
"""

from __future__ import annotations

TARGET_BUILD_S = 120.0
TARGET_SIZE_MB = 200.0
TARGET_STUDY_S = 5.0
TARGET_TRAINING_MS = 30.0


def add_arguments(parser) -> None:
    parser.add_argument("--patients", type=int, default=202, help="cohort size (default 202)")
    parser.add_argument("--studies", type=int, default=5, help="example DICOM studies (default 5)")
    parser.add_argument("--seed", type=int, default=20250416, help="seed (default 20250416)")
    parser.add_argument("--training-samples", type=int, default=20,
                        help="on-the-fly training samples to time (default 20)")


def run(args) -> dict:
    """Build into a temporary directory and print wall time, size and per-study time vs targets."""
    import os
    import tempfile
    import time
    from pathlib import Path

    from nbrisk_core.demo import build_cohort, synth_training_batch, write_study

    patients = getattr(args, "patients", 202)
    studies = getattr(args, "studies", 5)
    seed = getattr(args, "seed", 20250416)
    n_training = getattr(args, "training_samples", 20)
    # CPU time is printed next to wall time: the machines are shared, and CPU seconds of this
    # single-threaded process show what an idle core would take
    with tempfile.TemporaryDirectory(prefix="nbrisk-bench-demo-") as tmp:
        cpu0 = time.process_time()
        summary = build_cohort(Path(tmp) / "demo", n_patients=patients, seed=seed, n_studies=studies)
        build_cpu_s = time.process_time() - cpu0
        build_s = summary["wall_time_s"]
        size_mb = summary["size_bytes"] / 1e6
        t0, cpu0 = time.perf_counter(), time.process_time()
        write_study(Path(tmp) / "demo", f"P{patients:04d}", Path(tmp) / "case")
        study_s, study_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    synth_training_batch(1, seed=0)   # warm caches (grids) before timing
    t0, cpu0 = time.perf_counter(), time.process_time()
    synth_training_batch(n_training, seed=1, phases=("art",))
    training_ms = (time.perf_counter() - t0) / max(n_training, 1) * 1000.0
    training_cpu_ms = (time.process_time() - cpu0) / max(n_training, 1) * 1000.0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    figures = {
        "patients": patients,
        "studies": studies,
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(load, 2),
        "build_wall_s": round(build_s, 2),
        "build_cpu_s": round(build_cpu_s, 2),
        "build_ratio": round(build_s / TARGET_BUILD_S, 3),
        "size_mb": round(size_mb, 1),
        "size_ratio": round(size_mb / TARGET_SIZE_MB, 3),
        "study_s": round(study_s, 2),
        "study_cpu_s": round(study_cpu_s, 2),
        "study_ratio": round(study_s / TARGET_STUDY_S, 3),
        "training_ms_per_sample_phase": round(training_ms, 1),
        "training_cpu_ms_per_sample_phase": round(training_cpu_ms, 1),
        "training_ratio": round(training_ms / TARGET_TRAINING_MS, 3),
        "oracle_auc": round(summary["oracle_auc"], 4),
        "oracle_c_index": round(summary["oracle_c_index"], 4),
    }
    print(f"demo cohort: {patients} patients, {studies} DICOM studies, {os.cpu_count()} CPUs visible, "
          f"load average {load:.1f}")
    print(f"  build wall time      {build_s:7.1f} s    target < {TARGET_BUILD_S:.0f} s    "
          f"ratio {figures['build_ratio']:.2f}   (CPU {build_cpu_s:.1f} s)")
    print(f"  size on disk         {size_mb:7.1f} MB   target < {TARGET_SIZE_MB:.0f} MB   "
          f"ratio {figures['size_ratio']:.2f}")
    print(f"  one study (3 series) {study_s:7.2f} s    target < {TARGET_STUDY_S:.0f} s      "
          f"ratio {figures['study_ratio']:.2f}   (CPU {study_cpu_s:.2f} s)")
    print(f"  training sample/phase{training_ms:7.1f} ms   target < {TARGET_TRAINING_MS:.0f} ms    "
          f"ratio {figures['training_ratio']:.2f}   (CPU {training_cpu_ms:.1f} ms)")
    print(f"  oracle AUC {summary['oracle_auc']:.3f}, oracle C-index {summary['oracle_c_index']:.3f}")
    return figures
