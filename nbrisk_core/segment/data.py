"""Training slices for the segmentation network, drawn on the fly from the demo generator.

Patients come from the demo cohort's patient sampler and slice renderer
(:mod:`nbrisk_core.demo.patients`, :mod:`nbrisk_core.demo.render`), with their own seed
(:data:`SEG_TRAINING_SEED`, not the demo cohort's 20250416) and their own random stream
(:data:`SEG_STREAM`; the cohort uses stream 0, classifier pretraining stream 1), so the network never
sees a demo-cohort patient and the demo cohort can score it. Each epoch draws new patients
(patient numbers ``epoch * patients_per_epoch + i``), so a resumed run sees exactly the data the
uninterrupted run would have seen.

Per patient and phase (all three phases) the samples are: the max-area slice, a few other tumour
slices and a few slices without tumour (next to either end of the tumour, where the network must
learn to stop, and one anywhere else). Each sample is the 2.5-D input of :mod:`.preprocess`
(three adjacent slices, windowed and resampled in-plane) and the generator's mask of the middle slice
at the network's size. Images are kept as uint8 (1/255 of the window, 2.4 HU: far below the CT noise)
until the MONAI transforms turn them to float.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from nbrisk_core.demo.render import PHASES, area_curve, case_geometry, render_slice
from nbrisk_core.segment import SEG_TRAINING_SEED  # re-exported: the training cohort's seed

#: random stream of the segmentation patients (cohort 0, classifier pretraining 1)
SEG_STREAM = 2
#: patient numbers from here on are the validation patients (never drawn for training)
VALIDATION_OFFSET = 10_000_000


@dataclass(frozen=True)
class SegDataConfig:
    """How the training samples are drawn (recorded in the checkpoint state and the model card)."""

    seed: int = SEG_TRAINING_SEED
    input_size: int = 128
    patients_per_epoch: int = 96
    tumour_slices: int = 5        # per phase, besides the max-area slice
    margin_slices: int = 2        # per phase: one just below and one just above the tumour
    far_slices: int = 1           # per phase: anywhere without tumour

    def to_dict(self) -> dict:
        return asdict(self)


def patient_geometry(seed: int, number: int, size: int = 256):
    """The geometry of segmentation-cohort patient ``number`` (0-based) and its patient row."""
    from nbrisk_core.demo.patients import sample_patients

    params = sample_patients(1, np.random.default_rng([int(seed), SEG_STREAM, int(number)])).iloc[0].to_dict()
    return case_geometry(params, (int(seed), SEG_STREAM, int(number)), size=size)


def choose_slices(geom, phase: str, config: SegDataConfig, rng: np.random.Generator) -> list[int]:
    """The training slices of one phase (see the module docstring)."""
    areas = area_curve(geom, phase)
    tumour = np.flatnonzero(areas > 0)
    peak = geom.max_area_slice(phase)
    chosen = [peak]
    others = tumour[tumour != peak]
    if others.size:
        chosen += list(rng.choice(others, size=min(config.tumour_slices, others.size), replace=False))
    empty = np.flatnonzero(areas == 0)
    if tumour.size and empty.size:
        below = empty[(empty < tumour[0]) & (empty >= tumour[0] - 3)]
        above = empty[(empty > tumour[-1]) & (empty <= tumour[-1] + 3)]
        for side in (below, above)[: config.margin_slices]:
            if side.size:
                chosen.append(int(rng.choice(side)))
        if config.far_slices:
            chosen += list(rng.choice(empty, size=min(config.far_slices, empty.size), replace=False))
    return [int(k) for k in chosen]


def patient_samples(seed: int, number: int, config: SegDataConfig) -> list[dict]:
    """The samples of one patient: dicts ``image`` (3, S, S) uint8, ``label`` (1, S, S) uint8,
    ``phase``, ``slice`` and ``patient`` (the number)."""
    from nbrisk_core.segment.preprocess import downsample, downsample_mask

    geom = patient_geometry(seed, number)
    rng = np.random.default_rng([int(seed), SEG_STREAM, int(number), 99])
    size = config.input_size
    samples = []
    for phase in PHASES:
        cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def small(k: int):
            k = int(np.clip(k, 0, geom.n_slices - 1))
            if k not in cache:
                hu, mask = render_slice(geom, phase, k)
                cache[k] = (downsample(hu, size)[0], downsample_mask(mask, size)[0])
            return cache[k]

        for k in choose_slices(geom, phase, config, rng):
            stack = np.stack([small(j)[0] for j in (k - 1, k, k + 1)])
            samples.append({"image": np.rint(stack * 255.0).astype(np.uint8),
                            "label": small(k)[1][None].copy(),
                            "phase": phase, "slice": k, "patient": int(number)})
    return samples


def epoch_patients(config: SegDataConfig, epoch: int) -> range:
    """Patient numbers of a training epoch (0-based epochs; disjoint across epochs)."""
    start = int(epoch) * config.patients_per_epoch
    return range(start, start + config.patients_per_epoch)


def validation_patients(n: int) -> range:
    """Patient numbers of the validation patients (disjoint from every training epoch)."""
    return range(VALIDATION_OFFSET, VALIDATION_OFFSET + int(n))


def render_volume(geom, phase: str) -> tuple[np.ndarray, np.ndarray]:
    """A whole phase of a generator case: HU ``(n, size, size)`` int16 and the tumour mask (bool)."""
    hus, masks = zip(*(render_slice(geom, phase, k) for k in range(geom.n_slices)))
    return np.stack(hus), np.stack(masks).astype(bool)
