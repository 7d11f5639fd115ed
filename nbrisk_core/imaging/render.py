"""Viewer images and the area-per-slice figure of the Case page (pure functions, no Streamlit).

:func:`render_slice` is the server-side work of one slice change: window the HU slice, optionally
zoom into a region, draw the tumour contour and the seed, return an RGB array. It goes through
:func:`~nbrisk_core.imaging.windowing.window_to_uint8`, the same mapping as the model input.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from nbrisk_core.errors import InputError
from nbrisk_core.imaging.windowing import window_to_uint8

CONTOUR_RGB = (255, 64, 64)
SEED_RGB = (255, 220, 0)


def render_slice(plane: np.ndarray, width: float, level: float, *, mask: np.ndarray | None = None,
                 seed_rc: tuple[int, int] | None = None, zoom: float = 1.0, center_rc=None,
                 is_hu: bool = True, contour_rgb=CONTOUR_RGB) -> np.ndarray:
    """One windowed slice as an ``(h, w, 3)`` uint8 RGB image with the contour drawn on it.

    Parameters
    ----------
    plane : ndarray, shape (rows, cols)
        HU (or 8-bit grey when ``is_hu`` is False: shown as it is, no window).
    width, level : float
        Display window in HU.
    mask : ndarray of bool, optional
        Tumour mask of this slice; its one-pixel outline is drawn in ``contour_rgb``.
    seed_rc : (int, int), optional
        The clicked seed, drawn as a small cross.
    zoom : float
        Magnification >= 1: the view is cropped to ``1/zoom`` of the slice around ``center_rc``
        (default the slice centre) and enlarged back with nearest-neighbour sampling, so the pixel
        grid stays visible and clicks map back exactly (:func:`view_to_slice`).
    """
    plane = np.asarray(plane)
    grey = window_to_uint8(plane, width, level) if is_hu else np.asarray(plane, dtype=np.uint8)
    rgb = np.repeat(grey[:, :, np.newaxis], 3, axis=2)
    if mask is not None and np.any(mask):
        mask = np.asarray(mask, dtype=bool)
        outline = mask & ~ndimage.binary_erosion(mask)
        rgb[outline] = contour_rgb
    if seed_rc is not None:
        r, c = int(seed_rc[0]), int(seed_rc[1])
        for dr in range(-3, 4):
            for rr, cc in ((r + dr, c), (r, c + dr)):
                if 0 <= rr < rgb.shape[0] and 0 <= cc < rgb.shape[1]:
                    rgb[rr, cc] = SEED_RGB
    if zoom > 1.0:
        r0, c0, h, w = zoom_window(plane.shape, zoom, center_rc)
        crop = rgb[r0: r0 + h, c0: c0 + w]
        rows = np.minimum((np.arange(plane.shape[0]) * h) // plane.shape[0], h - 1)
        cols = np.minimum((np.arange(plane.shape[1]) * w) // plane.shape[1], w - 1)
        rgb = crop[rows][:, cols]
    return np.ascontiguousarray(rgb)


def zoom_window(shape, zoom: float, center_rc=None) -> tuple[int, int, int, int]:
    """``(row0, col0, height, width)`` of the region shown at ``zoom`` around ``center_rc``."""
    rows, cols = int(shape[0]), int(shape[1])
    h, w = max(int(round(rows / zoom)), 8), max(int(round(cols / zoom)), 8)
    cr, cc = center_rc if center_rc is not None else (rows // 2, cols // 2)
    r0 = int(np.clip(cr - h // 2, 0, rows - h))
    c0 = int(np.clip(cc - w // 2, 0, cols - w))
    return r0, c0, h, w


def view_to_slice(x: float, y: float, shape, zoom: float = 1.0, center_rc=None,
                  displayed_width: float | None = None) -> tuple[int, int]:
    """Map a click ``(x, y)`` on the displayed image back to ``(row, col)`` of the slice."""
    rows, cols = int(shape[0]), int(shape[1])
    scale = (displayed_width / cols) if displayed_width else 1.0
    vr, vc = y / scale, x / scale
    if zoom > 1.0:
        r0, c0, h, w = zoom_window(shape, zoom, center_rc)
        vr, vc = r0 + vr * h / rows, c0 + vc * w / cols
    return int(np.clip(vr, 0, rows - 1)), int(np.clip(vc, 0, cols - 1))


def thumbnail(plane: np.ndarray, width: float, level: float, size: int = 160, is_hu: bool = True,
              mask: np.ndarray | None = None) -> np.ndarray:
    """A small RGB preview of a chosen slice (nearest-neighbour downsampling)."""
    rgb = render_slice(plane, width, level, mask=mask, is_hu=is_hu)
    step = max(1, int(np.ceil(max(rgb.shape[:2]) / size)))
    return np.ascontiguousarray(rgb[::step, ::step])


def area_curve_figure(areas_mm2, z_mm=None, proposed: int | None = None, chosen: int | None = None,
                      current: int | None = None, title: str = "Tumour area per slice"):
    """Plotly figure of tumour area (mm²) against slice index, marking the proposed maximum.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    areas = np.asarray(areas_mm2, dtype=float)
    index = np.arange(areas.size)
    hover = None
    if z_mm is not None:
        hover = [f"slice {i}<br>z {z:.1f} mm<br>{a:.0f} mm²" for i, z, a in zip(index, z_mm, areas)]
    fig = go.Figure(go.Scatter(x=index, y=areas, mode="lines+markers", name="area",
                               hovertext=hover, hoverinfo="text" if hover else None,
                               line={"color": "#1f77b4"}, marker={"size": 5}))
    marks = (("proposed maximum", proposed, "#d62728", "star"), ("chosen", chosen, "#2ca02c", "diamond"),
             ("current", current, "#7f7f7f", "circle-open"))
    for name, k, colour, symbol in marks:
        if k is not None and 0 <= k < areas.size:
            fig.add_trace(go.Scatter(x=[k], y=[areas[k]], mode="markers", name=f"{name} (slice {k})",
                                     marker={"color": colour, "size": 13, "symbol": symbol}))
    fig.update_layout(title=title, xaxis_title="slice index (ascending z)", yaxis_title="area (mm²)",
                      height=280, margin={"l": 40, "r": 10, "t": 40, "b": 40},
                      legend={"orientation": "h", "y": -0.3})
    return fig


def jet(values: np.ndarray) -> np.ndarray:
    """The jet colour map (as OpenCV's COLORMAP_JET) on values in [0, 1] -> uint8 RGB."""
    v = np.clip(values, 0, 1)[..., None]
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.concatenate([r, g, b], axis=-1) * 255).round().astype(np.uint8)


def resize_heatmap(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a heat map to ``shape`` (rows, cols): the slice's own resolution."""
    from PIL import Image

    image = Image.fromarray(np.asarray(heatmap, dtype=np.float32), mode="F")
    return np.asarray(image.resize((shape[1], shape[0]), Image.Resampling.BILINEAR), dtype=np.float32)


#: opacity of a CAM heat map over its slice unless the user chooses another (Risk page, PDF report)
CAM_OPACITY = 0.4


def cam_overlay(grey: np.ndarray, heatmap: np.ndarray, opacity: float = CAM_OPACITY) -> np.ndarray:
    """Blend a CAM heat map (values in [0, 1]) onto an 8-bit grey slice, at the slice's resolution -> RGB.

    The one overlay of NBRisk: the Risk page and the PDF report draw the same colours. ``opacity``
    0 shows only the slice, 1 only the heat map.
    """
    if not 0.0 <= opacity <= 1.0:
        raise InputError(f"overlay opacity = {opacity}; expected 0-1")
    grey = np.asarray(grey)
    if grey.ndim != 2 or grey.dtype != np.uint8:
        raise InputError(f"overlay expects a 2-D 8-bit grey slice, got {grey.dtype} {grey.shape} "
                         "(window an HU slice first: nbrisk_core.imaging.model_input.grey_from_chosen_slice)")
    heatmap = np.squeeze(np.asarray(heatmap, dtype=np.float32))
    if heatmap.ndim != 2:
        raise InputError(f"overlay expects a 2-D heat map, got shape {heatmap.shape}")
    heat = resize_heatmap(heatmap, grey.shape)
    rgb = np.repeat(grey[..., None].astype(np.float32), 3, axis=-1)
    blended = (1 - opacity) * rgb + opacity * jet(np.nan_to_num(heat)).astype(np.float32)
    return np.clip(blended.round(), 0, 255).astype(np.uint8)

