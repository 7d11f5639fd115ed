"""One phase's 8-bit model input from a file: the command-line twin of the Case page's choice.

``nbrisk predict`` reads each phase with :func:`read_phase_input`; the dashboard stores the chosen
HU slice and windows it with the same :func:`~nbrisk_core.imaging.model_input.hu_to_uint8`, so
both paths give the same 8-bit image and therefore the same tensor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nbrisk_core.errors import InputError
from nbrisk_core.imaging.images2d import IMAGE_SUFFIXES, looks_like_image, read_image_2d
from nbrisk_core.imaging.model_input import hu_to_uint8
from nbrisk_core.imaging.windowing import MODEL_WINDOW, Window


def read_phase_input(path, slice_index: int | None = None, window: Window = MODEL_WINDOW) -> tuple[np.ndarray, dict]:
    """Read one phase's slice as the 8-bit greyscale image the classifier reads.

    :func:`read_phase_slice` windowed with ``window``; ``nbrisk predict`` reads the slice itself and
    lets each model window it with its card's window.

    Parameters
    ----------
    path : path-like
        A 2-D image file (BMP/PNG/JPEG/TIFF; the paper's export), returned as it is (RGB converted
        to luminance), or a DICOM series: a folder, a zip or a single (multi-frame) file holding
        exactly one image series.
    slice_index : int, optional
        0-based index of the slice in the series sorted by ascending position along the slice
        normal (the order of ``max_area_slice_*`` in the demo truth). Required for DICOM.
    window : Window
        Display window applied to the HU slice (default W 400 / L 40, the model's window).

    Returns
    -------
    grey : ndarray of uint8, shape (rows, cols)
    info : dict
        ``source`` ("image" or "dicom"), ``shape``, and for DICOM ``series_uid`` (remapped),
        ``slice_index``, ``n_slices``, ``z_mm``, ``pixel_spacing``, ``window``, ``warnings``.

    Raises
    ------
    InputError
        Unreadable file, no or several image series, missing or out-of-range ``slice_index``.
    """
    pixels, info = read_phase_slice(path, slice_index)
    if info["source"] == "image":
        return pixels, info
    grey = hu_to_uint8(pixels, window)
    return grey, info | {"window": {"width": window.width, "level": window.level}}


def read_phase_slice(path, slice_index: int | None = None) -> tuple[np.ndarray, dict]:
    """Read one phase's chosen slice as it is: HU for DICOM (int16, or float32 for a fractional
    (0028,1053) RescaleSlope; not rounded), the 8-bit grey image for a 2-D image file.

    Same parameters, errors and ``info`` as :func:`read_phase_input` (without ``window``); give the
    slice to :meth:`nbrisk_core.classifier.card.DataConfig.model_input`, which windows HU with the
    model card's window.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder", source=str(path))
    if path.is_file() and _is_2d_image(path):
        grey = read_image_2d(path)
        if slice_index not in (None, 0):
            raise InputError(f"{path}: a 2-D image has a single slice; got slice index {slice_index}",
                             source=str(path))
        return grey, {"source": "image", "path": str(path), "shape": list(grey.shape)}

    from nbrisk_core.imaging.dicom_io import load_study

    study = load_study(path)
    volumes = [s for s in study.series if not s.header.get("image_file")]
    if not volumes:
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in study.skipped[:5]) or "no files"
        raise InputError(f"{path}: no DICOM image series found ({reasons})", source=str(path))
    if len(volumes) > 1:
        raise InputError(f"{path}: {len(volumes)} image series found; expected one series per phase "
                         "(point to the folder or file of that phase's series)", source=str(path))
    series = volumes[0]
    if slice_index is None:
        raise InputError(f"{path}: a DICOM series needs a slice index (0-{series.n_slices - 1}, ascending "
                         "position along the slice normal)", source=str(path))
    if not 0 <= int(slice_index) < series.n_slices:
        raise InputError(f"{path}: slice index {slice_index} is out of range; expected 0-{series.n_slices - 1} "
                         f"({series.n_slices} slices)", source=str(path))
    index = int(slice_index)
    hu = np.array(series.hu[index])
    return hu, {
        "source": "dicom", "path": str(path), "shape": list(hu.shape), "series_uid": series.series_uid,
        "slice_index": index, "n_slices": series.n_slices, "z_mm": float(series.z_mm[index]),
        "pixel_spacing": list(series.pixel_spacing), "warnings": list(series.warnings) + list(study.warnings),
    }


def _is_2d_image(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(132)
    if head[128:132] == b"DICM":
        return False
    return path.suffix.lower() in IMAGE_SUFFIXES or looks_like_image(path.name, head)
