"""Backbones and the paper's head: pooled features -> FC(16) -> FC(2) -> softmax.

The backbone comes from ``timm.create_model(..., pretrained=False)`` (or torchvision for AlexNet,
which timm lacks). We keep the library's surface (``forward_features`` / ``forward_head``) and
only *replace* its final linear classifier with :class:`RiskHead`, the head of the paper
(``../shared/spec/method.md`` section 3). Architectures are a table, not ``if`` chains.

The CT embedding
----------------
The 16 hidden outputs are taken **after** the activation (GELU). Those are the values the output
layer actually reads, i.e. "the outputs of the hidden layer" in the paper's words. GELU (the
activation Swin itself uses in its MLPs) rather than ReLU, because a ReLU unit that dies gives a
constant embedding column, which the prognosis engine's Cox screening cannot use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from nbrisk_core.classifier import CLASS_ORDER, HIDDEN_UNITS
from nbrisk_core.errors import InputError


class RiskHead(nn.Module):
    """The paper's head: ``hidden`` (FC, 16 units) -> GELU -> ``out`` (one logit per class).

    Parameters
    ----------
    in_features : int
        Width of the backbone's pooled features (768 for Swin-T).
    hidden_units : int
        16 in the paper.
    n_classes : int
        2: logits in :data:`nbrisk_core.classifier.CLASS_ORDER` (HR, NHR).
    n_aux : int
        Auxiliary regression outputs read from the embedding (synthetic pretraining stage only;
        0 means none). They never enter the class logits.
    n_dense : int
        Outputs per final-stage token (``dense``, a linear layer on the backbone's last feature
        map; synthetic pretraining only: the tumour fraction of each token's patch). 0 means none;
        never part of the class path or of a shipped model.
    dense_in_features : int, optional
        Channels of that feature map when they differ from ``in_features`` (VGG, AlexNet).
    pool_norm : bool
        Standardise the pooled features (``norm``, a ``BatchNorm1d`` without affine parameters) before
        ``hidden``; synthetic pretraining only. A pooled feature is an average over 49 tokens of which a
        tumour covers a few, so its spread between images is ~0.05 against a common offset of ~1; without
        the standardisation a from-scratch Swin-T's embedding either stays flat (small learning rate) or
        its GELU units die (large one). :func:`fold_pool_norm` folds it into ``hidden`` afterwards, which
        gives the paper's head exactly (an affine map followed by a linear layer is a linear layer).
    """

    def __init__(self, in_features: int, hidden_units: int = HIDDEN_UNITS,
                 n_classes: int = len(CLASS_ORDER), n_aux: int = 0, n_dense: int = 0,
                 dense_in_features: int | None = None, pool_norm: bool = False):
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden_units)
        self.act = nn.GELU()
        self.out = nn.Linear(hidden_units, n_classes)
        self.aux = nn.Linear(hidden_units, n_aux) if n_aux > 0 else None
        self.dense = nn.Linear(dense_in_features or in_features, n_dense) if n_dense > 0 else None
        self.norm = nn.BatchNorm1d(in_features, affine=False) if pool_norm else None

    def embed(self, pooled: torch.Tensor) -> torch.Tensor:
        """The 16-d CT embedding (after the activation) of pooled backbone features."""
        if self.norm is not None:
            pooled = self.norm(pooled)
        return self.act(self.hidden(pooled))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(pooled))

    def fold_norm(self) -> None:
        """Fold ``norm`` (its running statistics) into ``hidden`` and drop it: same outputs in eval mode."""
        if self.norm is None:
            return
        state = fold_pool_norm({f"norm.{k}": v for k, v in self.norm.state_dict().items()}
                               | {f"hidden.{k}": v for k, v in self.hidden.state_dict().items()}, "", self.norm.eps)
        self.hidden.load_state_dict({"weight": state["hidden.weight"], "bias": state["hidden.bias"]})
        self.norm = None


def fold_pool_norm(state: dict, prefix: str, eps: float = 1e-5) -> dict:
    """A state dict with ``<prefix>norm.*`` (running mean / variance) folded into ``<prefix>hidden.*``.

    ``hidden(norm(x)) = W (x - m) / s + b = (W / s) x + (b - (W / s) m)``. Returns a new dict; a state
    without the norm is returned unchanged.
    """
    if f"{prefix}norm.running_mean" not in state:
        return state
    state = dict(state)
    mean = state.pop(f"{prefix}norm.running_mean").double()
    var = state.pop(f"{prefix}norm.running_var").double()
    state.pop(f"{prefix}norm.num_batches_tracked", None)
    weight, bias = state[f"{prefix}hidden.weight"], state[f"{prefix}hidden.bias"]
    scaled = weight.double() / torch.sqrt(var + eps)
    state[f"{prefix}hidden.weight"] = scaled.to(weight.dtype)
    state[f"{prefix}hidden.bias"] = (bias.double() - scaled @ mean).to(bias.dtype)
    return state


def _timm_backbone(name: str, **kwargs) -> nn.Module:
    import timm

    return timm.create_model(name, pretrained=False, **kwargs)


def _torchvision_alexnet(**kwargs) -> nn.Module:
    from torchvision.models import alexnet

    return alexnet(weights=None, **kwargs)


def _timm_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.forward_features(x)


def _timm_pool(model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    return model.forward_head(features, pre_logits=True)


def _alexnet_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.features(x)


def _alexnet_pool(model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    return model.classifier[:-1](torch.flatten(model.avgpool(features), 1))


def _swin_reshape(tensor: torch.Tensor) -> torch.Tensor:
    # timm Swin stages output NHWC; pytorch_grad_cam wants NCHW activations
    return tensor.permute(0, 3, 1, 2)


@dataclass(frozen=True)
class Architecture:
    """One selectable backbone (``--arch``) and what Grad-CAM and the head need to know of it."""

    name: str
    label: str
    create: Callable[..., nn.Module]
    model_name: str | None           # timm model name (None for torchvision builders)
    classifier_path: str             # dotted path of the final linear layer that the head replaces
    in_features: int
    cam_layer: str                   # dotted path of the Grad-CAM target layer
    #: ``(model, x) -> last feature map`` and ``(model, feature map) -> pooled pre-logits``
    features: Callable[[nn.Module, torch.Tensor], torch.Tensor] = _timm_features
    pool: Callable[[nn.Module, torch.Tensor], torch.Tensor] = _timm_pool
    features_nhwc: bool = False      # timm Swin stages are NHWC, CNN feature maps NCHW
    cam_reshape: Callable | None = None
    #: keyword overrides accepted by the builder (tiny test configurations)
    default_kwargs: dict = field(default_factory=dict)


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("swin_t", "Swin-T", lambda **kw: _timm_backbone("swin_tiny_patch4_window7_224", **kw),
                     "swin_tiny_patch4_window7_224", "head.fc", 768, "layers.3.blocks.-1",
                     features_nhwc=True, cam_reshape=_swin_reshape),
        Architecture("resnet50", "ResNet-50", lambda **kw: _timm_backbone("resnet50", **kw),
                     "resnet50", "fc", 2048, "layer4"),
        Architecture("densenet121", "DenseNet-121", lambda **kw: _timm_backbone("densenet121", **kw),
                     "densenet121", "classifier", 1024, "features.norm5"),
        Architecture("vgg16", "VGG-16", lambda **kw: _timm_backbone("vgg16", **kw),
                     "vgg16", "head.fc", 4096, "features.29"),
        Architecture("alexnet", "AlexNet", _torchvision_alexnet, None, "classifier.6", 4096, "features.11",
                     features=_alexnet_features, pool=_alexnet_pool),
    )
}

#: the tiny Swin used by the tests: same code path, a few channels
TINY_SWIN_KWARGS: dict = {"embed_dim": 24, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1)}


def get_architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise InputError(f"unknown architecture {name!r}; expected one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def get_submodule(model: nn.Module, path: str) -> nn.Module:
    """``model.get_submodule`` that also accepts negative list indices (``blocks.-1``)."""
    module = model
    for part in path.split("."):
        module = module[int(part)] if part.lstrip("-").isdigit() else getattr(module, part)
    return module


def _set_submodule(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = get_submodule(model, parent_path) if parent_path else model
    if leaf.isdigit():
        parent[int(leaf)] = new
    else:
        setattr(parent, leaf, new)


def build_model(arch: str = "swin_t", n_aux: int = 0, backbone_kwargs: dict | None = None,
                n_dense: int = 0, pool_norm: bool = False) -> nn.Module:
    """A backbone of :data:`ARCHITECTURES` with its classifier replaced by :class:`RiskHead`.

    Parameters
    ----------
    arch : str
        Key of :data:`ARCHITECTURES` (``"swin_t"`` for the paper's Swin-T tiny).
    n_aux : int
        Auxiliary regression outputs of the head (synthetic pretraining; 0 for the paper's head).
    backbone_kwargs : dict, optional
        Passed to the builder (e.g. :data:`TINY_SWIN_KWARGS` in tests). Stored in the model card.
    n_dense : int
        Outputs per final-stage token of the head's ``dense`` layer (synthetic pretraining; 0 otherwise).
    pool_norm : bool
        Standardise the pooled features before the head's hidden layer (synthetic pretraining; see
        :class:`RiskHead`).

    Examples
    --------
    >>> model = build_model("swin_t", backbone_kwargs=TINY_SWIN_KWARGS)
    >>> model(torch.zeros(1, 3, 224, 224)).shape
    torch.Size([1, 2])
    """
    spec = get_architecture(arch)
    backbone = spec.create(**(backbone_kwargs or {}))
    old = get_submodule(backbone, spec.classifier_path)
    if not isinstance(old, nn.Linear):
        raise RuntimeError(f"{spec.name}: {spec.classifier_path} is {type(old).__name__}, expected Linear")
    head = RiskHead(old.in_features, n_aux=n_aux, n_dense=n_dense, dense_in_features=_feature_map_width(backbone),
                    pool_norm=pool_norm)
    _set_submodule(backbone, spec.classifier_path, head)
    backbone.nbrisk_arch = spec.name
    return backbone


def risk_head(model: nn.Module) -> RiskHead:
    """The :class:`RiskHead` of a model made by :func:`build_model`."""
    return get_submodule(model, ARCHITECTURES[model.nbrisk_arch].classifier_path)


def forward_with_embedding(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, embedding)`` in one pass: class logits ``(N, 2)`` and the 16-d embedding ``(N, 16)``."""
    spec = ARCHITECTURES[model.nbrisk_arch]
    pooled = spec.pool(model, spec.features(model, x))
    head = risk_head(model)
    embedding = head.embed(pooled)
    return head.out(embedding), embedding


def forward_with_tokens(model: nn.Module, x: torch.Tensor):
    """``(logits, embedding, dense)`` in one pass; ``dense`` is the head's per-token output
    ``(N, h, w, n_dense)`` on the last feature map (``None`` when the head has no dense layer)."""
    spec = ARCHITECTURES[model.nbrisk_arch]
    features = spec.features(model, x)
    head = risk_head(model)
    embedding = head.embed(spec.pool(model, features))
    dense = None
    if head.dense is not None:
        dense = head.dense(features if spec.features_nhwc else features.permute(0, 2, 3, 1))
    return head.out(embedding), embedding, dense


def _feature_map_width(model: nn.Module) -> int:
    """Channels of the last feature map (what the head's dense layer reads): timm's ``num_features``;
    torchvision's AlexNet ends its features with 256 channels."""
    return int(getattr(model, "num_features", 256))
