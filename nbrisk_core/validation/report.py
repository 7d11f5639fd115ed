"""The external-validation report as one self-contained HTML page (the look of ``nbrisk reproduce``'s)."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

from nbrisk_core import research_notice
from nbrisk_core.reproduce.report import format_value

STYLE = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;"
         "text-align:right}td:first-child,th:first-child{text-align:left}"
         ".notice{background:#fff3cd;padding:.8em;border-radius:6px}"
         "h2{border-bottom:2px solid #1f5f8b;padding-bottom:4px}")


def _table(rows: list[dict] | pd.DataFrame, columns: list[str] | None = None) -> str:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    columns = columns or list(frame.columns)
    parts = ["<table><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr>"]
    for _, row in frame.iterrows():
        parts.append("<tr>" + "".join(f"<td>{format_value(row[c])}</td>" for c in columns) + "</tr>")
    parts.append("</table>")
    return "".join(parts)


def _triplet(value, ci):
    if value is None:
        return None
    low, high = (ci or [None, None])[:2]
    return [value, low, high] if low is not None and high is not None else value


def calibration_survival_figure(bins: list[dict], years: int) -> go.Figure:
    predicted = [b["predicted_survival"] for b in bins]
    observed = [b["observed_survival"] for b in bins]
    low = [b["observed_low"] for b in bins]
    high = [b["observed_high"] for b in bins]
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="grey"),
                                name="perfect calibration"))
    figure.add_trace(go.Scatter(
        x=predicted, y=observed, mode="markers+lines", name="deciles",
        error_y=dict(type="data", symmetric=False,
                     array=[(h - o) if h is not None and o is not None else 0
                            for h, o in zip(high, observed)],
                     arrayminus=[(o - lo) if lo is not None and o is not None else 0
                                 for lo, o in zip(low, observed)])))
    figure.update_layout(title=f"Calibration of S({years} y): predicted vs observed (Kaplan-Meier) "
                               "per decile",
                         xaxis_title=f"predicted S({years} y)", yaxis_title=f"observed S({years} y)",
                         xaxis=dict(range=[0, 1]), yaxis=dict(range=[0, 1]), template="plotly_white")
    return figure


def reliability_figure(deciles: list[dict]) -> go.Figure:
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="grey"),
                                name="perfect calibration"))
    figure.add_trace(go.Scatter(x=[d["predicted"] for d in deciles], y=[d["observed"] for d in deciles],
                                mode="markers+lines", name="deciles of p(high risk)"))
    figure.update_layout(title="Classifier calibration: observed share of HR per decile of p(high risk)",
                         xaxis_title="mean predicted p(high risk)", yaxis_title="observed share HR",
                         xaxis=dict(range=[0, 1]), yaxis=dict(range=[0, 1]), template="plotly_white")
    return figure


def render_html(report: dict, patients: pd.DataFrame, bundle, scored, *, figures: bool = True) -> str:
    """The HTML page of :func:`nbrisk_core.validation.external.validate_external`'s report."""
    from nbrisk_core.prognosis import plots
    from nbrisk_core.validation.case_mix import compare_case_mix

    synthetic = bool(report["cohort"]["synthetic"])
    progn = report["prognosis"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>NBRisk external validation report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>NBRisk: external validation of frozen models</h1>",
        "<p class='notice'>" + ("<b>Synthetic data.</b> " if synthetic else "")
        + f"{html.escape(research_notice(synthetic))}</p>",
        "<h2>What was validated</h2>",
        _table([
            {"item": "external cohort", "value": f"{report['cohort']['name']} (SHA-256 "
                                                  f"{report['cohort']['sha256'][:16]}…)"},
            {"item": "patients scored / deaths", "value": f"{report['n']} / {report['events']}"},
            {"item": "prognosis bundle", "value": f"{report['bundle']['path']} (SHA-256 "
                                                  f"{report['bundle']['sha256'][:16]}…)"},
            {"item": "developed on",
             "value": str((report['bundle']['development_cohort'] or {}).get('name'))},
            {"item": "selected model", "value": report["bundle"]["selected"]},
            {"item": "frozen MLRS cut-off", "value": report["bundle"]["mlrs_cutoff"]},
            {"item": "CT features", "value": report["ct_features"]},
        ]),
        "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in report["frozen"]) + "</ul>",
    ]
    figure_list: list[tuple[str, go.Figure]] = []

    if "classifier" in report:
        c = report["classifier"]
        parts.append("<h2>Classifier (high vs non-high risk)</h2>")
        parts.append(_table([
            {"metric": "AUC (95 % CI, DeLong)", "value": _triplet(c["auc"], c["auc_ci"])},
            {"metric": f"accuracy at threshold {c['threshold']:g}", "value": c["accuracy"]},
            {"metric": "sensitivity", "value": c["sensitivity"]},
            {"metric": "specificity", "value": c["specificity"]},
            {"metric": "calibration intercept (in the large)", "value": c["calibration"].get("intercept")},
            {"metric": "calibration slope", "value": c["calibration"].get("slope")},
            {"metric": "patients (HR)", "value": f"{c['n']} ({c['n_high_risk']})"},
        ]))
        if figures and c["calibration"].get("deciles"):
            figure_list.append(("classifier", reliability_figure(c["calibration"]["deciles"])))

    parts.append("<h2>Prognosis (MLRS)</h2>")
    rows = [{"metric": "C-index (95 % CI, bootstrap)",
             "value": _triplet(progn["c_index"], progn["c_index_ci"])}]
    for years, entry in progn["td_auc"].items():
        rows.append({"metric": f"time-dependent AUC at {years} y (95 % CI)",
                     "value": _triplet(entry["auc"], entry["ci"]) if entry["auc"] is not None
                     else f"not estimable: {entry['reason']}"})
    rows += [
        {"metric": "integrated Brier score (lower is better)", "value": progn.get("ibs")},
        {"metric": "integrated Brier score of the development KM (reference)",
         "value": progn.get("ibs_reference_development_km")},
        {"metric": f"mean predicted S({progn['calibration']['horizon_years']} y) vs observed KM",
         "value": f"{progn['calibration']['mean_predicted_survival']:.3f} vs "
                  f"{format_value(progn['calibration']['observed_km_survival'])}"},
        {"metric": "high-MLRS group share (frozen cut-off; 50 % in training)",
         "value": progn["high_risk_share"]},
        {"metric": "log-rank p, high vs low MLRS", "value": progn["logrank"].get("p_value")},
    ]
    parts.append(_table(rows))
    parts.append(f"<p>{html.escape(progn['td_auc_method'])}. "
                 f"{html.escape(progn['calibration']['method'])}.</p>")
    parts.append("<h3>Calibration of S(3 y) per decile</h3>")
    parts.append(_table(progn["calibration"]["bins"]))
    if figures:
        patients_time = patients["time"].to_numpy(dtype=float)
        figure_list.append(("km", plots.kaplan_meier_figure(
            patients_time, patients["event"].to_numpy(dtype=int), patients["mlrs_group"].to_numpy(),
            title="Overall survival by frozen MLRS group (external cohort)")))
        figure_list.append(("calibration", calibration_survival_figure(progn["calibration"]["bins"],
            progn["calibration"]["horizon_years"])))
        dca = pd.DataFrame(progn["decision_curve"]["table"]).astype(float)
        horizon = 365.25 * progn["decision_curve"]["horizon_years"]
        figure_list.append(("dca", plots.decision_curve_figure(dca, horizon)))

    imputation = report["imputation"]
    parts.append("<h2>Missing values</h2>")
    parts.append(f"<p>{html.escape(imputation['method'])}: "
                 f"{imputation['patients_with_imputation']} patient(s) "
                 "had at least one value imputed.</p>")
    if imputation["imputed_values_per_variable"]:
        parts.append(_table([{"variable": k, "imputed values": v}
                             for k, v in imputation["imputed_values_per_variable"].items()]))
    if imputation["variables_absent_in_cohort"]:
        parts.append("<p>Not recorded in this cohort at all (imputed for every patient who needs them): "
                     + html.escape(", ".join(imputation["variables_absent_in_cohort"])) + "</p>")

    parts.append("<h2>Case mix: development (training) vs external</h2>")
    parts.append(_table(compare_case_mix(report["case_mix"]["development"], report["case_mix"]["external"])))

    parts.append("<h2>TRIPOD+AI items covered</h2>")
    parts.append("<p>Collins GS et al., BMJ 2024;385:e078378. 'author' items are for the study team to "
                 "report.</p>")
    parts.append(_table(report["tripod_ai"]))
    if report["notes"]:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in report["notes"])
                     + "</ul>")
    if figure_list:
        parts.append("<h2>Figures</h2>")
        for i, (_, figure) in enumerate(figure_list):
            parts.append(figure.to_html(full_html=False, include_plotlyjs=(i == 0)))
    parts.append("</body></html>")
    return "\n".join(parts)


