"""Slice renderer: a child's abdomen with a neuroblastoma, in Hounsfield units, per CT phase.

A case is described by a :class:`CaseGeometry` (drawn once per patient from the patient's scalar
parameters and a per-patient random stream). :func:`render_slice` draws one axial slice of one
phase from it; the slice depends only on ``(geometry, phase, slice index)`` -- its noise comes
from a generator seeded with the case key, the phase and the index -- so the cohort's max-area
slices, the full DICOM studies and on-the-fly training images are bit-identical where they meet.

Geometry, in the DICOM patient frame (LPS): image columns run to the patient's left (+x), rows
to posterior (+y), slice index k to superior (+z). The anatomy is scaled to the body half-width,
the tumour is a lobulated ellipsoid whose cross-section shrinks away from its centre slice, so
each phase has exactly one max-area slice (at the centre, displaced by the phase's breathing
shift of 0-2 slices).

HU per tissue and phase are a table (:data:`TISSUE_HU`), not ``if`` chains.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import numpy as np

from nbrisk_core.case import PHASES as _PHASES

PHASES = _PHASES  # nbrisk_core.case.Phase, in acquisition order
PHASE_INDEX: dict[str, int] = {p: i for i, p in enumerate(PHASES)}

#: Image size and series length of every demo study.
SLICE_SIZE = 256
N_SLICES = 48
HU_MIN, HU_MAX = -1024, 3071

#: Attenuation (HU) of each tissue in the NC, ART and PV phases. Sources: typical paediatric
#: multiphase CT values (aorta 250-350 HU in ART, corticomedullary kidney in ART, liver and
#: portal vein peaking in PV, fat -100 HU, gas -1000 HU, bone 300-1000 HU).
TISSUE_HU: dict[str, tuple[float, float, float]] = {
    "air": (-1000.0, -1000.0, -1000.0),
    "fat": (-100.0, -100.0, -100.0),
    "visceral": (-55.0, -50.0, -45.0),
    "muscle": (50.0, 55.0, 65.0),
    "liver": (58.0, 72.0, 115.0),
    "spleen": (48.0, 100.0, 125.0),
    "kidney_cortex": (32.0, 190.0, 165.0),
    "kidney_medulla": (30.0, 70.0, 150.0),
    "renal_sinus": (-60.0, -55.0, -50.0),
    "aorta": (42.0, 300.0, 155.0),
    "ivc": (40.0, 55.0, 140.0),
    "portal_vein": (40.0, 85.0, 175.0),
    "renal_vein": (40.0, 60.0, 150.0),
    "bowel_wall": (35.0, 55.0, 80.0),
    "bowel_fluid": (12.0, 12.0, 14.0),
    "gas": (-1000.0, -1000.0, -1000.0),
    "bone_cortical": (800.0, 800.0, 800.0),
    "bone_cancellous": (260.0, 260.0, 265.0),
    "disc": (85.0, 85.0, 88.0),
    "csf": (10.0, 10.0, 10.0),
    "necrosis": (18.0, 19.0, 20.0),
}


@dataclass(frozen=True)
class CaseGeometry:
    """Everything needed to render any slice of a case (all lengths in mm unless noted).

    ``key`` identifies the case's random streams (cohort seed, stream, patient index); the
    per-slice noise generator is seeded with ``key + (phase, slice index)``.
    """

    key: tuple[int, ...]
    size: int
    n_slices: int
    pixel_spacing: float
    slice_thickness: float
    body_half_width: float
    body_half_depth: float
    fat_thickness: float
    noise_sd: float
    aortic_peak: float
    # tumour
    tumour_center: tuple[float, float]
    tumour_center_slice: int            # in anatomical slice units (before the phase shift)
    tumour_radii: tuple[float, float]   # in-plane semi-axes
    tumour_half_height: float
    lobes: tuple[tuple[int, float, float], ...]   # (order, amplitude, phase)
    necrosis_scale: float               # necrotic core radius relative to the tumour outline
    necrosis_offset: tuple[float, float]
    heterogeneity: float
    nc_hu: float
    enhancement: tuple[float, float, float]       # per phase, added to viable tumour
    calcifications: np.ndarray          # (m, 5): x, y, z (mm, relative to tumour centre), radius, HU
    texture: np.ndarray                 # (6, 4): kx, ky, kz (rad/mm), phase
    shifts: tuple[int, int, int]        # breathing shift per phase, slices
    #: bowel loops (b, 7): x, y, drift dx/dz, radius, gas (1) or fluid (0), z half-extent and z centre
    #: (fractions of the volume)
    bowel: np.ndarray
    side: int                           # +1 left, -1 right

    def phase_shift(self, phase: str) -> int:
        return self.shifts[PHASE_INDEX[phase]]

    def max_area_slice(self, phase: str) -> int:
        """The slice (0-based, ascending z) where the tumour cross-section is largest, by construction."""
        return self.tumour_center_slice + self.phase_shift(phase)


def case_geometry(params: Mapping, key: tuple[int, ...], size: int = SLICE_SIZE,
                  n_slices: int = N_SLICES) -> CaseGeometry:
    """Draw a case's geometry from its scalar parameters (``img_*`` of the patient table).

    Parameters
    ----------
    params : mapping
        One row of :func:`nbrisk_core.demo.patients.sample_patients` (``img_*`` keys used).
    key : tuple of int
        Identifies the case's random stream, e.g. ``(seed, 0, patient_number)``.
    """
    rng = np.random.default_rng([*key, 7])
    spacing = float(params["img_pixel_spacing_mm"]) * (SLICE_SIZE / size)
    thickness = float(params["img_slice_thickness_mm"])
    half_fov = 0.5 * size * spacing
    body_a = half_fov * rng.uniform(0.78, 0.86)
    body_b = body_a * rng.uniform(0.66, 0.74)
    big = body_a

    radius = float(params["img_radius_fraction"]) * big
    elong = rng.uniform(0.85, 1.15)
    radii = (radius * elong, radius / elong)
    lob_amp = float(params["img_lobulation"])
    n_lobes = int(rng.integers(2, 4))
    weights = rng.dirichlet(np.ones(n_lobes))
    lobes = tuple((int(rng.integers(2, 7)), float(lob_amp * w * n_lobes / 1.5),
                   float(rng.uniform(0, 2 * np.pi))) for w in weights)
    lob_max = 1.0 + sum(a for _, a, _ in lobes)

    side = 1 if params["img_side"] == "left" else -1
    aorta = _aorta(big)
    r_aorta = aorta[2]
    encase = bool(params["img_encasement_intent"]) or radius > 0.30 * big
    if encase:
        # the tumour grows around the aorta: centre close enough that the lumen lies inside
        d = min(0.35 * min(radii), 0.8 * min(radii) / lob_max - r_aorta - 1.0)
        center = (aorta[0] + side * max(d, 0.0), aorta[1] - 0.1 * radii[1])
    elif bool(params["img_midline_intent"]):
        # pre-aortic mass crossing the midline without wrapping the vessel
        gap = radii[1] * lob_max + r_aorta + 3.0
        center = (side * 0.25 * radii[0], aorta[1] - gap)
    else:
        gap = radii[0] * lob_max + r_aorta + 3.0
        center = (aorta[0] + side * gap, aorta[1] - 0.15 * radii[1])

    half_height = min(float(params["img_height_ratio"]) * radius, 18 * thickness)
    # the centre slice varies between cases (slice selection must search), leaving room for the
    # whole tumour and the largest breathing shift (2 slices) inside the series
    half_slices = int(np.ceil(half_height / thickness))
    lowest = max(half_slices + 1, n_slices // 2 - 10)
    highest = min(n_slices - 4 - half_slices, n_slices // 2 + 6)
    center_slice = int(rng.integers(lowest, highest + 1)) if highest >= lowest else n_slices // 2 - 2

    nec = float(params["img_necrotic_fraction"])
    # area fraction of the core ~ scale**2 (before clipping by the outline and texture)
    necrosis_scale = float(np.sqrt(nec)) if nec > 0.02 else 0.0
    necrosis_offset = tuple(rng.uniform(-0.15, 0.15, 2) * radius)

    n_calc = int(params["img_calcification_foci"])
    calc = np.zeros((n_calc, 5))
    if n_calc:
        # positions inside the tumour body, concentrated near its centre slice (speckled clusters)
        direction = rng.standard_normal((n_calc, 2))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        rho = 0.75 * np.sqrt(rng.random(n_calc))
        calc[:, 0] = direction[:, 0] * rho * radii[0]
        calc[:, 1] = direction[:, 1] * rho * radii[1]
        calc[:, 2] = np.clip(rng.normal(0.0, 0.3, n_calc), -0.7, 0.7) * half_height
        calc[:, 3] = rng.uniform(1.5, 3.5, n_calc)
        calc[:, 4] = rng.uniform(400.0, 1000.0, n_calc)

    wavelength = rng.uniform(10.0, 25.0, 6)
    k_dir = rng.standard_normal((6, 3))
    k_dir /= np.linalg.norm(k_dir, axis=1, keepdims=True)
    texture = np.column_stack([k_dir * (2 * np.pi / wavelength)[:, None], rng.uniform(0, 2 * np.pi, 6)])

    n_bowel = int(rng.integers(9, 15))
    bowel = np.column_stack([
        rng.uniform(-0.6, 0.6, n_bowel) * big,
        rng.uniform(-0.7, 0.0, n_bowel) * body_b,
        rng.uniform(-0.3, 0.3, n_bowel),
        rng.uniform(0.05, 0.10, n_bowel) * big,
        (rng.random(n_bowel) < 0.35).astype(float),
        rng.uniform(0.15, 0.4, n_bowel),
        rng.uniform(0.2, 0.8, n_bowel),
    ])

    return CaseGeometry(
        key=tuple(int(k) for k in key), size=size, n_slices=n_slices, pixel_spacing=spacing,
        slice_thickness=thickness, body_half_width=body_a, body_half_depth=body_b,
        fat_thickness=rng.uniform(0.05, 0.09) * big, noise_sd=float(rng.uniform(10.0, 18.0)),
        aortic_peak=float(rng.uniform(250.0, 350.0)),
        tumour_center=(float(center[0]), float(center[1])), tumour_center_slice=center_slice,
        tumour_radii=(float(radii[0]), float(radii[1])), tumour_half_height=float(half_height),
        lobes=lobes, necrosis_scale=necrosis_scale,
        necrosis_offset=(float(necrosis_offset[0]), float(necrosis_offset[1])),
        heterogeneity=float(params["img_heterogeneity"]), nc_hu=float(params["img_nc_hu"]),
        enhancement=(0.0, float(params["img_enhancement_art"]), float(params["img_enhancement_pv"])),
        calcifications=calc, texture=texture,
        shifts=(0, int(params["img_shift_art"]), int(params["img_shift_pv"])),
        bowel=bowel, side=side,
    )


def _aorta(body_a: float) -> tuple[float, float, float]:
    """Aorta centre (x, y) and radius: left of midline, just anterior to the vertebral body."""
    return (0.05 * body_a, 0.12 * body_a, 0.045 * body_a)


@lru_cache(maxsize=32)
def _grid(size: int, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    centre = (size - 1) / 2.0
    coords = ((np.arange(size, dtype=np.float32) - centre) * spacing).astype(np.float32)
    return coords[None, :], coords[:, None]   # x (columns), y (rows), broadcastable


def _ellipse(x, y, cx, cy, rx, ry, power: float = 2.0):
    # Python floats keep float32 grids in float32 (NumPy's weak scalar promotion)
    cx, cy, rx, ry = float(cx), float(cy), float(rx), float(ry)
    if power == 2.0:
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
    return np.abs((x - cx) / rx) ** power + np.abs((y - cy) / ry) ** power <= 1.0


def _profile(u: float) -> float:
    """Cross-section scale at normalised height ``u``: sharp enough that the centre slice is the
    one strict maximum of the area, smooth enough to look like an ellipsoid."""
    u = abs(u)
    if u >= 1.0:
        return 0.0
    return float(np.sqrt(1.0 - u * u) * (1.0 - 0.35 * u))


def _anatomical_z(geom: CaseGeometry, phase: str, k: int) -> float:
    """z of slice k in mm relative to the tumour centre, after the phase's breathing shift."""
    return (k - geom.phase_shift(phase) - geom.tumour_center_slice) * geom.slice_thickness


def _tumour_shape(geom: CaseGeometry, phase: str, k: int):
    """The tumour outline on slice k, computed only inside its bounding box.

    Returns ``None`` if the slice misses the tumour, else ``(box, inside, rho, outline)``: the
    (row, column) slices of the box, the outline mask before exclusions, the normalised radius and
    the outline radius (all box-sized).
    """
    dz = _anatomical_z(geom, phase, k)
    g = _profile(dz / geom.tumour_half_height)
    if g <= 0.0:
        return None
    reach = max(geom.tumour_radii) * g * (1.0 + sum(abs(a) for _, a, _ in geom.lobes))
    centre = (geom.size - 1) / 2.0
    spacing = geom.pixel_spacing
    c0 = max(int(np.floor((geom.tumour_center[0] - reach) / spacing + centre)) - 1, 0)
    c1 = min(int(np.ceil((geom.tumour_center[0] + reach) / spacing + centre)) + 2, geom.size)
    r0 = max(int(np.floor((geom.tumour_center[1] - reach) / spacing + centre)) - 1, 0)
    r1 = min(int(np.ceil((geom.tumour_center[1] + reach) / spacing + centre)) + 2, geom.size)
    if c1 <= c0 or r1 <= r0:
        return None
    box = (slice(r0, r1), slice(c0, c1))
    x, y = _grid(geom.size, spacing)
    dx = x[:, c0:c1] - np.float32(geom.tumour_center[0])
    dy = y[r0:r1, :] - np.float32(geom.tumour_center[1])
    rho = np.sqrt((dx / np.float32(geom.tumour_radii[0])) ** 2 + (dy / np.float32(geom.tumour_radii[1])) ** 2)
    theta = np.arctan2(dy, dx)
    outline = np.ones_like(rho)
    for order, amp, ph in geom.lobes:
        outline += np.float32(amp) * np.cos(np.float32(order) * theta + np.float32(ph))
    outline *= np.float32(g)
    return box, rho <= outline, rho, outline


@lru_cache(maxsize=16)
def _body_layers(size, spacing, body_a, body_b, fat):
    """Full-size masks of the body, the inner edge of the fat (muscle wall) and the abdominal cavity."""
    x, y = _grid(size, spacing)
    wall = fat + 0.05 * body_a
    layers = (_ellipse(x, y, 0.0, 0.0, body_a, body_b, 2.3),
              _ellipse(x, y, 0.0, 0.0, body_a - fat, body_b - fat, 2.3),
              _ellipse(x, y, 0.0, 0.0, body_a - wall, body_b - wall, 2.3))
    for layer in layers:
        layer.setflags(write=False)
    return layers


def _exclusions(geom: CaseGeometry) -> np.ndarray:
    """Pixels the tumour never occupies: outside the abdominal cavity, aortic lumen, vertebra."""
    return _exclusions_cached(geom.size, geom.pixel_spacing, geom.body_half_width, geom.body_half_depth,
                              geom.fat_thickness)


@lru_cache(maxsize=64)
def _exclusions_cached(size, spacing, body_a, body_b, fat):
    x, y = _grid(size, spacing)
    wall = fat + 0.05 * body_a
    cavity = _ellipse(x, y, 0.0, 0.0, body_a - wall, body_b - wall, 2.3)
    ax, ay, ar = _aorta(body_a)
    lumen = _ellipse(x, y, ax, ay, ar, ar)
    vb = _vertebra(body_a)
    vertebra = _ellipse(x, y, 0.0, vb[0], vb[1], vb[1] * 0.9)
    canal = _ellipse(x, y, 0.0, vb[0] + 1.45 * vb[1], 0.5 * vb[1], 0.45 * vb[1])
    keep_out = ~cavity | lumen | vertebra | canal | (y > vb[0] + 0.6 * vb[1])
    keep_out.setflags(write=False)
    return keep_out


def _vertebra(body_a: float) -> tuple[float, float]:
    """Vertebral body centre y and radius."""
    return (0.3 * body_a, 0.11 * body_a)


def tumour_mask(geom: CaseGeometry, phase: str, k: int) -> np.ndarray:
    """Boolean tumour mask of slice ``k`` of ``phase`` (cheap: no anatomy, no noise)."""
    mask = np.zeros((geom.size, geom.size), dtype=bool)
    shape = _tumour_shape(geom, phase, k)
    if shape is not None:
        box, inside = shape[0], shape[1]
        mask[box] = inside & ~_exclusions(geom)[box]
    return mask


def area_curve(geom: CaseGeometry, phase: str) -> np.ndarray:
    """Tumour area (pixels) of every slice of a phase, ascending z."""
    return np.array([int(tumour_mask(geom, phase, k).sum()) for k in range(geom.n_slices)])


def render_slice(geom: CaseGeometry, phase: str, k: int, with_detail: bool = False):
    """Render slice ``k`` (0-based, ascending z) of ``phase``.

    Returns
    -------
    hu : ndarray of int16, (size, size)
        Hounsfield units, clipped to [-1024, 3071].
    mask : ndarray of uint8
        Tumour mask (1 inside).
    detail : dict, only if ``with_detail``
        Boolean maps ``necrosis`` and ``calcification`` and the per-focus visibility, for the truth.
    """
    p = PHASE_INDEX[phase]
    size, spacing = geom.size, geom.pixel_spacing
    x, y = _grid(size, spacing)
    a, b = geom.body_half_width, geom.body_half_depth
    w = (k - geom.phase_shift(phase) + 0.5) / geom.n_slices   # 0 = inferior, 1 = superior
    hu = np.full((size, size), TISSUE_HU["air"][p], dtype=np.float32)
    centre = (size - 1) / 2.0

    def ellipse(cx, cy, rx, ry, power=2.0):
        # computed in the bounding box only: most structures cover a few hundred pixels
        c0, c1 = max(int((cx - rx) / spacing + centre), 0), min(int((cx + rx) / spacing + centre) + 2, size)
        r0, r1 = max(int((cy - ry) / spacing + centre), 0), min(int((cy + ry) / spacing + centre) + 2, size)
        if c1 <= c0 or r1 <= r0:
            return None
        return (slice(r0, r1), slice(c0, c1)), _ellipse(x[:, c0:c1], y[r0:r1, :], cx, cy, rx, ry, power)

    def paint(region, tissue, value=None, within=None):
        if region is None:
            return
        box, inside = region
        if within is not None:
            inside = inside & within[box]
        hu[box][inside] = TISSUE_HU[tissue][p] if value is None else value

    body, wall_out, cavity = _body_layers(size, spacing, a, b, geom.fat_thickness)
    hu[body] = TISSUE_HU["fat"][p]
    hu[wall_out] = TISSUE_HU["muscle"][p]
    hu[cavity] = TISSUE_HU["visceral"][p]

    vb_y, vb_r = _vertebra(a)
    # paraspinal muscles and psoas
    for sx in (-1.0, 1.0):
        paint(ellipse(sx * 0.2 * a, vb_y + 0.22 * a, 0.15 * a, 0.12 * a), "muscle", within=wall_out)
        psoas = 0.05 * a + 0.04 * a * (1.0 - w)
        paint(ellipse(sx * 0.19 * a, vb_y - 0.02 * a, psoas, psoas * 1.2), "muscle")

    # bowel loops: tubes drifting along z, gas- or fluid-filled
    for bx, by, drift, br, gas, half, zc in geom.bowel:
        if abs(w - zc) < half:
            cx = bx + drift * (w - zc) * a
            paint(ellipse(cx, by, br, br * 0.85), "bowel_wall", within=cavity)
            paint(ellipse(cx, by, 0.7 * br, 0.6 * br), "gas" if gas else "bowel_fluid", within=cavity)

    # liver (right, image left) grows towards the top of the volume; spleen on the left
    liver_scale = float(np.clip((w - 0.25) / 0.5, 0.0, 1.0) ** 0.5)
    if liver_scale > 0:
        paint(ellipse(-0.38 * a, -0.05 * b, 0.5 * a * liver_scale + 1e-3, 0.75 * b * liver_scale + 1e-3),
              "liver", within=cavity)
        if w > 0.5:
            paint(ellipse(-0.2 * a, -0.02 * b, 0.05 * a, 0.04 * a), "portal_vein")
    if w > 0.55:
        paint(ellipse(0.5 * a, 0.25 * b, 0.17 * a, 0.3 * b), "spleen", within=cavity)

    # kidneys: cortex, medulla, sinus fat, present over the middle of the volume
    k_prof = 1.0 - ((w - 0.42) / 0.3) ** 2
    if k_prof > 0:
        s = float(np.sqrt(k_prof))
        for sx in (-1.0, 1.0):
            cx, cy = sx * 0.36 * a, vb_y - 0.02 * a
            rx, ry = 0.12 * a * s + 1e-3, 0.16 * a * s + 1e-3
            paint(ellipse(cx, cy, rx, ry), "kidney_cortex")
            paint(ellipse(cx, cy, 0.68 * rx, 0.68 * ry), "kidney_medulla")
            paint(ellipse(cx - sx * 0.45 * rx, cy, 0.3 * rx, 0.3 * ry), "renal_sinus")
        if abs(w - 0.45) < 0.04:
            # renal veins to the IVC (the left one passes in front of the aorta)
            vein_y = vb_y - 0.15 * a
            paint(ellipse(0.0, vein_y, 0.3 * a, 0.025 * a, 8.0), "renal_vein")

    # great vessels
    ax, ay, ar = _aorta(a)
    paint(ellipse(ax, ay, ar, ar), "aorta", geom.aortic_peak if phase == "art" else None)
    paint(ellipse(-0.12 * a, ay - 0.02 * a, 0.06 * a, 0.04 * a), "ivc")

    # spine: vertebral body (or disc), canal, posterior elements
    disc = ((w * geom.n_slices * geom.slice_thickness) % 25.0) < 4.0
    paint(ellipse(0.0, vb_y, vb_r, vb_r * 0.9), "disc" if disc else "bone_cortical")
    if not disc:
        paint(ellipse(0.0, vb_y, vb_r * 0.82, vb_r * 0.72), "bone_cancellous")
    canal_y = vb_y + 1.45 * vb_r
    paint(ellipse(0.0, canal_y, 0.72 * vb_r, 0.66 * vb_r), "bone_cortical")
    paint(ellipse(0.0, canal_y, 0.5 * vb_r, 0.45 * vb_r), "csf")
    paint(ellipse(0.0, canal_y + 1.0 * vb_r, 0.12 * a * 0.5, 0.6 * vb_r), "bone_cortical")

    # ribs in the upper part of the volume, along the inner body wall
    if w > 0.55:
        for angle in (0.55, 0.9, 1.25, 1.9, 2.25, 2.6):
            rib_x = np.cos(angle) * (a - geom.fat_thickness - 0.03 * a)
            rib_y = np.sin(angle) * (b - geom.fat_thickness - 0.03 * a)
            paint(ellipse(rib_x, rib_y, 0.025 * a, 0.018 * a), "bone_cortical")

    # tumour
    detail = {"necrosis": None, "calcification": None, "visible_foci": np.zeros(0, dtype=bool)}
    shape = _tumour_shape(geom, phase, k)
    mask = np.zeros((size, size), dtype=bool)
    if shape is not None:
        box, inside, rho, outline = shape
        sub_mask = inside & ~_exclusions(geom)[box]
        mask[box] = sub_mask
        xs, ys = x[:, box[1]], y[box[0], :]
        dz = _anatomical_z(geom, phase, k)
        field = _texture(geom, xs, ys, dz)
        viable = (np.float32(geom.nc_hu) + 4.0 * field
                  + np.float32(geom.enhancement[p]) * (1.0 + np.float32(geom.heterogeneity) * field))
        tumour_hu = viable
        sub_necrosis = np.zeros_like(sub_mask)
        if geom.necrosis_scale > 0:
            nx = xs - np.float32(geom.tumour_center[0] + geom.necrosis_offset[0])
            ny = ys - np.float32(geom.tumour_center[1] + geom.necrosis_offset[1])
            nrho = np.sqrt((nx / np.float32(geom.tumour_radii[0])) ** 2
                           + (ny / np.float32(geom.tumour_radii[1])) ** 2)
            sub_necrosis = sub_mask & (nrho + 0.12 * field < np.float32(geom.necrosis_scale) * outline)
            tumour_hu = np.where(sub_necrosis, np.float32(TISSUE_HU["necrosis"][p]) + 3.0 * field, viable)
        sub_hu = hu[box]   # a view: painting it paints the slice
        sub_hu[sub_mask] = tumour_hu[sub_mask]
        sub_calc, visible = _calcifications(geom, xs, ys, dz, sub_hu, sub_mask)
        necrosis = np.zeros_like(mask)
        necrosis[box] = sub_necrosis
        calc_map = np.zeros_like(mask)
        calc_map[box] = sub_calc
        detail.update(necrosis=necrosis, calcification=calc_map, visible_foci=visible)

    # partial-volume blur, then quantum noise from the slice's own stream
    from scipy.ndimage import gaussian_filter   # here: keeps `import nbrisk_core.demo` light

    hu = gaussian_filter(hu, sigma=0.6, mode="nearest")
    rng = np.random.default_rng([*geom.key, 11, p, k])
    hu += rng.standard_normal((size, size), dtype=np.float32) * np.float32(geom.noise_sd)
    out = np.clip(np.rint(hu), HU_MIN, HU_MAX).astype(np.int16)
    if with_detail:
        return out, mask.astype(np.uint8), detail
    return out, mask.astype(np.uint8)


def _texture(geom: CaseGeometry, x, y, dz: float) -> np.ndarray:
    """Smooth 3-D field in [-1, 1] (sum of plane waves): heterogeneous enhancement, irregular necrosis."""
    dx = x - geom.tumour_center[0]
    dy = y - geom.tumour_center[1]
    field = np.zeros(np.broadcast_shapes(dx.shape, dy.shape), dtype=np.float32)
    for kx, ky, kz, ph in geom.texture:
        field += np.sin(np.float32(kx) * dx + np.float32(ky) * dy + np.float32(kz * dz + ph))
    return field / np.float32(np.sqrt(len(geom.texture)) * 1.4)


def _calcifications(geom: CaseGeometry, x, y, dz: float, hu: np.ndarray, mask: np.ndarray):
    """Paint the calcified foci crossing this slice's slab (partial volume: HU scaled by the
    fraction of the slab they fill). Returns the calcification map and which foci are visible."""
    calc_map = np.zeros(hu.shape, dtype=bool)
    foci = geom.calcifications
    visible = np.zeros(len(foci), dtype=bool)
    half_t = geom.slice_thickness / 2.0
    for i, (cx, cy, cz, r, value) in enumerate(foci):
        lo, hi = max(cz - r, dz - half_t), min(cz + r, dz + half_t)
        if hi <= lo:
            continue
        # largest cross-section within the slab
        nearest = min(max(cz, dz - half_t), dz + half_t)
        r_slice = np.sqrt(max(r * r - (nearest - cz) ** 2, 0.0))
        disc = ((x - geom.tumour_center[0] - cx) ** 2 + (y - geom.tumour_center[1] - cy) ** 2
                <= max(r_slice, 0.75 * geom.pixel_spacing) ** 2) & mask
        if not disc.any():
            continue
        fill = min(1.0, (hi - lo) / geom.slice_thickness * 1.6)
        hu[disc] = hu[disc] + (value - hu[disc]) * fill
        calc_map |= disc
        visible[i] = True
    return calc_map, visible


def sphere_slab_volume(r: float, z_lo: float, z_hi: float) -> float:
    """Volume (mm^3) of a sphere of radius ``r`` centred at 0 between the planes ``z_lo`` < ``z_hi``."""
    lo, hi = max(-r, z_lo), min(r, z_hi)
    if hi <= lo:
        return 0.0
    return float(np.pi * (r * r * (hi - lo) - (hi**3 - lo**3) / 3.0))


def slice_truth(geom: CaseGeometry, phase: str, k: int, mask: np.ndarray, detail: dict) -> dict:
    """Dense truth of one rendered slice (tumour area, diameter, calcification, necrosis, flags)."""
    spacing = geom.pixel_spacing
    area_px = int(mask.sum())
    x, y = _grid(geom.size, spacing)
    truth = {
        "tumour_area_mm2": area_px * spacing * spacing,
        "longest_diameter_mm": _longest_diameter(mask, spacing),
        "calcification_count": int(detail["visible_foci"].sum()),
        "calcification_volume_mm3": 0.0,
        "necrotic_fraction": (float(detail["necrosis"].sum() / area_px)
                              if area_px and detail["necrosis"] is not None else 0.0),
        "enhancement_hu": float(geom.enhancement[PHASE_INDEX[phase]]),
        "encasement": 0,
        "crosses_midline": 0,
    }
    dz = _anatomical_z(geom, phase, k)
    half_t = geom.slice_thickness / 2.0
    for (cx, cy, cz, r, _), seen in zip(geom.calcifications, detail["visible_foci"]):
        if seen:
            truth["calcification_volume_mm3"] += sphere_slab_volume(r, dz - half_t - cz, dz + half_t - cz)
    if area_px:
        cols = np.nonzero(mask.any(axis=0))[0]
        xs = x[0, cols]
        truth["crosses_midline"] = int(xs.min() < -3.0 and xs.max() > 3.0)
        # encasement: the tumour outline covers at least half of the aortic circumference
        ax, ay, ar = _aorta(geom.body_half_width)
        shape = _tumour_shape(geom, phase, k)
        angles = np.linspace(0, 2 * np.pi, 36, endpoint=False)
        px = ax + (ar + 1.5 * spacing) * np.cos(angles)
        py = ay + (ar + 1.5 * spacing) * np.sin(angles)
        cols_i = np.clip(np.rint(px / spacing + (geom.size - 1) / 2).astype(int), 0, geom.size - 1)
        rows_i = np.clip(np.rint(py / spacing + (geom.size - 1) / 2).astype(int), 0, geom.size - 1)
        covered = 0.0
        if shape is not None:
            box, inside = shape[0], shape[1]
            full = np.zeros((geom.size, geom.size), dtype=bool)
            full[box] = inside
            covered = full[rows_i, cols_i].mean()
        truth["encasement"] = int(covered >= 0.5)
    return truth


def _longest_diameter(mask: np.ndarray, spacing: float) -> float:
    """Largest distance between two mask pixel centres (max Feret diameter), in mm."""
    if not mask.any():
        return 0.0
    # only boundary pixels can be the endpoints
    inner = mask.copy()
    inner[1:-1, 1:-1] = (mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1]
                         & mask[1:-1, :-2] & mask[1:-1, 2:])
    rows, cols = np.nonzero(mask & ~inner)
    pts = np.column_stack([rows, cols]).astype(np.float32)
    if len(pts) > 1500:
        pts = pts[:: len(pts) // 1500 + 1]
    d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
    return float(np.sqrt(d2.max()) * spacing)
