"""Backbones and the paper's head: pooled features -> FC(16) -> FC(2) -> softmax.

:class:`RiskClassifier` is one ``nn.Module`` of two parts: ``backbone``, a
``timm.create_model(..., pretrained=False)`` whose classifier timm's own ``reset_classifier(0)``
removed (AlexNet, which timm lacks, comes from torchvision behind the same surface:
:class:`AlexNetBackbone`), and ``head``, the paper's :class:`RiskHead`
(``../shared/spec/method.md`` section 3). It keeps timm's surface: ``forward_features`` (last
feature map), ``forward_head`` (``pre_logits=True`` gives the embedding), ``forward`` (class
logits), plus ``embed``. Nothing is patched onto the backbone. Architectures are a table, not
``if`` chains.

State-dict layout
-----------------
Layout 2 (this module): ``backbone.*`` and ``head.*``. Layout 1 (cards without
``state_dict_layout``, e.g. the shipped ``models/swin_art_demo``): the head sat in the backbone's
classifier slot (``head.fc.*`` for Swin-T). :data:`STATE_DICT_LAYOUTS` maps old keys on load
(:func:`upgrade_state_dict`); the weights themselves never change.

The CT embedding
----------------
The 16 hidden outputs are taken **after** the activation (GELU). Those are the values the output
layer actually reads, i.e. "the outputs of the hidden layer" in the paper's words. GELU (the
activation Swin itself uses in its MLPs) rather than ReLU, because a ReLU unit that dies gives a
constant embedding column, which the prognosis engine's Cox screening cannot use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from nbrisk_core.classifier import ARCHITECTURE_NAMES, CLASS_ORDER, HIDDEN_UNITS
from nbrisk_core.classifier import STATE_DICT_LAYOUT as _STATE_DICT_LAYOUT
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


class AlexNetBackbone(nn.Module):
    """torchvision's AlexNet (timm has none) with timm's surface: ``forward_features``,
    ``forward_head(pre_logits=...)``, ``reset_classifier``, ``num_features``, ``head_hidden_size``.

    Its submodules keep torchvision's names (``features``, ``avgpool``, ``classifier``), so state
    dicts and CAM layer paths are torchvision's.
    """

    num_features = 256  # channels of the last feature map
    head_hidden_size = 4096  # width of the pooled pre-logits

    def __init__(self, num_classes: int = 1000, **kwargs):
        from torchvision.models import alexnet

        super().__init__()
        net = alexnet(weights=None, num_classes=max(num_classes, 1), **kwargs)
        self.features, self.avgpool, self.classifier = net.features, net.avgpool, net.classifier
        if num_classes <= 0:
            self.reset_classifier(0)

    def reset_classifier(self, num_classes: int) -> None:
        width = self.head_hidden_size
        self.classifier[6] = nn.Linear(width, num_classes) if num_classes > 0 else nn.Identity()

    def get_classifier(self) -> nn.Module:
        return self.classifier[6]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.classifier[:-1](torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.classifier[-1](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _swin_reshape(tensor: torch.Tensor) -> torch.Tensor:
    # timm Swin stages output NHWC; pytorch_grad_cam wants NCHW activations
    return tensor.permute(0, 3, 1, 2)


@dataclass(frozen=True)
class Architecture:
    """One selectable backbone (``--arch``) and what Grad-CAM and the key map need to know of it."""

    name: str
    label: str
    create: Callable[..., nn.Module]
    model_name: str | None           # timm model name (None for torchvision builders)
    cam_layer: str                   # dotted path of the Grad-CAM target layer, inside the backbone
    #: dotted path of the backbone's classifier, where state-dict layout 1 kept the head
    layout1_head_path: str
    features_nhwc: bool = False      # timm Swin stages are NHWC, CNN feature maps NCHW
    cam_reshape: Callable | None = None


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("swin_t", "Swin-T", lambda **kw: _timm_backbone("swin_tiny_patch4_window7_224", **kw),
                     "swin_tiny_patch4_window7_224", "layers.3.blocks.-1", "head.fc",
                     features_nhwc=True, cam_reshape=_swin_reshape),
        Architecture("resnet50", "ResNet-50", lambda **kw: _timm_backbone("resnet50", **kw),
                     "resnet50", "layer4", "fc"),
        Architecture("densenet121", "DenseNet-121", lambda **kw: _timm_backbone("densenet121", **kw),
                     "densenet121", "features.norm5", "classifier"),
        Architecture("vgg16", "VGG-16", lambda **kw: _timm_backbone("vgg16", **kw),
                     "vgg16", "features.29", "head.fc"),
        Architecture("alexnet", "AlexNet", AlexNetBackbone, None, "features.11", "classifier.6"),
    )
}

if tuple(ARCHITECTURES) != ARCHITECTURE_NAMES:   # the light copy the model card reads
    raise RuntimeError(f"nbrisk_core.classifier.ARCHITECTURE_NAMES {ARCHITECTURE_NAMES} differs from "
                       f"ARCHITECTURES {tuple(ARCHITECTURES)}")

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


class RiskClassifier(nn.Module):
    """A backbone of :data:`ARCHITECTURES` and the paper's :class:`RiskHead`, in one module.

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

    Notes
    -----
    The backbone is built with its ImageNet classifier, then ``reset_classifier(0)`` removes it.
    ``create_model(name, num_classes=0)`` would give the same module, but it would draw fewer random
    numbers before the head is initialised: a seeded training run would no longer start from the weights
    it started from before (the demo models' recorded runs).

    Examples
    --------
    >>> model = RiskClassifier("swin_t", backbone_kwargs=TINY_SWIN_KWARGS).eval()
    >>> model(torch.zeros(1, 3, 224, 224)).shape, model.embed(torch.zeros(1, 3, 224, 224)).shape
    (torch.Size([1, 2]), torch.Size([1, 16]))
    """

    def __init__(self, arch: str = "swin_t", n_aux: int = 0, backbone_kwargs: dict | None = None,
                 n_dense: int = 0, pool_norm: bool = False):
        super().__init__()
        spec = get_architecture(arch)
        self.arch = spec.name
        self.backbone = spec.create(**(backbone_kwargs or {}))
        self.backbone.reset_classifier(0)
        pooled_width = int(getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features)
        self.head = RiskHead(pooled_width, n_aux=n_aux, n_dense=n_dense,
                             dense_in_features=int(self.backbone.num_features), pool_norm=pool_norm)

    @property
    def spec(self) -> Architecture:
        return ARCHITECTURES[self.arch]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map (NHWC for Swin, NCHW for the CNNs)."""
        return self.backbone.forward_features(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Class logits ``(N, 2)`` of a feature map; with ``pre_logits`` the 16-d embedding."""
        embedding = self.head.embed(self.backbone.forward_head(features, pre_logits=True))
        return embedding if pre_logits else self.head.out(embedding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The 16-d CT embedding ``(N, 16)``: the hidden layer's outputs after the activation."""
        return self.forward_head(self.forward_features(x), pre_logits=True)

    def forward_with_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, embedding)`` in one pass."""
        embedding = self.embed(x)
        return self.head.out(embedding), embedding

    def forward_tokens(self, x: torch.Tensor):
        """``(logits, embedding, dense)`` in one pass; ``dense`` is the head's per-token output
        ``(N, h, w, n_dense)`` on the last feature map (``None`` when the head has no dense layer)."""
        features = self.forward_features(x)
        embedding = self.forward_head(features, pre_logits=True)
        dense = None
        if self.head.dense is not None:
            dense = self.head.dense(features if self.spec.features_nhwc else features.permute(0, 2, 3, 1))
        return self.head.out(embedding), embedding, dense

    def get_classifier(self) -> nn.Module:
        """The final linear layer (timm's name for it)."""
        return self.head.out

    def cam_target_layer(self) -> nn.Module:
        """The Grad-CAM target layer of the architecture table."""
        return get_submodule(self.backbone, self.spec.cam_layer)


def build_model(arch: str = "swin_t", n_aux: int = 0, backbone_kwargs: dict | None = None,
                n_dense: int = 0, pool_norm: bool = False) -> RiskClassifier:
    """A :class:`RiskClassifier` (the builder the CLI, training and model loading call)."""
    return RiskClassifier(arch, n_aux=n_aux, backbone_kwargs=backbone_kwargs, n_dense=n_dense,
                          pool_norm=pool_norm)


#: the state-dict layout :class:`RiskClassifier` writes (recorded in the model card); defined in the package
#: (``nbrisk_core.classifier``) so that model cards are read without torch
STATE_DICT_LAYOUT = _STATE_DICT_LAYOUT


def _layout1_to_2(state: dict, arch: str) -> dict:
    """Layout 1 had the head in the backbone's classifier slot and no ``backbone.`` prefix."""
    prefix = get_architecture(arch).layout1_head_path + "."
    return {(f"head.{key[len(prefix):]}" if key.startswith(prefix) else f"backbone.{key}"): value
            for key, value in state.items()}


#: layout -> the map of its keys to the next layout (applied in turn up to :data:`STATE_DICT_LAYOUT`)
STATE_DICT_LAYOUTS: dict[int, Callable[[dict, str], dict]] = {1: _layout1_to_2}


def upgrade_state_dict(state: dict, arch: str, layout: int) -> dict:
    """``state`` (written in ``layout``) with the keys of :data:`STATE_DICT_LAYOUT`; tensors unchanged."""
    if not 1 <= layout <= STATE_DICT_LAYOUT:
        raise InputError(f"state-dict layout {layout!r}; expected 1-{STATE_DICT_LAYOUT}")
    for version in range(layout, STATE_DICT_LAYOUT):
        state = STATE_DICT_LAYOUTS[version](state, arch)
    return state


def detect_layout(state: dict) -> int:
    """The layout of a run's checkpoint, which has no card: layout 2 keys all start with
    ``backbone.`` or ``head.``; a layout 1 state has backbone keys without a prefix."""
    return STATE_DICT_LAYOUT if all(k.startswith(("backbone.", "head.")) for k in state) else 1
