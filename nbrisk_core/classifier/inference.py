"""Inference: device choice, the optimised path, and scoring one case.

On CUDA the model runs under bf16 autocast. On CPU, bf16 autocast is used only where the CPU has
native bf16 matrix instructions (AVX512-BF16 or AMX); without them oneDNN emulates bf16 and it is
slower than fp32, so fp32 stays. ``torch.compile`` is optional (``compile=True``): it costs tens
of seconds once per process, worth it for a server, not for a one-shot CLI call. On CPU it compiles
with Inductor's ``freezing`` (parameters folded as constants, weights prepacked for oneDNN), which
is what makes bf16 pay off at batch 1: without it autocast re-casts every weight on every call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from nbrisk_core.classifier import CLASS_ORDER


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True if the CPU advertises AVX512-BF16 or AMX-BF16 (``/proc/cpuinfo`` flags)."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), recorded next to measured figures."""
    import platform

    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
    """bf16 autocast is faster than fp32 here: CUDA, or a CPU with native bf16 (module docstring)."""
    return device == "cuda" or cpu_has_native_bf16()


#: ``--precision`` of inference -> autocast dtype (None = fp32); ``auto`` is :func:`bf16_pays_off`
PRECISIONS = {"bf16": "bfloat16", "fp16": "float16", "fp32": None}


@dataclass
class InferenceConfig:
    """How a forward pass runs: device, autocast dtype (None = fp32), compiled or not."""

    device: str = "cpu"
    autocast: str | None = None  # "bfloat16" or "float16" (torch dtype names); None = fp32
    compiled: bool = False
    threads: int | None = None

    def describe(self) -> str:
        precision = {"bfloat16": "bf16 autocast", "float16": "fp16 autocast"}.get(self.autocast, "fp32")
        return f"{self.device} {precision}{' compiled' if self.compiled else ''}"


def optimized_config(device: str | None = None, compile: bool = False,
                     precision: str = "auto") -> InferenceConfig:
    """The fastest sound configuration for this machine (see the module docstring).

    ``precision``: ``auto`` (bf16 where it pays off, else fp32), or ``bf16``, ``fp16``, ``fp32``. On
    CPUs with AVX512-FP16 (Sapphire Rapids and later) fp16 autocast is ~8x closer to fp32 than bf16
    (10 mantissa bits against 7) but uses no AMX, so it is slower (docs/classifier.md).
    """
    import torch

    from nbrisk_core.errors import InputError

    device = device or choose_device()
    if precision == "auto":
        autocast = "bfloat16" if bf16_pays_off(device) else None
    elif precision in PRECISIONS:
        autocast = PRECISIONS[precision]
    else:
        raise InputError(f"--precision {precision!r}: expected auto or one of {sorted(PRECISIONS)}")
    return InferenceConfig(device=device, autocast=autocast, compiled=compile, threads=torch.get_num_threads())


@dataclass
class Predictor:
    """A loaded model plus its inference configuration; thread-safe (no state mutated per call)."""

    loaded: object  # nbrisk_core.classifier.model_io.LoadedModel
    config: InferenceConfig = field(default_factory=InferenceConfig)

    def __post_init__(self):
        import torch

        self.loaded.model.to(self.config.device).eval()
        self._forward = self._plain_forward
        if self.config.compiled:
            # freezing: weights become constants, so their bf16 casts are folded once and oneDNN
            # prepacks them (measured 51 -> 35 ms per Swin-T image on 2 AMX cores); inference only
            # (compilation happens at the first call, so the setting is applied around every call of
            # the compiled function: torch.compile's ``options={"freezing": True}`` is not honoured)
            compiled = torch.compile(self._plain_forward, dynamic=False)
            if self.config.device == "cpu":
                from torch._inductor import config as inductor_config

                def frozen(x):
                    with inductor_config.patch(freezing=True):
                        return compiled(x)
                self._forward = frozen
            else:
                self._forward = compiled

    def _plain_forward(self, x):
        from nbrisk_core.classifier.architectures import forward_with_embedding

        return forward_with_embedding(self.loaded.model, x)

    def logits_and_embedding(self, x_np: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised float32 ``(N, 3, 224, 224)`` -> ``(softmax (N, 2), embedding (N, 16))``."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(x_np, dtype=np.float32)).to(self.config.device)
        device_type = "cuda" if self.config.device.startswith("cuda") else "cpu"
        dtype = getattr(torch, self.config.autocast or "bfloat16")
        autocast = torch.autocast(device_type, dtype=dtype, enabled=self.config.autocast is not None)
        with torch.inference_mode(), autocast:
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


def predict_case(predictor: Predictor, grey_by_phase: dict[str, np.ndarray]) -> CasePrediction:
    """Score one case from 8-bit grey max-area slices (``{"art": uint8 2-D, ...}``)."""
    from nbrisk_core.imaging.model_input import build_model_input

    card = predictor.loaded.card
    started = time.perf_counter()
    x = build_model_input(grey_by_phase, card["variant"], card["normalisation"]["mean"],
                          card["normalisation"]["std"], card["input_size"])[None]
    proba, embedding = predictor.logits_and_embedding(x)
    p_hr = float(proba[0, CLASS_ORDER.index("HR")])
    threshold = float(card.get("decision_threshold", 0.5))
    return CasePrediction(card["variant"], card.get("variant_label", card["variant"]), p_hr,
                          "HR" if p_hr >= threshold else "NHR", threshold, embedding[0], card["sha256"],
                          predictor.config.describe(), time.perf_counter() - started)
