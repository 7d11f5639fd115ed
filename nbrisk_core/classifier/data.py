"""Classifier data: cohort images and labels, and the paper's training augmentation.

Images go through the one input builder (:mod:`nbrisk_core.imaging.model_input`):
HU slice -> ``hu_to_uint8`` -> ``to_model_image`` (uint8 224x224x3) -> augmentation (training
only) -> ``normalize``. A cohort on disk follows ``docs/architecture.md`` (``clinical.csv`` with
``risk_group``, ``slices/<pid>/hu.npz`` or the 8-bit ``slices/<pid>/<phase>.png`` exports).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from nbrisk_core.classifier import CLASS_ORDER
from nbrisk_core.errors import InputError
from nbrisk_core.imaging.model_input import (IMAGENET_MEAN, IMAGENET_STD, INPUT_SIZE, INPUT_VARIANTS,
                                             hu_to_uint8, to_model_image)
from nbrisk_core.imaging.windowing import MODEL_WINDOW, Window


@dataclass(frozen=True)
class Augmentation:
    """The paper's augmentation (``../shared/spec/method.md`` section 3), overridable per flag."""

    rotation_deg: float = 10.0
    translate_fraction: float = 0.10
    brightness: tuple[float, float] = (0.7, 1.3)
    contrast: tuple[float, float] = (0.8, 1.2)
    saturation: tuple[float, float] = (0.8, 1.2)

    def transform(self):
        """A torchvision ``transforms.v2`` pipeline acting on one uint8 CHW image."""
        from torchvision.transforms import v2

        return v2.Compose([
            v2.RandomAffine(degrees=self.rotation_deg,
                            translate=(self.translate_fraction, self.translate_fraction)),
            v2.ColorJitter(brightness=self.brightness, contrast=self.contrast, saturation=self.saturation),
        ])


def label_index(risk_group: str) -> int:
    """``"HR"`` -> 0, ``"NHR"`` -> 1 (the output layer's :data:`CLASS_ORDER`)."""
    if risk_group not in CLASS_ORDER:
        raise InputError(f"risk_group = {risk_group!r}; expected one of {list(CLASS_ORDER)}")
    return CLASS_ORDER.index(risk_group)


def read_grey_slices(cohort_dir: Path, patient_id: str, phases,
                     window: Window = MODEL_WINDOW) -> dict[str, np.ndarray]:
    """8-bit grey max-area slices of one patient: ``hu.npz`` windowed with ``window`` if present, else
    the PNGs (exported in W 400 / L 40)."""
    folder = Path(cohort_dir) / "slices" / patient_id
    npz = folder / "hu.npz"
    grey = {}
    if npz.exists():
        with np.load(npz) as arrays:  # npz of plain arrays; allow_pickle stays False
            for phase in phases:
                if phase in arrays:
                    grey[phase] = hu_to_uint8(arrays[phase], window)
    for phase in phases:
        png = folder / f"{phase}.png"
        if phase not in grey and png.exists():
            grey[phase] = np.asarray(Image.open(png).convert("L"))
    missing = [p for p in phases if p not in grey]
    if missing:
        raise InputError(f"{folder}: no {', '.join(missing)} slice (expected hu.npz or <phase>.png)")
    return grey


@dataclass
class CohortImages:
    """A cohort's model images before normalisation, with labels and patient IDs."""

    patient_ids: list[str]
    images: np.ndarray      # (N, 224, 224, 3) uint8
    labels: np.ndarray      # (N,) int64, index into CLASS_ORDER (-1: no risk group, ``labels=False`` only)
    risk_group: np.ndarray  # (N,) str
    #: patients of the cohort left out, by reason (``"no slices"``, ``"no risk_group"``)
    skipped: dict = field(default_factory=dict)


def _has_slices(cohort_dir: Path, patient_id: str, phases) -> bool:
    folder = Path(cohort_dir) / "slices" / patient_id
    if (folder / "hu.npz").is_file():
        with np.load(folder / "hu.npz") as arrays:
            if all(p in arrays.files for p in phases):
                return True
    return all((folder / f"{p}.png").is_file() for p in phases)


def _named(ids: list[str], limit: int = 5) -> str:
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


def skipped_note(skipped: dict, n_total: int) -> str:
    """One line saying which patients a cohort run left out and why ("" when none)."""
    parts = [f"{len(ids)} without {reason.removeprefix('no ')} ({_named(ids)})"
             for reason, ids in skipped.items() if ids]
    return f"left out {sum(len(v) for v in skipped.values())} of {n_total} patients: " + "; ".join(parts) \
        if parts else ""


def usable_patients(cohort_dir: Path, clinical: pd.DataFrame, phases, labels: bool = True
                    ) -> tuple[pd.DataFrame, dict]:
    """The rows of ``clinical`` that have chosen slices of ``phases`` (and a risk group if ``labels``),
    and ``{reason: [patient_id, ...]}`` of those left out.

    An imported cohort has its slices chosen patient by patient (``slices.csv``, ``slices/<pid>/``) and
    may lack ``risk_group`` for some patients: those are left out (a training label cannot be guessed).
    InputError when no patient is left, naming how many lack what.
    """
    cohort_dir = Path(cohort_dir)
    ids = list(clinical["patient_id"])
    no_slices = [pid for pid in ids if not _has_slices(cohort_dir, pid, phases)]
    groups = clinical["risk_group"] if "risk_group" in clinical.columns else pd.Series([np.nan] * len(ids))
    no_group = [pid for pid, g in zip(ids, groups) if pd.isna(g) or g == ""] if labels else []
    without_slices = set(no_slices)
    skipped = {"no slices": no_slices, "no risk_group": [p for p in no_group if p not in without_slices]}
    skipped = {k: v for k, v in skipped.items() if v}
    keep = ~clinical["patient_id"].isin(without_slices.union(no_group))
    if not keep.any():
        what = f"chosen {'/'.join(p.upper() for p in phases)} slices"
        what += " and a risk_group (HR/NHR)" if labels else ""
        raise InputError(f"{cohort_dir}: none of the {len(ids)} patients has {what}: "
                         f"{len(no_slices)} have no slices chosen yet (slices.csv, slices/<patient_id>/: "
                         "docs/cohort-format.md)"
                         + (f", {len(no_group)} have no risk_group in clinical.csv" if labels else ""),
                         source=str(cohort_dir))
    return clinical[keep].reset_index(drop=True), skipped


def load_cohort_images(cohort_dir: Path, variant: str, patient_ids=None,
                       size: int = INPUT_SIZE, labels: bool = True,
                       window: Window = MODEL_WINDOW) -> CohortImages:
    """The model images of every usable patient (or of ``patient_ids``) of a cohort directory.

    Without ``patient_ids``, patients without chosen slices (or, with ``labels``, without a risk group)
    are left out and listed in ``skipped`` (:func:`usable_patients`); with ``patient_ids`` each one must
    have them. ``labels=False`` (embeddings) gives label -1 to a patient without a risk group.
    """
    cohort_dir = Path(cohort_dir)
    clinical_path = cohort_dir / "clinical.csv"
    if not clinical_path.exists():
        raise InputError(f"{clinical_path}: cohort clinical table not found")
    clinical = pd.read_csv(clinical_path, dtype={"patient_id": str, "risk_group": str})
    if labels and "risk_group" not in clinical.columns:
        raise InputError(f"{clinical_path}: column 'risk_group' (HR/NHR) is missing")
    if "risk_group" not in clinical.columns:
        clinical["risk_group"] = np.nan
    phases = INPUT_VARIANTS[variant].phases if variant in INPUT_VARIANTS else None
    if phases is None:
        raise InputError(f"unknown variant {variant!r}; expected one of {sorted(INPUT_VARIANTS)}")
    skipped: dict = {}
    if patient_ids is not None:
        wanted = list(patient_ids)
        clinical = clinical.set_index("patient_id").loc[wanted].reset_index()
    else:
        clinical, skipped = usable_patients(cohort_dir, clinical, phases, labels)
    images = np.stack([to_model_image(read_grey_slices(cohort_dir, pid, phases, window), variant, size)
                       for pid in clinical["patient_id"]])
    groups = clinical["risk_group"].to_numpy()
    codes = np.array([label_index(g) if labels or not pd.isna(g) else -1 for g in groups], dtype=np.int64)
    return CohortImages(list(clinical["patient_id"]), images, codes, groups, skipped)


def cohort_model_inputs(cohort_dir: Path, data_config, patient_ids=None,
                        labels: bool = True) -> tuple[CohortImages, np.ndarray]:
    """A cohort's images and normalised float32 inputs ``(N, 3, S, S)`` as a model card's data config
    (:class:`nbrisk_core.classifier.card.DataConfig`: window, input size, mean/std) says."""
    data = load_cohort_images(cohort_dir, data_config.variant, patient_ids, data_config.input_size, labels,
                              data_config.window)
    return data, to_tensor_batch(data.images, mean=data_config.mean, std=data_config.std).numpy()


def to_tensor_batch(images_uint8: np.ndarray, augment=None, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """uint8 ``(N, H, W, 3)`` -> normalised float32 tensor ``(N, 3, H, W)``.

    ``augment`` (a transform from :meth:`Augmentation.transform`) is applied to each image on
    its own (a v2 transform given a batch would draw one set of parameters for all of it).
    Equivalent to :func:`nbrisk_core.imaging.model_input.normalize` per image.
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images_uint8)).permute(0, 3, 1, 2)
    if augment is not None:
        x = torch.stack([augment(image) for image in x])
    x = x.float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean_t) / std_t
