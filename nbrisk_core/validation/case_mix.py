"""Case mix of a cohort and the comparison of two (development vs external).

Per clinical variable: the share missing and, for a measurement, median and quartiles, mean and SD;
for a binary or categorical variable, the share of each category among the known values.
Follow-up: patients, deaths, the median follow-up by the reverse Kaplan-Meier (censoring as the
event), and the mean and SD of the MLRS (Debray et al. 2015: a wider MLRS spread in the external
cohort means more heterogeneity, a shifted mean a different case mix).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nbrisk_core.clinical.schema import CLINICAL_VARIABLES, OUTCOME_COLUMNS


def _median_follow_up(time: np.ndarray, event: np.ndarray) -> float | None:
    from nbrisk_core.prognosis.metrics import kaplan_meier

    censored = event == 0
    if not censored.any():
        return None
    # reverse Kaplan-Meier: censoring is the "event" (the one KM of NBRisk)
    km = kaplan_meier(censored.astype(int), time, ci=False)
    steps, survival = km["time"].to_numpy(), km["survival"].to_numpy()
    below = np.nonzero(survival <= 0.5)[0]
    return float(steps[below[0]]) if below.size else None


def describe_cohort(clinical: pd.DataFrame, mlrs=None) -> dict:
    """Case-mix summary of a (raw, validated) clinical table with ``os_days``, ``os_event``."""
    out: dict = {"n": int(len(clinical)), "variables": {}}
    for spec in CLINICAL_VARIABLES:
        if spec.name not in clinical.columns:
            out["variables"][spec.name] = {"kind": spec.kind, "missing": 1.0, "absent": True}
            continue
        column = clinical[spec.name]
        entry: dict = {"kind": spec.kind, "missing": float(column.isna().mean())}
        known = column.dropna()
        if spec.kind == "numeric":
            values = pd.to_numeric(known, errors="coerce").dropna().to_numpy(dtype=float)
            if values.size:
                q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
                entry.update(median=float(median), q1=float(q1), q3=float(q3), mean=float(values.mean()),
                             sd=float(values.std(ddof=1)) if values.size > 1 else 0.0)
        else:
            labels = known.map(lambda v: str(int(v)) if isinstance(v, (int, float)) and float(v).is_integer()
                               else str(v))
            shares = labels.value_counts(normalize=True)
            entry["categories"] = {str(k): float(v) for k, v in shares.sort_index().items()}
        out["variables"][spec.name] = entry
    time_col, event_col = OUTCOME_COLUMNS
    time = clinical[time_col].to_numpy(dtype=float)
    event = clinical[event_col].to_numpy(dtype=int)
    out["follow_up"] = {"events": int(event.sum()), "event_rate": float(event.mean()) if len(event) else None,
                        "median_follow_up_days": _median_follow_up(time, event),
                        "max_follow_up_days": float(time.max()) if len(time) else None}
    if mlrs is not None:
        mlrs = np.asarray(mlrs, dtype=float)
        out["mlrs"] = {"mean": float(mlrs.mean()), "sd": float(mlrs.std(ddof=1)) if len(mlrs) > 1 else 0.0}
    return out


def standardised_difference(dev: dict, ext: dict) -> float | None:
    """Standardised mean difference of a measurement (pooled SD), None when not defined."""
    if "mean" not in dev or "mean" not in ext:
        return None
    pooled = np.sqrt((dev["sd"] ** 2 + ext["sd"] ** 2) / 2)
    return float((ext["mean"] - dev["mean"]) / pooled) if pooled > 0 else None


def compare_case_mix(development: dict | None, external: dict) -> pd.DataFrame:
    """One row per quantity: ``quantity, development, external, difference`` (text cells for the report)."""
    rows = []

    def fmt(entry):
        if entry is None:
            return "—"
        if entry.get("absent"):
            return "not recorded"
        if "median" in entry:
            return (f"{entry['median']:.4g} ({entry['q1']:.4g}–{entry['q3']:.4g}); "
                    f"missing {entry['missing']:.0%}")
        if "categories" in entry:
            shares = ", ".join(f"{k} {v:.0%}" for k, v in entry["categories"].items())
            return f"{shares}; missing {entry['missing']:.0%}"
        return f"missing {entry['missing']:.0%}"

    dev_vars = (development or {}).get("variables", {})
    for name, ext_entry in external["variables"].items():
        dev_entry = dev_vars.get(name)
        smd = standardised_difference(dev_entry or {}, ext_entry)
        rows.append({"quantity": name, "development": fmt(dev_entry), "external": fmt(ext_entry),
                     "difference": "" if smd is None else f"SMD {smd:+.2f}"})
    dev_fu = (development or {}).get("follow_up", {})
    ext_fu = external["follow_up"]
    rows.append({"quantity": "patients", "development": str((development or {}).get("n", "—")),
                 "external": str(external["n"]), "difference": ""})
    rows.append({"quantity": "deaths (share)",
                 "development": (f"{dev_fu['events']} ({dev_fu['event_rate']:.0%})" if dev_fu else "—"),
                 "external": f"{ext_fu['events']} ({ext_fu['event_rate']:.0%})", "difference": ""})
    for key, label in (("median_follow_up_days", "median follow-up, days (reverse KM)"),
                       ("max_follow_up_days", "longest follow-up, days")):
        dev_value, ext_value = dev_fu.get(key), ext_fu.get(key)
        rows.append({"quantity": label, "development": "—" if dev_value is None else f"{dev_value:.0f}",
                     "external": "—" if ext_value is None else f"{ext_value:.0f}", "difference": ""})
    if development and "mlrs" in development and "mlrs" in external:
        d, e = development["mlrs"], external["mlrs"]
        rows.append({"quantity": "MLRS mean (SD)", "development": f"{d['mean']:.3f} ({d['sd']:.3f})",
                     "external": f"{e['mean']:.3f} ({e['sd']:.3f})",
                     "difference": f"SD ratio {e['sd'] / d['sd']:.2f}" if d["sd"] > 0 else ""})
    return pd.DataFrame(rows, columns=["quantity", "development", "external", "difference"])
