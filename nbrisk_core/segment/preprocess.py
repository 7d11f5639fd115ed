"""From an HU volume to the network's input, the same way for training and inference.

1. ``ScaleIntensityRange`` (MONAI): HU clipped to the window :data:`HU_RANGE` and scaled to [0, 1].
   -200..400 HU keeps fat, soft tissue, enhancing vessels and organs apart; calcifications and bone
   saturate at 1, which is all the network needs to know of them.
2. In-plane ``area`` resampling (``torch.nn.functional.interpolate(mode="area")``, what MONAI's
   ``Resize(mode="area")`` calls) to ``input_size`` x ``input_size``: a 256 x 256 demo slice becomes
   the mean of 2 x 2 pixels, a 512 x 512 one of 4 x 4; the field of view is kept.
3. 2.5-D: each slice's input has three channels, the slices below, at and above it (the first and
   last slice repeat themselves), so the network sees the tumour's extent along z.

The volume is processed in chunks of slices, so a 512 x 512 x 300 series never exists as a float
copy at full resolution.
"""

from __future__ import annotations

import numpy as np

#: HU window of the network's input (lower, upper)
HU_RANGE: tuple[float, float] = (-200.0, 400.0)
#: slices per chunk of the in-plane resampling
CHUNK = 32


def scale_intensity():
    """The MONAI transform of step 1 (array version; the training pipeline uses its dict twin)."""
    from monai.transforms import ScaleIntensityRange

    return ScaleIntensityRange(a_min=HU_RANGE[0], a_max=HU_RANGE[1], b_min=0.0, b_max=1.0, clip=True)


def window(hu: np.ndarray) -> np.ndarray:
    """Step 1 in numpy: the same affine map and clipping as :func:`scale_intensity` (tested equal),
    without a torch call per chunk (on an oversubscribed 2-core machine torch's thread pool made each
    small element-wise call cost milliseconds)."""
    lo, hi = HU_RANGE
    return np.clip((np.asarray(hu, dtype=np.float32) - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0)


def downsample(hu: np.ndarray, input_size: int) -> np.ndarray:
    """Steps 1 and 2: ``(n, rows, cols)`` HU -> ``(n, input_size, input_size)`` float32 in [0, 1].

    Sizes that are whole multiples of ``input_size`` (256 and 512 for 128) are averaged over
    blocks in numpy, which is exactly ``interpolate(mode="area")``; other sizes use torch.
    """
    volume = np.asarray(hu)
    if volume.ndim == 2:
        volume = volume[np.newaxis]
    n, rows, cols = volume.shape
    out = np.empty((n, input_size, input_size), dtype=np.float32)
    whole = rows % input_size == 0 and cols % input_size == 0
    for start in range(0, n, CHUNK):
        chunk = window(volume[start: start + CHUNK])
        if whole:
            fr, fc = rows // input_size, cols // input_size
            chunk = chunk.reshape(chunk.shape[0], input_size, fr, input_size, fc).mean(axis=(2, 4))
        else:
            import torch
            import torch.nn.functional as F

            chunk = F.interpolate(torch.from_numpy(chunk)[:, None], size=(input_size, input_size),
                                  mode="area")[:, 0].numpy()
        out[start: start + chunk.shape[0]] = chunk
    return out


def neighbours(n_slices: int) -> np.ndarray:
    """``(n, 3)`` indices of each slice's 2.5-D input: below, itself, above (edges repeat)."""
    k = np.arange(n_slices)
    return np.stack([np.clip(k - 1, 0, n_slices - 1), k, np.clip(k + 1, 0, n_slices - 1)], axis=1)


def network_input(hu: np.ndarray, input_size: int) -> np.ndarray:
    """Steps 1-3: ``(n, rows, cols)`` HU -> ``(n, 3, input_size, input_size)`` float32."""
    small = downsample(hu, input_size)
    return small[neighbours(small.shape[0])]


def downsample_mask(mask: np.ndarray, input_size: int) -> np.ndarray:
    """A full-resolution mask at the network's size: the area fraction, then >= 0.5 (uint8)."""
    import torch
    import torch.nn.functional as F

    m = torch.as_tensor(np.asarray(mask, dtype=np.float32))
    if m.ndim == 2:
        m = m[None]
    if tuple(m.shape[-2:]) != (input_size, input_size):
        m = F.interpolate(m[:, None], size=(input_size, input_size), mode="area")[:, 0]
    return (m.numpy() >= 0.5).astype(np.uint8)
