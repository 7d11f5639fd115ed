"""The model input builder: one code path from chosen slices to the classifier's tensor.

The dashboard, the CLI (``nbrisk predict``, ``nbrisk embed``) and training all call these
functions, so a case scored in the app and the same case scored from the command line get the
same tensor. Following ``../shared/spec/method.md`` section 2:

1. each phase's max-area slice, in HU, is windowed to 8 bits (default W 400 / L 40), or an 8-bit
   greyscale export (BMP/PNG, the paper's input) is taken as it is;
2. single-phase variants (NC, ART, PV) repeat the grey image over 3 channels; the multiphase
   variant (MP) stacks NC, ART, PV as the 3 channels;
3. the image is resized to 224 x 224 (bilinear with antialiasing, as torchvision's ``Resize``);
4. training augmentation (if any) acts on that 8-bit RGB image;
5. :func:`normalize` scales to [0, 1] and standardises with the model's mean/std (timm's
   ImageNet defaults for Swin-T), giving a float32 CHW array.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from nbrisk_core.case import PHASES as _PHASES
from nbrisk_core.case import ChosenSlice
from nbrisk_core.errors import InputError
from nbrisk_core.imaging.windowing import MODEL_WINDOW, Window, window_to_uint8

PHASES = _PHASES  # nbrisk_core.case.Phase, in acquisition order
PHASE_LABELS: dict[str, str] = {"nc": "non-contrast", "art": "arterial", "pv": "portal venous"}
INPUT_SIZE: int = 224
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputVariant:
    """Which phases a classifier variant reads, in channel order."""

    name: str
    phases: tuple[str, ...]
    label: str


#: The four classifier variants of the paper (section 3). Single-phase variants read one phase.
INPUT_VARIANTS: dict[str, InputVariant] = {
    v.name: v
    for v in (
        InputVariant("nc", ("nc",), "Swin-NC"),
        InputVariant("art", ("art",), "Swin-ART"),
        InputVariant("pv", ("pv",), "Swin-PV"),
        InputVariant("mp", _PHASES, "Swin-MP"),
    )
}


def hu_to_uint8(hu: np.ndarray, window: Window = MODEL_WINDOW) -> np.ndarray:
    """Window a 2-D HU slice to an 8-bit greyscale image (the paper's BMP export)."""
    hu = np.asarray(hu)
    if hu.ndim != 2:
        raise InputError(f"expected a 2-D slice in HU, got an array of shape {hu.shape}")
    return window_to_uint8(hu, window.width, window.level)


def to_model_image(grey_by_phase: Mapping[str, np.ndarray], variant: str,
                   size: int = INPUT_SIZE, phases: Sequence[str] | None = None) -> np.ndarray:
    """Build the 8-bit ``(size, size, 3)`` RGB image a variant reads, before normalisation.

    Parameters
    ----------
    grey_by_phase : mapping of phase -> 2-D uint8 array
        8-bit greyscale slices keyed by ``"nc"``, ``"art"``, ``"pv"`` (only the phases the variant
        needs are required). For the multiphase variant all three must have the same shape.
    variant : {"nc", "art", "pv", "mp"}
    phases : sequence of str, optional
        The phases in channel order as the model card records them (default: the variant's).
    """
    if variant not in INPUT_VARIANTS:
        raise InputError(f"unknown model variant {variant!r}; expected one of {sorted(INPUT_VARIANTS)}")
    phases = tuple(phases) if phases is not None else INPUT_VARIANTS[variant].phases
    missing = [p for p in phases if p not in grey_by_phase or grey_by_phase[p] is None]
    if missing:
        raise InputError(f"variant {INPUT_VARIANTS[variant].label} needs the "
                         f"{', '.join(PHASE_LABELS.get(p, p) for p in missing)} slice, which is missing")
    channels = []
    for phase in phases:
        grey = np.asarray(grey_by_phase[phase])
        if grey.dtype != np.uint8 or grey.ndim != 2:
            raise InputError(f"{PHASE_LABELS.get(phase, phase)} slice: expected a 2-D 8-bit greyscale image, "
                             f"got dtype {grey.dtype} and shape {grey.shape}")
        channels.append(_resize_grey(grey, size))
    if len(channels) == 1:
        channels = channels * 3
    return np.stack(channels, axis=-1)


def _resize_grey(grey: np.ndarray, size: int) -> np.ndarray:
    if grey.shape == (size, size):
        return grey
    return np.asarray(Image.fromarray(grey, mode="L").resize((size, size), Image.Resampling.BILINEAR))


def normalize(rgb: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float32, scaled to [0, 1] then standardised."""
    x = np.asarray(rgb, dtype=np.float32) / 255.0
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def build_model_input(grey_by_phase: Mapping[str, np.ndarray], variant: str,
                      mean=IMAGENET_MEAN, std=IMAGENET_STD, size: int = INPUT_SIZE,
                      phases: Sequence[str] | None = None) -> np.ndarray:
    """The classifier's float32 ``(3, size, size)`` input for one case (no augmentation)."""
    return normalize(to_model_image(grey_by_phase, variant, size, phases), mean, std)


def grey_from_chosen_slice(chosen: ChosenSlice | np.ndarray, window: Window = MODEL_WINDOW) -> np.ndarray:
    """The 8-bit model image of one phase's chosen slice.

    ``chosen`` is one of

    - an HU slice: a 2-D array of a signed-integer or float dtype, after (0028,1053) RescaleSlope
      and (0028,1052) RescaleIntercept; windowed here with :func:`hu_to_uint8` as it is. A
      fractional slope gives float HU, which are **not** rounded first, so the Case page's slice and
      :func:`nbrisk_core.imaging.read_phase_input` (the CLI) give the same grey levels;
    - an 8-bit grey image (uint8 2-D: the paper's BMP export, a 2-D upload), taken as it is;
    - a :class:`~nbrisk_core.case.ChosenSlice` (``hu`` from DICOM, or ``grey`` from a 2-D upload).
    """
    if isinstance(chosen, np.ndarray):
        hu, grey = (None, chosen) if chosen.dtype == np.uint8 else (chosen, None)
    else:
        hu, grey = chosen.hu, chosen.grey
    if grey is not None:
        grey = np.asarray(grey)
        if grey.dtype != np.uint8 or grey.ndim != 2:
            raise InputError(f"chosen slice: expected an 8-bit 2-D grey image, got {grey.dtype} {grey.shape}")
        return grey
    if hu is None:
        raise InputError("chosen slice has neither an HU slice ('hu') nor a grey image ('grey')")
    hu = np.asarray(hu)
    if hu.dtype.kind not in "if":
        raise InputError(f"chosen slice: expected HU as signed integers or floats, got dtype {hu.dtype}")
    return hu_to_uint8(hu, window)


def build_model_input_from_chosen(chosen_by_phase: Mapping[str, ChosenSlice], variant: str,
                                  window: Window = MODEL_WINDOW, **kwargs) -> np.ndarray:
    """The one input builder from chosen slices (HU or grey, see :func:`grey_from_chosen_slice`) to
    the model's tensor; ``kwargs`` go to :func:`build_model_input` (mean, std, size, phases).
    :meth:`nbrisk_core.classifier.card.DataConfig.model_input` calls it with a model card's values."""
    grey = {phase: grey_from_chosen_slice(entry, window) for phase, entry in chosen_by_phase.items()
            if entry is not None}
    return build_model_input(grey, variant, **kwargs)
