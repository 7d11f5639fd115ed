"""``nbrisk compare``'s figures and its HTML page (the look of ``nbrisk validate`` and ``nbrisk reproduce``).

The figure functions take the report / predictions and return plotly Figures; the Models page draws
the same ones.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from nbrisk_core import research_notice

SET_TITLES = {"cv": "development cohort, pooled out-of-fold", "test": "test split",
              "external": "external cohort (frozen models)"}


def _label(report: dict, name: str) -> str:
    return report["models"].get(name, {}).get("label", name)


def roc_figure(report: dict, predictions: pd.DataFrame, set_name: str) -> go.Figure:
    """ROC curves of every model that ran on ``set_name``, the DeLong 95 % CI of each AUC in the legend
    (:func:`nbrisk_core.classifier.metrics.roc_figure`)."""
    from nbrisk_core.classifier.metrics import roc_figure as classifier_roc

    part = predictions[predictions["set"] == set_name]
    curves = {_label(report, name): (g["high_risk"].to_numpy(dtype=int), g["p_high_risk"].to_numpy(dtype=float))
              for name, g in part.groupby("model", sort=False)}
    fig = classifier_roc(curves)
    fig.update_layout(title=f"ROC: {SET_TITLES.get(set_name, set_name)}", template="plotly_white",
                      legend=dict(x=0.35, y=0.05, font=dict(size=10)))
    return fig


def calibration_figure(report: dict, set_name: str) -> go.Figure:
    """Observed share of HR per decile of p(high risk), one line per model (the reliability plot of
    ``nbrisk validate``), the calibration slope in the legend."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="grey"),
                             name="perfect calibration"))
    for name, entry in report["models"].items():
        metrics = entry.get(set_name)
        if not isinstance(metrics, dict) or "calibration" not in metrics:
            continue
        deciles = metrics["calibration"].get("deciles") or []
        slope = metrics["calibration"].get("slope")
        fig.add_trace(go.Scatter(x=[d["predicted"] for d in deciles], y=[d["observed"] for d in deciles],
                                 mode="markers+lines",
                                 name=f"{entry.get('label', name)}" + (f" (slope {slope:.2f})" if slope else "")))
    fig.update_layout(title=f"Calibration: {SET_TITLES.get(set_name, set_name)}",
                      xaxis_title="mean predicted p(high risk)", yaxis_title="observed share HR",
                      xaxis=dict(range=[0, 1]), yaxis=dict(range=[0, 1]), template="plotly_white",
                      legend=dict(font=dict(size=10)))
    return fig


def decision_figure(report: dict, set_name: str) -> go.Figure:
    """Net benefit of classifying ``p > threshold`` as high risk, per model, with treat-all and
    treat-none (the look of :func:`nbrisk_core.prognosis.plots.decision_curve_figure`)."""
    fig = go.Figure()
    treat_all = None
    lows = [0.0]
    for name, entry in report["models"].items():
        metrics = entry.get(set_name)
        if not isinstance(metrics, dict) or not metrics.get("decision_curve"):
            continue
        dca = metrics["decision_curve"]
        nb = np.array([np.nan if v is None else v for v in dca["net_benefit"]], dtype=float)
        lows.append(np.nanmin(nb))
        fig.add_trace(go.Scatter(x=dca["threshold"], y=nb, mode="lines", name=entry.get("label", name)))
        treat_all = dca
    if treat_all is not None:
        ta = np.array([np.nan if v is None else v for v in treat_all["treat_all"]], dtype=float)
        fig.add_trace(go.Scatter(x=treat_all["threshold"], y=ta, mode="lines", name="Treat all",
                                 line=dict(color="#888", width=1.5)))
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 0], mode="lines", name="Treat none",
                                 line=dict(color="#555", width=1.5, dash="dash")))
        top = np.nanmax(np.r_[ta, 0.0])
        fig.update_yaxes(range=[min(-0.05, min(lows) - 0.05), top + 0.05])
    fig.update_layout(title=f"Decision curve (high risk): {SET_TITLES.get(set_name, set_name)}",
                      xaxis_title="Threshold probability", yaxis_title="Net benefit",
                      xaxis=dict(range=[0, 1]), template="plotly_white", legend=dict(font=dict(size=10)))
    return fig


def report_figures(report: dict, predictions: pd.DataFrame) -> list[tuple[str, go.Figure]]:
    """``[(key, figure), ...]``: ROC (CV, test, external), calibration and decision curves per scored set."""
    out = []
    sets = [s for s in ("cv", "test", "external") if len(predictions) and (predictions["set"] == s).any()]
    for set_name in sets:
        out.append((f"roc_{set_name}", roc_figure(report, predictions, set_name)))
    for set_name in [s for s in sets if s != "cv"]:
        out.append((f"calibration_{set_name}", calibration_figure(report, set_name)))
        out.append((f"decision_{set_name}", decision_figure(report, set_name)))
    return out


def summary_table(report: dict) -> pd.DataFrame:
    """One row per model: CV mean +- SD, pooled OOF AUC, test (and external) AUC with CIs, DeLong p vs
    Swin-ART, NRI/IDI vs the clinical model, calibration slope, C-index; the Models page shows it too."""
    def triplet(value, ci):
        if value is None:
            return ""
        if not ci or ci[0] is None:
            return f"{value:.3f}"
        return f"{value:.3f} ({ci[0]:.3f}-{ci[1]:.3f})"

    rows = []
    for name, entry in report["models"].items():
        row = {"model": name, "label": entry.get("label", name)}
        if entry.get("status") != "ok":
            row["status"] = f"not run: {entry.get('reason', '')}"
            rows.append(row)
            continue
        row["status"] = "ok"
        cv = entry["cv"]
        row["CV AUC mean ± SD"] = f"{cv['mean']:.3f} ± {cv['sd']:.3f}" if cv["sd"] is not None else f"{cv['mean']:.3f}"
        row["CV pooled AUC (95% CI)"] = triplet(cv["oof_auc"], cv["oof_auc_ci"])
        for set_name in ("test", "external"):
            metrics = entry.get(set_name)
            if not isinstance(metrics, dict) or "auc" not in metrics:
                continue
            row[f"{set_name} AUC (95% CI)"] = triplet(metrics["auc"], metrics["auc_ci"])
            p = metrics.get("delong_p_vs_swin_art")
            row[f"{set_name} DeLong p vs Swin-ART"] = "" if p is None else f"{p:.3g}"
            if metrics.get("nri"):
                n = metrics["nri"]["category_free"]
                row[f"{set_name} NRI vs clinical (95% CI)"] = triplet(n["value"], n["ci"])
                i = metrics["idi"]
                row[f"{set_name} IDI vs clinical (95% CI)"] = triplet(i["value"], i["ci"])
            else:
                row[f"{set_name} NRI vs clinical (95% CI)"] = row[f"{set_name} IDI vs clinical (95% CI)"] = ""
            slope = metrics["calibration"].get("slope")
            row[f"{set_name} calibration slope"] = "" if slope is None else f"{slope:.2f}"
            row[f"{set_name} C-index (95% CI)"] = triplet(metrics.get("c_index"), metrics.get("c_index_ci"))
        rows.append(row)
    return pd.DataFrame(rows)


def render_html(report: dict, predictions: pd.DataFrame, *, figures: bool = True) -> str:
    from nbrisk_core.validation.report import STYLE, _table

    synthetic = bool(report["cohort"].get("synthetic"))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>NBRisk model comparison</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>NBRisk: model comparison (issue 26)</h1>",
        "<p class='notice'>" + ("<b>Synthetic data.</b> " if synthetic else "")
        + f"{html.escape(research_notice(synthetic))}</p>",
        "<h2>Protocol</h2>",
        _table([
            {"item": "cohort", "value": f"{report['cohort']['name']} ({report['n']} patients)"},
            {"item": "development / test", "value": f"{report['n_development']} / {report['n_test']} "
                                                      f"({report['split']})"},
            {"item": "cross-validation", "value": f"stratified {report['folds']}-fold on the development "
                                                  f"cohort, seed {report['seed']}; every fitted step inside "
                                                  "the folds"},
            {"item": "external cohort", "value": (f"{report['external']['name']} ({report['external']['n']} "
                                                  "patients), development-fitted models, no refit"
                                                  if "external" in report else "none")},
            {"item": "paired comparisons", "value": "DeLong vs swin_art; NRI and IDI vs clinical_lr"},
        ]),
        "<h2>Results</h2>",
    ]
    table = summary_table(report)
    parts.append(_table(table.drop(columns=["label"]) if "label" in table else table))
    for set_name in ("test", "external"):
        rows = []
        for name, entry in report["models"].items():
            metrics = entry.get(set_name)
            if not isinstance(metrics, dict) or "auc" not in metrics:
                continue
            cal = metrics["calibration"]
            row = {"model": name, "accuracy": metrics["accuracy"], "sensitivity": metrics["sensitivity"],
                   "specificity": metrics["specificity"], "calibration intercept": cal.get("intercept"),
                   "calibration slope": cal.get("slope")}
            if metrics.get("nri"):
                row["NRI at 0.5"] = metrics["nri"].get("at_0.5", {}).get("value")
                row["IDI p"] = metrics["idi"]["p_value"]
            rows.append(row)
        if rows:
            parts.append(f"<h3>{html.escape(SET_TITLES[set_name])}: threshold 0.5 and calibration</h3>")
            parts.append(_table(pd.DataFrame(rows)))
    cv_rows = [{"model": name, **{f"fold {k + 1}": a for k, a in enumerate(entry["cv"]["fold_auc"])}}
               for name, entry in report["models"].items() if entry.get("status") == "ok"]
    if cv_rows:
        parts.append("<h3>AUC per cross-validation fold</h3>")
        parts.append(_table(pd.DataFrame(cv_rows)))
    not_run = {n: e["reason"] for n, e in report["models"].items() if e.get("status") != "ok"}
    if not_run:
        parts.append("<h3>Not run</h3><ul>" + "".join(
            f"<li><b>{html.escape(n)}</b>: {html.escape(r)}</li>" for n, r in not_run.items()) + "</ul>")
    if report.get("caveats"):
        parts.append("<h2>Caveats</h2><ul>" + "".join(f"<li>{html.escape(c)}</li>" for c in report["caveats"])
                     + "</ul>")
    if figures:
        parts.append("<h2>Figures</h2>")
        for i, (_, figure) in enumerate(report_figures(report, predictions)):
            parts.append(figure.to_html(full_html=False, include_plotlyjs=(i == 0)))
    parts.append("</body></html>")
    return "\n".join(parts)
