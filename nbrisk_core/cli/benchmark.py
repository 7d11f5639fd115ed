"""``nbrisk benchmark``: the whole prognosis chain on a cohort, tables and figures written to a folder.

::

    nbrisk benchmark --data data/demo --embeddings data/embeddings/abc.parquet --out reports/prognosis
    nbrisk benchmark --data DIR --out DIR --stand-in-embeddings --grid quick
    nbrisk benchmark --data data/site-b --out reports/site-b --features clinical   # a cohort without images

Writes ``patients.csv``, ``combinations.csv``, ``summary.json`` (+ ``config.json``, ``screening.csv``,
``imputation_ks.csv``, ``baseline_patients.csv``, ``baseline_coefficients.csv``, ``td_auc.csv``,
``decision_curve.csv``, ``associations.json``) and HTML figures (plotly, script in one shared
``plotly.min.js`` beside them: no network needed to open them) plus PNGs of the heatmap and the
Kaplan-Meier curves (matplotlib).
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "benchmark", help="run the prognosis chain (imputation, screening, 117-combination grid, MLRS) on a cohort",
        description="Fit the prognosis pipeline on a cohort and write its tables (CSV/JSON) and figures "
                    "(HTML/PNG) to --out.")
    parser.add_argument("--data", required=True, help="cohort directory (clinical.csv, optional truth.csv)")
    parser.add_argument("--embeddings", help="CT features: parquet or CSV with patient_id, ct01..ct16 "
                                             "(default: the classifier's embeddings of the cohort)")
    parser.add_argument("--stand-in-embeddings", action="store_true",
                        help="use STAND-IN CT features made from truth.csv (testing without a classifier; "
                             "labelled as such in the output)")
    parser.add_argument("--features", choices=["clinical", "ct", "both", "radiomics"],
                        help="candidate features of the grid: both (CT features + clinical variables, the "
                             "paper; the default when embeddings exist), clinical (the clinical variables "
                             "alone: a cohort without images; the default when the cohort has no images and "
                             "no embeddings), ct, or radiomics (the radiomics rad-score fitted on the "
                             "training patients + clinical variables; needs 'nbrisk radiomics' first)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--backend", default="loky", choices=["loky", "dask", "ray", "sequential"],
                        help="where the grid's fits run: loky (this machine), dask (a Dask cluster: "
                             "--scheduler, else a LocalCluster of --n-jobs workers); ray is refused "
                             "unless installed (default: %(default)s)")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="with --backend dask: address of a running Dask scheduler (default: a "
                             "LocalCluster on 127.0.0.1; see docs/scaling.md before using a remote one)")
    parser.add_argument("--n-jobs", type=int, default=2, help="parallel workers (default: %(default)s)")
    parser.add_argument("--grid", default="full", choices=["full", "quick", "test"],
                        help="hyperparameter profile of the 117 combinations (default: %(default)s)")
    parser.add_argument("--selection-rule", default="mean", choices=["mean", "test", "train"],
                        help="how the best combination is chosen (paper: mean of train and test C-index)")
    parser.add_argument("--seed", type=int, default=2025, help="seed of every random step (default: %(default)s)")
    parser.add_argument("--no-figures", action="store_true", help="write tables only")
    parser.add_argument("--cv", type=int, metavar="K",
                        help="internal validation instead: repeated stratified K-fold CV of the whole "
                             "selection procedure (cv_folds.csv, cv_summary.json; docs/validation.md)")
    parser.add_argument("--repeats", type=int, default=1, metavar="R", help="with --cv: repeats (default 1)")
    parser.add_argument("--optimism-bootstrap", type=int, default=0, metavar="B",
                        help="with --cv: also Harrell's bootstrap optimism-corrected C-index "
                             "with B resamples")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def _json_default(value):
    from nbrisk_core.jsonable import json_default

    return json_default(value)


def run(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    import pandas as pd

    from nbrisk_core.errors import InputError
    from nbrisk_core.prognosis.outputs import write_outputs
    from nbrisk_core.prognosis.pipeline import fit_cohort_pipeline, read_embeddings, stand_in_embeddings

    start = time.perf_counter()
    data = Path(args.data)
    out = Path(args.out)
    if args.n_jobs < 1:
        raise InputError(f"--n-jobs {args.n_jobs}: expected 1 or more")
    if args.scheduler and args.backend != "dask":
        raise InputError(f"--scheduler {args.scheduler}: only used with --backend dask")
    if args.embeddings and args.stand_in_embeddings:
        raise InputError("--embeddings and --stand-in-embeddings exclude each other")
    features = args.features
    if features == "clinical" and (args.embeddings or args.stand_in_embeddings):
        raise InputError("--features clinical uses no CT features: leave out --embeddings and "
                         "--stand-in-embeddings")
    if features == "radiomics" and getattr(args, "cv", None):
        raise InputError("--features radiomics with --cv: not supported (the rad-score is fitted once on the "
                         "8:2 split's training patients, so it would see the cross-validation folds' test "
                         "patients); run the 8:2 split without --cv")
    if features == "radiomics" and (args.embeddings or args.stand_in_embeddings):
        raise InputError("--features radiomics uses the radiomics rad-score, not Swin-ART CT features: leave "
                         "out --embeddings and --stand-in-embeddings")
    if features == "clinical":
        embeddings, embedding_source = None, "none (--features clinical: clinical variables only)"
    elif features == "radiomics":
        from nbrisk_core.features import cohort_radiomics_block

        embeddings, provenance = cohort_radiomics_block(data, seed=0, progress=not args.quiet)
        embedding_source = "radiomics rad-score (" + provenance["note"] + ")"
    elif args.embeddings:
        embeddings, embedding_source = read_embeddings(args.embeddings), str(args.embeddings)
    elif args.stand_in_embeddings:
        truth_path = data / "truth.csv"
        if not truth_path.exists():
            raise InputError(f"{truth_path}: not found: no known truth in this cohort (--stand-in-embeddings "
                             "needs the truth.csv of a synthetic cohort; use --embeddings FILE or --features "
                             "clinical)")
        embeddings = stand_in_embeddings(pd.read_csv(truth_path, dtype={"patient_id": str}), seed=args.seed)
        embedding_source = "stand-in (noisy latent score; NOT classifier features)"
    else:
        from nbrisk_core.features import cohort_ct_features

        embedding_source = "classifier"
        try:  # the caller embeds: prognosis takes the feature table
            embeddings = cohort_ct_features(data)
        except InputError:
            if features is not None or _has_images(data):
                raise
            embeddings, features = None, "clinical"
            embedding_source = "none (cohort without images: clinical variables only)"
            print(f"{data}: no images and no CT embeddings: --features clinical", flush=True)
    features = features or "both"
    if getattr(args, "cv", None):   # internal validation (nbrisk_core.validation.internal)
        from nbrisk_core.validation.internal import run_benchmark_cv

        return run_benchmark_cv(args, data, out, embeddings, features)
    pipeline = fit_cohort_pipeline(data, embeddings, grid=args.grid, backend=args.backend, n_jobs=args.n_jobs,
                                   seed=args.seed, selection_rule=args.selection_rule,
                                   progress=not args.quiet, features=features, scheduler=args.scheduler)
    out.mkdir(parents=True, exist_ok=True)
    written = write_outputs(pipeline, data, out, figures=not args.no_figures)
    summary = dict(pipeline.summary_)
    summary["embeddings"] = embedding_source
    summary["seconds"] = dict(summary["seconds"], benchmark_total=time.perf_counter() - start)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    config = dict(pipeline.config_, embeddings=embedding_source, backend=args.backend, n_jobs=args.n_jobs,
                  scheduler=args.scheduler, feature_set=features)
    (out / "config.json").write_text(json.dumps(config, indent=2, default=_json_default))
    print(f"selected {pipeline.selected_}: C-index train {summary['c_index_train']:.3f}, "
          f"test {summary['c_index_test']:.3f}"
          + (f" (oracle {summary['oracle_c_index_test']:.3f})" if "oracle_c_index_test" in summary else "")
          + f"; baseline LASSO-Cox test {summary['baseline_lasso_cox']['c_index_test']:.3f}")
    print(f"{int((pipeline.combinations_['status'] == 'fitted').sum())}/{len(pipeline.combinations_)} "
          f"combinations fitted; {len(written) + 2} files in {out} ({summary['seconds']['benchmark_total']:.1f} s)")
    return 0


def _has_images(data) -> bool:
    """Whether a cohort directory holds images (chosen slices or DICOM studies)."""
    from pathlib import Path

    return any((Path(data) / name).is_dir() and any((Path(data) / name).iterdir())
               for name in ("slices", "studies"))
