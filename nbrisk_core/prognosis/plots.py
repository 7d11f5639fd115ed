"""Plot functions: data in, ``plotly.graph_objects.Figure`` out (no Streamlit inside)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

GROUP_COLOURS = ("#1f5f8b", "#c0392b", "#27ae60", "#8e44ad", "#d35400")


def kaplan_meier_figure(time, event, groups=None, *, title: str = "Overall survival",
                        time_unit: str = "days", at_risk_times=None, ci: bool = True,
                        colours: dict | None = None) -> go.Figure:
    """Kaplan-Meier curves (one per group) with 95 % CI bands and a number-at-risk table.

    Parameters
    ----------
    time, event : array-like
        Follow-up time and event indicator (1 = death, 0 = censored).
    groups : array-like, optional
        Group label per patient; one curve per distinct label (sorted).
    at_risk_times : array-like, optional
        Times of the number-at-risk table (default: 0 and 5 more evenly spaced up to the maximum).
    colours : dict, optional
        Colour per group label (default: :data:`GROUP_COLOURS` in label order).
    """
    from nbrisk_core.prognosis.metrics import kaplan_meier

    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    labels = np.asarray(groups) if groups is not None else np.full(len(time), "all")
    names = sorted(set(labels.tolist()), key=str)
    if at_risk_times is None:
        at_risk_times = np.linspace(0, np.nanmax(time) if len(time) else 1, 6).round()
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.8, 0.2], vertical_spacing=0.06)
    for k, name in enumerate(names):
        colour = (colours or {}).get(name, GROUP_COLOURS[k % len(GROUP_COLOURS)])
        sel = labels == name
        km = kaplan_meier(event[sel], time[sel], ci=ci)
        t = km["time"].to_numpy()
        s = km["survival"].to_numpy()
        if ci:
            lo = km["low"].to_numpy()
            hi = km["high"].to_numpy()
            fig.add_trace(go.Scatter(x=np.r_[t, t[::-1]], y=np.r_[hi, lo[::-1]], fill="toself",
                                     line=dict(width=0, shape="hv"), fillcolor=colour, opacity=0.15,
                                     hoverinfo="skip", showlegend=False), row=1, col=1)
        fig.add_trace(go.Scatter(x=t, y=s, mode="lines", line=dict(color=colour, shape="hv", width=2),
                                 name=f"{name} (n={int(sel.sum())})"), row=1, col=1)
        cens = sel & (event == 0)
        if cens.any():
            at_censoring = kaplan_meier(event[sel], time[sel], times=time[cens], ci=False)["survival"]
            fig.add_trace(go.Scatter(x=time[cens], y=at_censoring.to_numpy(),
                                     mode="markers", marker=dict(symbol="line-ns-open", color=colour, size=8),
                                     showlegend=False, hoverinfo="skip"), row=1, col=1)
        at_risk = [int((time[sel] >= a).sum()) for a in at_risk_times]
        fig.add_trace(go.Scatter(x=list(at_risk_times), y=[str(name)] * len(at_risk_times), mode="text",
                                 text=[str(n) for n in at_risk], textfont=dict(color=colour),
                                 showlegend=False, hoverinfo="skip"), row=2, col=1)
    fig.update_yaxes(range=[0, 1.02], title_text="Survival probability", row=1, col=1)
    fig.update_yaxes(title_text="At risk", row=2, col=1)
    fig.update_xaxes(title_text=f"Time ({time_unit})", row=2, col=1)
    # legend above the plot area (anchored by its bottom) so it never covers the curves near S = 1
    fig.update_layout(title=title, template="plotly_white", margin=dict(l=60, r=20, t=90, b=40),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


# --------------------------------------------------------------------------------------------
# model search
# --------------------------------------------------------------------------------------------
def c_index_heatmap(combinations_df, *, max_rows: int | None = None) -> go.Figure:
    """Heatmap of the C-index of every fitted combination (method.md section 6).

    Rows are combinations sorted by the mean C-index of the two cohorts (best on top), columns
    are the training and testing cohorts and their mean; each cell carries its value. Skipped or
    failed combinations (``status`` other than ``"fitted"``) are left out and counted in the title.

    Parameters
    ----------
    combinations_df : DataFrame
        ``combination, status, c_index_train, c_index_test`` (and ``c_index_mean``, recomputed
        when absent).
    max_rows : int, optional
        Show only the best ``max_rows`` combinations.
    """
    table = combinations_df.copy()
    if "status" in table.columns:
        fitted = table[table["status"] == "fitted"].copy()
    else:
        fitted = table
    n_left_out = len(table) - len(fitted)
    if "c_index_mean" not in fitted.columns:
        fitted["c_index_mean"] = fitted[["c_index_train", "c_index_test"]].mean(axis=1)
    fitted = fitted.sort_values("c_index_mean", ascending=False)
    if max_rows is not None:
        fitted = fitted.head(max_rows)
    columns = ["c_index_train", "c_index_test", "c_index_mean"]
    z = fitted[columns].to_numpy(dtype=float)
    # best on top: plotly draws the first row at the bottom
    fig = go.Figure(go.Heatmap(
        z=z[::-1], x=["Training", "Testing", "Mean"], y=fitted["combination"].astype(str).tolist()[::-1],
        text=np.vectorize(lambda v: "" if np.isnan(v) else f"{v:.3f}")(z[::-1]) if len(z) else None,
        texttemplate="%{text}", colorscale="RdBu_r", zmin=0.5, zmax=1.0, colorbar=dict(title="C-index"),
        hovertemplate="%{y}<br>%{x}: %{z:.3f}<extra></extra>"))
    title = f"C-index of {len(fitted)} combinations"
    if n_left_out:
        title += f" ({n_left_out} skipped or failed, not shown)"
    fig.update_layout(title=title, template="plotly_white", height=max(300, 18 * len(fitted) + 120),
                      margin=dict(l=220, r=20, t=50, b=40))
    return fig


def forest_plot(hazard_table, *, title: str = "Cox regression: hazard ratios (95 % CI)") -> go.Figure:
    """Forest plot of hazard ratios on a log axis, with the p value of each feature.

    ``hazard_table`` has columns ``feature, hr, low, high, p`` (and optionally ``kept``: kept
    features are drawn filled, the others open).
    """
    table = hazard_table.reset_index(drop=True)
    kept = table["kept"].astype(bool).to_numpy() if "kept" in table.columns else np.ones(len(table), bool)
    y = table["feature"].astype(str).tolist()
    fig = go.Figure()
    for flag, name, symbol in ((True, "kept", "square"), (False, "not kept", "square-open")):
        sel = kept == flag
        if not sel.any():
            continue
        rows = table[sel]
        fig.add_trace(go.Scatter(
            x=rows["hr"], y=rows["feature"].astype(str), mode="markers", name=name,
            marker=dict(symbol=symbol, size=9, color=GROUP_COLOURS[0] if flag else "#7f8c8d"),
            error_x=dict(type="data", symmetric=False, array=rows["high"] - rows["hr"],
                         arrayminus=rows["hr"] - rows["low"], thickness=1.5),
            customdata=np.c_[rows["low"], rows["high"], rows["p"]],
            hovertemplate="%{y}: HR %{x:.2f} (%{customdata[0]:.2f}-%{customdata[1]:.2f}), "
                          "p=%{customdata[2]:.3g}<extra></extra>"))
    fig.add_vline(x=1.0, line=dict(color="#555", dash="dash", width=1))
    for row in table.itertuples():
        fig.add_annotation(x=1.0, xref="paper", xanchor="left", y=str(row.feature), showarrow=False,
                           text=f"p={row.p:.3g}", font=dict(size=11))
    fig.update_xaxes(type="log", title_text="Hazard ratio (log scale)")
    fig.update_yaxes(autorange="reversed", categoryorder="array", categoryarray=y)
    fig.update_layout(title=title, template="plotly_white", height=max(300, 26 * len(table) + 120),
                      margin=dict(l=140, r=90, t=50, b=90),
                      legend=dict(orientation="h", y=-0.25 if len(table) < 8 else -0.1))
    return fig


# --------------------------------------------------------------------------------------------
# MLRS evaluation
# --------------------------------------------------------------------------------------------
def td_roc_figure(event, time, risk, times, *, train_event=None, train_time=None,
                  time_unit_days: float = 365.25, title: str = "Time-dependent ROC") -> go.Figure:
    """Cumulative/dynamic ROC curves of a risk score at several times, AUC (95 % CI) in the legend.

    ``times`` are in days; the legend shows them in years (``time_unit_days``). Times without
    cases or controls get no curve and are listed in the title.
    """
    from nbrisk_core.prognosis.metrics import time_dependent_auc, time_dependent_roc

    aucs = time_dependent_auc(event, time, risk, times, train_event=train_event, train_time=train_time)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#999", dash="dot"),
                             showlegend=False, hoverinfo="skip"))
    skipped = []
    for k, res in enumerate(aucs):
        label = f"{res.time / time_unit_days:g} y" if time_unit_days != 1 else f"{res.time:g} d"
        if np.isnan(res.auc):
            # short form for the subtitle ("no cases" / "no controls"); the full reason is in TimeAUC
            short = (res.reason.rsplit("(", 1)[-1].rstrip(")") if res.reason.endswith(")")
                     else "IPC weights undefined")
            skipped.append(f"{label} ({short})")
            continue
        roc = time_dependent_roc(event, time, risk, res.time, train_event=train_event, train_time=train_time)
        fig.add_trace(go.Scatter(
            x=roc["fpr"], y=roc["tpr"], mode="lines", line=dict(color=GROUP_COLOURS[k % len(GROUP_COLOURS)],
                                                               shape="hv", width=2),
            name=f"{label}: AUC {res.auc:.3f} ({res.low:.3f}-{res.high:.3f})"))
    full_title = title + ("<br><sup>not estimable: " + ", ".join(skipped) + "</sup>" if skipped else "")
    fig.update_xaxes(range=[0, 1], title_text="1 - specificity", constrain="domain")
    fig.update_yaxes(range=[0, 1.01], title_text="Sensitivity", scaleanchor="x")
    fig.update_layout(title=full_title, template="plotly_white", legend=dict(x=0.45, y=0.05),
                      margin=dict(l=60, r=20, t=60, b=40))
    return fig


def decision_curve_figure(dca_df, horizon, *, time_unit_days: float = 365.25) -> go.Figure:
    """Net benefit of the model, treat-all and treat-none against the threshold probability.

    The y axis is cut below at a little under the smallest model net benefit (treat-all falls
    steeply at high thresholds and would flatten everything else).
    """
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=dca_df["threshold"], y=dca_df["net_benefit"], mode="lines",
                             name="Model (MLRS)",
                             line=dict(color=GROUP_COLOURS[1], width=2)))
    fig.add_trace(go.Scatter(x=dca_df["threshold"], y=dca_df["treat_all"], mode="lines", name="Treat all",
                             line=dict(color=GROUP_COLOURS[0], width=1.5)))
    fig.add_trace(go.Scatter(x=dca_df["threshold"], y=dca_df["treat_none"], mode="lines", name="Treat none",
                             line=dict(color="#555", width=1.5, dash="dash")))
    top = np.nanmax(np.r_[dca_df["net_benefit"].to_numpy(float), dca_df["treat_all"].to_numpy(float), 0.0])
    bottom = min(-0.05, np.nanmin(np.r_[dca_df["net_benefit"].to_numpy(float), 0.0]) - 0.05)
    fig.update_yaxes(range=[bottom, top + 0.05], title_text="Net benefit")
    fig.update_xaxes(range=[0, 1], title_text="Threshold probability")
    fig.update_layout(title=f"Decision curve: death within {horizon / time_unit_days:g} years",
                      template="plotly_white", margin=dict(l=60, r=20, t=50, b=40))
    return fig


def risk_factor_figure(mlrs, time, event, cutoff, *, time_unit: str = "days") -> go.Figure:
    """Risk-factor plot: patients ranked by MLRS (top) and their follow-up and status (bottom).

    The vertical line is the frozen cutoff between the low- and high-MLRS groups.
    """
    mlrs = np.asarray(mlrs, dtype=float)
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    order = np.argsort(mlrs, kind="stable")
    rank = np.arange(1, len(mlrs) + 1)
    high = mlrs[order] > cutoff
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    for flag, name, colour in ((False, "Low MLRS", GROUP_COLOURS[0]), (True, "High MLRS", GROUP_COLOURS[1])):
        sel = high == flag
        fig.add_trace(go.Scatter(x=rank[sel], y=mlrs[order][sel], mode="markers", name=name,
                                 marker=dict(color=colour, size=6)), row=1, col=1)
    for flag, name, colour in ((0, "Alive / censored", "#27ae60"), (1, "Dead", "#c0392b")):
        sel = event[order] == flag
        fig.add_trace(go.Scatter(x=rank[sel], y=time[order][sel], mode="markers", name=name,
                                 marker=dict(color=colour, size=6,
                                             symbol="circle" if flag else "circle-open")),
                      row=2, col=1)
    n_low = int((mlrs <= cutoff).sum())
    for row in (1, 2):
        fig.add_vline(x=n_low + 0.5, line=dict(color="#555", dash="dash", width=1), row=row, col=1)
    fig.add_hline(y=cutoff, line=dict(color="#555", dash="dot", width=1), row=1, col=1)
    fig.update_yaxes(title_text="MLRS", row=1, col=1)
    fig.update_yaxes(title_text=f"Follow-up ({time_unit})", row=2, col=1)
    fig.update_xaxes(title_text="Patients ranked by MLRS", row=2, col=1)
    fig.update_layout(title="Risk-factor plot", template="plotly_white", height=520,
                      margin=dict(l=60, r=20, t=50, b=40))
    return fig


def association_figures(mlrs, clinical_df) -> dict[str, go.Figure]:
    """Figures of the MLRS associations (method.md section 7), with the test results on them.

    Returns ``{"risk_group": box plot, "mycn_amplified": box plot, "ferritin": scatter,
    "nse": scatter}`` (Wilcoxon rank-sum p on the box plots; Pearson r and p on the scatters
    with a least-squares line, observed values only).
    """
    from nbrisk_core.prognosis.metrics import mlrs_associations

    results = mlrs_associations(mlrs, clinical_df)
    table = clinical_df.reset_index(drop=True)
    if hasattr(mlrs, "reindex") and "patient_id" in table.columns and not np.array_equal(
            np.asarray(mlrs.index), table["patient_id"].to_numpy()):
        score = mlrs.reindex(table["patient_id"]).to_numpy(dtype=float)
    else:
        score = np.asarray(mlrs, dtype=float)
    figures: dict[str, go.Figure] = {}
    labels = {"risk_group": {"HR": "HR", "NHR": "NHR"},
              "mycn_amplified": {1: "amplified", 0: "not amplified"}}
    for column in ("risk_group", "mycn_amplified"):
        res = results[column]
        fig = go.Figure()
        for k, (value, label) in enumerate(labels[column].items()):
            sel = table[column].to_numpy() == value
            fig.add_trace(go.Box(y=score[sel], name=f"{label} (n={int(sel.sum())})", boxpoints="all",
                                 jitter=0.4, pointpos=0, marker=dict(color=GROUP_COLOURS[1 - k], size=4),
                                 line=dict(color=GROUP_COLOURS[1 - k])))
        nice = "Risk group" if column == "risk_group" else "MYCN amplification"
        fig.update_layout(title=f"MLRS by {nice.lower()}: Wilcoxon p = {res.p_value:.3g}",
                          template="plotly_white", showlegend=False, yaxis_title="MLRS", xaxis_title=nice,
                          margin=dict(l=60, r=20, t=50, b=40))
        figures[column] = fig
    for column, nice in (("ferritin", "Ferritin (ng/mL)"), ("nse", "NSE (ng/mL)")):
        res = results[column]
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(values)
        fig = go.Figure(go.Scatter(x=values[ok], y=score[ok], mode="markers", name="patients",
                                   marker=dict(color=GROUP_COLOURS[0], size=6, opacity=0.7)))
        if ok.sum() >= 3:
            slope, intercept = np.polyfit(values[ok], score[ok], 1)
            xs = np.linspace(values[ok].min(), values[ok].max(), 50)
            fig.add_trace(go.Scatter(x=xs, y=slope * xs + intercept, mode="lines", name="least squares",
                                     line=dict(color=GROUP_COLOURS[1], width=2)))
        fig.update_layout(title=f"MLRS vs {nice.split(' (')[0]}: Pearson r = {res.r:.2f}, "
                                f"p = {res.p_value:.3g}"
                                f" (n={res.n})",
                          template="plotly_white", xaxis_title=nice, yaxis_title="MLRS", showlegend=False,
                          margin=dict(l=60, r=20, t=50, b=40))
        figures[column] = fig
    return figures


def risk_group_colours(groups) -> dict | None:
    """Two groups named high*/low*: the high-risk one red, the other blue (else None: palette order)."""
    labels = sorted(set(np.asarray(groups).tolist()), key=str)
    if len(labels) != 2 or not any(str(name).lower().startswith("high") for name in labels):
        return None
    return {name: GROUP_COLOURS[1] if str(name).lower().startswith("high") else GROUP_COLOURS[0]
            for name in labels}


def individual_survival_figure(prognosis, cohort_time, cohort_event, cohort_group, *,
                               title: str = "Predicted survival of this patient") -> go.Figure:
    """The patient's predicted survival curve over the cohort's Kaplan-Meier curves by MLRS group.

    ``prognosis`` is an ``IndividualPrognosis`` (``times`` in days, ``survival``, optional
    ``low``/``high`` band, ``mlrs``, ``group``).
    """
    colours = risk_group_colours(cohort_group)
    fig = kaplan_meier_figure(cohort_time, cohort_event, cohort_group, title=title, ci=False, colours=colours)
    for trace in fig.data:  # the cohort is context: draw it lighter than the patient
        if trace.mode == "lines":
            trace.line.width = 1.5
            trace.opacity = 0.6
    times = np.asarray(prognosis.times, dtype=float)
    survival = np.asarray(prognosis.survival, dtype=float)
    if getattr(prognosis, "low", None) is not None and getattr(prognosis, "high", None) is not None:
        low, high = np.asarray(prognosis.low, float), np.asarray(prognosis.high, float)
        fig.add_trace(go.Scatter(x=np.r_[times, times[::-1]], y=np.r_[high, low[::-1]], fill="toself",
                                 fillcolor="#111", opacity=0.12, line=dict(width=0, shape="hv"),
                                 hoverinfo="skip", name="patient band", showlegend=False), row=1, col=1)
    fig.add_trace(go.Scatter(x=times, y=survival, mode="lines", line=dict(color="#111", width=3, shape="hv"),
                             name=f"This patient (MLRS {prognosis.mlrs:.3g}, {prognosis.group})"),
                  row=1, col=1)
    return fig


def imputation_density_figure(observed, imputed, variable: str) -> go.Figure:
    """Overlaid densities of observed and imputed values of one variable (MICE-PMM check).

    Gaussian kernel density (Scott's bandwidth, ``scipy.stats.gaussian_kde``) when a sample has
    at least two distinct values; otherwise its values are shown as a rug only.
    """
    from scipy.stats import gaussian_kde

    observed = np.asarray(observed, dtype=float)
    observed = observed[np.isfinite(observed)]
    imputed = np.asarray(imputed, dtype=float)
    imputed = imputed[np.isfinite(imputed)]
    both = np.r_[observed, imputed]
    fig = go.Figure()
    if len(both) == 0:
        fig.update_layout(title=f"{variable}: no values")
        return fig
    span = both.max() - both.min() or 1.0
    grid = np.linspace(both.min() - 0.1 * span, both.max() + 0.1 * span, 200)
    for values, name, colour, dash in ((observed, "observed", GROUP_COLOURS[0], "solid"),
                                       (imputed, "imputed", GROUP_COLOURS[1], "dash")):
        if len(np.unique(values)) >= 2:
            fig.add_trace(go.Scatter(x=grid, y=gaussian_kde(values)(grid), mode="lines",
                                     name=f"{name} (n={len(values)})",
                                     line=dict(color=colour, dash=dash, width=2)))
        if len(values):
            fig.add_trace(go.Scatter(x=values, y=np.zeros(len(values)), mode="markers", showlegend=False,
                                     marker=dict(symbol="line-ns-open", color=colour, size=8), hoverinfo="x"))
    fig.update_layout(title=f"{variable}: observed vs imputed", template="plotly_white", xaxis_title=variable,
                      yaxis_title="Density", margin=dict(l=60, r=20, t=50, b=40))
    return fig


def mlrs_distribution_figure(mlrs, cohort, cutoff, *, patient_mlrs: float | None = None) -> go.Figure:
    """Histogram of the cohort's MLRS by cohort (training/testing), the frozen cutoff, and the
    current patient's MLRS when given."""
    mlrs = np.asarray(mlrs, dtype=float)
    cohort = np.asarray(cohort)
    fig = go.Figure()
    # training cohort first (blue), whatever it is called
    names = sorted(set(cohort.tolist()), key=lambda x: (not str(x).lower().startswith("train"), str(x)))
    for k, name in enumerate(names):
        sel = cohort == name
        fig.add_trace(go.Histogram(x=mlrs[sel], name=f"{name} (n={int(sel.sum())})", opacity=0.6,
                                   marker_color=GROUP_COLOURS[k % len(GROUP_COLOURS)], nbinsx=30))
    # labels on opposite sides of their lines so they never overlap
    patient_right = patient_mlrs is not None and float(patient_mlrs) >= cutoff
    fig.add_vline(x=cutoff, line=dict(color="#555", dash="dash"), annotation_text="cutoff (training median)",
                  annotation_position="top left" if patient_right else "top right")
    if patient_mlrs is not None:
        fig.add_vline(x=float(patient_mlrs), line=dict(color="#111", width=3), annotation_text="this patient",
                      annotation_position="top right" if patient_right else "top left")
    fig.update_layout(barmode="overlay", title="MLRS distribution", template="plotly_white",
                      xaxis_title="MLRS", yaxis_title="Patients", margin=dict(l=60, r=20, t=50, b=40))
    return fig


def calibration_figure(calibration_df, horizon, *, time_unit_days: float = 365.25) -> go.Figure:
    """Predicted vs Kaplan-Meier observed risk per bin (from ``metrics.calibration_at``)."""
    cal = calibration_df
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#999", dash="dot"),
                             name="perfect calibration"))
    fig.add_trace(go.Scatter(
        x=cal["predicted"], y=cal["observed"], mode="markers+lines", name="bins",
        marker=dict(color=GROUP_COLOURS[1], size=9),
        error_y=dict(type="data", symmetric=False, array=cal["observed_high"] - cal["observed"],
                     arrayminus=cal["observed"] - cal["observed_low"])))
    fig.update_xaxes(range=[0, 1], title_text="Predicted risk of death")
    fig.update_yaxes(range=[0, 1], title_text="Observed risk (1 - Kaplan-Meier)")
    fig.update_layout(title=f"Calibration at {horizon / time_unit_days:g} years", template="plotly_white",
                      margin=dict(l=60, r=20, t=50, b=40))
    return fig


def individual_survival_png(prognosis, cohort_time, cohort_event, cohort_group, *,
                            title: str = "Predicted overall survival", dpi: int = 120) -> bytes:
    """PNG (bytes) of :func:`individual_survival_figure`, drawn with matplotlib.

    Plotly's static export needs kaleido, which NBRisk does not ship; matplotlib's Agg backend
    draws the same content (cohort KM by group, the patient's curve and band) without a browser.
    """
    import io

    from matplotlib.figure import Figure

    from nbrisk_core.prognosis.metrics import kaplan_meier

    time = np.asarray(cohort_time, dtype=float)
    event = np.asarray(cohort_event, dtype=int)
    groups = np.asarray(cohort_group)
    colours = risk_group_colours(groups)
    fig = Figure(figsize=(7, 4.5), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    for k, name in enumerate(sorted(set(groups.tolist()), key=str)):
        sel = groups == name
        km = kaplan_meier(event[sel], time[sel], ci=False)
        colour = (colours or {}).get(name, GROUP_COLOURS[k % len(GROUP_COLOURS)])
        ax.step(km["time"], km["survival"], where="post",
                color=colour, alpha=0.7, label=f"cohort {name} (n={int(sel.sum())})")
    times = np.asarray(prognosis.times, dtype=float)
    if getattr(prognosis, "low", None) is not None and getattr(prognosis, "high", None) is not None:
        ax.fill_between(times, prognosis.low, prognosis.high, step="post", color="black", alpha=0.12, lw=0)
    ax.step(times, prognosis.survival, where="post", color="black", lw=2.5,
            label=f"this patient (MLRS {prognosis.mlrs:.3g}, {prognosis.group})")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Time (days)")
    ax.set_ylabel("Survival probability")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()
