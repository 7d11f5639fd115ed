"""IBSI intensity-based statistics (``stat_*``), intensity histogram (``ih_*``) and local intensity
(``loc_*``) features. Names follow the IBSI reference manual; :data:`IBSI_CODES` maps each to its
permanent IBSI identifier."""

from __future__ import annotations

import numpy as np

IBSI_CODES: dict[str, str] = {
    "stat_mean": "Q4LE", "stat_var": "ECT3", "stat_skew": "KE2A", "stat_kurt": "IPH6",
    "stat_median": "Y12H", "stat_min": "1GSF", "stat_p10": "QG58", "stat_p90": "8DWT", "stat_max": "84IY",
    "stat_iqr": "SALO", "stat_range": "2OJQ", "stat_mad": "4FUA", "stat_rmad": "1128",
    "stat_medad": "N72L", "stat_cov": "7TET", "stat_qcod": "9S40", "stat_energy": "N8CA", "stat_rms": "5ZWQ",
    "ih_mean": "X6K6", "ih_var": "CH89", "ih_skew": "88K1", "ih_kurt": "C3I7", "ih_median": "WIFQ",
    "ih_min": "1PR8", "ih_p10": "1PR8", "ih_p90": "GPMT", "ih_max": "3NCY", "ih_mode": "AMMC",
    "ih_iqr": "WR0O", "ih_range": "5Z3W", "ih_mad": "D2ZX", "ih_rmad": "WRZB", "ih_medad": "4RNL",
    "ih_cov": "CWYJ", "ih_qcod": "SLWD", "ih_entropy": "TLU2", "ih_uniformity": "BJ5W",
    "ih_max_grad": "12CE", "ih_max_grad_g": "8E6O", "ih_min_grad": "VQB3", "ih_min_grad_g": "RHQZ",
    "loc_peak_local": "VJGA", "loc_peak_global": "0F91",
    "ivh_v10": "BC2M", "ivh_v90": "BC2M", "ivh_i10": "GBPN", "ivh_i90": "GBPN", "ivh_v10_v90": "DDTU",
    "ivh_i10_i90": "CNV2",
}


def _moments(x: np.ndarray, prefix: str) -> dict[str, float]:
    mu = x.mean()
    var = ((x - mu) ** 2).mean()
    sd = np.sqrt(var)
    p10, p25, p50, p75, p90 = np.percentile(x, [10, 25, 50, 75, 90])
    robust = x[(x >= p10) & (x <= p90)]
    return {
        f"{prefix}_mean": mu, f"{prefix}_var": var,
        f"{prefix}_skew": ((x - mu) ** 3).mean() / var ** 1.5 if var > 0 else 0.0,
        f"{prefix}_kurt": ((x - mu) ** 4).mean() / var ** 2 - 3.0 if var > 0 else 0.0,
        f"{prefix}_median": p50, f"{prefix}_min": x.min(), f"{prefix}_p10": p10, f"{prefix}_p90": p90,
        f"{prefix}_max": x.max(), f"{prefix}_iqr": p75 - p25, f"{prefix}_range": x.max() - x.min(),
        f"{prefix}_mad": np.abs(x - mu).mean(), f"{prefix}_rmad": np.abs(robust - robust.mean()).mean(),
        f"{prefix}_medad": np.abs(x - p50).mean(), f"{prefix}_cov": sd / mu if mu != 0 else np.nan,
        f"{prefix}_qcod": (p75 - p25) / (p75 + p25) if (p75 + p25) != 0 else np.nan,
    }


def statistics(values: np.ndarray) -> dict[str, float]:
    """Intensity-based statistical features of the intensities in the intensity mask."""
    x = np.asarray(values, dtype=np.float64)
    out = _moments(x, "stat")
    out["stat_energy"] = float((x ** 2).sum())
    out["stat_rms"] = float(np.sqrt((x ** 2).mean()))
    return {k: float(v) for k, v in out.items()}


def histogram(levels: np.ndarray) -> dict[str, float]:
    """Intensity histogram features of the discretised grey levels (integers >= 1)."""
    x = np.asarray(levels, dtype=np.int64)
    out = _moments(x.astype(np.float64), "ih")
    counts = np.bincount(x)[1:].astype(np.float64)  # grey levels 1 .. max
    grey = np.arange(1, counts.size + 1)
    p = counts / counts.sum()
    top = np.flatnonzero(counts == counts.max()) + 1
    out["ih_mode"] = top[np.argmin(np.abs(top - x.mean()))]  # ties: the level closest to the mean
    nz = p[p > 0]
    out["ih_entropy"] = -(nz * np.log2(nz)).sum()
    out["ih_uniformity"] = (p ** 2).sum()
    lo, hi = x.min(), x.max()
    h = counts[lo - 1:hi]
    if h.size > 1:
        grad = np.gradient(h)  # central differences inside, one-sided at both ends (IBSI)
    else:
        grad = np.zeros(1)
    g = grey[lo - 1:hi]
    out["ih_max_grad"], out["ih_max_grad_g"] = grad.max(), g[int(np.argmax(grad))]
    out["ih_min_grad"], out["ih_min_grad_g"] = grad.min(), g[int(np.argmin(grad))]
    return {k: float(v) for k, v in out.items()}


def local_intensity(image: np.ndarray, mask: np.ndarray, spacing) -> dict[str, float]:
    """Local and global intensity peak: mean intensity in a 1 cm^3 sphere (radius 6.2 mm) around the
    hottest voxel of the ROI (local; ties: the highest sphere mean) and the highest such mean over
    all ROI voxels (global). The sphere takes every image voxel, inside the ROI or not."""
    from scipy import ndimage

    radius = (3.0 / (4.0 * np.pi)) ** (1.0 / 3.0) * 10.0
    half = [int(np.floor(radius / s)) for s in spacing]
    grids = np.meshgrid(*[np.arange(-h, h + 1) * s for h, s in zip(half, spacing)], indexing="ij")
    kernel = (sum(g ** 2 for g in grids) <= radius ** 2).astype(np.float64)
    ones = np.ones(image.shape)
    total = ndimage.convolve(image.astype(np.float64), kernel, mode="constant", cval=0.0)
    count = ndimage.convolve(ones, kernel, mode="constant", cval=0.0)
    means = total / count
    roi_max = image[mask].max()
    hottest = mask & (image == roi_max)
    return {"loc_peak_local": float(means[hottest].max()), "loc_peak_global": float(means[mask].max())}


def intensity_volume(values: np.ndarray, low: float | None = None, high: float | None = None,
                     width: float = 1.0) -> dict[str, float]:
    """Intensity-volume histogram features of (integer-valued) intensities, evaluated at the discrete
    intensities ``low, low + width, ..., high`` (default: the ROI's minimum and maximum).

    ``nu(i)`` is the volume fraction with intensity >= i, ``gamma(i) = (i - low) / (high - low)``.
    ``ivh_v<x>`` = nu at the lowest i with gamma >= x/100; ``ivh_i<x>`` = the lowest i with nu <= x/100.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    lo = x[0] if low is None else float(low)
    hi = x[-1] if high is None else float(high)
    grid = lo + width * np.arange(int(np.floor((hi - lo) / width + 1e-9)) + 1)
    nu = 1.0 - np.searchsorted(x, grid, side="left") / x.size
    gamma = (grid - lo) / (hi - lo) if hi > lo else np.zeros_like(grid)
    out = {}
    for frac in (10, 90):
        at = np.flatnonzero(gamma >= frac / 100.0 - 1e-12)
        out[f"ivh_v{frac}"] = float(nu[at[0]]) if at.size else 0.0
        below = np.flatnonzero(nu <= frac / 100.0 + 1e-12)
        out[f"ivh_i{frac}"] = float(grid[below[0]]) if below.size else float(hi + width)
    out["ivh_v10_v90"] = out["ivh_v10"] - out["ivh_v90"]
    out["ivh_i10_i90"] = out["ivh_i10"] - out["ivh_i90"]
    return out
