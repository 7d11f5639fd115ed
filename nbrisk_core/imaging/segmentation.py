"""Seeded tumour segmentation and the max-area slice (the paper's slice choice, section 2 of the spec).

The user clicks a seed on the tumour; :func:`segment_from_seed` grows a 3-D region from it, inside a
box around the seed, by intensity: after in-plane Gaussian smoothing (noise), voxels within an HU
interval around the seed's own tissue are kept; an opening cuts thin bridges to touching organs
of similar density, the 3-D component holding the seed is taken, and holes are filled slice by
slice (a necrotic core or calcification inside the tumour is tumour). :func:`area_curve` turns the
mask into tumour area per slice in mm² ((0028,0030) PixelSpacing), and :func:`propose_max_area_slice`
proposes its argmax for the user to confirm.

Everything here is ``ndarray -> ndarray``; the Case page and the benchmark call the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nbrisk_core.errors import InputError


@dataclass(frozen=True)
class GrowSettings:
    """Parameters of the seeded region grow (defaults tuned on the synthetic demo cohort).

    Attributes
    ----------
    max_radius_mm : float
        Half-size of the box around the seed, in-plane and along z: a neuroblastoma larger than
        this is cut at the box (the curve's argmax stays right while the largest section fits).
    smoothing_mm : float
        Sigma of the in-plane Gaussian applied before thresholding (CT quantum noise).
    seed_radius_mm : float
        Radius of the disc around the seed whose HU sets the tissue's reference level.
    tolerance_hu : float
        Half-width of the HU interval around the reference level (at least; widened to three
        robust standard deviations of the seed disc for heterogeneous tumours).
    lower_floor_hu : float
        The interval never goes below this (fat, -50 to -100 HU, is never tumour).
    opening_mm : float
        Radius of the opening disc that cuts thin bridges to touching structures.
    propagation_margin_mm : float
        How much a slice's region may grow beyond its neighbour's (tumour outlines change slowly).
    split_depth_mm : float
        Depth of the distance-transform maxima that mark separate blobs (tumour vs a touching
        organ of the same density) for the watershed split.
    min_area_mm2 : float
        A slice region smaller than this ends the propagation.
    """

    max_radius_mm: float = 90.0
    smoothing_mm: float = 1.2
    seed_radius_mm: float = 8.0
    tolerance_hu: float = 30.0
    lower_floor_hu: float = 0.0
    opening_mm: float = 1.5
    propagation_margin_mm: float = 3.0
    split_depth_mm: float = 3.0
    min_area_mm2: float = 4.0


DEFAULT_GROW = GrowSettings()


@dataclass
class Segmentation:
    """A seeded segmentation: the full-size boolean ``mask`` and how it was made."""

    mask: np.ndarray
    seed: tuple[int, int, int]
    hu_interval: tuple[float, float]
    areas_mm2: np.ndarray
    max_area_slice: int

    def contour_slice(self, index: int) -> np.ndarray:
        return self.mask[index]


def segment_from_seed(hu: np.ndarray, seed: tuple[int, int, int], pixel_spacing=(1.0, 1.0),
                      slice_spacing_mm: float | None = None, settings: GrowSettings = DEFAULT_GROW) -> Segmentation:
    """Grow the tumour from a seed ``(slice, row, col)`` in an HU volume ``(n, rows, cols)``.

    Parameters
    ----------
    hu : ndarray, shape (n_slices, rows, cols)
    seed : (int, int, int)
        Slice index, row and column of the click.
    pixel_spacing : (float, float)
        Row and column spacing in mm.
    slice_spacing_mm : float, optional
        Distance between slices (for the z extent of the box); the in-plane spacing if unknown.

    Returns
    -------
    Segmentation

    Raises
    ------
    InputError
        The seed lies outside the volume.
    """
    volume = np.asarray(hu)
    if volume.ndim == 2:
        volume = volume[np.newaxis]
    n, rows, cols = volume.shape
    k, r, c = (int(v) for v in seed)
    if not (0 <= k < n and 0 <= r < rows and 0 <= c < cols):
        raise InputError(f"seed (slice {k}, row {r}, column {c}) is outside the volume of "
                         f"{n} x {rows} x {cols}")
    row_mm, col_mm = float(pixel_spacing[0]), float(pixel_spacing[1])
    z_mm = float(slice_spacing_mm or min(row_mm, col_mm))
    # the box around the seed bounds both the work and how far a leak can go
    half = (int(np.ceil(settings.max_radius_mm / z_mm)), int(np.ceil(settings.max_radius_mm / row_mm)),
            int(np.ceil(settings.max_radius_mm / col_mm)))
    lo_idx = (max(k - half[0], 0), max(r - half[1], 0), max(c - half[2], 0))
    hi_idx = (min(k + half[0] + 1, n), min(r + half[1] + 1, rows), min(c + half[2] + 1, cols))
    box = tuple(slice(a, b) for a, b in zip(lo_idx, hi_idx))
    roi = volume[box].astype(np.float32)
    sigma = (0.0, settings.smoothing_mm / row_mm, settings.smoothing_mm / col_mm)
    smooth = ndimage.gaussian_filter(roi, sigma=sigma, mode="nearest")
    sk, sr, sc = k - lo_idx[0], r - lo_idx[1], c - lo_idx[2]
    spacing = (row_mm, col_mm)

    level, spread = _seed_level(smooth[sk], (sr, sc), settings.seed_radius_mm, spacing)
    lower = settings.lower_floor_hu
    upper = max(level, lower) + max(settings.tolerance_hu, 3.0 * spread)
    inside = (smooth >= lower) & (smooth <= upper)

    mask_roi = np.zeros_like(inside)
    first = _slice_region(inside[sk], None, (sr, sc), spacing, settings)
    if first is not None:
        mask_roi[sk] = first
        # propagate slice by slice: each slice's region must touch the previous one and stay
        # within it grown by a margin, so a leak cannot creep along z into a neighbouring organ
        for step in (-1, 1):
            previous = first
            z = sk + step
            while 0 <= z < mask_roi.shape[0] and previous is not None:
                region = _slice_region(inside[z], previous, None, spacing, settings)
                if region is None:
                    break
                mask_roi[z] = region
                previous = region
                z += step
    mask = np.zeros(volume.shape, dtype=bool)
    mask[box] = mask_roi
    areas = area_curve(mask, pixel_spacing)
    return Segmentation(mask=mask, seed=(k, r, c), hu_interval=(float(lower), float(upper)),
                        areas_mm2=areas, max_area_slice=propose_max_area_slice(areas))


def area_curve(mask: np.ndarray, pixel_spacing=(1.0, 1.0)) -> np.ndarray:
    """Tumour area per slice in mm²: pixel count times (0028,0030) PixelSpacing row x column."""
    mask = np.asarray(mask, dtype=bool)
    return mask.reshape(mask.shape[0], -1).sum(axis=1) * float(pixel_spacing[0]) * float(pixel_spacing[1])


def propose_max_area_slice(areas_mm2: np.ndarray) -> int:
    """Index of the largest cross-section; ties go to the slice nearest the middle of the tied run."""
    areas = np.asarray(areas_mm2, dtype=float)
    if areas.size == 0:
        raise InputError("no slices to choose from: the area curve is empty")
    best = np.flatnonzero(areas == areas.max())
    return int(best[len(best) // 2])


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Sørensen-Dice overlap of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def carry_slice(z_mm: float, target_z_mm: np.ndarray) -> int:
    """The slice of another phase nearest to position ``z_mm`` (a starting point, to be confirmed)."""
    return int(np.argmin(np.abs(np.asarray(target_z_mm, dtype=float) - float(z_mm))))


def _slice_region(plane: np.ndarray, previous: np.ndarray | None, seed_rc, spacing,
                  settings: GrowSettings) -> np.ndarray | None:
    """The tumour on one slice: the thresholded component at the seed (or overlapping the previous
    slice's region), split from touching organs of the same density by a distance-transform
    watershed, holes filled."""
    from skimage.segmentation import watershed
    from skimage.morphology import h_maxima

    candidate = plane
    if previous is not None:
        margin = _disc(settings.propagation_margin_mm, spacing)
        candidate = plane & ndimage.binary_dilation(previous, structure=margin)
    candidate = ndimage.binary_opening(candidate, structure=_disc(settings.opening_mm, spacing))
    candidate = ndimage.binary_fill_holes(candidate)
    labels, n = ndimage.label(candidate)
    if n == 0:
        return None
    if previous is None:
        label = labels[seed_rc]
        if label == 0:
            near = _near_seed(candidate, seed_rc)
            if near is None:
                return None
            label = labels[near]
        component = labels == label
    else:
        overlap = np.bincount(labels[previous], minlength=n + 1)
        overlap[0] = 0
        if overlap.max() == 0:
            return None
        component = labels == int(np.argmax(overlap))
    distance = ndimage.distance_transform_edt(component, sampling=spacing)
    peaks = h_maxima(distance, settings.split_depth_mm)
    markers, n_markers = ndimage.label(peaks)
    if n_markers > 1:
        basins = watershed(-distance, markers, mask=component)
        if previous is None:
            keep = basins[seed_rc] if basins[seed_rc] else basins[_near_seed(component, seed_rc)]
            component = basins == keep
        else:
            overlap = np.bincount(basins[previous & component], minlength=n_markers + 1)
            overlap[0] = 0
            # keep every basin mostly covered by the previous slice's region
            sizes = np.bincount(basins.ravel(), minlength=n_markers + 1)
            keep = np.flatnonzero(overlap >= 0.5 * np.maximum(sizes, 1))
            if keep.size == 0:
                keep = np.array([int(np.argmax(overlap))])
            component = np.isin(basins, keep[keep > 0])
    if component.sum() * spacing[0] * spacing[1] < settings.min_area_mm2:
        return None
    return ndimage.binary_fill_holes(component)


def _seed_level(plane: np.ndarray, seed_rc, radius_mm: float, spacing) -> tuple[float, float]:
    """Reference HU and robust spread of the tissue under the seed disc (soft-tissue values only)."""
    disc = _disc(radius_mm, spacing)
    h, w = disc.shape
    r0, c0 = seed_rc[0] - h // 2, seed_rc[1] - w // 2
    rs = slice(max(r0, 0), min(r0 + h, plane.shape[0]))
    cs = slice(max(c0, 0), min(c0 + w, plane.shape[1]))
    patch = plane[rs, cs][disc[rs.start - r0: rs.stop - r0, cs.start - c0: cs.stop - c0]]
    soft = patch[(patch > -20.0) & (patch < 250.0)]  # a calcified focus or fat under the click is not the tumour level
    values = soft if soft.size >= 5 else patch
    level = float(np.median(values))
    spread = float(1.4826 * np.median(np.abs(values - level)))
    return level, spread


def _disc(radius_mm: float, spacing) -> np.ndarray:
    ry = max(int(np.floor(radius_mm / spacing[0])), 1)
    rx = max(int(np.floor(radius_mm / spacing[1])), 1)
    y, x = np.ogrid[-ry: ry + 1, -rx: rx + 1]
    return (y * spacing[0]) ** 2 + (x * spacing[1]) ** 2 <= radius_mm ** 2


def _component_at(plane: np.ndarray, seed_rc) -> np.ndarray | None:
    labels, _ = ndimage.label(plane)
    label = labels[seed_rc]
    if label == 0:
        near = _near_seed(plane, seed_rc)
        if near is None:
            return None
        label = labels[near]
    return labels == label


def _near_seed(plane: np.ndarray, seed_rc, max_px: int = 8):
    """The foreground pixel nearest to the seed within ``max_px``, or None."""
    r, c = seed_rc
    rs = slice(max(r - max_px, 0), r + max_px + 1)
    cs = slice(max(c - max_px, 0), c + max_px + 1)
    rr, cc = np.nonzero(plane[rs, cs])
    if rr.size == 0:
        return None
    rr, cc = rr + rs.start, cc + cs.start
    i = int(np.argmin((rr - r) ** 2 + (cc - c) ** 2))
    return int(rr[i]), int(cc[i])
