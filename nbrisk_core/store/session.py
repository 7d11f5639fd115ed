"""Turn the dashboard's working objects into a :class:`CaseRecord`, and a record back into them.

The Case, Risk and Prognosis pages keep their results as dicts or dataclasses; this module reads
the fields a saved case needs (chosen slice per phase, HR probability and class, model SHA-256,
MLRS, percentile and group, clinical values as entered and as imputed) by looking them up under
the names listed in :data:`FIELD_NAMES` (data, not ``if`` chains), and keeps the objects themselves
so that reopening a case restores the pages exactly. Nothing here imports Streamlit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from nbrisk_core.store import codec
from nbrisk_core.store.cases import CaseRecord, PredictionRecord, SliceRecord
from nbrisk_core.store.models import PHASES

#: ``SliceRecord.meta["units"]`` of a slice that is an 8-bit grey image rather than HU
GREY_UNITS = "grey8"

#: logical names of the working objects, as stored in ``CaseRecord.session``
SESSION_OBJECTS: tuple[str, ...] = ("case", "chosen_slices", "risk_result", "clinical_values",
                                    "prognosis_result")

#: field -> the attribute / key names it may have in the pages' objects, in order of preference
FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "hu": ("hu", "slice_hu", "hu_slice", "array", "pixels", "image"),
    "slice_index": ("slice_index", "index", "max_area_slice", "z_index", "idx"),
    "slice_position_mm": ("slice_position_mm", "position_mm", "z_mm", "slice_location", "z", "position"),
    "p_high_risk": ("p_high_risk", "hr_probability", "probability_hr", "p_hr", "prob_hr", "probability"),
    "risk_class": ("risk_class", "predicted_class", "prediction", "label", "class_", "klass"),
    "model_sha256": ("model_sha256", "sha256", "model_sha", "weights_sha256", "pipeline_sha256"),
    "model_name": ("model_name", "model", "name", "variant"),
    "input_sha256": ("input_sha256", "input_hash", "inputs_sha256"),
    "gradcam": ("gradcam", "grad_cam", "cam", "cams", "heatmap", "heatmaps", "saliency"),
    "mlrs": ("mlrs", "risk_score", "score"),
    "mlrs_percentile": ("mlrs_percentile", "percentile", "cohort_percentile"),
    "mlrs_group": ("mlrs_group", "group", "risk_group_mlrs"),
    "imputed": ("clinical_imputed", "imputed_values", "imputed", "values_imputed", "completed"),
    "imputed_flags": ("imputed_flags", "was_imputed", "imputed_mask", "imputed_names", "imputed_variables"),
    "entered": ("clinical_entered", "entered", "values_entered", "as_entered"),
    "age_months": ("age_months", "age"),
    "sex": ("sex", "PatientSex"),
    "label": ("case_label", "label", "patient_id", "pseudonym", "case_id"),
    "survival_curve": ("survival_curve", "survival", "curve", "survival_function"),
    "times": ("times", "time", "t", "days", "time_days"),
    "survival_values": ("survival", "s", "probability", "values", "surv"),
    "model_card": ("model_card", "card"),
}


def fields_of(obj: Any) -> dict:
    """A shallow dict view of a dict, a dataclass or an object's public attributes."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if hasattr(obj, "__dict__"):
        return {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    return {}


def lookup(obj: Any, field: str, default=None):
    """The first value found in ``obj`` under one of ``FIELD_NAMES[field]``."""
    values = fields_of(obj)
    for name in FIELD_NAMES[field]:
        if name in values and values[name] is not None:
            return values[name]
        if not isinstance(obj, Mapping) and hasattr(obj, name) and name not in values:
            try:
                value = getattr(obj, name)
            except Exception:  # noqa: BLE001 - a property that cannot be computed is just absent
                continue
            if value is not None and not callable(value):
                return value
    return default


def _phase_key(key) -> str | None:
    text = str(key).strip().upper()
    aliases = {"NC": "NC", "PLAIN": "NC", "NONCONTRAST": "NC", "ART": "ART", "ARTERIAL": "ART", "A": "ART",
               "PV": "PV", "PORTAL": "PV", "PORTALVENOUS": "PV", "VENOUS": "PV", "V": "PV"}
    return aliases.get(text.replace("_", "").replace("-", "").replace(" ", ""))


def _float_or_none(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def slices_from(chosen_slices: Any) -> dict[str, SliceRecord]:
    """Chosen slices by phase, from ``{phase: ndarray | dict | object}`` (phase names normalised)."""
    out: dict[str, SliceRecord] = {}
    for key, value in fields_of(chosen_slices).items():
        phase = _phase_key(key)
        if phase is None or value is None:
            continue
        units = "HU"
        if isinstance(value, np.ndarray):
            hu, info = value, {}
        else:
            info = fields_of(value)
            hu = lookup(value, "hu")
            if hu is None and info.get("grey") is not None:
                # a 2-D image upload (BMP/PNG export): 8-bit grey, not Hounsfield units
                hu, units = info["grey"], GREY_UNITS
        if hu is None:
            continue
        hu = np.asarray(hu)
        if hu.ndim != 2:
            continue
        used = {n for f in ("hu", "slice_index", "slice_position_mm") for n in FIELD_NAMES[f]} | {"grey"}
        meta = {k: v for k, v in info.items()
                if k not in used and (not isinstance(v, np.ndarray) or (v.ndim <= 1 and v.size <= 16))}
        meta["units"] = units
        out[phase] = SliceRecord(phase, hu, _int_or_none(lookup(value, "slice_index")),
                                 _float_or_none(lookup(value, "slice_position_mm")), meta)
    return dict(sorted(out.items(), key=lambda kv: PHASES.index(kv[0])))


def _risk_results(risk_result: Any) -> list[tuple[str | None, Any]]:
    """One (variant, result) per model.

    Accepts a single result, a mapping variant -> result, or a single (reference model) result with
    a ``variants`` mapping of every model's output (the Risk page's shape): the reference result is
    kept whole (embedding included) for the variant whose model SHA-256 it carries.
    """
    values = fields_of(risk_result)
    if not values:
        return []
    if lookup(risk_result, "p_high_risk") is not None:
        variants = fields_of(values.get("variants"))
        if not variants:
            return [(None, risk_result)]
        sha = lookup(risk_result, "model_sha256")
        out = []
        for name, sub in variants.items():
            is_reference = sha is not None and lookup(sub, "model_sha256") == sha
            out.append((str(name), risk_result if is_reference else sub))
        if not any(r is risk_result for _, r in out):
            out.insert(0, (None, risk_result))
        return out
    return [(str(k), v) for k, v in values.items() if lookup(v, "p_high_risk") is not None]


def _risk_class(result, p_high_risk: float | None) -> str | None:
    label = lookup(result, "risk_class")
    if isinstance(label, str) and label.upper() in ("HR", "NHR"):
        return label.upper()
    if p_high_risk is None:
        return None
    threshold = _float_or_none(fields_of(result).get("threshold")) or 0.5
    return "HR" if p_high_risk >= threshold else "NHR"


def _mlrs_group(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    for group in ("high", "low"):
        if text.startswith(group):
            return group
    return None


def record_from_session(*, case: Any = None, chosen_slices: Any = None, risk_result: Any = None,
                        clinical_values: Any = None, prognosis_result: Any = None, label: str | None = None,
                        notes: str = "", status: str = "draft", include_series: bool = False,
                        base: CaseRecord | None = None) -> CaseRecord:
    """A :class:`CaseRecord` of the current dashboard objects.

    Parameters
    ----------
    case, chosen_slices, risk_result, clinical_values, prognosis_result
        The pages' working objects (any may be None).
    label : str, optional
        Pseudonymous case label; default: the one found in the objects, else "case".
    base : CaseRecord, optional
        The stored case being edited (keeps its id, version and earlier predictions).
    """
    clinical = fields_of(clinical_values)
    prognosis = fields_of(prognosis_result)
    slices = slices_from(chosen_slices)
    risk = _risk_results(risk_result)
    primary = None
    for variant, result in risk:
        if result is risk_result or variant is None or variant.lower() in ("art", "swin-art", "swin_art"):
            primary = result
            break
    if primary is None and risk:
        primary = risk[0][1]
    p_high_risk = _float_or_none(lookup(primary, "p_high_risk")) if primary is not None else None

    entered = lookup(prognosis_result, "entered")
    entered = fields_of(entered) if entered is not None else {k: v for k, v in clinical.items()
                                                                if not isinstance(v, (list, np.ndarray))}
    imputed = imputed_values(prognosis_result)
    # keep only values that were really filled in (missing when entered)
    imputed = {k: v for k, v in imputed.items()
               if k not in entered or entered.get(k) is None or _is_nan(entered.get(k))}

    age = canonical_value("age_months", entered.get("age_months")) if entered else None
    if age is None:
        age = _float_or_none(lookup(case, "age_months"))
    sex = entered.get("sex") if entered else None
    if sex not in ("F", "M"):
        sex = lookup(case, "sex")
    sex = sex if sex in ("F", "M") else None

    predictions: list[PredictionRecord] = list(base.predictions) if base is not None else []
    for variant, result in risk:
        predictions.append(PredictionRecord(
            kind="risk", result=result, model_name=str(lookup(result, "model_name") or variant or "") or None,
            model_sha256=_str_or_none(lookup(result, "model_sha256")),
            input_sha256=_str_or_none(lookup(result, "input_sha256")) or codec.sha256_of(
                {p: s.hu for p, s in slices.items()})))
    if prognosis:
        predictions.append(PredictionRecord(
            kind="prognosis", result=prognosis_result,
            model_name=_str_or_none(lookup(prognosis_result, "model_name")),
            model_sha256=_str_or_none(lookup(prognosis_result, "model_sha256")),
            input_sha256=_str_or_none(lookup(prognosis_result, "input_sha256")) or codec.sha256_of(
                {"clinical": entered, "risk": p_high_risk})))

    phase_meta = {p: dict(s.meta) for p, s in slices.items()}
    for key, info in fields_of(fields_of(case).get("phases")).items():
        phase = _phase_key(key)
        if phase is not None:
            phase_meta.setdefault(phase, {}).update({k: v for k, v in fields_of(info).items()
                                                     if k not in phase_meta.get(phase, {})})
    record = CaseRecord(
        label=(label or (base.label if base else None) or _str_or_none(lookup(case, "label")) or "case").strip(),
        age_months=age, sex=sex, status=status, notes=notes, clinical_entered=entered,
        clinical_imputed=imputed, phase_meta=phase_meta, slices=slices, predictions=predictions,
        session={"case": case, "chosen_slices": chosen_slices, "risk_result": risk_result,
                 "clinical_values": clinical_values, "prognosis_result": prognosis_result},
        risk_class=_risk_class(primary, p_high_risk) if primary is not None else None,
        hr_probability=p_high_risk,
        mlrs=_float_or_none(lookup(prognosis_result, "mlrs")),
        mlrs_percentile=_float_or_none(lookup(prognosis_result, "mlrs_percentile")),
        mlrs_group=_mlrs_group(lookup(prognosis_result, "mlrs_group")),
        include_series=include_series)
    if base is not None:
        record.case_uid, record.version = base.case_uid, base.version
    return record


def canonical_value(name: str, value) -> float | None:
    """A numeric clinical value in the schema's canonical unit; ``{"value", "unit"}`` dicts are converted."""
    from nbrisk_core.clinical.schema import variable

    unit = None
    if isinstance(value, Mapping):
        value, unit = value.get("value"), value.get("unit")
    number = _float_or_none(value)
    if number is None:
        return None
    try:
        spec = variable(name)
    except KeyError:
        return number
    if unit and unit != spec.unit and unit in spec.alt_units:
        number *= spec.alt_units[unit]
    return number


def imputed_values(prognosis_result: Any) -> dict:
    """Imputed clinical variables -> imputed value (None when the result lists only their names)."""
    values: dict = {}
    names: list[str] = []
    fields = fields_of(prognosis_result)
    for key in FIELD_NAMES["imputed"]:
        found = fields.get(key)
        if found is None:
            continue
        if isinstance(found, Mapping):
            values.update({str(k): v for k, v in found.items() if str(k) not in values})
        elif hasattr(found, "iloc"):  # a one-row DataFrame or a Series of completed values
            row = found.iloc[0] if hasattr(found, "columns") else found
            values.update({str(k): row[k] for k in row.index if str(k) not in values})
        elif isinstance(found, (list, tuple, set)):
            names.extend(str(n) for n in found)
    flags = lookup(prognosis_result, "imputed_flags")
    if isinstance(flags, Mapping):
        names.extend(str(k) for k, v in flags.items() if v)
    elif flags is not None:
        names.extend(str(n) for n in flags)
    if names:
        return {n: values.get(n) for n in dict.fromkeys(names)}
    return values


def _is_nan(value) -> bool:
    try:
        return bool(np.isnan(value))
    except TypeError:
        return False


def _str_or_none(value) -> str | None:
    return None if value is None else str(value)


def session_from_record(record: CaseRecord) -> dict[str, Any]:
    """The working objects to put back into the session (logical names of :data:`SESSION_OBJECTS`).

    The whole series is not stored unless the user opted in; a case object whose series were left
    out comes back as None, so the Case page asks for the study again instead of showing an empty one.
    The chosen slices, the risk and prognosis results and the clinical values come back as saved.
    """
    objects = {name: record.session.get(name) for name in SESSION_OBJECTS}
    if objects["chosen_slices"] is None and record.slices:
        objects["chosen_slices"] = {p: {"hu": s.hu, "slice_index": s.slice_index,
                                        "slice_position_mm": s.slice_position_mm, **s.meta}
                                    for p, s in record.slices.items()}
    if objects["case"] is not None and not record.include_series and _has_missing_arrays(objects["case"]):
        objects["case"] = None
    return objects


def _has_missing_arrays(obj) -> bool:
    """True when a decoded object lost its pixel arrays (a series left out at save time)."""
    values = fields_of(obj)
    for name, value in values.items():
        if name in ("hu", "volume", "pixels", "series_hu") and value is None:
            return True
        if isinstance(value, (list, tuple)) and any(_has_missing_arrays(v) for v in value
                                                    if dataclasses.is_dataclass(v) or isinstance(v, Mapping)):
            return True
        if (dataclasses.is_dataclass(value) or isinstance(value, Mapping)) and _has_missing_arrays(value):
            return True
    return False


#: key of a Case-page chosen slice that holds the display window it was confirmed with
VIEWER_WINDOW_KEY = "viewer_window"


@dataclasses.dataclass(frozen=True)
class ChosenSliceView:
    """One phase's chosen slice of a reopened case, as the Case page shows it again.

    Attributes
    ----------
    phase : {"NC", "ART", "PV"}
    plane : ndarray
        The stored 2-D slice: Hounsfield units, or 8-bit grey for a 2-D image upload.
    is_hu : bool
    slice_index : int or None
        0-based index in the phase's series sorted by ascending z.
    slice_position_mm : float or None
    window : dict or None
        ``{"name", "width", "level"}`` the slice was confirmed with (None for cases saved before
        the window was kept, or slices that did not come from the Case page's viewer).
    series : dict
        The phase's series summary from the case (remapped series UID, number of slices, spacing).
    """

    phase: str
    plane: np.ndarray
    is_hu: bool
    slice_index: int | None = None
    slice_position_mm: float | None = None
    window: dict | None = None
    series: dict = dataclasses.field(default_factory=dict)


def chosen_slice_views(chosen_slices: Any, case: Any = None) -> list[ChosenSliceView]:
    """The chosen slice per phase of a (reopened) case, in NC, ART, PV order.

    Reads the Case page's entries (``hu`` or ``grey``, ``index``, ``z_mm``, ``viewer_window``) as
    well as the entries :func:`session_from_record` rebuilds from the stored slices of older cases
    (``hu``, ``slice_index``, ``slice_position_mm``, ``units``); the phase's series summary comes
    from ``case["phases"]`` (:func:`nbrisk_core.imaging.case.case_meta`).
    """
    series_by_phase = {}
    for key, info in fields_of(fields_of(case).get("phases")).items():
        phase = _phase_key(key)
        if phase is not None:
            series_by_phase[phase] = fields_of(info)
    views = []
    for key, value in fields_of(chosen_slices).items():
        phase = _phase_key(key)
        if phase is None or value is None:
            continue
        index = position = None
        if isinstance(value, np.ndarray):
            plane, is_hu, info = value, True, {}
        else:
            index = _int_or_none(lookup(value, "slice_index"))
            position = _float_or_none(lookup(value, "slice_position_mm"))
            info = fields_of(value)
            hu = info.get("hu")
            if hu is None:
                hu = lookup(value, "hu")
            plane = hu if hu is not None else info.get("grey")
            is_hu = hu is not None and info.get("units", "HU") != GREY_UNITS
        if plane is None or np.ndim(plane) != 2:
            continue
        window = fields_of(info.get(VIEWER_WINDOW_KEY))
        if _float_or_none(window.get("width")) is None or _float_or_none(window.get("level")) is None:
            window = None
        views.append(ChosenSliceView(phase, np.asarray(plane), is_hu, index, position, window,
                                     series_by_phase.get(phase, {})))
    return sorted(views, key=lambda v: PHASES.index(v.phase))
