"""Segment the tumour in every phase of a study and measure it: the Case page's proposal and
``nbrisk segment``.

Per phase (:func:`tumour_probability`): the network's tumour probability on every slice, at the
network's size (per-slice inference: each slice sees its two neighbours as channels). Then
(:func:`segment_phases`), with the study's other phases aligned onto this one by the seeded
contour's :func:`~nbrisk_core.imaging.segmentation.align_phase` (nearest slice by position, then the
whole-slice shift that best overlaps the skeleton):

1. the 3-D connected components of ``probability >= 0.5`` inside the body are scored by the
   probability they hold, averaged over the aligned phases, so the component the three phases agree
   on is kept (the largest connected component, weighted by agreement); its holes are filled;
2. back at full resolution the mask is ``upsampled probability >= 0.5`` (bilinear: sub-pixel
   edges) within that component (grown by one low-resolution pixel), holes filled per slice;
3. measurements: area per slice ((0028,0030) PixelSpacing), the max-area slice (0-based, ascending
   z, the convention of ``truth.csv``), its area, the volume (voxels x pixel area x slice spacing),
   the longest axial diameter on that slice (largest distance between two mask pixel centres);
4. confidence: the geometric mean of the network's mean probability inside the mask on the
   max-area slice and the mask's 3-D Dice with the other phases' masks aligned onto it (one phase
   alone: the mean probability). Below :data:`~nbrisk_core.segment.model.LOW_CONFIDENCE` the proposal is
   flagged; no component at all gives ``found: false`` and confidence 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from nbrisk_core.case import SegmentationSummary
from nbrisk_core.errors import InputError
from nbrisk_core.segment.model import LOW_CONFIDENCE

#: a component smaller than this (mL) is not a tumour proposal
MIN_VOLUME_ML = 0.05
#: slices per forward pass
BATCH_SLICES = 32
#: HU above which a pixel is inside the body (fat is -100, air -1000)
BODY_HU = -400.0


@dataclass
class PhaseVolume:
    """One phase as the segmentation needs it (what :class:`~nbrisk_core.imaging.dicom_io.CTSeries`
    holds): HU ``(n, rows, cols)`` ascending z, positions, spacings and the (remapped) series UID."""

    hu: np.ndarray
    z_mm: np.ndarray
    pixel_spacing: tuple[float, float]
    slice_spacing_mm: float
    series_uid: str = ""

    @classmethod
    def from_series(cls, series) -> "PhaseVolume":
        z = np.asarray(series.z_mm, dtype=float)
        spacing = series.slice_spacing_mm or (float(np.median(np.diff(z))) if z.size > 1 else 1.0)
        return cls(hu=series.hu, z_mm=z, pixel_spacing=tuple(float(s) for s in series.pixel_spacing),
                   slice_spacing_mm=float(spacing), series_uid=series.series_uid)


@dataclass
class PhaseSegmentation:
    """The proposal for one phase (see the module docstring); ``mask`` is full-size boolean."""

    phase: str
    series_uid: str
    mask: np.ndarray
    areas_mm2: np.ndarray
    max_area_slice: int
    area_mm2: float
    volume_ml: float
    longest_diameter_mm: float
    confidence: float
    found: bool
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def low_confidence(self) -> bool:
        return (not self.found) or self.confidence < LOW_CONFIDENCE

    def summary(self, model_sha256: str | None = None) -> SegmentationSummary:
        """The measurements the typed case stores with this phase's chosen slice."""
        return SegmentationSummary(volume_ml=self.volume_ml, longest_diameter_mm=self.longest_diameter_mm,
                                   area_mm2=self.area_mm2, max_area_slice=self.max_area_slice,
                                   confidence=self.confidence, found=self.found, source="automatic",
                                   model_sha256=model_sha256)

    def to_dict(self) -> dict:
        """The JSON record of ``nbrisk segment --json`` (no mask)."""
        return {"series_uid": self.series_uid, "max_area_slice": int(self.max_area_slice),
                "area_mm2": round(float(self.area_mm2), 2), "volume_ml": round(float(self.volume_ml), 3),
                "longest_diameter_mm": round(float(self.longest_diameter_mm), 2),
                "confidence": round(float(self.confidence), 3), "found": bool(self.found),
                "low_confidence": bool(self.low_confidence), "notes": list(self.notes)}


def tumour_probability(model, hu: np.ndarray) -> np.ndarray:
    """The network's tumour probability of every slice, ``(n, S, S)`` float32 at the input size."""
    import torch

    from nbrisk_core.segment.preprocess import network_input

    volume = np.asarray(hu)
    if volume.ndim != 3 or volume.shape[0] < 1:
        raise InputError(f"expected an HU volume (slices, rows, columns); got shape {volume.shape}")
    inputs = network_input(volume, model.config.input_size)
    out = np.empty((inputs.shape[0], *inputs.shape[2:]), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, inputs.shape[0], BATCH_SLICES):
            batch = torch.from_numpy(inputs[start: start + BATCH_SLICES]).to(model.device)
            logits = model.network(batch).float()
            out[start: start + batch.shape[0]] = torch.softmax(logits, dim=1)[:, 1].cpu().numpy()
    return out


def _body(small_input_middle: np.ndarray) -> np.ndarray:
    """Inside the body, per slice at the network's size (holes filled: gas in the bowel is inside)."""
    from nbrisk_core.segment.preprocess import HU_RANGE

    level = (BODY_HU - HU_RANGE[0]) / (HU_RANGE[1] - HU_RANGE[0])
    # the window's lower end is -200 HU: anything above it is tissue
    inside = small_input_middle > max(level, 0.0) + 1e-3
    return np.stack([ndimage.binary_fill_holes(s) for s in inside])


def _fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    for k in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
        out[k] = ndimage.binary_fill_holes(mask[k])
    return out


def longest_diameter_mm(mask: np.ndarray, pixel_spacing) -> float:
    """Largest distance between two mask pixel centres on one slice (max Feret diameter), in mm."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return 0.0
    edge = mask & ~ndimage.binary_erosion(mask)
    rows, cols = np.nonzero(edge)
    points = np.column_stack([rows * float(pixel_spacing[0]), cols * float(pixel_spacing[1])])
    if len(points) > 2000:
        points = points[:: len(points) // 2000 + 1]
    d2 = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    return float(np.sqrt(d2.max()))


def seed_summary(mask: np.ndarray, pixel_spacing, slice_spacing_mm: float) -> SegmentationSummary:
    """The measurements of a seeded contour (the Case page's click, which replaces the proposal):
    ``mask`` ``(slices, rows, cols)``, measured as :func:`segment_phases` measures its own."""
    mask = np.asarray(mask, dtype=bool)
    pixel_mm2 = float(pixel_spacing[0]) * float(pixel_spacing[1])
    areas = mask.reshape(mask.shape[0], -1).sum(axis=1) * pixel_mm2
    best = np.flatnonzero(areas == areas.max())
    peak = int(best[len(best) // 2])
    return SegmentationSummary(volume_ml=float(mask.sum()) * pixel_mm2 * float(slice_spacing_mm) / 1000.0,
                               longest_diameter_mm=longest_diameter_mm(mask[peak], pixel_spacing),
                               area_mm2=float(areas[peak]), max_area_slice=peak, confidence=None,
                               found=bool(areas.max() > 0), source="seed click")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def segment_phases(model, phases: dict[str, PhaseVolume],
                   threshold: float | None = None) -> dict[str, PhaseSegmentation]:
    """Segment every phase of a study (see the module docstring); keys as given (``nc``/``art``/``pv``).

    ``threshold`` on the full-resolution probability: default the model card's ``threshold``
    (calibrated on held-out generator patients), else 0.5.
    """
    if threshold is None:
        threshold = float((getattr(model, "card", None) or {}).get("threshold", 0.5))
    import torch
    import torch.nn.functional as F

    from nbrisk_core.imaging.segmentation import align_phase
    from nbrisk_core.segment.preprocess import downsample

    started = time.perf_counter()
    probability, body, seconds = {}, {}, {}
    for name, volume in phases.items():
        t0 = time.perf_counter()
        probability[name] = tumour_probability(model, volume.hu)
        body[name] = _body(downsample(volume.hu, model.config.input_size))
        seconds[name] = time.perf_counter() - t0
    # other phases aligned onto each phase: index arrays into their slices
    alignment: dict[tuple[str, str], np.ndarray] = {}
    for name, volume in phases.items():
        for other, other_volume in phases.items():
            if other == name:
                continue
            aligned = align_phase(volume.hu, volume.z_mm, other_volume.hu, other_volume.z_mm)
            if aligned is not None:
                alignment[(name, other)] = aligned.index

    regions = {}
    for name in phases:
        prob = probability[name] * body[name]
        consensus = prob.copy()
        partners = [other for other in phases if (name, other) in alignment]
        for other in partners:
            consensus += probability[other][alignment[(name, other)]]
        consensus /= 1 + len(partners)
        labels, n = ndimage.label(prob >= 0.5)
        if n == 0:
            regions[name] = np.zeros(prob.shape, dtype=bool)
            continue
        scores = ndimage.sum_labels(consensus, labels, index=np.arange(1, n + 1))
        regions[name] = _fill_holes_per_slice(labels == (int(np.argmax(scores)) + 1))

    results = {}
    for name, volume in phases.items():
        t0 = time.perf_counter()
        region = regions[name]
        rows, cols = volume.hu.shape[1:]
        mask = np.zeros(volume.hu.shape, dtype=bool)
        slices = np.flatnonzero(region.reshape(region.shape[0], -1).any(axis=1))
        if slices.size:
            grown = ndimage.binary_dilation(region[slices], structure=np.ones((1, 3, 3), dtype=bool))
            prob = torch.from_numpy(probability[name][slices] * grown)[:, None]
            up = F.interpolate(prob, size=(rows, cols), mode="bilinear", align_corners=False)[:, 0].numpy()
            mask[slices] = _fill_holes_per_slice(up >= threshold)
        spacing = volume.pixel_spacing
        pixel_mm2 = float(spacing[0]) * float(spacing[1])
        areas = mask.reshape(mask.shape[0], -1).sum(axis=1) * pixel_mm2
        volume_ml = float(mask.sum()) * pixel_mm2 * volume.slice_spacing_mm / 1000.0
        found = bool(areas.max() > 0) and volume_ml >= MIN_VOLUME_ML
        notes = []
        if found:
            best = np.flatnonzero(areas == areas.max())
            peak = int(best[len(best) // 2])
            inside = region[peak] if region[peak].any() else region.any(axis=0)
            mean_probability = float(probability[name][peak][inside].mean())
            partners = [o for o in phases if (name, o) in alignment and regions[o].any()]
            if partners:
                agreement = float(np.mean([_dice(region, regions[o][alignment[(name, o)]])
                                           for o in partners]))
                confidence = float(np.sqrt(mean_probability * agreement))
            else:
                confidence = mean_probability
                notes.append("one phase only: the confidence does not include the agreement of the phases")
            diameter = longest_diameter_mm(mask[peak], spacing)
        else:
            peak, confidence, diameter = int(volume.hu.shape[0] // 2), 0.0, 0.0
            notes.append("no tumour found: the proposal is the middle slice; click the tumour to segment it")
            mask[:] = False
            areas = np.zeros_like(areas)
            volume_ml = 0.0
        results[name] = PhaseSegmentation(
            phase=name, series_uid=volume.series_uid, mask=mask, areas_mm2=areas, max_area_slice=peak,
            area_mm2=float(areas[peak]), volume_ml=volume_ml, longest_diameter_mm=diameter,
            confidence=confidence, found=found, seconds=seconds[name] + time.perf_counter() - t0, notes=notes)
    if len(phases) > 1:
        shared = (time.perf_counter() - started) - sum(r.seconds for r in results.values())
        for r in results.values():
            r.seconds += max(shared, 0.0) / len(results)
    return results


def study_phases(study) -> dict[str, "PhaseVolume"]:
    """The CT series of a read study keyed by phase (``nc``/``art``/``pv`` as
    :func:`~nbrisk_core.imaging.phases.suggest_phases` assigns them; a CT series with no phase cue is
    kept as ``series<N>``, N its 1-based position in the study).

    Raises
    ------
    InputError
        The study has no CT series in Hounsfield units.
    """
    from nbrisk_core.imaging.phases import suggest_phases

    ct = [s for s in study.series if s.is_hu and not s.header.get("image_file") and s.hu.ndim == 3]
    if not ct:
        found = ", ".join(f"{s.label or s.series_uid} ({s.header.get('Modality') or 'image'})"
                          for s in study.series[:3]) or "no image series"
        raise InputError(f"no CT series in Hounsfield units (found: {found}); segmentation needs a CT study")
    phases = {}
    for position, (series, guess) in enumerate(zip(ct, suggest_phases(ct)), start=1):
        phases[guess.phase or f"series{position}"] = PhaseVolume.from_series(series)
    order = {"nc": 0, "art": 1, "pv": 2}
    return dict(sorted(phases.items(), key=lambda item: (order.get(item[0], 3), item[0])))


def segment_study(source, model=None, device: str = "cpu") -> dict[str, PhaseSegmentation]:
    """Read a study (folder, zip or file) and segment every CT phase with ``model`` (default: the
    shipped ``models/seg_demo``, SHA-checked)."""
    from nbrisk_core.imaging.dicom_io import load_study
    from nbrisk_core.segment.model import load_seg_model, shipped_seg_model_path

    if model is None:
        path = shipped_seg_model_path()
        if not path.is_file():
            raise InputError(f"{path}: no segmentation model; train it with 'nbrisk train-seg' or set "
                             "NBRISK_MODELS_DIR")
        model = load_seg_model(path, device=device)
    return segment_phases(model, study_phases(load_study(source)))
