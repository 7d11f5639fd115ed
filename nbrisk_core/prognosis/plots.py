"""Plot functions: data in, ``plotly.graph_objects.Figure`` out (no Streamlit inside)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

GROUP_COLOURS = ("#1f5f8b", "#c0392b", "#27ae60", "#8e44ad", "#d35400")


def kaplan_meier_figure(time, event, groups=None, *, title: str = "Overall survival",
                        time_unit: str = "days", at_risk_times=None, ci: bool = True) -> go.Figure:
    """Kaplan-Meier curves (one per group) with 95 % CI bands and a number-at-risk table.

    Parameters
    ----------
    time, event : array-like
        Follow-up time and event indicator (1 = death, 0 = censored).
    groups : array-like, optional
        Group label per patient; one curve per distinct label (sorted).
    at_risk_times : array-like, optional
        Times of the number-at-risk table (default: 0 and 5 more evenly spaced up to the maximum).
    """
    from lifelines import KaplanMeierFitter

    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    labels = np.asarray(groups) if groups is not None else np.full(len(time), "all")
    names = sorted(set(labels.tolist()), key=str)
    if at_risk_times is None:
        at_risk_times = np.linspace(0, np.nanmax(time) if len(time) else 1, 6).round()
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.8, 0.2], vertical_spacing=0.06)
    for k, name in enumerate(names):
        colour = GROUP_COLOURS[k % len(GROUP_COLOURS)]
        sel = labels == name
        km = KaplanMeierFitter(label=str(name)).fit(time[sel], event[sel])
        t = km.survival_function_.index.to_numpy()
        s = km.survival_function_.iloc[:, 0].to_numpy()
        if ci:
            lo = km.confidence_interval_.iloc[:, 0].to_numpy()
            hi = km.confidence_interval_.iloc[:, 1].to_numpy()
            fig.add_trace(go.Scatter(x=np.r_[t, t[::-1]], y=np.r_[hi, lo[::-1]], fill="toself",
                                     line=dict(width=0, shape="hv"), fillcolor=colour, opacity=0.15,
                                     hoverinfo="skip", showlegend=False), row=1, col=1)
        fig.add_trace(go.Scatter(x=t, y=s, mode="lines", line=dict(color=colour, shape="hv", width=2),
                                 name=f"{name} (n={int(sel.sum())})"), row=1, col=1)
        cens = sel & (event == 0)
        if cens.any():
            fig.add_trace(go.Scatter(x=time[cens], y=km.survival_function_at_times(time[cens]).to_numpy(),
                                     mode="markers", marker=dict(symbol="line-ns-open", color=colour, size=8),
                                     showlegend=False, hoverinfo="skip"), row=1, col=1)
        at_risk = [int((time[sel] >= a).sum()) for a in at_risk_times]
        fig.add_trace(go.Scatter(x=list(at_risk_times), y=[str(name)] * len(at_risk_times), mode="text",
                                 text=[str(n) for n in at_risk], textfont=dict(color=colour),
                                 showlegend=False, hoverinfo="skip"), row=2, col=1)
    fig.update_yaxes(range=[0, 1.02], title_text="Survival probability", row=1, col=1)
    fig.update_yaxes(title_text="At risk", row=2, col=1)
    fig.update_xaxes(title_text=f"Time ({time_unit})", row=2, col=1)
    fig.update_layout(title=title, template="plotly_white", margin=dict(l=60, r=20, t=50, b=40),
                      legend=dict(orientation="h", y=1.08))
    return fig
