"""Grad-CAM family heat maps via ``pytorch_grad_cam``, overlaid on the slice at its own resolution.

The CAM classes are used as context managers (their hooks are removed on exit) with an explicit
target layer from the architecture table and the reshape transform that layer needs (timm Swin
blocks output NHWC; the library wants NCHW).

The dashboard shares one model between sessions (``st.cache_resource``) and serves predictions
from it concurrently. CAM hooks on that model would also record the activations of another
session's forward pass running at the same time (a wrong heat map, or a bf16 tensor the library
cannot read), so CAMs run on a private copy of the model (:func:`_cam_model`, made once and
renewed when the weights change), and one lock serialises the CAMs on it.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from nbrisk_core.classifier import CLASS_ORDER
from nbrisk_core.errors import InputError

_CAM_LOCK = threading.Lock()
#: model -> (weights fingerprint, its private copy for CAM hooks); guarded by _CAM_LOCK
_CAM_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cam_model(model):
    """The private copy of ``model`` that CAMs hook into (call with ``_CAM_LOCK`` held).

    Made on first use and again whenever a parameter or buffer of ``model`` was replaced or changed
    in place (storage pointer and version counter), so the copy always has the model's weights.
    """
    tensors = [*model.parameters(), *model.buffers()]
    fingerprint = tuple((t.data_ptr(), t._version) for t in tensors)
    cached = _CAM_COPIES.get(model)
    if cached is None or cached[0] != fingerprint:
        private = copy.deepcopy(model).eval()
        _CAM_COPIES[model] = cached = (fingerprint, private)
    return cached[1]


@contextlib.contextmanager
def _gradients_only_in(model, layer):
    """Let only ``layer``'s parameters require gradients while a CAM runs.

    Grad-CAM needs the gradient at the target layer's output, nothing upstream of it. With every
    parameter requiring gradients, the backward pass would also walk the whole backbone for weight
    gradients nobody reads (about twice the forward's cost); with only the target layer's, it stops
    there. The heat map is the same; the flags are restored afterwards.
    """
    keep = {id(p) for p in layer.parameters()}
    changed = [p for p in model.parameters() if p.requires_grad and id(p) not in keep]
    for parameter in changed:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in changed:
            parameter.requires_grad_(True)


def _cam_classes() -> dict:
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, ScoreCAM

    return {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "eigencam": EigenCAM, "scorecam": ScoreCAM}


#: method key -> readable name (ScoreCAM needs one forward per channel: slow on CPU)
CAM_METHODS: dict[str, str] = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "eigencam": "EigenCAM",
                               "scorecam": "Score-CAM (slow on CPU)"}


@dataclass(frozen=True)
class CamResult:
    heatmap: np.ndarray  # (224, 224) float32 in [0, 1], model-input resolution
    method: str
    target_class: str


def compute_cam(model, x: np.ndarray, method: str = "gradcam", target_class: str = "HR") -> CamResult:
    """Class activation map of one normalised input ``(3, H, W)`` (or ``(1, 3, H, W)``).

    Parameters
    ----------
    model : RiskClassifier
        A :class:`nbrisk_core.classifier.architectures.RiskClassifier` (fp32).
    method : {"gradcam", "gradcam++", "eigencam", "scorecam"}
    target_class : {"HR", "NHR"}
        The class whose logit is explained.
    """
    import torch
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from nbrisk_core.classifier.inference import onednn_matmul_precision

    classes = _cam_classes()
    if method not in classes:
        raise InputError(f"CAM method {method!r}: expected one of {sorted(classes)}")
    if target_class not in CLASS_ORDER:
        raise InputError(f"CAM target class {target_class!r}: expected one of {list(CLASS_ORDER)}")
    tensor = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if tensor.ndim == 3:
        tensor = tensor[None]
    device = next(model.parameters()).device
    # exact fp32 products: another thread's bf16-matmul prediction waits (inference.onednn_matmul_precision);
    # that block is taken before _CAM_LOCK, always in this order
    with onednn_matmul_precision(None, device.type), _CAM_LOCK:
        private = _cam_model(model)
        layer = private.cam_target_layer()
        reshape = private.spec.cam_reshape
        with (_gradients_only_in(private, layer),
              classes[method](model=private, target_layers=[layer], reshape_transform=reshape) as cam):
            if method == "scorecam":
                cam.batch_size = 32
            heat = cam(input_tensor=tensor.to(device),
                       targets=[ClassifierOutputTarget(CLASS_ORDER.index(target_class))])
    return CamResult(np.nan_to_num(heat[0]).astype(np.float32), method, target_class)


def compute_case_cam(loaded, slices_by_phase, method: str = "gradcam", target_class: str = "HR") -> CamResult:
    """:func:`compute_cam` of one case for a loaded model (:class:`~.model_io.LoadedModel`), its input built
    from the model card's data config exactly as :func:`~.inference.predict_case` builds it (HU slices
    windowed with the card's window, 8-bit images as they are)."""
    x = loaded.model_card.data.model_input(slices_by_phase)
    return compute_cam(loaded.model, x, method, target_class)


# one overlay for the Risk page and the PDF report (nbrisk_core.imaging.render)
from nbrisk_core.imaging.render import CAM_OPACITY, resize_heatmap  # noqa: E402,F401
from nbrisk_core.imaging.render import cam_overlay as overlay  # noqa: E402,F401
