"""Images for the case report, rendered in memory (PNG bytes): slices with their CAM, survival curves.

Matplotlib's Agg backend is used directly (no pyplot, no global state), so rendering is safe in
the dashboard's threads.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np

from nbrisk_core.imaging.render import CAM_OPACITY, cam_overlay
from nbrisk_core.imaging.windowing import MODEL_WINDOW, window_to_uint8



def slice_png(plane: np.ndarray, cam: np.ndarray | None = None, *, width: float = MODEL_WINDOW.width,
              level: float = MODEL_WINDOW.level, max_side: int = 384, is_hu: bool = True,
              opacity: float = CAM_OPACITY) -> bytes:
    """PNG of a HU slice in the model's window (W400/L40), with a CAM overlay when given.

    The overlay is :func:`nbrisk_core.imaging.render.cam_overlay`, the Risk page's.

    Parameters
    ----------
    plane : ndarray, 2-D
        Hounsfield units, or (``is_hu=False``) an 8-bit grey image shown as it is.
    cam : ndarray, 2-D, optional
        CAM heat map in [0, 1] (any size; resized bilinearly to the slice).
    """
    from PIL import Image

    if is_hu:
        grey = window_to_uint8(np.asarray(plane), width, level)
    else:  # already an 8-bit grey image (a BMP/PNG export): shown as it is
        grey = np.clip(np.asarray(plane, dtype=np.float32), 0, 255).astype(np.uint8)
    if cam is not None and np.ndim(np.squeeze(cam)) == 2:
        image = Image.fromarray(cam_overlay(grey, cam, opacity))
    else:
        image = Image.fromarray(np.asarray(grey, dtype=np.uint8)).convert("RGB")
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
    """Kaplan-Meier curve per group (the one KM, :func:`nbrisk_core.prognosis.metrics.kaplan_meier`),
    as (times, survival) arrays."""
    from nbrisk_core.prognosis.metrics import kaplan_meier

    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    labels = np.asarray(groups)
    curves = {}
    for name in sorted(set(labels.tolist()), key=str):
        sel = labels == name
        km = kaplan_meier(event[sel], time[sel], ci=False)
        curves[str(name)] = (km["time"].to_numpy(), km["survival"].to_numpy())
    return curves
