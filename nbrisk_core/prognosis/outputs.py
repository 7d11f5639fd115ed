"""The files of a fitted prognosis pipeline: its tables (patients, combinations, screening, imputation,
baseline, td-AUC, decision curve, associations, C-index CIs) and figures, as ``nbrisk benchmark`` and
``nbrisk reproduce`` write them. Every figure comes from :func:`nbrisk_core.prognosis.evaluation.evaluate`.
"""

from __future__ import annotations


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
    written += _write_nomogram(pipeline, clinical, data_dir, out, figures=figures)
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


def _write_nomogram(pipeline, clinical, data_dir, out, *, figures: bool) -> list:
    """``nomogram.json`` (+ PNG/PDF): the MLRS + the default clinical variables
    (:data:`~nbrisk_core.prognosis.nomogram.DEFAULT_CLINICAL` that the cohort records); nothing, with a
    printed reason, when the Cox model cannot be fitted."""
    from nbrisk_core.errors import InputError
    from nbrisk_core.prognosis.nomogram import available_covariates, nomogram_for_pipeline, write_nomogram

    covariates = available_covariates(clinical)
    try:
        nomogram = nomogram_for_pipeline(pipeline, clinical, covariates, cohort_dir=data_dir)
    except InputError as error:
        print(f"nomogram not written: {error}")
        return []
    return write_nomogram(out, nomogram, figures=figures)


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
