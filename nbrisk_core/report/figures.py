"""Images for the case report, rendered in memory (PNG bytes): slices with Grad-CAM, survival curves.

Matplotlib's Agg backend is used directly (no pyplot, no global state), so rendering is safe in
the dashboard's threads.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from nbrisk_core.imaging.windowing import MODEL_WINDOW, window_to_uint8

#: opacity of the Grad-CAM heat map over the greyscale slice
CAM_ALPHA = 0.4


def _resize(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if values.shape == shape:
        return values
    image = Image.fromarray(values.astype(np.float32), mode="F")
    return np.asarray(image.resize((shape[1], shape[0]), Image.BILINEAR), dtype=np.float32)


def slice_png(hu: np.ndarray, cam: np.ndarray | None = None, *, width: float = MODEL_WINDOW.width,
              level: float = MODEL_WINDOW.level, max_side: int = 384, is_hu: bool = True) -> bytes:
    """PNG of a HU slice in the model's window (W400/L40), with a Grad-CAM overlay when given.

    Parameters
    ----------
    hu : ndarray, 2-D
        Hounsfield units.
    cam : ndarray, 2-D, optional
        Grad-CAM map in [0, 1] (any size; resized bilinearly to the slice).
    """
    from matplotlib import colormaps
    from PIL import Image

    if is_hu:
        grey = window_to_uint8(np.asarray(hu), width, level).astype(np.float32) / 255.0
    else:  # already an 8-bit grey image (a BMP/PNG export): shown as it is
        grey = np.clip(np.asarray(hu, dtype=np.float32), 0, 255) / 255.0
    rgb = np.repeat(grey[..., None], 3, axis=2)
    if cam is not None:
        cam = np.asarray(cam, dtype=np.float32)
        if cam.ndim == 3 and 1 in cam.shape:
            cam = cam.squeeze()
        if cam.ndim == 2:
            cam = _resize(cam, grey.shape)
            lo, hi = float(np.nanmin(cam)), float(np.nanmax(cam))
            cam = (cam - lo) / (hi - lo) if hi > lo else np.zeros_like(cam)
            heat = colormaps["jet"](np.nan_to_num(cam))[..., :3]
            rgb = (1 - CAM_ALPHA) * rgb + CAM_ALPHA * heat
    image = Image.fromarray(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def survival_png(patient: tuple[np.ndarray, np.ndarray] | None,
                 cohort: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None, *,
                 time_unit: str = "days", title: str = "Overall survival") -> bytes:
    """PNG of the patient's predicted survival curve over the cohort's Kaplan-Meier curves.

    Parameters
    ----------
    patient : (times, survival) or None
        The individual predicted survival function (step function values at ``times``).
    cohort : mapping label -> (times, survival), optional
        Cohort curves drawn thinner underneath (e.g. Kaplan-Meier by risk group).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.4), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    palette = ("#1f5f8b", "#c0392b", "#27ae60", "#8e44ad")
    for k, (label, (t, s)) in enumerate((cohort or {}).items()):
        ax.step(np.asarray(t, float), np.asarray(s, float), where="post", lw=1.2, alpha=0.6,
                color=palette[k % len(palette)], label=f"cohort: {label}")
    if patient is not None:
        t, s = patient
        ax.step(np.asarray(t, float), np.asarray(s, float), where="post", lw=2.6, color="black",
                label="this patient (predicted)")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"Time ({time_unit})")
    ax.set_ylabel("Survival probability")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7, frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def cohort_km_curves(time, event, groups) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Kaplan-Meier curve per group (lifelines), as (times, survival) arrays."""
    from lifelines import KaplanMeierFitter

    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    labels = np.asarray(groups)
    curves = {}
    for name in sorted(set(labels.tolist()), key=str):
        sel = labels == name
        km = KaplanMeierFitter().fit(time[sel], event[sel])
        curves[str(name)] = (km.survival_function_.index.to_numpy(), km.survival_function_.iloc[:, 0].to_numpy())
    return curves


def curve_from(value: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(times, survival) from the shapes a prognosis result may use for its survival curve.

    Accepts a mapping with times and survival arrays, a DataFrame/Series indexed by time, a
    scikit-survival ``StepFunction`` (``.x``, ``.y``) or a pair of arrays.
    """
    from nbrisk_core.store.session import FIELD_NAMES, fields_of, lookup

    if value is None:
        return None
    if hasattr(value, "x") and hasattr(value, "y") and not isinstance(value, Mapping):
        return np.asarray(value.x, float), np.asarray(value.y, float)
    if hasattr(value, "index") and hasattr(value, "to_numpy") and not isinstance(value, Mapping):
        values = value.to_numpy()
        if values.ndim == 2:
            values = values[:, 0]
        return np.asarray(value.index, float), np.asarray(values, float)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return np.asarray(value[0], float), np.asarray(value[1], float)
    fields = fields_of(value)
    if fields:
        times = lookup(value, "times")
        surv = next((fields[n] for n in FIELD_NAMES["survival_values"] if n in fields and fields[n] is not None
                     and np.ndim(fields[n]) == 1), None)
        if times is not None and surv is not None and len(times) == len(surv):
            return np.asarray(times, float), np.asarray(surv, float)
    return None
