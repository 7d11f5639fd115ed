"""Single 2-D images (BMP, PNG, JPEG, TIFF): the paper's own input, a slice exported from PACS.

An image is read as 8-bit greyscale; an RGB (or palette) image is converted to luminance with
ITU-R BT.601 weights (Pillow's ``convert("L")``: L = 0.299 R + 0.587 G + 0.114 B). Anything that is
not an 8-bit image (16-bit PNG/TIFF, floating point, several pages) raises
:class:`~nbrisk_core.errors.InputError` rather than being rescaled silently.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from nbrisk_core.errors import InputError

IMAGE_SUFFIXES: tuple[str, ...] = (".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff")
_SIGNATURES: tuple[bytes, ...] = (b"BM", b"\x89PNG", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")
#: Pillow modes accepted as 8-bit greyscale directly, or converted to luminance
_GREY_MODES = {"L", "1"}
_COLOUR_MODES = {"RGB", "RGBA", "P", "PA", "LA", "CMYK", "YCbCr"}
#: a CT slice export is 512 x 512; an image claiming more pixels than this is refused before decoding
IMAGE_MAX_PIXELS: int = 8192 * 8192


def looks_like_image(name: str, head: bytes) -> bool:
    """True when the name or the first bytes say the file is a BMP/PNG/JPEG/TIFF image."""
    return Path(name).suffix.lower() in IMAGE_SUFFIXES or head.startswith(_SIGNATURES)


def read_image_2d(source) -> np.ndarray:
    """Read a 2-D image as a ``(rows, cols)`` uint8 greyscale array.

    Parameters
    ----------
    source : path-like or :class:`~nbrisk_core.imaging.sources.SourceFile`

    Raises
    ------
    InputError
        Not decodable as an image, more than one page/frame, or not 8 bits per channel.
    """
    from PIL import Image, UnidentifiedImageError

    if hasattr(source, "name") and hasattr(source, "data"):
        name = source.name
        handle = io.BytesIO(source.data) if source.data is not None else source.path
    else:
        name = str(source)
        handle = Path(source)
    try:
        with Image.open(handle) as image:
            width, height = image.size
            if width * height > IMAGE_MAX_PIXELS:
                raise InputError(f"{name}: image of {width} x {height} pixels; at most {IMAGE_MAX_PIXELS} "
                                 "pixels accepted (refused before decoding)", source=name)
            image.load()
            n_frames = getattr(image, "n_frames", 1)
            if n_frames > 1:
                raise InputError(f"{name}: image has {n_frames} pages/frames; expected a single 2-D slice",
                                 source=name)
            mode = image.mode
            if mode in _GREY_MODES:
                grey = np.asarray(image.convert("L"))
            elif mode in _COLOUR_MODES:
                grey = np.asarray(image.convert("RGB").convert("L"))
            else:
                raise InputError(f"{name}: image mode {mode!r} (not 8 bits per channel); expected an 8-bit "
                                 "greyscale or RGB export", source=name)
    except InputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as error:
        raise InputError(f"{name}: not a readable image ({error}); expected BMP, PNG, JPEG or TIFF",
                         source=name) from None
    if grey.ndim != 2 or min(grey.shape) < 8:
        raise InputError(f"{name}: image of shape {grey.shape}; expected a 2-D slice of at least 8 x 8 pixels",
                         source=name)
    return np.ascontiguousarray(grey, dtype=np.uint8)
