"""``nbrisk bench prognosis``: time of the prognosis engine against cohort size.

Measured in one run, on clinical tables from the demo generator (``generate_cohort_tables``, no
images) with STAND-IN CT features (:func:`nbrisk_core.prognosis.pipeline.stand_in_embeddings`: a
noisy copy of the generator's latent score; the figures time the engine, they say nothing about the
classifier). For each size: the whole pipeline fit (imputation, screening, the grid, the selected
model, the baseline), the grid alone, and on the first size the time of one individual prediction.
The growth exponent ``b`` of ``seconds ~ N^b`` is fitted over the sizes.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

#: 202 = the paper's cohort; 2,000 = the scale target (under 10 minutes on 2 cores)
DEFAULT_SIZES = (202, 500, 1000, 2000)


def write_synthetic_cohort(out_dir, n_patients: int = 202, seed: int = 2025) -> Path:
    """Write a tables-only synthetic cohort (clinical.csv, truth.csv, cohort.json) and its STAND-IN
    CT features (``embeddings_standin.parquet``) to ``out_dir``; returns the directory.

    Used by this benchmark and by the engine's tests; the clinical table and truth come from the demo
    generator, the CT features are the labelled stand-in.
    """
    from nbrisk_core.clinical.schema import CLINICAL_VARIABLES, OUTCOME_COLUMNS
    from nbrisk_core.demo import generate_cohort_tables
    from nbrisk_core.prognosis.pipeline import stand_in_embeddings

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = generate_cohort_tables(n_patients, seed)
    table[["patient_id", *[v.name for v in CLINICAL_VARIABLES], *OUTCOME_COLUMNS]].to_csv(
        out / "clinical.csv", index=False)
    table[["patient_id", "latent_score", "true_linear_predictor", "p_high_risk"]].to_csv(
        out / "truth.csv", index=False)
    (out / "cohort.json").write_text(json.dumps({"name": f"synthetic tables n={n_patients}", "synthetic": True,
                                                 "seed": seed, "n_patients": n_patients}))
    stand_in_embeddings(table, seed=seed).to_parquet(out / "embeddings_standin.parquet")
    return out


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="cohort sizes, comma-separated (default: %(default)s)")
    parser.add_argument("--grid", default="full", choices=["full", "quick", "test"],
                        help="grid profile (default: %(default)s)")
    parser.add_argument("--backend", default="loky", help="joblib backend, or dask (default: %(default)s)")
    parser.add_argument("--n-jobs", type=int, default=2, help="parallel workers (default: %(default)s)")
    parser.add_argument("--workers", help="worker counts to compare, comma-separated (e.g. 1,2): the grid is "
                                          "run once per count (as --n-jobs) and the speed-up over the first "
                                          "count is reported")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="with --backend dask: a running scheduler (default: a LocalCluster per run)")
    parser.add_argument("--predictions", type=int, default=20,
                        help="individual predictions timed on the first size (default: %(default)s)")


def run(args) -> dict:
    workers = [int(w) for w in str(getattr(args, "workers", None) or "").split(",") if w.strip()]
    if not workers:
        return _run_sizes(args)
    from nbrisk_core.errors import InputError

    if min(workers) < 1:
        raise InputError(f"--workers {args.workers}: expected counts of 1 or more, e.g. 1,2")
    if getattr(args, "scheduler", None):
        raise InputError("--workers starts a LocalCluster per count; with --scheduler the cluster's own "
                         "workers are used: leave out one of them")
    figures: dict = {"workers": {}}
    for count in workers:
        args.n_jobs = count
        print(f"--- {count} worker(s)")
        figures["workers"][str(count)] = _run_sizes(args)
    sizes = list(figures["workers"][str(workers[0])]["sizes"])
    figures["speed_up"] = {}
    for n in sizes:
        base = figures["workers"][str(workers[0])]["sizes"][n]["grid_seconds"]
        speed = {str(c): round(base / max(1e-9, figures["workers"][str(c)]["sizes"][n]["grid_seconds"]), 2)
                 for c in workers}
        figures["speed_up"][n] = speed
        print(f"N={n}: grid speed-up over {workers[0]} worker(s): "
              + ", ".join(f"{c} worker(s) {v:.2f}x" for c, v in speed.items()))
    import os

    print(f"{os.cpu_count()} CPU(s) visible; a speed-up is bounded by the cores that are free, "
          "not by the workers")
    return figures


def _run_sizes(args) -> dict:
    import numpy as np
    import pandas as pd

    from nbrisk_core.prognosis.pipeline import fit_cohort_pipeline

    sizes = [int(s) for s in str(getattr(args, "sizes", ",".join(map(str, DEFAULT_SIZES)))).split(",") if s]
    grid = getattr(args, "grid", "full")
    backend = getattr(args, "backend", "loky")
    n_jobs = int(getattr(args, "n_jobs", 2))
    n_predictions = int(getattr(args, "predictions", 20))
    scheduler = getattr(args, "scheduler", None)
    import os

    print(f"prognosis engine, grid={grid}, backend={backend}, n_jobs={n_jobs}, "
          f"{os.cpu_count()} CPU(s) visible; CT features are STAND-INS (see docs/prognosis.md)")
    figures: dict = {"grid": grid, "backend": backend, "n_jobs": n_jobs, "embeddings": "stand-in", "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="nbrisk-bench-prognosis-") as tmp:
        for k, n in enumerate(sizes):
            cohort = write_synthetic_cohort(Path(tmp) / f"n{n}", n_patients=n)
            embeddings = pd.read_parquet(cohort / "embeddings_standin.parquet")
            start = time.perf_counter()
            pipeline = fit_cohort_pipeline(cohort, embeddings, grid=grid, backend=backend, n_jobs=n_jobs,
                                           scheduler=scheduler)
            total = time.perf_counter() - start
            seconds = pipeline.summary_["seconds"]
            row = {"fit_seconds": round(total, 2), "grid_seconds": round(seconds["grid"], 2),
                   "grid_cpu_seconds": round(seconds["grid_cpu"], 2),
                   "impute_seconds": round(seconds["impute"], 2), "screening_seconds": round(seconds["screening"], 2),
                   "n_features": len(pipeline.features_),
                   "n_fitted": int((pipeline.combinations_["status"] == "fitted").sum()),
                   "n_combinations": int(len(pipeline.combinations_)), "selected": pipeline.selected_,
                   "c_index_test": pipeline.summary_["c_index_test"],
                   "oracle_c_index_test": pipeline.summary_.get("oracle_c_index_test")}
            print(f"N={n:5d}: fit {total:7.1f} s (grid {seconds['grid']:.1f} s wall, {seconds['grid_cpu']:.1f} "
                  f"CPU-s over all workers; impute {seconds['impute']:.2f} s, "
                  f"screening {seconds['screening']:.1f} s); {row['n_fitted']}/{row['n_combinations']} fitted, "
                  f"{row['n_features']} features; selected {row['selected']}, test C {row['c_index_test']:.3f} "
                  f"(oracle {row['oracle_c_index_test']:.3f})")
            if k == 0 and n_predictions > 0:
                clinical = pd.read_csv(cohort / "clinical.csv", dtype={"patient_id": str})
                test_ids = pipeline.split_.loc[pipeline.split_["cohort"] == "test", "patient_id"].tolist()
                durations, cpu = [], []
                for pid in (test_ids * n_predictions)[:n_predictions]:
                    values = clinical.loc[clinical["patient_id"] == pid].drop(
                        columns=["patient_id", "os_days", "os_event"]).iloc[0].to_dict()
                    t0, c0 = time.perf_counter(), time.process_time()
                    pipeline.predict_patient(embeddings.loc[pid].to_numpy(), values)
                    durations.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
                row["predict_ms_median"] = round(1000 * float(np.median(durations)), 1)
                row["predict_ms_max"] = round(1000 * float(np.max(durations)), 1)
                row["predict_cpu_ms_median"] = round(1000 * float(np.median(cpu)), 1)
                print(f"         individual prediction ({pipeline.selected_}): median {row['predict_ms_median']} ms, "
                      f"max {row['predict_ms_max']} ms wall, median {row['predict_cpu_ms_median']} ms CPU "
                      f"over {len(durations)}")
            figures["sizes"][str(n)] = row
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    figures["load_average_1min_at_end"] = round(load, 2)
    print(f"load average (1 min) at the end: {load:.1f} on {os.cpu_count()} CPU(s): wall times include waiting "
          "for other processes; CPU-s do not")
    if len(sizes) >= 2:
        n = np.array(sizes, dtype=float)
        t = np.array([figures["sizes"][str(s)]["fit_seconds"] for s in sizes])
        exponent = float(np.polyfit(np.log(n), np.log(t), 1)[0])
        figures["growth_exponent"] = round(exponent, 2)
        print(f"time grows like N^{exponent:.2f} over N = {sizes[0]}..{sizes[-1]} "
              f"({t[-1] / t[0]:.1f}x the time for {n[-1] / n[0]:.1f}x the patients)")
    return figures
