"""The fusion network as a candidate of the model comparison protocol (``nbrisk compare``, issue 26).

:class:`FusionCandidate` follows the protocol's duck type (``name``, ``label``, ``fit``, ``predict_proba``,
``predict_risk``) on the comparison's data object (``nbrisk_core.compare.data.CompareData``: ``cohort_dir``,
``patient_id``, ``high_risk``, ``time``, ``event``, ``clinical``; only these attributes are read).

What ``fit`` refits, and what it does not
-----------------------------------------
A full retrain of the network per fold is far too slow on a CPU (minutes per epoch). So ``fit`` keeps the
shipped fusion model's **image branch frozen** (Swin-T stages and their projections: the multiscale image
vector of every patient is computed once per cohort and model and cached) and re-trains, on the fold's rows
only, everything after it: the clinical preprocessing (:class:`~.fusion.ClinicalEncoder`), the clinical
branch, the FiLM fusion, the 16-unit hidden layer and both heads (:class:`~.fusion.FusionHead`, fresh
weights, full-batch AdamW with the same modality dropout and loss as the network's training).

**Optimism:** the image branch of the shipped ``models/fusion_demo`` was trained on the demo cohort's
training split (8:2, seed 2025). Cross-validation folds on the demo cohort therefore score patients whose
images that branch has seen: the fusion's CV figures there are optimistic; its test-split figure (the 41
patients it never saw) is the fair one. On an external cohort the frozen branch has seen nothing.

No images (``cohort_dir`` None, or patients without a chosen ART slice) or no fusion model file: ``fit``
raises :class:`~nbrisk_core.errors.InputError` naming what is missing (the protocol reports "not run").
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nbrisk_core.errors import InputError

if TYPE_CHECKING:  # the protocol's data class lives in the compare package (imported for types only)
    from nbrisk_core.compare.data import CompareData  # noqa: F401

#: the shipped fusion model's file stem in ``models/``
FUSION_MODEL_STEM = "fusion_demo"


def default_fusion_model(cohort_dir: Path | None = None) -> Path:
    """``<models>/fusion_demo.safetensors`` (the cohort's own ``models/`` first); it may not exist."""
    from nbrisk_core.config import cohort_models_dir

    return cohort_models_dir(cohort_dir) / f"{FUSION_MODEL_STEM}.safetensors"


def _cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "nbrisk-fusion-features"


def cohort_image_vectors(loaded, cohort_dir: Path, cache_dir: Path | None = None,
                         batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """``(patient_ids, vectors)``: the frozen multiscale image vector of every patient of a cohort with a
    chosen ART slice, from a loaded fusion model; cached as ``<cache>/<model sha[:16]>-<cohort hash[:16]>.npz``
    (plain arrays, read without pickle)."""
    import torch

    from nbrisk_core.classifier.data import cohort_model_inputs
    from nbrisk_core.cohort.format import cohort_hash

    cohort_dir = Path(cohort_dir)
    folder = Path(cache_dir) if cache_dir is not None else _cache_dir()
    key = hashlib.sha256(f"{loaded.sha256}:{cohort_hash(cohort_dir)}".encode()).hexdigest()[:16]
    path = folder / f"{loaded.sha256[:16]}-{key}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as cached:
            return cached["patient_id"].astype(str), cached["vectors"].astype(np.float32)
    data, x = cohort_model_inputs(cohort_dir, loaded.model_card.data, labels=False)
    net = loaded.model.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            parts.append(net.image_features(torch.as_tensor(x[start:start + batch_size])).numpy())
    ids, vectors = np.asarray(data.patient_ids, dtype=str), np.concatenate(parts).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, patient_id=ids, vectors=vectors)
    tmp.replace(path)
    return ids, vectors


class FusionCandidate:
    """The fusion network's clinical branch, fusion and heads refitted per fold on its frozen image branch.

    See the module docstring for what is refitted and why the demo's CV figures are optimistic.

    Parameters
    ----------
    model_path : path, optional
        The fusion model (default ``models/fusion_demo.safetensors``, the cohort's own ``models/`` first).
    steps : int
        Full-batch optimiser steps per fit.
    lr, weight_decay : float
        AdamW's learning rate and weight decay.
    cox_weight : float
        Weight of the Cox partial likelihood (Efron) beside the cross-entropy.
    seed : int
        Seeds the initial weights and the modality dropout (a fit is reproducible).
    cache_dir : path, optional
        Where the image vectors are cached (default: the system's temp folder).
    """

    name = "fusion"
    label = "Fusion network (Swin-T + clinical, FiLM; heads refitted per fold)"

    def __init__(self, model_path: Path | str | None = None, steps: int = 300, lr: float = 3e-3,
                 weight_decay: float = 1e-2, cox_weight: float = 0.5, seed: int = 2025,
                 cache_dir: Path | str | None = None):
        self.model_path = None if model_path is None else Path(model_path)
        self.steps, self.lr, self.weight_decay = steps, lr, weight_decay
        self.cox_weight, self.seed = cox_weight, seed
        self.cache_dir = None if cache_dir is None else Path(cache_dir)

    # -- the frozen image branch ---------------------------------------------------------------------------
    def _vectors(self, data) -> np.ndarray:
        """Image vectors in the row order of ``data.patient_id`` (cached per data object and cohort)."""
        cohort_dir = getattr(data, "cohort_dir", None)
        if cohort_dir is None:
            raise InputError("fusion: the cohort has no images (cohort_dir is None); the fusion network needs "
                             "each patient's chosen ART slice")
        cohort_dir = Path(cohort_dir)
        path = self.model_path or default_fusion_model(cohort_dir)
        if not path.exists():
            raise InputError(f"{path}: the fusion model file is missing; train it with "
                             "`nbrisk train --arch fusion --out models/fusion_demo`")
        cached = getattr(self, "_vector_cache", None)
        if cached is not None and cached[0] == (str(cohort_dir), str(path)):
            ids, vectors, net = cached[1], cached[2], cached[3]
        else:
            from nbrisk_core.classifier.model_io import load_model

            loaded = load_model(path)
            if loaded.model_card.architecture != "fusion":
                raise InputError(f"{path}: architecture {loaded.model_card.architecture!r}; expected a fusion model")
            ids, vectors = cohort_image_vectors(loaded, cohort_dir, self.cache_dir)
            net = loaded.model
            self._vector_cache = ((str(cohort_dir), str(path)), ids, vectors, net)
        self.config_, self.net_ = net.config, net
        position = {pid: i for i, pid in enumerate(ids)}
        wanted = [str(p) for p in np.asarray(data.patient_id)]
        missing = [p for p in wanted if p not in position]
        if missing:
            raise InputError(f"{cohort_dir}: {len(missing)} patients have no chosen ART slice "
                             f"({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}); "
                             "the fusion network needs one per patient")
        return vectors[[position[p] for p in wanted]]

    # -- the protocol --------------------------------------------------------------------------------------
    def fit(self, data, idx: np.ndarray) -> FusionCandidate:
        """Refit the clinical preprocessing, clinical branch, fusion and heads on rows ``idx``; returns self."""
        import torch

        from nbrisk_core.classifier.fusion import ClinicalEncoder, FusionHead, cox_partial_nll, modality_masks

        idx = np.asarray(idx)
        vectors = self._vectors(data)
        encoder = ClinicalEncoder.fit(data.clinical.iloc[idx])
        clinical = encoder.transform(data.clinical.iloc[idx])
        high_risk = np.asarray(data.high_risk)[idx].astype(int)
        if len(np.unique(high_risk)) < 2:
            raise InputError(f"fusion: the {len(idx)} training rows hold one class only (high_risk all "
                             f"{high_risk[0] if len(high_risk) else '-'}); both are needed")
        generator_state = torch.get_rng_state()
        torch.manual_seed(self.seed)
        try:
            head = FusionHead(vectors.shape[1], encoder.width, self.config_.clinical_width)
            v = torch.as_tensor(vectors[idx])
            x = torch.as_tensor(clinical)
            y = torch.as_tensor(1 - high_risk, dtype=torch.long)  # class index 0 = HR
            t = torch.as_tensor(np.asarray(data.time, dtype=float)[idx])
            e = torch.as_tensor(np.asarray(data.event, dtype=bool)[idx])
            optimizer = torch.optim.AdamW(head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            head.train()
            for _ in range(self.steps):
                keep_c, keep_i = modality_masks(len(idx), self.config_.p_drop_clinical, self.config_.p_drop_image)
                out = head.fuse(v, x, keep_c, keep_i)
                loss = torch.nn.functional.cross_entropy(out["logits"], y)
                if self.cox_weight:
                    loss = loss + self.cox_weight * cox_partial_nll(out["log_risk"], t, e)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        finally:
            torch.set_rng_state(generator_state)  # the caller's RNG stream is left as it was
        self.head_, self.encoder_ = head.eval(), encoder
        return self

    def _heads(self, data, idx) -> dict:
        import torch

        if not hasattr(self, "head_"):
            raise InputError("fusion: predict before fit")
        idx = np.asarray(idx)
        v = torch.as_tensor(self._vectors(data)[idx])
        x = torch.as_tensor(self.encoder_.transform(data.clinical.iloc[idx]))
        with torch.no_grad():
            return self.head_.fuse(v, x)

    def predict_proba(self, data, idx) -> np.ndarray:
        """P(high risk) of rows ``idx``."""
        import torch

        return torch.softmax(self._heads(data, idx)["logits"], 1)[:, 0].numpy().astype(float)

    def predict_risk(self, data, idx) -> np.ndarray | None:
        """The survival head's log-risk of rows ``idx`` (higher = worse)."""
        return self._heads(data, idx)["log_risk"].numpy().astype(float)


class FrozenFusionCandidate(FusionCandidate):
    """The shipped fusion network as trained end to end (``fusion_frozen`` in ``nbrisk compare``): nothing is
    refitted (``fit`` only checks that the model and the images are there); the network's own clinical
    preprocessing, FiLM fusion and heads score every patient. Its **test-split** figure on the demo is the fair
    one (the network was trained on the development patients); its CV figures there score patients it was
    trained on and are shown only for completeness (``nbrisk compare`` labels them). On an external cohort it is
    the frozen model of [Validation]."""

    name = "fusion_frozen"
    label = "Fusion network as shipped (end to end, frozen)"

    def fit(self, data, idx: np.ndarray) -> FrozenFusionCandidate:
        """No refit: loads the shipped network and the cohort's image vectors (InputError when missing)."""
        self._vectors(data)
        return self

    def _heads(self, data, idx) -> dict:
        import torch

        idx = np.asarray(idx)
        net = self.net_.eval()
        v = torch.as_tensor(self._vectors(data)[idx])
        x = torch.as_tensor(net.encoder.transform(data.clinical.iloc[idx]))
        with torch.no_grad():
            return net.fuse(v, x)
