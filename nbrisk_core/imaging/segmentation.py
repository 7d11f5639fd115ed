"""Seeded tumour segmentation and the max-area slice (the paper's slice choice, section 2 of the spec).

The user clicks a seed on the tumour; :func:`segment_from_seed` grows a region from it, slice by
slice, inside a box around the seed:

1. *intensity*: after light in-plane Gaussian smoothing, voxels between a floor (0 HU: fat is never
   tumour) and a level read from a disc around the click (a high percentile, so a click on a necrotic
   core still includes the enhancing rim) plus a tolerance;
2. *seed slice*: the component under the click after an opening (cuts thin bridges), holes filled
   (necrosis, calcification and an encased vessel are inside the tumour), then a ray cut
   (:func:`_star_clip`) removes sectors that reach far beyond the median radius: a touching organ of
   the same density;
3. *along z*: each slice's region must overlap its neighbour's, stay within it grown by a margin and
   within a cone around the seed slice's outline; propagation stops where the outline is held by that
   cone (a leak) or vanishes;
4. :func:`area_curve` gives tumour area per slice in mm² ((0028,0030) PixelSpacing) and
   :func:`propose_max_area_slice` climbs the smoothed curve from the clicked slice to its local maximum.

Known limits (measured on the synthetic demo cohort; see the imaging report): with the click at the
centre of the largest section the proposal is within one slice in ~98 % of phase series and the mean
Dice there is ~0.82; with the click two slices away the curve is biased towards the clicked slice, so
the user is shown the whole curve and confirms or picks another slice. A tumour inside an organ of
the same density is not separated.

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
    level_percentile : float
        Percentile of the disc's soft-tissue HU taken as the reference level (high, so that a
        click on a necrotic core still includes the enhancing viable rim).
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
        Depth of the distance-transform maxima that mark separate blobs for an optional watershed
        split on the seed slice (0, the default, leaves it to the ray cut, which did better on the
        demo cohort).
    min_area_mm2 : float
        A slice region smaller than this ends the propagation.
    star_factor : float
        On the seed slice, rays from the centre are cut at this many times their median length
        (see :func:`_star_clip`); 0 switches the cut off.
    prior_contact_fraction : float
        Propagation along z stops at a slice whose outline lies on the cone limit for more than this
        fraction: the region is held by the prior there (a leak), not by the tumour's edge.
    z_extent_factor : float
        The region extends along z at most this many times the seed slice's equivalent radius on
        each side (neuroblastomas are roughly as tall as wide; the demo's are 0.8-1.3 times).
    cone_slope : float
        Beyond the seed slice, the outline may widen at most this many mm per mm along z: room for a
        seed clicked off the largest section, not for a leak into a neighbouring organ.
    """

    max_radius_mm: float = 90.0
    smoothing_mm: float = 0.6
    seed_radius_mm: float = 15.0
    level_percentile: float = 90.0
    tolerance_hu: float = 30.0
    lower_floor_hu: float = 0.0
    opening_mm: float = 3.0
    propagation_margin_mm: float = 3.0
    split_depth_mm: float = 0.0
    min_area_mm2: float = 4.0
    z_extent_factor: float = 2.0
    star_factor: float = 1.15
    prior_contact_fraction: float = 0.4
    cone_slope: float = 0.3


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
    roi = volume[box]
    sigma = (settings.smoothing_mm / row_mm, settings.smoothing_mm / col_mm)
    sk, sr, sc = k - lo_idx[0], r - lo_idx[1], c - lo_idx[2]
    spacing = (row_mm, col_mm)
    pad = int(np.ceil(4 * max(sigma))) + 1

    def smoothed(z: int, rs: slice, cs: slice) -> np.ndarray:
        # smooth only the part of the slice that is looked at (plus a margin for the kernel)
        r0, r1 = max(rs.start - pad, 0), min(rs.stop + pad, roi.shape[1])
        c0, c1 = max(cs.start - pad, 0), min(cs.stop + pad, roi.shape[2])
        out = ndimage.gaussian_filter(roi[z, r0:r1, c0:c1].astype(np.float32), sigma=sigma, mode="nearest")
        return out[rs.start - r0: rs.stop - r0, cs.start - c0: cs.stop - c0]

    whole = (slice(0, roi.shape[1]), slice(0, roi.shape[2]))
    seed_plane = smoothed(sk, *whole)
    level, spread = _seed_level(seed_plane, (sr, sc), settings.seed_radius_mm, spacing, settings.level_percentile)
    lower = settings.lower_floor_hu
    upper = max(level, lower) + max(settings.tolerance_hu, 3.0 * spread)

    def inside(z: int, rs: slice = whole[0], cs: slice = whole[1]) -> np.ndarray:
        plane = seed_plane[rs, cs] if z == sk and (rs, cs) == whole else smoothed(z, rs, cs)
        return (plane >= lower) & (plane <= upper)

    mask_roi = np.zeros(roi.shape, dtype=bool)
    first = _slice_region(inside, sk, None, (sr, sc), spacing, settings)
    if first is not None:
        mask_roi[sk] = first
        # 3-D shape prior: the tumour reaches at most ``z_extent_factor`` seed-slice radii along z,
        # and its outline widens at most ``cone_slope`` mm per mm of z beyond the seed slice's outline
        radius0 = float(np.sqrt(first.sum() * row_mm * col_mm / np.pi))
        max_steps = int(np.floor(settings.z_extent_factor * radius0 / z_mm))
        outside_distance = ndimage.distance_transform_edt(~first, sampling=spacing)
        # propagate slice by slice: each slice's region must touch the previous one and stay
        # within it grown by a margin, so a leak cannot creep along z into a neighbouring organ
        for step in (-1, 1):
            previous = first
            z = sk + step
            while 0 <= z < mask_roi.shape[0] and previous is not None and abs(z - sk) <= max_steps:
                limit_mm = settings.cone_slope * abs(z - sk) * z_mm
                allowed = outside_distance <= limit_mm + 1e-6
                region = _slice_region(inside, z, previous & allowed, None, spacing, settings, allowed)
                if region is None or _held_by_prior(region, outside_distance, limit_mm, spacing,
                                                    settings.prior_contact_fraction):
                    break
                mask_roi[z] = region
                previous = region
                z += step
    mask = np.zeros(volume.shape, dtype=bool)
    mask[box] = mask_roi
    areas = area_curve(mask, pixel_spacing)
    return Segmentation(mask=mask, seed=(k, r, c), hu_interval=(float(lower), float(upper)),
                        areas_mm2=areas, max_area_slice=propose_max_area_slice(areas, start=k))


def area_curve(mask: np.ndarray, pixel_spacing=(1.0, 1.0)) -> np.ndarray:
    """Tumour area per slice in mm²: pixel count times (0028,0030) PixelSpacing row x column."""
    mask = np.asarray(mask, dtype=bool)
    return mask.reshape(mask.shape[0], -1).sum(axis=1) * float(pixel_spacing[0]) * float(pixel_spacing[1])


def propose_max_area_slice(areas_mm2: np.ndarray, smoothing: bool = True, start: int | None = None) -> int:
    """Index of the largest cross-section.

    Without ``start``: the argmax (ties: the middle of the tied run). With ``start`` (the clicked
    slice): the local maximum reached by climbing the curve from there.
    """
    areas = np.asarray(areas_mm2, dtype=float)
    if areas.size == 0:
        raise InputError("no slices to choose from: the area curve is empty")
    if smoothing and areas.size >= 3:
        # a tumour's cross-section changes smoothly along z; one slice's leak or miss should not
        # move the proposal, so the argmax is taken on a [1, 2, 1] / 4 smoothed curve
        padded = np.concatenate([[0.0], areas, [0.0]])
        areas = (padded[:-2] + 2.0 * padded[1:-1] + padded[2:]) / 4.0
    if start is not None and 0 <= int(start) < areas.size and areas[int(start)] > 0:
        # climb from the clicked slice to the first local maximum: a cross-section is unimodal
        # along z, so a second rise further on is another structure the grow has run into
        k = int(start)
        while True:
            left = areas[k - 1] if k > 0 else -1.0
            right = areas[k + 1] if k + 1 < areas.size else -1.0
            if max(left, right) <= areas[k]:
                return k
            k = k - 1 if left > right else k + 1
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


def _held_by_prior(region: np.ndarray, outside_distance: np.ndarray, limit_mm: float, spacing,
                   fraction: float) -> bool:
    """True when much of a slice's outline lies on the shape prior's limit: the region is held there by
    the prior, not by the tumour's edge, i.e. it has run into a touching organ. A real tumour away
    from the seed slice shrinks inside that limit."""
    pixel = max(spacing)
    if limit_mm < 2.0 * pixel:
        # the limit is still the seed slice's own outline: touching it is what a tumour does
        return False
    outline = region & ~ndimage.binary_erosion(region)
    if not outline.any():
        return False
    on_limit = outline & (outside_distance >= limit_mm - 0.75 * pixel)
    return bool(on_limit.sum() > fraction * outline.sum())


def _slice_region(inside, z: int, previous: np.ndarray | None, seed_rc, spacing,
                  settings: GrowSettings, allowed: np.ndarray | None = None) -> np.ndarray | None:
    """The tumour on one slice: the thresholded component at the seed (or overlapping the previous
    slice's region), holes filled. On the seed slice, a touching organ of the same density is split
    off by a distance-transform watershed; on the other slices the region may not grow more than
    ``propagation_margin_mm`` beyond its neighbour, which bounds the same leaks more cheaply."""
    if previous is not None:
        # work in the neighbour's bounding box grown by the margin: the slice costs ~ the tumour's size
        pad = int(np.ceil(settings.propagation_margin_mm / min(spacing))) + 2
        rows, cols = np.nonzero(previous)
        box = (slice(max(rows.min() - pad, 0), min(rows.max() + pad + 1, previous.shape[0])),
               slice(max(cols.min() - pad, 0), min(cols.max() + pad + 1, previous.shape[1])))
        sub_previous = previous[box]
        margin = _disc(settings.propagation_margin_mm, spacing)
        candidate = inside(z, *box) & ndimage.binary_dilation(sub_previous, structure=margin)
        if allowed is not None:
            candidate &= allowed[box]
        candidate = ndimage.binary_opening(candidate, structure=_disc(settings.opening_mm, spacing))
        labels, n = ndimage.label(candidate)
        if n == 0:
            return None
        overlap = np.bincount(labels[sub_previous], minlength=n + 1)
        overlap[0] = 0
        if overlap.max() == 0:
            return None
        component = labels == int(np.argmax(overlap))
        if settings.star_factor:
            centre = tuple(int(round(v)) for v in ndimage.center_of_mass(sub_previous))
            component = _star_clip(component, centre, spacing, settings.star_factor)
        if component.sum() * spacing[0] * spacing[1] < settings.min_area_mm2:
            return None
        out = np.zeros_like(previous)
        out[box] = ndimage.binary_fill_holes(component)
        return out

    candidate = ndimage.binary_opening(inside(z), structure=_disc(settings.opening_mm, spacing))
    candidate = ndimage.binary_fill_holes(candidate)
    labels, n = ndimage.label(candidate)
    if n == 0:
        return None
    label = labels[seed_rc]
    if label == 0:
        near = _near_seed(candidate, seed_rc)
        if near is None:
            return None
        label = labels[near]
    component = labels == label
    if settings.split_depth_mm:
        component = _split_touching(component, seed_rc, spacing, settings.split_depth_mm)
    if settings.star_factor:
        # two passes: rays from the click, then from the clipped region's centroid
        centre = seed_rc
        for _ in range(2):
            component = _star_clip(component, centre, spacing, settings.star_factor)
            if not component.any():
                return None
            centre = tuple(int(round(v)) for v in ndimage.center_of_mass(component))
    if component.sum() * spacing[0] * spacing[1] < settings.min_area_mm2:
        return None
    return ndimage.binary_fill_holes(component)


def _star_clip(component: np.ndarray, centre, spacing, factor: float, n_rays: int = 180) -> np.ndarray:
    """Cut off sectors where the region reaches much farther from ``centre`` than it does typically.

    A neuroblastoma's outline is a lobulated ellipse seen from inside: along each ray from the centre
    its radius stays within a modest factor of the median radius. A leak into a touching organ of
    the same density shows as a sector of rays reaching far beyond it; those rays are cut back to
    ``factor`` times the median radius (then smoothed over neighbouring rays).
    """
    rows, cols = component.shape
    cr, cc = float(centre[0]), float(centre[1])
    step = 0.5
    max_r = float(np.hypot(rows, cols))
    radii = np.arange(0.0, max_r, step)
    angles = np.linspace(0.0, 2 * np.pi, n_rays, endpoint=False)
    # rays in millimetres, so that anisotropic pixels do not bend the ellipse
    dr = np.sin(angles)[:, None] * radii[None, :] / spacing[0] * min(spacing)
    dc = np.cos(angles)[:, None] * radii[None, :] / spacing[1] * min(spacing)
    rr = np.rint(cr + dr).astype(int)
    cc_ = np.rint(cc + dc).astype(int)
    valid = (rr >= 0) & (rr < rows) & (cc_ >= 0) & (cc_ < cols)
    hit = np.zeros(rr.shape, dtype=bool)
    hit[valid] = component[rr[valid], cc_[valid]]
    outside = ~hit
    outside[:, 0] = False  # the centre itself may sit in a hole (aortic lumen) of the region
    first_exit = np.where(outside.any(axis=1), outside.argmax(axis=1), radii.size - 1) * step
    if not np.any(first_exit > 0):
        return component
    limit = factor * float(np.median(first_exit))
    clipped = np.minimum(first_exit, limit)
    # circular median over neighbouring rays removes single-ray spikes
    padded = np.concatenate([clipped[-2:], clipped, clipped[:2]])
    clipped = np.median(np.lib.stride_tricks.sliding_window_view(padded, 5), axis=1)
    y, x = np.mgrid[0:rows, 0:cols]
    dy = (y - cr) * spacing[0] / min(spacing)
    dx = (x - cc) * spacing[1] / min(spacing)
    pixel_angle = np.mod(np.arctan2(dy, dx), 2 * np.pi)
    ray = np.rint(pixel_angle / (2 * np.pi) * n_rays).astype(int) % n_rays
    allowed = np.hypot(dy, dx) <= clipped[ray] + 1.0
    return component & allowed


def _split_touching(component: np.ndarray, seed_rc, spacing, depth_mm: float) -> np.ndarray:
    """Keep the watershed basin of the distance transform that holds the seed (separates blobs
    joined by a neck, e.g. a tumour abutting an organ of the same density)."""
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    rows, cols = np.nonzero(component)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    sub = component[box]
    distance = ndimage.distance_transform_edt(sub, sampling=spacing)
    markers, n_markers = ndimage.label(h_maxima(distance, depth_mm))
    if n_markers <= 1:
        return component
    basins = watershed(-distance, markers, mask=sub)
    local = (seed_rc[0] - box[0].start, seed_rc[1] - box[1].start)
    inside = 0 <= local[0] < sub.shape[0] and 0 <= local[1] < sub.shape[1]
    keep = basins[local] if inside and basins[local] else 0
    if keep == 0:
        near = _near_seed(sub, local, max_px=max(sub.shape))
        if near is None:
            return component
        keep = basins[near]
    out = np.zeros_like(component)
    out[box] = basins == keep
    return out


def _seed_level(plane: np.ndarray, seed_rc, radius_mm: float, spacing,
                settings_percentile: float = 90.0) -> tuple[float, float]:
    """Reference HU and robust spread of the tissue under the seed disc (soft-tissue values only)."""
    disc = _disc(radius_mm, spacing)
    h, w = disc.shape
    r0, c0 = seed_rc[0] - h // 2, seed_rc[1] - w // 2
    rs = slice(max(r0, 0), min(r0 + h, plane.shape[0]))
    cs = slice(max(c0, 0), min(c0 + w, plane.shape[1]))
    patch = plane[rs, cs][disc[rs.start - r0: rs.stop - r0, cs.start - c0: cs.stop - c0]]
    soft = patch[(patch > -20.0) & (patch < 250.0)]  # a calcified focus or fat under the click is not the tumour level
    values = soft if soft.size >= 5 else patch
    # a high percentile, not the median: a click on a necrotic core must still find the viable rim
    level = float(np.percentile(values, settings_percentile))
    spread = float(1.4826 * np.median(np.abs(values - np.median(values))))
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


def pseudo_hu_from_grey(grey: np.ndarray, width: float = 400.0, level: float = 40.0) -> np.ndarray:
    """Approximate HU of an 8-bit windowed export (the paper's BMP), inverting the linear window.

    A 2-D image upload has no HU; assuming it was exported with the model's window (W 400 / L 40 by
    default), ``hu ~ level - width / 2 + grey * width / 255``, so that the same HU thresholds of the
    seeded segmentation apply. Values clipped by the window stay at its ends.
    """
    grey = np.asarray(grey, dtype=np.float32)
    return (level - width / 2.0 + grey * (width / 255.0)).astype(np.float32)
