"""End-to-end image + clinical fusion network (issue 26 item 1): one net, one high-risk and one survival head.

Beside the paper's two-stage design (Swin-ART embedding -> survival grid), :class:`FusionNet` learns from the
ART slice and the clinical table at once:

* **image branch**: the timm Swin-T of :mod:`.architectures` (``pretrained=False``, ``reset_classifier(0)``),
  read at all four stages: each stage's tokens are averaged (the last after the backbone's final norm, as
  Swin-ART pools it), layer-normed and projected to ``stage_width`` (32) units; the four are concatenated
  into the multiscale image vector ``v`` (4 x 32 = 128).
* **clinical branch**: :class:`ClinicalEncoder` (fitted on the training rows only, saved as JSON arrays in
  the model card) turns a clinical table into standardised numbers (labs on a log scale) with one
  missing-indicator per variable that may be missing, and one-hot categories; an MLP maps it to ``c``
  (``clinical_width`` = 32).
* **fusion: FiLM conditioning** (Perez et al. 2018), in the form DAFT (Pölsterl et al. 2021) uses for
  tabular data: the clinical vector predicts a per-channel scale and shift of the image features,
  ``v' = (1 + gamma(c)) * v + beta(c)``, with ``gamma``/``beta`` one linear layer initialised to zero (the
  fusion starts as the identity, the image branch's features unchanged). Re-implemented from the papers'
  equations, no code copied. DAFT's auxiliary net also reads the pooled image features; ours reads the
  clinical vector alone (the image already enters through ``v``), the FiLM form, chosen so that a dropped
  clinical vector gives exactly the identity. The hidden layer reads ``[v', c]``.
* **modality dropout** (training only): per sample, the clinical vector is dropped with probability
  ``p_drop_clinical`` (``c = 0`` and ``gamma = beta = 0``) and, separately, the image vector with probability
  ``p_drop_image`` (``v = 0``), never both for one sample. The net must classify from the image alone often,
  so it cannot lean on the labs; at inference without labs (``clinical=None``) it sees what it was trained
  to see when they were dropped.
* **the 16-neuron hidden layer** (FC 16 -> GELU; the embedding contract of Swin-ART: 16 outputs after the
  activation), then the **high-risk head** ``out`` (2 logits in :data:`~nbrisk_core.classifier.CLASS_ORDER`,
  cross-entropy) and the **survival head** ``risk`` (one log-risk, Cox partial likelihood:
  :func:`cox_partial_nll`, Efron or Breslow ties).

The module keeps :class:`~.architectures.RiskClassifier`'s surface (``forward``, ``embed``,
``forward_with_embedding``, ``cam_target_layer``, ``spec``), each taking an optional ``clinical`` tensor,
so the Predictor, the embedding cache and Grad-CAM of the existing code accept it (image only: the
clinical vector counts as dropped); :func:`bind_clinical` gives the same surface with a patient's labs bound.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from nbrisk_core.classifier import CLASS_ORDER, HIDDEN_UNITS
from nbrisk_core.errors import InputError

#: the ``architecture`` field of a fusion model's card
FUSION_ARCH = "fusion"
SWIN_T = "swin_tiny_patch4_window7_224"


# ----------------------------------------------------------------------------------------------------------
# clinical preprocessing (fitted on training rows only; JSON arrays, never pickle)
# ----------------------------------------------------------------------------------------------------------

def _default_variables():
    """The schema's clinical variables the fusion net reads: everything but the target (risk_group)."""
    from nbrisk_core.clinical.schema import CLINICAL_VARIABLES

    return tuple(v for v in CLINICAL_VARIABLES if v.name != "risk_group")


@dataclass
class ClinicalEncoder:
    """Clinical table -> float32 matrix: numbers standardised (labs as ``log1p``), a missing-indicator per
    variable that may be missing (the value then 0 = the training mean), categories one-hot (all zero when
    missing or unknown), binary 0/1 (missing -> 0 with its indicator).

    Fit with :meth:`fit` on the training rows only; :meth:`to_dict` / :meth:`from_dict` are plain JSON.
    """

    numeric: list[str] = field(default_factory=list)
    log: list[bool] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    binary: list[str] = field(default_factory=list)
    categorical: dict[str, list[str]] = field(default_factory=dict)
    indicators: list[str] = field(default_factory=list)

    @classmethod
    def fit(cls, clinical: pd.DataFrame, variables=None) -> ClinicalEncoder:
        variables = _default_variables() if variables is None else variables
        enc = cls()
        for var in variables:
            if var.name not in clinical.columns:
                continue
            column = clinical[var.name]
            if var.kind == "numeric":
                values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
                use_log = var.missing_allowed  # labs: log-normal
                values = np.log1p(np.clip(values, 0, None)) if use_log else values
                finite = values[np.isfinite(values)]
                mean = float(finite.mean()) if finite.size else 0.0
                std = float(finite.std()) if finite.size > 1 else 1.0
                enc.numeric.append(var.name)
                enc.log.append(bool(use_log))
                enc.mean.append(mean)
                enc.std.append(std if std > 1e-8 else 1.0)
            elif var.kind == "binary":
                enc.binary.append(var.name)
            else:
                enc.categorical[var.name] = list(var.categories)
            if var.missing_allowed or column.isna().any():
                enc.indicators.append(var.name)
        if not enc.width:
            raise InputError("clinical table: none of the schema's clinical variables is present "
                             f"(columns {list(clinical.columns)[:8]}...)")
        return enc

    @property
    def feature_names(self) -> list[str]:
        names = [f"{n}_z" for n in self.numeric] + list(self.binary)
        names += [f"{n}={c}" for n, cats in self.categorical.items() for c in cats]
        return names + [f"{n}_missing" for n in self.indicators]

    @property
    def width(self) -> int:
        return len(self.feature_names)

    def transform(self, clinical: pd.DataFrame) -> np.ndarray:
        n = len(clinical)
        blocks = []
        for name, use_log, mean, std in zip(self.numeric, self.log, self.mean, self.std):
            values = pd.to_numeric(clinical[name], errors="coerce").to_numpy(dtype=float) \
                if name in clinical.columns else np.full(n, np.nan)
            values = np.log1p(np.clip(values, 0, None)) if use_log else values
            blocks.append(np.nan_to_num((values - mean) / std, nan=0.0)[:, None])
        for name in self.binary:
            values = pd.to_numeric(clinical[name], errors="coerce").to_numpy(dtype=float) \
                if name in clinical.columns else np.full(n, np.nan)
            blocks.append(np.nan_to_num(values, nan=0.0)[:, None])
        for name, cats in self.categorical.items():
            column = clinical[name].astype("string") if name in clinical.columns else pd.Series([pd.NA] * n)
            blocks.append(np.stack([(column == c).fillna(False).to_numpy(dtype=float) for c in cats], axis=1))
        for name in self.indicators:
            column = clinical[name] if name in clinical.columns else pd.Series([np.nan] * n)
            missing = column.isna().to_numpy() | column.astype("string").eq("").fillna(False).to_numpy()
            blocks.append(missing.astype(float)[:, None])
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self) | {"feature_names": self.feature_names}

    @classmethod
    def from_dict(cls, record: dict, source: str = "model card") -> ClinicalEncoder:
        try:
            enc = cls(numeric=list(record["numeric"]), log=[bool(x) for x in record["log"]],
                      mean=[float(x) for x in record["mean"]], std=[float(x) for x in record["std"]],
                      binary=list(record["binary"]),
                      categorical={str(k): list(v) for k, v in record["categorical"].items()},
                      indicators=list(record["indicators"]))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise InputError(f"{source}: field 'fusion.clinical_preprocessing' is not a valid encoder "
                             f"({error!r})") from None
        if not (len(enc.numeric) == len(enc.log) == len(enc.mean) == len(enc.std)) or not all(
                math.isfinite(x) for x in enc.mean + enc.std):
            raise InputError(f"{source}: field 'fusion.clinical_preprocessing': numeric, log, mean and std "
                             "must be lists of one length with finite numbers")
        return enc


# ----------------------------------------------------------------------------------------------------------
# Cox partial likelihood
# ----------------------------------------------------------------------------------------------------------

def cox_partial_nll(log_risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor,
                    ties: str = "efron") -> torch.Tensor:
    """Negative Cox partial log-likelihood per event (mean over events) of ``log_risk`` (N,).

    ``ties="efron"`` (lifelines' and R's default) or ``"breslow"``. For each event ``i`` with time ``t``,
    ``R`` the patients with time >= t, ``D`` the events at exactly t (``d`` of them, ``i`` the ``l``-th,
    l = 0..d-1): Efron's term is ``eta_i - log(sum_R e^eta - l/d sum_D e^eta)``; Breslow's drops the
    subtraction. Returns 0 (with a gradient of zeros) when the batch has no event.
    """
    if ties not in ("efron", "breslow"):
        raise InputError(f"ties {ties!r}: expected 'efron' or 'breslow'")
    eta = log_risk.reshape(-1).float()
    time = time.reshape(-1).to(eta.device, torch.float64)
    event = event.reshape(-1).to(eta.device).bool()
    n_events = int(event.sum())
    if n_events == 0:
        return eta.sum() * 0.0
    shift = eta.max().detach()
    w = torch.exp(eta - shift)
    at_risk = (time[None, :] >= time[:, None]).to(w.dtype)            # [i, k]: k in risk set of t_i
    sum_risk = at_risk @ w
    if ties == "efron":
        tied = ((time[None, :] == time[:, None]) & event[None, :]).to(w.dtype)   # [i, k]: k an event at t_i
        d = tied.sum(1)
        before = torch.tril(tied, diagonal=-1).sum(1)  # l: events at t_i listed before i
        sum_tied = tied @ w
        denominator = sum_risk - before / d.clamp(min=1) * sum_tied
    else:
        denominator = sum_risk
    terms = (eta - shift) - torch.log(denominator)
    return -(terms[event]).sum() / n_events


# ----------------------------------------------------------------------------------------------------------
# the network
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FusionConfig:
    """What builds a :class:`FusionNet` (recorded in the card's ``fusion`` section)."""

    n_clinical: int
    backbone_kwargs: dict = field(default_factory=dict)
    stage_width: int = 32
    clinical_width: int = 32
    p_drop_clinical: float = 0.3
    p_drop_image: float = 0.15
    trainable_stages: int = 1          # the last N Swin stages train; earlier ones (and patch_embed) frozen

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict, source: str = "model card") -> FusionConfig:
        try:
            config = cls(n_clinical=int(record["n_clinical"]), backbone_kwargs=dict(record.get("backbone_kwargs") or {}),
                         stage_width=int(record["stage_width"]), clinical_width=int(record["clinical_width"]),
                         p_drop_clinical=float(record["p_drop_clinical"]), p_drop_image=float(record["p_drop_image"]),
                         trainable_stages=int(record.get("trainable_stages", 1)))
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"{source}: field 'fusion' is not a valid fusion configuration ({error!r})") from None
        if config.n_clinical < 1 or config.stage_width < 1 or config.clinical_width < 1:
            raise InputError(f"{source}: field 'fusion' = {record!r}; expected positive widths")
        return config


def _swin_nchw(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.permute(0, 3, 1, 2)


@dataclass(frozen=True)
class _FusionSpec:
    """The part of :class:`~.architectures.Architecture` that Grad-CAM reads."""

    name: str = FUSION_ARCH
    label: str = "Fusion (Swin-T + clinical)"
    cam_layer: str = "layers.3.blocks.-1"
    features_nhwc: bool = True
    cam_reshape: object = _swin_nchw


class FusionHead(nn.Module):
    """Everything after the image branch: clinical MLP, FiLM conditioning, the 16-unit hidden layer and the
    two heads. ``fuse(v, clinical)`` works on precomputed image vectors (what :mod:`.fusion_compare` refits).
    """

    def __init__(self, image_width: int, n_clinical: int, clinical_width: int = 32):
        super().__init__()
        self.n_clinical = n_clinical
        self.clinical = nn.Sequential(nn.Linear(n_clinical, clinical_width), nn.GELU(),
                                      nn.Linear(clinical_width, clinical_width), nn.GELU())
        self.film = nn.Linear(clinical_width, 2 * image_width)
        nn.init.zeros_(self.film.weight)  # the fusion starts as the identity on the image features
        nn.init.zeros_(self.film.bias)
        self.hidden = nn.Linear(image_width + clinical_width, HIDDEN_UNITS)
        self.act = nn.GELU()
        self.out = nn.Linear(HIDDEN_UNITS, len(CLASS_ORDER))
        self.risk = nn.Linear(HIDDEN_UNITS, 1, bias=False)  # Cox: the baseline hazard absorbs a bias

    def fuse(self, v: torch.Tensor, clinical: torch.Tensor | None, keep_clinical: torch.Tensor | None = None,
             keep_image: torch.Tensor | None = None) -> dict:
        """Heads of image vectors ``v`` and encoded clinical rows; ``keep_*`` (N,) 0/1 masks drop a modality
        per sample (``clinical=None``: dropped for all)."""
        n = v.shape[0]
        if clinical is None:
            clinical = v.new_zeros(n, self.n_clinical)
            keep_clinical = v.new_zeros(n)
        if keep_clinical is None:
            keep_clinical = v.new_ones(n)
        if keep_image is not None:
            v = v * keep_image[:, None]
        c = self.clinical(clinical) * keep_clinical[:, None]
        gamma, beta = (self.film(c) * keep_clinical[:, None]).chunk(2, dim=1)
        fused = (1 + gamma) * v + beta
        embedding = self.act(self.hidden(torch.cat([fused, c], dim=1)))
        return {"logits": self.out(embedding), "embedding": embedding,
                "log_risk": self.risk(embedding).squeeze(1)}


def modality_masks(n: int, p_drop_clinical: float, p_drop_image: float, device=None):
    """Per-sample keep masks of modality dropout (torch's global RNG): the clinical vector dropped with
    ``p_drop_clinical``, else the image vector with ``p_drop_image``; never both."""
    drop_c = torch.rand(n, device=device) < p_drop_clinical
    drop_i = (torch.rand(n, device=device) < p_drop_image) & ~drop_c
    return (~drop_c).float(), (~drop_i).float()


class FusionNet(nn.Module):
    """Swin-T multiscale image branch + clinical branch, FiLM fusion, 16-unit hidden layer, two heads.

    Examples
    --------
    >>> from nbrisk_core.classifier.architectures import TINY_SWIN_KWARGS
    >>> net = FusionNet(FusionConfig(n_clinical=5, backbone_kwargs=TINY_SWIN_KWARGS)).eval()
    >>> out = net.forward_all(torch.zeros(2, 3, 224, 224), torch.zeros(2, 5))
    >>> tuple(out["logits"].shape), tuple(out["embedding"].shape), tuple(out["log_risk"].shape)
    ((2, 2), (2, 16), (2,))
    """

    arch = FUSION_ARCH
    spec = _FusionSpec()

    def __init__(self, config: FusionConfig):
        super().__init__()
        import timm

        self.config = config
        self.backbone = timm.create_model(SWIN_T, pretrained=False, **config.backbone_kwargs)
        self.backbone.reset_classifier(0)
        dims = [int(info["num_chs"]) for info in self.backbone.feature_info]  # each stage's output channels
        width = config.stage_width
        self.stage_proj = nn.ModuleList(nn.Sequential(nn.LayerNorm(d), nn.Linear(d, width), nn.GELU())
                                        for d in dims)
        self.image_width = width * len(dims)
        self.head = FusionHead(self.image_width, config.n_clinical, config.clinical_width)
        self.encoder: ClinicalEncoder | None = None  # set by training / loading (not a tensor)
        self.freeze_early_stages()

    # -- freezing ------------------------------------------------------------------------------------------
    def frozen_modules(self) -> list[nn.Module]:
        n = len(self.backbone.layers)
        keep = max(0, min(n, self.config.trainable_stages))
        return [self.backbone.patch_embed, *list(self.backbone.layers)[:n - keep]]

    def freeze_early_stages(self) -> None:
        for module in self.frozen_modules():
            for p in module.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen_modules():  # frozen stages stay deterministic (no drop-path)
            module.eval()
        return self

    # -- image branch --------------------------------------------------------------------------------------
    def image_features(self, x: torch.Tensor) -> torch.Tensor:
        """The multiscale image vector ``v`` (N, 4 * stage_width)."""
        bb = self.backbone
        h = bb.patch_embed(x)
        pooled = []
        n = len(bb.layers)
        for i, layer in enumerate(bb.layers):
            h = layer(h)
            pooled.append((bb.norm(h) if i == n - 1 else h).mean(dim=(1, 2)))
        return torch.cat([proj(p) for proj, p in zip(self.stage_proj, pooled)], dim=1)

    # -- fusion --------------------------------------------------------------------------------------------
    def fuse(self, v: torch.Tensor, clinical: torch.Tensor | None, keep_clinical: torch.Tensor | None = None,
             keep_image: torch.Tensor | None = None) -> dict:
        """:meth:`FusionHead.fuse` (image vectors + encoded clinical rows -> the heads)."""
        return self.head.fuse(v, clinical, keep_clinical, keep_image)

    def dropout_masks(self, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        return modality_masks(n, self.config.p_drop_clinical, self.config.p_drop_image, device)

    def forward_all(self, x: torch.Tensor, clinical: torch.Tensor | None = None) -> dict:
        """``{"logits", "embedding", "log_risk"}``; modality dropout applies in training mode."""
        v = self.image_features(x)
        if self.training:
            keep_c, keep_i = self.dropout_masks(v.shape[0], v.device)
            return self.fuse(v, clinical, keep_c if clinical is not None else None, keep_i)
        return self.fuse(v, clinical)

    # -- RiskClassifier's surface --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, clinical: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_all(x, clinical)["logits"]

    def embed(self, x: torch.Tensor, clinical: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_all(x, clinical)["embedding"]

    def forward_with_embedding(self, x: torch.Tensor, clinical: torch.Tensor | None = None):
        out = self.forward_all(x, clinical)
        return out["logits"], out["embedding"]

    def get_classifier(self) -> nn.Module:
        return self.head.out

    def cam_target_layer(self) -> nn.Module:
        from nbrisk_core.classifier.architectures import get_submodule

        return get_submodule(self.backbone, self.spec.cam_layer)


class ClinicalBound(nn.Module):
    """A :class:`FusionNet` with one batch of encoded clinical rows bound: ``forward(x)`` gives the logits
    with those labs (what Grad-CAM calls), with the same ``cam_target_layer`` / ``spec``."""

    def __init__(self, net: FusionNet, clinical: torch.Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("clinical_rows", clinical, persistent=False)
        self.spec = net.spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self.clinical_rows.expand(x.shape[0], -1) if self.clinical_rows.shape[0] == 1 else self.clinical_rows
        return self.net(x, rows)

    def forward_with_embedding(self, x: torch.Tensor):
        return self.net.forward_with_embedding(x, self.clinical_rows.expand(x.shape[0], -1))

    def cam_target_layer(self) -> nn.Module:
        return self.net.cam_target_layer()


def bind_clinical(net: FusionNet, clinical: pd.DataFrame | np.ndarray) -> ClinicalBound:
    """``net`` with one patient's (or a batch's) labs bound; a DataFrame is encoded with ``net.encoder``."""
    if isinstance(clinical, pd.DataFrame):
        if net.encoder is None:
            raise InputError("fusion model without its clinical encoder (load it with load_model)")
        clinical = net.encoder.transform(clinical)
    rows = torch.as_tensor(np.asarray(clinical, dtype=np.float32))
    if rows.ndim == 1:
        rows = rows[None]
    return ClinicalBound(net, rows)


# ----------------------------------------------------------------------------------------------------------
# building from a card (model_io.load_model calls build_fusion; the card and saving live in fusion_training,
# so that this module never imports model_io: no import cycle)
# ----------------------------------------------------------------------------------------------------------

def build_fusion(card) -> FusionNet:
    """An untrained :class:`FusionNet` of a card (record dict or ModelCard), its encoder attached."""
    record = dict(card.record) if hasattr(card, "record") else dict(card)
    fusion = record.get("fusion")
    if not isinstance(fusion, dict):
        raise InputError("model card: architecture 'fusion' needs the field 'fusion' (a JSON object)")
    config = FusionConfig.from_dict(fusion)
    encoder = ClinicalEncoder.from_dict(fusion.get("clinical_preprocessing") or {})
    if encoder.width != config.n_clinical:
        raise InputError(f"model card: field 'fusion.n_clinical' = {config.n_clinical}; its clinical "
                         f"preprocessing gives {encoder.width} features")
    net = FusionNet(config)
    net.encoder = encoder
    return net


def encode_cohort_clinical(net: FusionNet, clinical: pd.DataFrame) -> np.ndarray:
    if net.encoder is None:
        raise InputError("fusion model without its clinical encoder (load it with load_model)")
    return net.encoder.transform(clinical)


def load_card_json(path: Path) -> dict:
    return json.loads(Path(path).with_suffix(".json").read_text())
