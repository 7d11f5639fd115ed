"""Drawings of a :class:`~nbrisk_core.prognosis.nomogram.Nomogram`: the classic static layout
(matplotlib, PNG/PDF) and the dynamic one (plotly, a patient's points marked), from one list of axes.
The scale constants and the tick rule live here too; this module imports nothing of ``nomogram`` (which
imports it), so the two make no import cycle.

Layout (rms ``plot(nomogram(...))``): a Points axis (0-100), one axis per predictor placed on the
points scale, then Total points, Linear predictor and one survival axis per time, all placed on the
total-points scale (stretched to the same width as the Points axis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: :class:`nbrisk_core.prognosis.nomogram.Nomogram`, not imported, not even for type checking: nomogram imports
#: this module, and the engine's layer test counts every import edge
Nomogram = Any

#: Points of the predictor with the widest range of ``|beta * x|``.
MAX_POINTS = 100.0
#: Survival probabilities labelled on the survival axes (those reachable by the total points).
SURVIVAL_TICKS = (0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01)


def nice_ticks(low: float, high: float, n: int = 6) -> list[float]:
    """Round tick values inside ``[low, high]`` (R ``pretty``-like: steps of 1, 2, 2.5 or 5 times 10^k).

    >>> nice_ticks(0, 1)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    >>> nice_ticks(3.2, 3.2)
    [3.2]
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high < low:
        low, high = high, low
    if high - low <= 1e-12 * max(1.0, abs(high)):
        return [float(low)]
    raw = (high - low) / max(n - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first = math.ceil(low / step - 1e-9) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12) + 0.0)
        value += step
    return ticks


@dataclass(frozen=True)
class Axis:
    """One horizontal axis: its label and its ticks as ``(x, text)`` with ``x`` on the 0-100 drawing scale."""

    key: str
    label: str
    ticks: tuple[tuple[float, str], ...]
    span: tuple[float, float] | None = None   # the axis line (default: first to last tick)

    @property
    def line(self) -> tuple[float, float] | None:
        if self.span is not None:
            return self.span
        xs = [x for x, _ in self.ticks]
        return (min(xs), max(xs)) if xs else None


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def level_text(name: str, level: str) -> str:
    from nbrisk_core.clinical.schema import variable

    try:
        if variable(name).kind == "binary":
            return {"0": "no", "1": "yes"}.get(level, level)
    except KeyError:
        pass
    return level


def nomogram_axes(nomogram: Nomogram) -> list[Axis]:
    """Every axis of the nomogram, top to bottom."""
    ppu = nomogram.points_per_lp
    total_max = nomogram.max_total_points
    stretch = MAX_POINTS / total_max if total_max > 0 else 1.0
    axes = [Axis("points", "Points", tuple((v, _fmt(v)) for v in nice_ticks(0, MAX_POINTS, 11)))]
    for p in nomogram.predictors:
        low = p.contribution_range()[0]
        if p.kind == "numeric":
            beta = p.coefficients[0]
            ticks = tuple(((beta * v - low) * ppu, _fmt(v)) for v in nice_ticks(p.low, p.high, 8))
        else:
            ticks = tuple(((c - low) * ppu, level_text(p.name, lvl)) for lvl, c in p.level_contributions().items())
        label = p.label + (f" ({p.unit})" if p.unit else "")
        high = p.contribution_range()[1]
        axes.append(Axis(p.name, label, ticks, (0.0, (high - low) * ppu)))
    axes.append(Axis("total_points", "Total points",
                     tuple((v * stretch, _fmt(v)) for v in nice_ticks(0, total_max, 9)), (0.0, MAX_POINTS)))
    lp_low, lp_high = float(nomogram.lp_from_points(0.0)), float(nomogram.lp_from_points(total_max))
    axes.append(Axis("linear_predictor", "Linear predictor (centred)",
                     tuple((float(nomogram.points_from_lp(v)) * stretch, _fmt(v))
                           for v in nice_ticks(lp_low, lp_high, 7)), (0.0, MAX_POINTS)))
    for t in nomogram.times_years:
        ticks = []
        for s in SURVIVAL_TICKS:
            tp = nomogram.total_points_for_survival(s, t)
            if math.isfinite(tp) and -1e-9 <= tp <= total_max + 1e-9:
                ticks.append((tp * stretch, _fmt(s)))
        axes.append(Axis(f"survival_{t:g}", f"{t:g}-year survival", tuple(ticks)))
    return axes


def patient_marks(nomogram: Nomogram, row) -> dict[str, float]:
    """``{axis key: x}`` of one patient on the drawing scale (points per predictor, total, lp, survival)."""
    points = nomogram.points(row)
    total = sum(points.values())
    stretch = MAX_POINTS / nomogram.max_total_points
    marks = dict(points)
    for key in ["total_points", "linear_predictor", *[f"survival_{t:g}" for t in nomogram.times_years]]:
        marks[key] = total * stretch
    return marks


def nomogram_matplotlib(nomogram: Nomogram, row=None, *, title: str | None = None):
    """The static nomogram (matplotlib ``Figure``; ``row``: a patient to mark in red)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    axes = nomogram_axes(nomogram)
    marks = patient_marks(nomogram, row) if row is not None else {}
    fig = Figure(figsize=(9, 0.55 * len(axes) + 1.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for i, axis in enumerate(axes):
        y = -i
        if axis.line:
            ax.plot(list(axis.line), [y, y], color="black", lw=0.8)
        previous = -math.inf
        for x, text in sorted(axis.ticks):
            below = x - previous < 4   # a label too close to the one before goes under the line
            ax.plot([x, x], [y, y + (-0.12 if below else 0.12)], color="black", lw=0.8)
            ax.text(x, y - 0.16 if below else y + 0.16, text, ha="center", va="top" if below else "bottom",
                    fontsize=7)
            previous = previous if below else x
        ax.text(-3, y, axis.label, ha="right", va="center", fontsize=8)
        if axis.key in marks:
            ax.plot([marks[axis.key]], [y], marker="D", color="#c0392b", ms=5)
    ax.set_xlim(-45, 105)
    ax.set_ylim(-len(axes) + 0.5, 0.8)
    ax.axis("off")
    fig.suptitle(title or ("Nomogram: Cox model of " + ", ".join(p.label for p in nomogram.predictors)), fontsize=9)
    fig.text(0.01, 0.01, f"N = {nomogram.n}, {nomogram.events} deaths; lp centred at the training means; "
             f"survival from the Breslow baseline (time in {nomogram.time_unit})", fontsize=6, color="#555")
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    return fig


def nomogram_plotly(nomogram: Nomogram, rows: dict | None = None, *, title: str | None = None):
    """The dynamic nomogram (plotly ``Figure``); ``rows``: ``{name: patient row}`` marked on each axis
    (the first in red, a second, e.g. a scenario, in blue)."""
    import plotly.graph_objects as go

    axes = nomogram_axes(nomogram)
    fig = go.Figure()
    for i, axis in enumerate(axes):
        y = -i
        xs = [x for x, _ in axis.ticks]
        if axis.line:
            fig.add_trace(go.Scatter(x=list(axis.line), y=[y, y], mode="lines", line=dict(color="black", width=1),
                                     hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=xs, y=[y] * len(xs), mode="markers+text", text=[t for _, t in axis.ticks],
                                 textposition="top center", marker=dict(symbol="line-ns-open", size=8, color="black"),
                                 textfont=dict(size=10), hoverinfo="text", showlegend=False, name=axis.label))
    colours = ["#c0392b", "#2e86c1", "#27ae60"]
    for k, (name, row) in enumerate((rows or {}).items()):
        marks = patient_marks(nomogram, row)
        points = nomogram.points(row)
        total = sum(points.values())
        lp = float(nomogram.lp_from_points(total))
        survival = nomogram.survival_from_points(total)[0]
        ys, xs, texts = [], [], []
        for i, axis in enumerate(axes):
            if axis.key not in marks:
                continue
            ys.append(-i)
            xs.append(marks[axis.key])
            if axis.key in points:
                texts.append(f"{axis.label}: {points[axis.key]:.1f} points")
            elif axis.key == "total_points":
                texts.append(f"total points {total:.1f}")
            elif axis.key == "linear_predictor":
                texts.append(f"lp {lp:.3f}")
            else:
                j = [f"survival_{t:g}" for t in nomogram.times_years].index(axis.key)
                texts.append(f"S({nomogram.times_years[j]:g} y) = {survival[j]:.3f}")
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=name, text=texts, hoverinfo="text+name",
                                 marker=dict(symbol="diamond", size=11, color=colours[k % len(colours)],
                                             opacity=0.85)))
    fig.update_layout(
        title=title or "Nomogram", template="plotly_white", height=70 * len(axes) + 120,
        xaxis=dict(visible=False, range=[-2, 104]),
        yaxis=dict(tickvals=[-i for i in range(len(axes))], ticktext=[a.label for a in axes], showgrid=False,
                   zeroline=False, range=[-len(axes) + 0.5, 0.7]),
        legend=dict(orientation="h", y=-0.02), margin=dict(l=10, r=10, t=50, b=30))
    return fig


def scenario_survival_figure(nomogram: Nomogram, rows: dict):
    """Survival curves of several rows (patient, scenario) from the nomogram's Cox model (plotly)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    colours = ["#c0392b", "#2e86c1", "#27ae60"]
    years = nomogram.days_per_year
    for k, (name, row) in enumerate(rows.items()):
        times, survival = nomogram.survival_curve(row)
        fig.add_trace(go.Scatter(x=times / years, y=survival, mode="lines", line=dict(shape="hv",
                                 color=colours[k % len(colours)]), name=name))
    for t in nomogram.times_years:
        fig.add_vline(x=t, line=dict(color="#999", dash="dot", width=1))
    fig.update_layout(template="plotly_white", xaxis_title="years", yaxis_title="overall survival",
                      yaxis=dict(range=[0, 1.02]), title="Predicted survival (nomogram's Cox model)")
    return fig


def survival_difference(nomogram: Nomogram, patient, scenario) -> list[dict]:
    """``[{years, patient, scenario, difference}]`` at the nomogram's times (scenario - patient)."""
    a = nomogram.survival(patient).iloc[0].to_numpy()
    b = nomogram.survival(scenario).iloc[0].to_numpy()
    return [{"years": t, "patient": float(x), "scenario": float(y), "difference": float(y - x)}
            for t, x, y in zip(nomogram.times_years, a, b)]


__all__ = ["Axis", "nomogram_axes", "nomogram_matplotlib", "nomogram_plotly", "patient_marks",
           "scenario_survival_figure", "survival_difference"]

