"""Unlimited on-the-fly training images from the cohort's generative model.

Pretraining the classifier (where ImageNet pretraining stands in the paper) needs many images
with dense targets. :func:`synth_training_batch` draws fresh patients with the cohort's patient
sampler and slice renderer (so the images look exactly like the cohort's), from a random stream
that the cohort never uses, and returns each patient's max-area slice per phase with its mask,
its dense truth and its risk truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nbrisk_core.demo.patients import sample_patients
from nbrisk_core.demo.render import PHASES, SLICE_SIZE, case_geometry, render_slice, slice_truth
from nbrisk_core.errors import InputError

TRAINING_STREAM = 1


@dataclass(frozen=True)
class TrainingBatch:
    """A batch of synthetic patients.

    Attributes
    ----------
    hu : dict of phase -> ndarray (n, size, size) int16
        Max-area slice of each requested phase, in HU.
    mask : dict of phase -> ndarray (n, size, size) uint8
        Tumour masks.
    targets : pandas.DataFrame
        One row per sample: the dense truth measured on the first requested phase's slice
        (``tumour_area_mm2``, ``longest_diameter_mm``, ``calcification_count``,
        ``calcification_volume_mm3``, ``necrotic_fraction``, ``enhancement_hu``, ``encasement``,
        ``crosses_midline``), ``enhancement_hu_<phase>`` per phase, ``latent_score``,
        ``p_high_risk``, ``label`` (1 = HR) and ``pixel_spacing_mm``.
    """

    hu: dict
    mask: dict
    targets: pd.DataFrame

    @property
    def labels(self) -> np.ndarray:
        return self.targets["label"].to_numpy()


def synth_training_batch(n: int, seed: int, phases=("art",), size: int = SLICE_SIZE) -> TrainingBatch:
    """Draw ``n`` new synthetic patients and render their max-area slices.

    Parameters
    ----------
    n : int
        Number of patients (samples).
    seed : int
        Batch seed; use a different seed per batch for unlimited distinct patients. The stream is
        separate from the cohort's, so a training batch never reproduces cohort patients.
    phases : sequence of {"nc", "art", "pv"}
        Phases to render (each ~10-20 ms per sample on one core at 256 x 256).
    size : int
        Image side in pixels; the field of view is kept, the pixel spacing scales.

    Examples
    --------
    >>> batch = synth_training_batch(2, seed=1, phases=("art",), size=64)
    >>> batch.hu["art"].shape, bool(batch.targets["label"].isin([0, 1]).all())
    ((2, 64, 64), True)
    """
    phases = tuple(phases)
    if not phases or any(p not in PHASES for p in phases):
        raise InputError(f"phases = {phases!r}: expected a non-empty subset of {PHASES}")
    if int(n) < 1:
        raise InputError(f"n = {n!r}: expected a positive number of samples")
    if not 32 <= int(size) <= 1024:
        raise InputError(f"size = {size!r}: expected 32..1024 pixels")
    table = sample_patients(int(n), np.random.default_rng([int(seed), TRAINING_STREAM]))
    hu = {p: np.empty((n, size, size), dtype=np.int16) for p in phases}
    mask = {p: np.empty((n, size, size), dtype=np.uint8) for p in phases}
    rows = []
    for i, params in enumerate(table.to_dict("records")):
        geom = case_geometry(params, (int(seed), TRAINING_STREAM, i), size=size)
        row = {}
        for j, phase in enumerate(phases):
            k = geom.max_area_slice(phase)
            if j == 0:
                hu[phase][i], mask[phase][i], detail = render_slice(geom, phase, k, with_detail=True)
                row.update(slice_truth(geom, phase, k, mask[phase][i].astype(bool), detail))
            else:
                hu[phase][i], mask[phase][i] = render_slice(geom, phase, k)
        for phase in PHASES:
            row[f"enhancement_hu_{phase}"] = float(geom.enhancement[PHASES.index(phase)])
        row.update(latent_score=float(params["latent_score"]), p_high_risk=float(params["p_high_risk"]),
                   label=int(params["risk_group"] == "HR"), pixel_spacing_mm=geom.pixel_spacing)
        rows.append(row)
    return TrainingBatch(hu=hu, mask=mask, targets=pd.DataFrame(rows))
