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
    """

    def __init__(self, in_features: int, hidden_units: int = HIDDEN_UNITS,
                 n_classes: int = len(CLASS_ORDER), n_aux: int = 0):
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden_units)
        self.act = nn.GELU()
        self.out = nn.Linear(hidden_units, n_classes)
        self.aux = nn.Linear(hidden_units, n_aux) if n_aux > 0 else None

    def embed(self, pooled: torch.Tensor) -> torch.Tensor:
        """The 16-d CT embedding (after the activation) of pooled backbone features."""
        return self.act(self.hidden(pooled))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(pooled))


def _timm_backbone(name: str, **kwargs) -> nn.Module:
    import timm

    return timm.create_model(name, pretrained=False, **kwargs)


def _torchvision_alexnet(**kwargs) -> nn.Module:
    from torchvision.models import alexnet

    return alexnet(weights=None, **kwargs)


def _timm_pre_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.forward_head(model.forward_features(x), pre_logits=True)


def _alexnet_pre_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = torch.flatten(model.avgpool(model.features(x)), 1)
    return model.classifier[:-1](x)


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
    pre_logits: Callable[[nn.Module, torch.Tensor], torch.Tensor] = _timm_pre_logits
    cam_reshape: Callable | None = None
    #: keyword overrides accepted by the builder (tiny test configurations)
    default_kwargs: dict = field(default_factory=dict)


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("swin_t", "Swin-T", lambda **kw: _timm_backbone("swin_tiny_patch4_window7_224", **kw),
                     "swin_tiny_patch4_window7_224", "head.fc", 768, "layers.3.blocks.-1",
                     cam_reshape=_swin_reshape),
        Architecture("resnet50", "ResNet-50", lambda **kw: _timm_backbone("resnet50", **kw),
                     "resnet50", "fc", 2048, "layer4"),
        Architecture("densenet121", "DenseNet-121", lambda **kw: _timm_backbone("densenet121", **kw),
                     "densenet121", "classifier", 1024, "features.norm5"),
        Architecture("vgg16", "VGG-16", lambda **kw: _timm_backbone("vgg16", **kw),
                     "vgg16", "head.fc", 4096, "features.29"),
        Architecture("alexnet", "AlexNet", _torchvision_alexnet, None, "classifier.6", 4096, "features.11",
                     pre_logits=_alexnet_pre_logits),
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


def build_model(arch: str = "swin_t", n_aux: int = 0, backbone_kwargs: dict | None = None) -> nn.Module:
    """A backbone of :data:`ARCHITECTURES` with its classifier replaced by :class:`RiskHead`.

    Parameters
    ----------
    arch : str
        Key of :data:`ARCHITECTURES` (``"swin_t"`` for the paper's Swin-T tiny).
    n_aux : int
        Auxiliary regression outputs of the head (synthetic pretraining; 0 for the paper's head).
    backbone_kwargs : dict, optional
        Passed to the builder (e.g. :data:`TINY_SWIN_KWARGS` in tests). Stored in the model card.

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
    _set_submodule(backbone, spec.classifier_path, RiskHead(old.in_features, n_aux=n_aux))
    backbone.nbrisk_arch = spec.name
    return backbone


def risk_head(model: nn.Module) -> RiskHead:
    """The :class:`RiskHead` of a model made by :func:`build_model`."""
    return get_submodule(model, ARCHITECTURES[model.nbrisk_arch].classifier_path)


def forward_with_embedding(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, embedding)`` in one pass: class logits ``(N, 2)`` and the 16-d embedding ``(N, 16)``."""
    pooled = ARCHITECTURES[model.nbrisk_arch].pre_logits(model, x)
    head = risk_head(model)
    embedding = head.embed(pooled)
    return head.out(embedding), embedding
