"""The points nomogram of a Cox model of the MLRS plus clinical variables (rms ``nomogram()`` / DynNom layout).

Definition (what :func:`fit_nomogram` fits and :class:`Nomogram` computes):

- **Cox model**: ``h(t | x) = h0(t) exp(beta . x)``, fitted by scikit-survival's
  ``CoxPHSurvivalAnalysis(ties="efron", alpha=0)`` on the design (numeric variables in their own units;
  a categorical variable one-hot against its **reference level**, which scores 0). The design is
  standardised for the Newton-Raphson fit and the coefficients are transformed back to the raw units
  (exact: ``beta_raw = beta_std / sd``); the tests check them against lifelines' ``CoxPHFitter`` (Efron).
- **Centring**: the linear predictor is centred at the training means of the design columns,
  ``lp = beta . (x - mean)`` (rms ``predict(type="lp")``, lifelines ``predict_log_partial_hazard``), and the
  baseline survival ``S0(t)`` is the Breslow estimate at those means, so ``S(t | x) = S0(t) ** exp(lp)``.
  (The uncentred ``beta . x`` and sksurv's uncentred baseline give the same ``S(t | x)``.)
- **Points**: predictor ``k`` contributes ``c_k(x) = beta_k . x_k`` (a categorical one: its level's
  coefficient, 0 for the reference). Over the training range (numeric: min-max of the training values;
  categorical: the levels seen in training) ``c_k`` spans ``[min_k, max_k]``; the predictor with the widest
  span ``R = max_k - min_k`` gets 0-100 points, so ``points_per_lp = 100 / R`` and
  ``points_k(x) = (c_k(x) - min_k) * points_per_lp`` (values outside the training range extrapolate
  linearly and are flagged by :meth:`Nomogram.outside_range`).
- **Total points -> lp**: ``lp = total_points / points_per_lp + lp_at_zero_points`` with
  ``lp_at_zero_points = sum_k min_k - beta . mean``; survival at ``t`` from the total points:
  ``S0(t) ** exp(lp)``.
- **Times**: the cohort's ``os_days`` is in **days**; ``times`` are given in years and converted with
  365.25 days per year (:data:`DAYS_PER_YEAR`). ``S0`` is a step function over the training event times;
  after the last event time it stays at its last value.

Typical use (the call sequence ``nbrisk benchmark``, ``nbrisk prognosis fit`` and, at merge time,
``nbrisk compare`` run)::

    from nbrisk_core.prognosis.nomogram import nomogram_for_cohort, write_nomogram
    nomo = nomogram_for_cohort("data/demo", scores)   # scores: patient_id, mlrs[, cohort "train"/"test"]
    nomo.points(row); nomo.total_points(rows); nomo.linear_predictor(rows); nomo.survival(rows)
    write_nomogram(out_dir, nomo)                     # nomogram.json (+ nomogram.png / .pdf)

or, from a fitted :class:`~nbrisk_core.prognosis.pipeline.PrognosisPipeline`,
``nomogram_for_pipeline(pipeline, clinical)``. No Streamlit here; drawings are in
:mod:`nbrisk_core.prognosis.nomogram_plots`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from nbrisk_core.errors import InputError
from nbrisk_core.jsonable import json_default
from nbrisk_core.prognosis.nomogram_plots import MAX_POINTS, SURVIVAL_TICKS, nice_ticks

#: ``kind`` of ``nomogram.json`` and its layout version.
NOMOGRAM_KIND = "nbrisk-nomogram"
FORMAT_VERSION = 1
NOMOGRAM_FILE = "nomogram.json"
DAYS_PER_YEAR = 365.25
#: The score column of a nomogram built on a prognosis pipeline.
MLRS = "mlrs"
#: Default clinical variables next to the MLRS: the clinical variables that passed the paper's Cox
#: screening (method.md section 6: MYCN amplification, NSE, risk stratification, CA153, CA125) and are
#: never missing (required by the schema), so every patient has a complete row without imputation.
#: The partly missing labs (NSE, CA153, CA125) are left out: a nomogram needs entered values.
DEFAULT_CLINICAL: tuple[str, ...] = ("mycn_amplified", "risk_group")


def available_covariates(clinical: pd.DataFrame) -> list[str]:
    """The :data:`DEFAULT_CLINICAL` variables that ``clinical`` has and that vary (more than one value)."""
    return [c for c in DEFAULT_CLINICAL if c in clinical.columns and clinical[c].nunique(dropna=True) > 1]


def as_level(value) -> str | None:
    """A categorical value as its level string (``1``, ``1.0`` and ``"1"`` are the level ``"1"``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Predictor:
    """One nomogram axis: a numeric variable (one coefficient) or a categorical one (one per non-reference level).

    ``levels`` lists every level seen in training, the reference first; ``coefficients`` has one entry per
    design column (numeric: 1; categorical: ``len(levels) - 1``), ``means`` their training means.
    """

    name: str
    label: str
    kind: str                       # "numeric" or "categorical"
    coefficients: tuple[float, ...]
    means: tuple[float, ...]
    low: float | None = None        # numeric: training range
    high: float | None = None
    levels: tuple[str, ...] = ()    # categorical: reference first
    unit: str = ""

    @property
    def reference(self) -> str | None:
        return self.levels[0] if self.levels else None

    @property
    def columns(self) -> tuple[str, ...]:
        """Names of the design columns (``name`` or ``name=level`` per non-reference level)."""
        if self.kind == "numeric":
            return (self.name,)
        return tuple(f"{self.name}={level}" for level in self.levels[1:])

    def level_contributions(self) -> dict[str, float]:
        """Categorical: ``beta . x`` of each level (0 for the reference)."""
        return {self.levels[0]: 0.0, **{lvl: float(b) for lvl, b in zip(self.levels[1:], self.coefficients)}}

    def contribution_range(self) -> tuple[float, float]:
        """``(min_k, max_k)`` of ``beta . x`` over the training range / levels."""
        if self.kind == "numeric":
            ends = (self.coefficients[0] * self.low, self.coefficients[0] * self.high)
            return float(min(ends)), float(max(ends))
        values = self.level_contributions().values()
        return float(min(values)), float(max(values))

    def design(self, values: Sequence) -> np.ndarray:
        """Design columns of ``values`` (n x len(columns)); InputError for a missing value or an unknown level."""
        values = list(values)
        if self.kind == "numeric":
            out = np.empty((len(values), 1))
            for i, value in enumerate(values):
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    number = float("nan")
                if not math.isfinite(number):
                    raise InputError(f"nomogram: {self.name} = {value!r}: expected a finite number "
                                     f"(training range {self.low:g}-{self.high:g})", source=self.name)
                out[i, 0] = number
            return out
        out = np.zeros((len(values), len(self.levels) - 1))
        for i, value in enumerate(values):
            level = as_level(value)
            if level not in self.levels:
                raise InputError(f"nomogram: {self.name} = {value!r}: expected one of the levels "
                                 f"{', '.join(self.levels)} seen in training", source=self.name)
            if level != self.levels[0]:
                out[i, self.levels.index(level) - 1] = 1.0
        return out

    def contribution(self, values: Sequence) -> np.ndarray:
        """``beta_k . x_k`` (uncentred) per value."""
        return self.design(values) @ np.asarray(self.coefficients, dtype=float)

    def to_dict(self, points_per_lp: float) -> dict:
        low, high = self.contribution_range()
        out: dict[str, Any] = {"name": self.name, "label": self.label, "kind": self.kind, "unit": self.unit,
                               "columns": list(self.columns), "coefficients": list(self.coefficients),
                               "means": list(self.means), "min_contribution": low, "max_contribution": high,
                               "max_points": (high - low) * points_per_lp}
        if self.kind == "numeric":
            beta = self.coefficients[0]
            out.update({"training_range": [self.low, self.high], "points_per_unit": beta * points_per_lp,
                        # points(x) = points_per_unit * x + points_at_zero (linear, so a redraw needs two numbers)
                        "points_at_zero": -low * points_per_lp,
                        "ticks": [{"value": v, "points": (beta * v - low) * points_per_lp}
                                  for v in nice_ticks(self.low, self.high)]})
        else:
            out.update({"reference": self.reference, "levels": list(self.levels),
                        "points": {lvl: (c - low) * points_per_lp for lvl, c in self.level_contributions().items()}})
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> "Predictor":
        kind = d["kind"]
        if kind not in ("numeric", "categorical"):
            raise InputError(f"nomogram.json: predictor {d.get('name')!r}: kind {kind!r}, expected numeric "
                             "or categorical")
        low, high = (d["training_range"] if kind == "numeric" else (None, None))
        return cls(name=d["name"], label=d.get("label", d["name"]), kind=kind,
                   coefficients=tuple(float(b) for b in d["coefficients"]),
                   means=tuple(float(m) for m in d["means"]), low=None if low is None else float(low),
                   high=None if high is None else float(high), levels=tuple(d.get("levels", ())),
                   unit=d.get("unit", ""))


@dataclass(frozen=True)
class Nomogram:
    """A fitted points nomogram (see the module docstring for every formula).

    ``baseline_time`` / ``baseline_survival``: the Breslow ``S0`` at the training means, at each training
    event time (a step function, 1 before the first event). ``times_years`` are the nomogram's survival
    axes; ``days_per_year`` converts them to the cohort's time unit (``time_unit``).
    """

    predictors: tuple[Predictor, ...]
    points_per_lp: float
    baseline_time: np.ndarray
    baseline_survival: np.ndarray
    times_years: tuple[float, ...] = (1.0, 3.0, 5.0)
    time_unit: str = "days"
    days_per_year: float = DAYS_PER_YEAR
    duration_col: str = "time"
    event_col: str = "event"
    n: int = 0
    events: int = 0
    max_follow_up: float = float("nan")
    cohort: dict = field(default_factory=dict)
    fit: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ the Cox model
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.predictors)

    @property
    def coefficients(self) -> pd.Series:
        """Coefficients per design column (raw units)."""
        return pd.Series([b for p in self.predictors for b in p.coefficients],
                         index=[c for p in self.predictors for c in p.columns], dtype=float)

    @property
    def centre(self) -> float:
        """``beta . mean``: the uncentred lp of the training mean covariate vector."""
        return float(sum(b * m for p in self.predictors for b, m in zip(p.coefficients, p.means)))

    @property
    def lp_at_zero_points(self) -> float:
        return float(sum(p.contribution_range()[0] for p in self.predictors) - self.centre)

    def _rows(self, rows) -> pd.DataFrame:
        if isinstance(rows, pd.Series):
            rows = rows.to_frame().T
        elif isinstance(rows, Mapping):
            rows = pd.DataFrame([dict(rows)])
        elif not isinstance(rows, pd.DataFrame):
            rows = pd.DataFrame(list(rows))
        missing = [n for n in self.names if n not in rows.columns]
        if missing:
            raise InputError(f"nomogram: missing value(s) for {', '.join(missing)} (the nomogram's predictors "
                             f"are {', '.join(self.names)})")
        return rows

    def design(self, rows) -> pd.DataFrame:
        rows = self._rows(rows)
        blocks = [pd.DataFrame(p.design(rows[p.name].tolist()), columns=list(p.columns), index=rows.index)
                  for p in self.predictors]
        return pd.concat(blocks, axis=1)

    def linear_predictor(self, rows, *, centred: bool = True) -> np.ndarray:
        """``beta . (x - mean)`` (``centred=False``: ``beta . x``) from the coefficients directly."""
        lp = self.design(rows).to_numpy() @ self.coefficients.to_numpy()
        return lp - self.centre if centred else lp

    # ------------------------------------------------------------------ points
    def points_table(self, rows) -> pd.DataFrame:
        """Points of each predictor (columns) per row."""
        rows = self._rows(rows)
        out = {}
        for p in self.predictors:
            low = p.contribution_range()[0]
            out[p.name] = (p.contribution(rows[p.name].tolist()) - low) * self.points_per_lp
        return pd.DataFrame(out, index=rows.index)

    def points(self, row) -> dict[str, float]:
        """``{predictor: points}`` of one patient."""
        table = self.points_table(row)
        if len(table) != 1:
            raise InputError(f"nomogram.points: expected one patient, got {len(table)} rows")
        return {k: float(v) for k, v in table.iloc[0].items()}

    def total_points(self, rows) -> np.ndarray:
        return self.points_table(rows).sum(axis=1).to_numpy(dtype=float)

    def lp_from_points(self, total_points) -> np.ndarray:
        """The centred linear predictor a total-points value stands for (the nomogram's bottom mapping)."""
        return np.asarray(total_points, dtype=float) / self.points_per_lp + self.lp_at_zero_points

    def points_from_lp(self, lp) -> np.ndarray:
        return (np.asarray(lp, dtype=float) - self.lp_at_zero_points) * self.points_per_lp

    @property
    def max_total_points(self) -> float:
        return float(sum((p.contribution_range()[1] - p.contribution_range()[0]) * self.points_per_lp
                         for p in self.predictors))

    def outside_range(self, row) -> list[str]:
        """The predictors of one patient outside the training range (their points are extrapolated)."""
        rows = self._rows(row)
        out = []
        for p in self.predictors:
            value = rows[p.name].iloc[0]
            if p.kind == "numeric":
                if float(value) < p.low or float(value) > p.high:
                    out.append(f"{p.label} = {float(value):g} outside the training range {p.low:g}-{p.high:g}")
        return out

    # ------------------------------------------------------------------ survival
    def _in_unit(self, times_years) -> np.ndarray:
        return np.asarray(times_years, dtype=float) * self.days_per_year

    def baseline_at(self, t) -> np.ndarray:
        """``S0(t)`` (at the training means) for times in the cohort's unit; 1 before the first event."""
        t = np.atleast_1d(np.asarray(t, dtype=float))
        index = np.searchsorted(self.baseline_time, t, side="right") - 1
        padded = np.concatenate([[1.0], self.baseline_survival])
        return padded[index + 1]

    def survival_from_points(self, total_points, times_years=None) -> np.ndarray:
        """``S(t)`` for total points (rows) at ``times_years`` (columns): ``S0(t) ** exp(lp)``."""
        times = self.times_years if times_years is None else times_years
        lp = np.atleast_1d(self.lp_from_points(total_points))
        s0 = self.baseline_at(self._in_unit(times))
        return s0[None, :] ** np.exp(lp)[:, None]

    def survival(self, rows, times_years=None) -> pd.DataFrame:
        """Survival at ``times_years`` (default the nomogram's 1/3/5 years) through the total points."""
        times = self.times_years if times_years is None else tuple(times_years)
        rows = self._rows(rows)
        values = self.survival_from_points(self.total_points(rows), times)
        return pd.DataFrame(values, index=rows.index, columns=[f"S({t:g} y)" for t in times])

    def survival_curve(self, row) -> tuple[np.ndarray, np.ndarray]:
        """``(time, S)`` of one patient over the training event times (time 0 included, S = 1)."""
        lp = float(self.lp_from_points(self.total_points(row))[0])
        times = np.concatenate([[0.0], self.baseline_time])
        return times, np.concatenate([[1.0], self.baseline_survival ** math.exp(lp)])

    def total_points_for_survival(self, survival: float, time_years: float) -> float:
        """Total points at which ``S(time) = survival`` (NaN when S0 at that time is 1 or 0)."""
        s0 = float(self.baseline_at(self._in_unit([time_years]))[0])
        if not 0.0 < s0 < 1.0 or not 0.0 < survival < 1.0:
            return float("nan")
        return float(self.points_from_lp(math.log(math.log(survival) / math.log(s0))))

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        ppu = self.points_per_lp
        s0 = {f"{t:g}": float(self.baseline_at(self._in_unit([t]))[0]) for t in self.times_years}
        survival_axes = []
        for t in self.times_years:
            ticks = [{"survival": s, "total_points": tp} for s in SURVIVAL_TICKS
                     for tp in [self.total_points_for_survival(s, t)]
                     if math.isfinite(tp) and -1e-9 <= tp <= self.max_total_points + 1e-9]
            survival_axes.append({"years": t, "time": t * self.days_per_year,
                                  "baseline_survival": s0[f"{t:g}"],
                                  "beyond_last_event": bool(t * self.days_per_year > self.baseline_time[-1])
                                  if len(self.baseline_time) else True,
                                  "ticks": ticks})
        lp_low, lp_high = float(self.lp_from_points(0.0)), float(self.lp_from_points(self.max_total_points))
        return {
            "kind": NOMOGRAM_KIND, "format_version": FORMAT_VERSION,
            "model": "Cox proportional hazards: h(t|x) = h0(t) exp(beta . x)",
            "fit": dict(self.fit),
            "centring": "lp = beta . (x - mean), mean = training means of the design columns; baseline_survival "
                        "is the Breslow S0(t) at those means; S(t|x) = S0(t) ** exp(lp)",
            "time_unit": self.time_unit, "days_per_year": self.days_per_year,
            "duration_col": self.duration_col, "event_col": self.event_col,
            "cohort": dict(self.cohort), "n": self.n, "events": self.events, "max_follow_up": self.max_follow_up,
            "coefficients": {k: float(v) for k, v in self.coefficients.items()},
            "reference_levels": {p.name: p.reference for p in self.predictors if p.kind == "categorical"},
            "points": {"max_points": MAX_POINTS, "points_per_lp": ppu,
                       "rule": "points_k(x) = (beta_k . x_k - min_contribution_k) * points_per_lp; the predictor "
                               "with the widest range of beta . x over its training range spans 0-100"},
            "predictors": [p.to_dict(ppu) for p in self.predictors],
            "total_points": {"max": self.max_total_points,
                             "ticks": nice_ticks(0.0, self.max_total_points, 8)},
            "linear_predictor": {"lp_per_point": 1.0 / ppu, "lp_at_zero_points": self.lp_at_zero_points,
                                 "centre": self.centre,
                                 "rule": "lp = total_points * lp_per_point + lp_at_zero_points",
                                 "ticks": [{"lp": v, "total_points": float(self.points_from_lp(v))}
                                           for v in nice_ticks(lp_low, lp_high, 7)]},
            "survival": {"times_years": list(self.times_years), "baseline_survival": s0, "axes": survival_axes},
            "baseline_survival_curve": {"time": self.baseline_time.tolist(),
                                        "survival": self.baseline_survival.tolist()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, default=json_default)

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "nomogram.json") -> "Nomogram":
        if not isinstance(d, Mapping) or d.get("kind") != NOMOGRAM_KIND:
            raise InputError(f"{source}: not an NBRisk nomogram (kind = "
                             f"{d.get('kind') if isinstance(d, Mapping) else None!r}, expected {NOMOGRAM_KIND!r})",
                             source=source)
        if d.get("format_version") != FORMAT_VERSION:
            raise InputError(f"{source}: format_version = {d.get('format_version')!r}, this NBRisk reads "
                             f"{FORMAT_VERSION}", source=source)
        try:
            curve = d["baseline_survival_curve"]
            return cls(predictors=tuple(Predictor.from_dict(p) for p in d["predictors"]),
                       points_per_lp=float(d["points"]["points_per_lp"]),
                       baseline_time=np.asarray(curve["time"], dtype=float),
                       baseline_survival=np.asarray(curve["survival"], dtype=float),
                       times_years=tuple(float(t) for t in d["survival"]["times_years"]),
                       time_unit=d.get("time_unit", "days"), days_per_year=float(d.get("days_per_year", DAYS_PER_YEAR)),
                       duration_col=d.get("duration_col", "time"), event_col=d.get("event_col", "event"),
                       n=int(d.get("n", 0)), events=int(d.get("events", 0)),
                       max_follow_up=float(d.get("max_follow_up") if d.get("max_follow_up") is not None else "nan"),
                       cohort=dict(d.get("cohort") or {}), fit=dict(d.get("fit") or {}))
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"{source}: incomplete nomogram ({type(error).__name__}: {error})",
                             source=source) from None

    @classmethod
    def from_json(cls, text: str, source: str = "nomogram.json") -> "Nomogram":
        try:
            data = json.loads(text)
        except ValueError as error:
            raise InputError(f"{source}: not valid JSON ({error})", source=source) from None
        return cls.from_dict(data, source)


# --------------------------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------------------------


def _schema(name: str):
    from nbrisk_core.clinical.schema import variable

    try:
        return variable(name)
    except KeyError:
        return None


def _predictor_kind(name: str, column: pd.Series) -> str:
    spec = _schema(name)
    if spec is not None:
        return "numeric" if spec.kind == "numeric" else "categorical"
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        return "categorical"
    return "numeric"


def _levels(name: str, column: pd.Series, reference: str | None) -> tuple[str, ...]:
    seen = {as_level(v) for v in column}
    spec = _schema(name)
    if spec is not None and spec.kind == "categorical":
        order = [c for c in spec.categories if c in seen] + sorted(seen - set(spec.categories))
    elif spec is not None and spec.kind == "binary":
        order = [c for c in ("0", "1") if c in seen] + sorted(seen - {"0", "1"})
    else:
        order = sorted(seen)
    if reference is not None:
        reference = as_level(reference)
        if reference not in order:
            raise InputError(f"nomogram: reference level {reference!r} of {name} is not among the training "
                             f"levels {', '.join(order)}", source=name)
        order = [reference] + [lvl for lvl in order if lvl != reference]
    if len(order) < 2:
        raise InputError(f"nomogram: {name} has a single level ({order[0]!r}) in the training rows: it cannot "
                         "be a predictor", source=name)
    return tuple(order)


def _label(name: str) -> tuple[str, str]:
    if name == MLRS:
        return "MLRS", ""
    spec = _schema(name)
    return (spec.label, spec.unit) if spec is not None else (name, "")


def breslow_baseline(time, event, lp) -> tuple[np.ndarray, np.ndarray]:
    """Breslow ``S0`` at the lp's zero: ``(event times, S0)``; ``H0(t) = sum_{t_i <= t} d_i / sum_{T_j >= t_i} exp(lp_j)``."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    risk = np.exp(np.asarray(lp, dtype=float))
    order = np.argsort(time, kind="stable")
    time, event, risk = time[order], event[order], risk[order]
    at_risk = np.cumsum(risk[::-1])[::-1]            # sum over T_j >= T_i (ties: first of the tied run)
    unique, first = np.unique(time, return_index=True)
    deaths = np.add.reduceat(event.astype(float), first)
    keep = deaths > 0
    hazard = deaths[keep] / at_risk[first][keep]
    return unique[keep], np.exp(-np.cumsum(hazard))


def fit_nomogram(df: pd.DataFrame, duration_col: str, event_col: str, covariates: Sequence[str],
                 times: Iterable[float] = (1, 3, 5), *, reference: Mapping[str, Any] | None = None,
                 labels: Mapping[str, str] | None = None, time_unit: str = "days",
                 days_per_year: float = DAYS_PER_YEAR, cohort: Mapping | None = None) -> Nomogram:
    """Fit the Cox model of ``covariates`` on ``df`` (training rows) and build its points nomogram.

    Parameters
    ----------
    df : DataFrame
        One row per training patient: ``duration_col`` (in ``time_unit``), ``event_col`` (1 death, 0
        censored) and every covariate, complete (a missing value raises: impute before).
    covariates : sequence of str
        Numeric or categorical columns. A variable of the clinical schema takes its kind from it (binary
        and categorical ones are one-hot); others are categorical when not numeric. The reference level is
        the schema's first category (``0`` for binary variables), else the first in sorted order, unless
        ``reference`` names another.
    times : iterable of float
        Survival axes, in **years** (converted with ``days_per_year`` when ``time_unit`` is days).
    cohort : mapping, optional
        Provenance kept in the JSON (name, sha256, ...).
    """
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    covariates = list(covariates)
    if not covariates:
        raise InputError("nomogram: no covariates given")
    for column in (duration_col, event_col, *covariates):
        if column not in df.columns:
            raise InputError(f"nomogram: column {column!r} not in the table (columns: {', '.join(map(str, df.columns))})",
                             source=column)
    for column in covariates:
        n_missing = int(df[column].isna().sum())
        if n_missing:
            raise InputError(f"nomogram: {column} is missing for {n_missing} of {len(df)} training rows; "
                             "expected complete rows (impute or drop them before)", source=column)
    time = pd.to_numeric(df[duration_col], errors="coerce").to_numpy(dtype=float)
    event = pd.to_numeric(df[event_col], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(time)) or np.any(time < 0):
        raise InputError(f"nomogram: {duration_col} must be finite and >= 0", source=duration_col)
    if not np.all(np.isin(event, (0, 1))):
        raise InputError(f"nomogram: {event_col} must be 0 (censored) or 1 (death)", source=event_col)
    if event.sum() < 1:
        raise InputError(f"nomogram: no death in the {len(df)} training rows: a Cox model cannot be fitted")
    reference = dict(reference or {})
    labels = dict(labels or {})
    specs = []
    for name in covariates:
        kind = _predictor_kind(name, df[name])
        label, unit = _label(name)
        label = labels.get(name, label)
        if kind == "numeric":
            values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)
            if not np.all(np.isfinite(values)):
                raise InputError(f"nomogram: {name} has non-numeric values", source=name)
            if values.max() - values.min() <= 0:
                raise InputError(f"nomogram: {name} is constant ({values[0]:g}) in the training rows", source=name)
            specs.append(dict(name=name, label=label, unit=unit, kind=kind, low=float(values.min()),
                              high=float(values.max()), levels=()))
        else:
            specs.append(dict(name=name, label=label, unit=unit, kind=kind, low=None, high=None,
                              levels=_levels(name, df[name], reference.get(name))))
    # the design through the Predictor objects themselves (coefficients filled in after the fit)
    blocks = []
    for spec in specs:
        width = 1 if spec["kind"] == "numeric" else len(spec["levels"]) - 1
        probe = Predictor(coefficients=(0.0,) * width, means=(0.0,) * width, **spec)
        blocks.append(probe.design(df[spec["name"]].tolist()))
    X = np.hstack(blocks)
    mean, sd = X.mean(axis=0), X.std(axis=0)
    if np.any(sd <= 0):
        raise InputError("nomogram: a design column is constant in the training rows")
    y = np.empty(len(df), dtype=[("event", bool), ("time", float)])
    y["event"], y["time"] = event.astype(bool), time
    model = CoxPHSurvivalAnalysis(alpha=0, ties="efron", n_iter=200, tol=1e-13)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit((X - mean) / sd, y)
    problems = [str(w.message) for w in caught if "converge" in str(w.message).lower()
                or "overflow" in str(w.message).lower()]
    beta = np.asarray(model.coef_, dtype=float) / sd
    predictors, k = [], 0
    for spec, block in zip(specs, blocks):
        width = block.shape[1]
        predictors.append(Predictor(coefficients=tuple(float(b) for b in beta[k:k + width]),
                                    means=tuple(float(m) for m in mean[k:k + width]), **spec))
        k += width
    widest = max(p.contribution_range()[1] - p.contribution_range()[0] for p in predictors)
    if not widest > 0:
        raise InputError("nomogram: every coefficient is 0; no points scale can be drawn")
    lp = X @ beta - float(mean @ beta)
    base_time, base_survival = breslow_baseline(time, event, lp)
    fit = {"library": "scikit-survival CoxPHSurvivalAnalysis", "ties": "efron", "alpha": 0,
           "design": "standardised for the fit, coefficients transformed back to raw units",
           "baseline": "Breslow", "n_iter": int(getattr(model, "n_iter_", 0) or 0) or None}
    if problems:
        fit["warnings"] = problems
    return Nomogram(predictors=tuple(predictors), points_per_lp=MAX_POINTS / widest, baseline_time=base_time,
                    baseline_survival=base_survival, times_years=tuple(float(t) for t in times),
                    time_unit=time_unit, days_per_year=float(days_per_year), duration_col=duration_col,
                    event_col=event_col, n=int(len(df)), events=int(event.sum()),
                    max_follow_up=float(time.max()), cohort=dict(cohort or {}), fit=fit)


# --------------------------------------------------------------------------------------------
# from a cohort / a prognosis pipeline
# --------------------------------------------------------------------------------------------


def nomogram_table(scores: pd.DataFrame, clinical: pd.DataFrame, covariates: Sequence[str] = DEFAULT_CLINICAL,
                   score_col: str = MLRS) -> pd.DataFrame:
    """``scores`` (patient_id, ``score_col``, time, event[, cohort]) joined to the clinical columns it needs.

    ``time``/``event`` come from ``scores`` when present, else from the clinical table's ``os_days``/``os_event``.
    """
    clinical = clinical.copy()
    clinical["patient_id"] = clinical["patient_id"].astype(str)
    scores = scores.copy()
    scores["patient_id"] = scores["patient_id"].astype(str)
    wanted = [c for c in covariates if c != score_col]
    missing = [c for c in wanted if c not in clinical.columns]
    if missing:
        raise InputError(f"nomogram: clinical table lacks {', '.join(missing)}")
    extra = [c for c in ("os_days", "os_event") if c in clinical.columns and not {"time", "event"} <= set(scores)]
    table = scores.merge(clinical[["patient_id", *wanted, *extra]], on="patient_id", how="left")
    if "time" not in table:
        table = table.rename(columns={"os_days": "time", "os_event": "event"})
    return table


def nomogram_for_cohort(cohort_dir, scores: pd.DataFrame, covariates: Sequence[str] = DEFAULT_CLINICAL, *,
                        train_ids: Iterable[str] | None = None, score_col: str = MLRS,
                        times: Iterable[float] = (1, 3, 5)) -> Nomogram:
    """The nomogram of ``score_col`` + ``covariates`` on a cohort directory (for ``nbrisk compare``).

    ``scores``: patient_id and ``score_col`` (and ``cohort`` = train/test, or pass ``train_ids``); the
    nomogram is fitted on the training patients only. Training rows with a missing covariate are left out
    (the count is in ``fit["dropped_incomplete"]``).
    """
    from nbrisk_core.cohort.format import cohort_hash
    from nbrisk_core.prognosis.pipeline import read_cohort

    clinical, _, meta = read_cohort(cohort_dir)
    table = nomogram_table(scores, clinical, covariates, score_col)
    if train_ids is not None:
        train = table["patient_id"].isin({str(i) for i in train_ids})
    elif "cohort" in table:
        train = table["cohort"] == "train"
    else:
        train = pd.Series(True, index=table.index)
    cohort = {"name": (meta or {}).get("name"), "synthetic": bool((meta or {}).get("synthetic", False)),
              "sha256": cohort_hash(Path(cohort_dir)), "path": str(cohort_dir)}
    return _fit_on(table[train], [score_col, *[c for c in covariates if c != score_col]], times, cohort)


def nomogram_for_pipeline(pipeline, clinical: pd.DataFrame, covariates: Sequence[str] = DEFAULT_CLINICAL, *,
                          cohort_dir=None, times: Iterable[float] = (1, 3, 5)) -> Nomogram:
    """The nomogram of a fitted prognosis pipeline's MLRS + ``covariates``, on its training patients.

    ``clinical``: the cohort's clinical table (raw values, schema units), e.g. from
    :func:`~nbrisk_core.prognosis.pipeline.read_cohort`.
    """
    table = nomogram_table(pipeline.patients_, clinical, covariates)
    config = getattr(pipeline, "config_", {}) or {}
    cohort = {"name": config.get("cohort_name"), "synthetic": config.get("synthetic"),
              "mlrs_model": getattr(pipeline, "selected_", None)}
    if cohort_dir is not None:
        from nbrisk_core.cohort.format import cohort_hash

        cohort.update(sha256=cohort_hash(Path(cohort_dir)), path=str(cohort_dir))
    if hasattr(pipeline, "fit_sha256"):
        cohort["pipeline_fit_sha256"] = pipeline.fit_sha256()
    return _fit_on(table[table["cohort"] == "train"], [MLRS, *[c for c in covariates if c != MLRS]], times, cohort)


def _fit_on(train: pd.DataFrame, covariates: list[str], times, cohort: dict) -> Nomogram:
    complete = train.dropna(subset=covariates)
    dropped = len(train) - len(complete)
    nomogram = fit_nomogram(complete, "time", "event", covariates, times, cohort=cohort)
    if dropped:
        nomogram.fit["dropped_incomplete"] = int(dropped)
    return nomogram


def patient_row(nomogram: Nomogram, mlrs: float | None, values: Mapping | None,
                imputed: Mapping | None = None) -> tuple[dict, list[str]]:
    """One patient's nomogram row from the MLRS and clinical values as entered (``{"value", "unit"}`` dicts
    are converted to the schema unit), completed by ``imputed`` values; returns ``(row, imputed names)``.

    Raises InputError naming a predictor that has neither an entered nor an imputed value.
    """
    from nbrisk_core.clinical.schema import canonical_number

    values, imputed = dict(values or {}), dict(imputed or {})
    row, used_imputed = {}, []
    for p in nomogram.predictors:
        if p.name == MLRS:
            value = mlrs
        elif p.name in values and values[p.name] is not None:
            value = values[p.name]
        elif p.name in imputed and imputed[p.name] is not None:
            value, _ = imputed[p.name], used_imputed.append(p.name)
        else:
            value = None
        if isinstance(value, dict) or (p.kind == "numeric" and value is not None):
            value = canonical_number(p.name, value)
        if value is None:
            raise InputError(f"nomogram: no value for {p.label} ({p.name}); enter it", source=p.name)
        row[p.name] = value
    return row, used_imputed


def write_nomogram(out_dir, nomogram: Nomogram, *, figures: bool = True) -> list[Path]:
    """Write ``nomogram.json`` (and, with ``figures``, ``nomogram.png`` and ``nomogram.pdf``) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / NOMOGRAM_FILE).write_text(nomogram.to_json() + "\n")
    written = [out / NOMOGRAM_FILE]
    if figures:
        from nbrisk_core.prognosis.nomogram_plots import nomogram_matplotlib

        fig = nomogram_matplotlib(nomogram)
        for suffix in ("png", "pdf"):
            fig.savefig(out / f"nomogram.{suffix}", dpi=150)
            written.append(out / f"nomogram.{suffix}")
    return written


def read_nomogram(path) -> Nomogram:
    """A ``nomogram.json`` (or a folder holding one) as a :class:`Nomogram`."""
    path = Path(path)
    if path.is_dir():
        path = path / NOMOGRAM_FILE
    if not path.is_file():
        raise InputError(f"{path}: nomogram file not found", source=str(path))
    return Nomogram.from_json(path.read_text(), source=str(path))
