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
    parser.add_argument("--features", choices=["clinical", "ct", "both"],
                        help="candidate features of the grid: both (CT features + clinical variables, the "
                             "paper; the default when embeddings exist), clinical (the clinical variables "
                             "alone: a cohort without images; the default when the cohort has no images and "
                             "no embeddings) or ct")
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
    if features == "clinical":
        embeddings, embedding_source = None, "none (--features clinical: clinical variables only)"
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


def write_outputs(pipeline, data_dir, out, *, figures: bool = True) -> list:
    """Write the pipeline's tables (and figures) to ``out``; returns the paths written."""
    import json
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from nbrisk_core.prognosis.evaluation import DAYS_PER_YEAR, evaluate, evaluate_by_cohort
    from nbrisk_core.prognosis.pipeline import read_cohort

    out = Path(out)
    written = []

    def table(frame: pd.DataFrame, name: str):
        frame.to_csv(out / name, index=False)
        written.append(out / name)

    table(pipeline.patients_, "patients.csv")
    table(pipeline.combinations_, "combinations.csv")
    table(pipeline.screening_, "screening.csv")
    table(pipeline.imputer_.ks_, "imputation_ks.csv")
    table(pipeline.baseline_.patients_, "baseline_patients.csv")
    table(pipeline.baseline_.coefficients_.rename_axis("feature").reset_index(), "baseline_coefficients.csv")

    patients = pipeline.patients_
    horizon = 3 * DAYS_PER_YEAR
    # one evaluation per model and cohort (C-index with CI, log-rank, td-AUC, decision curve, calibration)
    evaluations = {"MLRS": evaluate_by_cohort(patients, horizon_days=horizon),
                   "baseline_lasso_cox": evaluate_by_cohort(pipeline.baseline_.patients_, horizon_days=None,
                                                            c_index_ci=None)}
    rows = [dict(model=model, cohort=cohort, years=a.time / DAYS_PER_YEAR, auc=a.auc, low=a.low, high=a.high,
                 n_cases=a.n_cases, n_controls=a.n_controls, reason=a.reason)
            for model, by_cohort in evaluations.items() for cohort, result in by_cohort.items()
            for a in result.td_auc]
    table(pd.DataFrame(rows), "td_auc.csv")
    dca = evaluations["MLRS"]["test"].decision_curve
    table(dca, "decision_curve.csv")
    pipeline_ci = {cohort: (None if e.c_index is None else [e.c_index.low, e.c_index.high])
                   for cohort, e in evaluations["MLRS"].items()}

    clinical, _, _ = read_cohort(data_dir)
    clinical = clinical.set_index(clinical["patient_id"].astype(str)).loc[patients["patient_id"]].reset_index(drop=True)
    associations = evaluate(None, patients, times_days=[], horizon_days=None, c_index_ci=None,
                            associations_with=clinical).associations
    (out / "associations.json").write_text(json.dumps(
        {k: {f: (getattr(v, f) if not isinstance(getattr(v, f), float) or np.isfinite(getattr(v, f)) else None)
             for f in v.__dataclass_fields__} for k, v in associations.items()}, indent=2, default=str))
    written.append(out / "associations.json")
    (out / "c_index_ci.json").write_text(json.dumps(pipeline_ci, indent=2))
    written.append(out / "c_index_ci.json")
    if figures:
        written += _write_figures(pipeline, clinical, dca, horizon, out)
    return written


def _write_figures(pipeline, clinical, dca, horizon, out) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    from nbrisk_core.prognosis import plots
    from nbrisk_core.prognosis.evaluation import DAYS_PER_YEAR, TD_AUC_YEARS
    from nbrisk_core.prognosis.metrics import kaplan_meier

    written = []
    patients = pipeline.patients_
    train = patients[patients["cohort"] == "train"]
    times = [DAYS_PER_YEAR * y for y in TD_AUC_YEARS]
    fitted = pipeline.combinations_[pipeline.combinations_["status"] == "fitted"].drop(columns="status")

    def html(fig, name):
        # "directory": one plotly.min.js beside the pages, so they open offline without a 3 MB copy each
        fig.write_html(out / name, include_plotlyjs="directory")
        written.append(out / name)

    html(plots.c_index_heatmap(fitted), "c_index_heatmap.html")
    for cohort, part in patients.groupby("cohort"):
        html(plots.kaplan_meier_figure(part["time"], part["event"], part["mlrs_group"],
                                       title=f"Overall survival by MLRS group ({cohort}ing cohort)"),
             f"km_{cohort}.html")
        html(plots.td_roc_figure(part["event"], part["time"], part["mlrs"], times, train_event=train["event"],
                                 train_time=train["time"], title=f"Time-dependent ROC of the MLRS ({cohort})"),
             f"td_roc_{cohort}.html")
        html(plots.risk_factor_figure(part["mlrs"], part["time"], part["event"], pipeline.cutoff_),
             f"risk_factor_{cohort}.html")
    html(plots.decision_curve_figure(dca, horizon), "decision_curve.html")
    html(plots.forest_plot(pipeline.hazard_table()), "forest_plot.html")
    for name, fig in plots.association_figures(patients["mlrs"].to_numpy(), clinical).items():
        html(fig, f"association_{name}.html")
    baseline = pipeline.baseline_
    comparison = go.Figure()
    for label, c_train, c_test in (("MLRS (" + pipeline.selected_ + ")", pipeline.summary_["c_index_train"],
                                    pipeline.summary_["c_index_test"]),
                                   ("LASSO-Cox, clinical only", baseline.c_index_train_, baseline.c_index_test_)):
        comparison.add_trace(go.Bar(name=label, x=["Training", "Testing"], y=[c_train, c_test],
                                    text=[f"{c_train:.3f}", f"{c_test:.3f}"], textposition="auto"))
    comparison.update_layout(title="C-index: MLRS vs the clinical-only baseline", yaxis=dict(range=[0.5, 1]),
                             template="plotly_white", barmode="group")
    html(comparison, "baseline_comparison.html")

    # static PNGs (kaleido is not installed): heatmap and KM with matplotlib
    top = fitted.sort_values("c_index_mean", ascending=False)
    fig, ax = plt.subplots(figsize=(6, max(3, 0.18 * len(top) + 1)))
    image = ax.imshow(top[["c_index_train", "c_index_test", "c_index_mean"]].to_numpy(dtype=float), aspect="auto",
                      cmap="RdBu_r", vmin=0.5, vmax=1.0)
    ax.set_yticks(range(len(top)), top["combination"], fontsize=6)
    ax.set_xticks(range(3), ["Training", "Testing", "Mean"])
    fig.colorbar(image, label="C-index")
    ax.set_title("C-index of the combinations")
    fig.tight_layout()
    fig.savefig(out / "c_index_heatmap.png", dpi=120)
    plt.close(fig)
    written.append(out / "c_index_heatmap.png")

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, cohort in zip(axes, ("train", "test")):
        part = patients[patients["cohort"] == cohort]
        for group, sub in part.groupby("mlrs_group"):
            km = kaplan_meier(sub["event"], sub["time"])
            line, = ax.step(km["time"], km["survival"], where="post", label=f"{group} MLRS (n={len(sub)})")
            ax.fill_between(km["time"], km["low"], km["high"], step="post", alpha=0.15,
                            color=line.get_color(), lw=0)
        ax.legend()
        p = pipeline.summary_["logrank_p"].get(cohort)
        ax.set_title(f"{cohort}ing cohort" + (f", log-rank p = {p:.2g}" if p is not None else ""))
        ax.set_xlabel("days")
    axes[0].set_ylabel("overall survival")
    fig.tight_layout()
    fig.savefig(out / "km.png", dpi=120)
    plt.close(fig)
    written.append(out / "km.png")
    return written
