"""CT display windows (window width / window level) and HU -> 8-bit conversion.

The presets are data, not ``if`` chains. The model default is the soft-tissue abdomen window
W 400 / L 40 (``../shared/spec/method.md`` section 2, our choice: the paper exported BMPs from
PACS without stating the window).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """A linear display window, (0028,1051) WindowWidth and (0028,1050) WindowCenter, in HU."""

    name: str
    width: float
    level: float

    @property
    def lower(self) -> float:
        return self.level - self.width / 2.0

    @property
    def upper(self) -> float:
        return self.level + self.width / 2.0


WINDOW_PRESETS: dict[str, Window] = {
    w.name: w
    for w in (
        Window("abdomen", 400.0, 40.0),  # soft tissue; the model's default input window
        Window("liver", 150.0, 30.0),
        Window("mediastinum", 350.0, 50.0),
        Window("bone", 1800.0, 400.0),
        Window("lung", 1500.0, -600.0),
    )
}

MODEL_WINDOW: Window = WINDOW_PRESETS["abdomen"]


def window_to_uint8(hu: np.ndarray, width: float, level: float) -> np.ndarray:
    """Map HU to 0-255 with the DICOM linear VOI function, PS3.3 C.11.2.1.2.1.

    ``y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255``, clipped to [0, 255] and rounded half to
    even. This is what a PACS export of a windowed slice as BMP does, and every 8-bit image
    NBRisk makes from HU (demo exports, model inputs, viewer) goes through this one function.

    Parameters
    ----------
    hu : ndarray
        Hounsfield units, any shape, after (0028,1053) RescaleSlope and (0028,1052) RescaleIntercept.
    width, level : float
        Window width (>= 1) and centre, in HU.

    Examples
    --------
    >>> window_to_uint8(np.array([-1000, 40, 1000]), 400, 40).tolist()
    [0, 128, 255]
    """
    if not width >= 1:
        raise ValueError(f"window width must be >= 1 HU, got {width!r}")
    x = np.asarray(hu, dtype=np.float64)
    y = ((x - (level - 0.5)) / (width - 1.0) + 0.5) * 255.0
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)
