"""Inference: device choice, the optimised path, and scoring one case.

On CUDA the model runs under bf16 autocast. On a CPU where oneDNN really runs fp32 matrix products
on bf16 units (measured by :mod:`nbrisk_core.classifier.probe`: AMX does, AVX512-BF16 alone does not)
the model stays fp32 and only its matrix products run on the bf16 units: oneDNN's fpmath mode
(``torch.backends.mkldnn.matmul.fp32_precision = "bf16"``) rounds the two operands of each linear
layer and attention product to bf16, accumulates in fp32 and writes fp32.
Everything else (the patch-embedding convolution, so the input image is not rounded; LayerNorm,
softmax, GELU, the residual stream, the biases) stays fp32. Measured on the shipped Swin-ART
(docs/classifier.md): about 2.2x the eager fp32 speed compiled with probabilities within 6e-4 of
fp32, where full bf16 autocast is 3x but 1.6e-3 away. Where the probe finds the setting without
effect or without gain, fp32 stays. ``--precision`` picks another path (``PRECISIONS``).

``torch.compile`` is optional (``compile=True``): it costs tens of seconds once per process, worth it
for a server, not for a one-shot CLI call. On CPU it compiles with Inductor's ``freezing``
(parameters folded as constants, weights prepacked for oneDNN); without it autocast re-casts every
weight on every call.

The oneDNN setting is process-wide, not per thread. :func:`onednn_matmul_precision` sets it for one
block; blocks of the same value run together and a block of another value waits for them. Every CPU
forward pass of a :class:`Predictor` and every CPU CAM runs inside such a block, so an fp32 pass
never sees another thread's bf16 setting.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np

from nbrisk_core.classifier import CLASS_ORDER
from nbrisk_core.classifier.onednn import cpu_name, onednn_matmul_precision  # noqa: F401 (re-exported)


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; an unavailable ``cuda`` is an InputError."""
    import torch

    from nbrisk_core.errors import InputError

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available here (expected auto or cpu)")
    if device not in ("cpu", "cuda"):
        raise InputError(f"--device {device!r}: expected auto, cpu or cuda")
    return device


def choose_device() -> str:
    return resolve_device("auto")


def bf16_pays_off(device: str) -> bool:
    """bf16 autocast is faster than fp32 here: CUDA, or a CPU where the probe measured bf16 products
    faster than fp32 (:mod:`nbrisk_core.classifier.probe`)."""
    from nbrisk_core.classifier.probe import cpu_probe

    return device == "cuda" or cpu_probe().pays_off("bf16")


#: ``--precision`` of inference -> (autocast dtype or None, oneDNN fp32 matmul precision or None);
#: ``auto`` chooses by the hardware (:func:`optimized_config`)
PRECISIONS = {
    "bf16-matmul": (None, "bf16"),  # fp32 model, matrix products on the bf16 units (CPU, oneDNN)
    "bf16": ("bfloat16", None),  # bf16 autocast: fastest, furthest from fp32
    "fp16": ("float16", None),  # fp16 autocast: close to fp32; slow on CPUs without AMX-FP16
    "fp32": (None, None),
}
PRECISION_CHOICES = ("auto", *PRECISIONS)

@dataclass
class InferenceConfig:
    """How a forward pass runs: device, autocast dtype (None = fp32), oneDNN's precision for fp32
    matrix products (``"bf16"`` or None = exact), compiled or not."""

    device: str = "cpu"
    autocast: str | None = None  # "bfloat16" or "float16" (torch dtype names); None = fp32
    compiled: bool = False
    threads: int | None = None
    matmul: str | None = None  # "bf16": oneDNN fpmath mode for the fp32 matrix products (CPU)

    def describe(self) -> str:
        precision = {"bfloat16": "bf16 autocast", "float16": "fp16 autocast"}.get(self.autocast, "fp32")
        if self.matmul:
            precision += f" + {self.matmul} matmul"
        return f"{self.device} {precision}{' compiled' if self.compiled else ''}"


def optimized_config(device: str | None = None, compile: bool = False,
                     precision: str = "auto") -> InferenceConfig:
    """The fastest sound configuration for this machine (see the module docstring).

    ``precision``: ``auto`` = bf16 autocast on CUDA, ``bf16-matmul`` on a CPU where the probe
    (:func:`nbrisk_core.classifier.probe.cpu_probe`) found that setting effective and faster than
    fp32, else fp32; or one of :data:`PRECISIONS`. ``bf16-matmul`` is refused where the probe found
    it without effect (oneDNN would silently compute in fp32: the AVX512-BF16-only kind). On CPUs
    with AVX512-FP16 (Sapphire Rapids and later) fp16 autocast is ~8x closer to fp32 than bf16 autocast but uses no
    AMX, so it is slower (docs/classifier.md).
    """
    import torch

    from nbrisk_core.classifier.probe import cpu_probe
    from nbrisk_core.errors import InputError

    device = device or choose_device()
    if precision == "auto":
        if device == "cuda":
            precision = "bf16"
        else:
            precision = "bf16-matmul" if cpu_probe().pays_off("bf16-matmul") else "fp32"
    if precision not in PRECISIONS:
        raise InputError(f"--precision {precision!r}: expected one of {list(PRECISION_CHOICES)}")
    autocast, matmul = PRECISIONS[precision]
    if matmul and (device != "cpu" or not cpu_probe().effect(precision)):
        where = ("a CUDA device" if device != "cpu"
                 else f"this CPU ({cpu_name()}), where it was measured to have no effect (the products "
                      f"stay fp32: oneDNN applies it on AMX only)")
        raise InputError(f"--precision {precision}: oneDNN's bf16 matrix products need a CPU whose oneDNN "
                         f"kernels apply them, not {where}; expected auto, bf16, fp16 or fp32 here")
    return InferenceConfig(device=device, autocast=autocast, compiled=compile,
                           threads=torch.get_num_threads(), matmul=matmul)


def _bias_after_matmul(model):
    """A copy of ``model`` whose linear layers add their bias after the matrix product.

    Same function in fp32. What it changes is the compiled graph: Inductor's freezing passes fuse a
    linear layer with the GELU after it (and with a residual addition) into one oneDNN primitive
    with post-ops; with the bias as a separate addition the patterns no longer match, the product
    runs alone and Inductor fuses bias and GELU into its own elementwise kernel. Under bf16 matmul
    the fused form was further from fp32 on the shipped Swin-ART (all 202 demo images, measured:
    max |dp| 9.9e-4 fused, 6.6e-4 unfused, the linear+GELU fusion alone accounting for it) at the
    same speed. The mechanism inside oneDNN was not traced (one MLP block alone shows no difference).
    A copy, so the caller's model (the eager reference, the CAMs) stays as timm built it.
    """
    import torch.nn.functional as F
    from torch import nn

    class BiasAfterLinear(nn.Linear):
        def forward(self, x):
            return F.linear(x, self.weight) + self.bias

    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and child.bias is not None:
                replacement = BiasAfterLinear(child.in_features, child.out_features, device="meta")
                replacement.weight, replacement.bias = child.weight, child.bias
                setattr(parent, name, replacement.train(child.training))
    return model


def compile_for_inference(fn, device: str):
    """``torch.compile`` of an inference function; on CPU with Inductor's freezing.

    Freezing makes the weights constants, so their casts are folded once and oneDNN prepacks them
    (measured 51 -> 35 ms per Swin-T image under bf16 autocast on 2 AMX cores); inference only.
    Compilation happens at the first call, so the setting is applied around every call of the
    compiled function (torch.compile's ``options={"freezing": True}`` is not honoured). What the first
    call finds is what the graph keeps: under :func:`onednn_matmul_precision` ``"bf16"`` the freezing
    passes pack the linear layers for bf16 products, so call the function under the same setting
    every time (a :class:`Predictor` does).
    """
    import torch

    compiled = torch.compile(fn, dynamic=False)
    if device != "cpu":
        return compiled
    from torch._inductor import config as inductor_config

    def frozen(*args):
        with inductor_config.patch(freezing=True):
            return compiled(*args)
    return frozen


@dataclass
class Predictor:
    """A loaded model plus its inference configuration; thread-safe (no state mutated per call)."""

    loaded: object  # nbrisk_core.classifier.model_io.LoadedModel
    config: InferenceConfig = field(default_factory=InferenceConfig)

    def __post_init__(self):
        self.loaded.model.to(self.config.device).eval()
        self._model = self.loaded.model
        if self.config.compiled and self.config.matmul:
            self._model = _bias_after_matmul(self._model)
        self._forward = self._plain_forward
        if self.config.compiled:
            self._forward = compile_for_inference(self._plain_forward, self.config.device)

    def _plain_forward(self, x):
        return self._model.forward_with_embedding(x)

    def logits_and_embedding(self, x_np: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised float32 ``(N, 3, 224, 224)`` -> ``(softmax (N, 2), embedding (N, 16))``."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(x_np, dtype=np.float32)).to(self.config.device)
        device_type = "cuda" if self.config.device.startswith("cuda") else "cpu"
        dtype = getattr(torch, self.config.autocast or "bfloat16")
        autocast = torch.autocast(device_type, dtype=dtype, enabled=self.config.autocast is not None)
        precision = onednn_matmul_precision(self.config.matmul, self.config.device)
        with precision, torch.inference_mode(), autocast:
            logits, embedding = self._forward(x)
        proba = torch.softmax(logits.float(), 1).cpu().numpy()
        return proba, embedding.float().cpu().numpy()

    def predict_batches(self, x_np: np.ndarray, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
        probas, embeddings = [], []
        for start in range(0, len(x_np), batch_size):
            p, e = self.logits_and_embedding(x_np[start:start + batch_size])
            probas.append(p)
            embeddings.append(e)
        return np.concatenate(probas), np.concatenate(embeddings)


@dataclass(frozen=True)
class CasePrediction:
    """One variant's result for one case."""

    variant: str
    label: str
    p_high_risk: float
    risk_class: str
    threshold: float
    embedding: np.ndarray
    model_sha256: str
    device: str
    seconds: float

    def to_dict(self) -> dict:
        return {"variant": self.variant, "label": self.label, "p_high_risk": self.p_high_risk,
                "risk_class": self.risk_class, "threshold": self.threshold,
                "embedding": [float(v) for v in self.embedding], "model_sha256": self.model_sha256,
                "device": self.device, "seconds": self.seconds}


def predict_case(predictor: Predictor, slices_by_phase: dict) -> CasePrediction:
    """Score one case from its chosen slices, ``{"art": slice, ...}``.

    A slice is HU (2-D float or signed-integer array, or a Case-page entry with ``"hu"``), windowed
    with the model card's window, or an 8-bit grey image (uint8, or an entry with ``"grey"``) taken
    as it is: :meth:`nbrisk_core.classifier.card.DataConfig.model_input`, the one input builder of the
    CLI and the dashboard.
    """
    card = predictor.loaded.model_card
    started = time.perf_counter()
    x = card.data.model_input(slices_by_phase)[None]
    proba, embedding = predictor.logits_and_embedding(x)
    p_hr = float(proba[0, CLASS_ORDER.index("HR")])
    threshold = card.decision_threshold
    return CasePrediction(card.variant, card.variant_label, p_hr, "HR" if p_hr >= threshold else "NHR",
                          threshold, embedding[0], card.sha256, predictor.config.describe(),
                          time.perf_counter() - started)
