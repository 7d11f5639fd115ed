"""What this CPU really does with bf16: measured once per process, never read off its flags alone.

The project's machines come in two kinds whose ``/proc/cpuinfo`` look alike for bf16 and whose
arithmetic does not:

* Intel Xeon with AMX: oneDNN's fpmath setting (``bf16-matmul``,
  ``torch.backends.mkldnn.matmul.fp32_precision = "bf16"``) rounds the operands of fp32 matrix
  products to bf16 and runs them on the AMX tiles, several times faster than fp32.
* AMD EPYC with AVX512-BF16 but no AMX: the same setting has **no effect** (oneDNN applies the
  down-conversion only in its AMX kernels; the products stay fp32), while explicit bf16 products
  (autocast) do run on the AVX512-BF16 instructions.

:func:`cpu_probe` multiplies one Swin-T-sized pair of matrices (a stage-3 ``qkv``-like product) in
plain fp32, under ``bf16-matmul`` and in bf16 (as autocast does, weights cast once as a frozen
compiled model has them), and records for each candidate whether it changed the result (relative
difference above :data:`EFFECT_THRESHOLD`: a bf16 rounding of the operands gives ~1e-3, a fp32
reordering ~1e-7) and how fast it ran. :func:`nbrisk_core.classifier.inference.optimized_config`
and training's ``auto`` precision choose from this, so a path is taken only where it both does what
it says and pays off. ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16`` on an AMX machine reproduces the AMD
kind's behaviour (the tests use it).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass
from functools import lru_cache

#: (tokens, in features, out features) of the probe's product: Swin-T stage 3 at 224 px (14 x 14
#: tokens, 384 channels), a few milliseconds in fp32 on 2 cores
PROBE_SHAPE = (196 * 4, 384, 384)
#: max |candidate - fp32| / max |fp32| above which a candidate changed the arithmetic
EFFECT_THRESHOLD = 1e-4
#: a candidate pays off when it runs at least this many times as fast as fp32
MIN_SPEEDUP = 1.2
#: the CPU flags that advertise bf16 (recorded beside the measurement, not used to decide)
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")
CANDIDATES = ("bf16-matmul", "bf16")


@dataclass(frozen=True)
class PathProbe:
    """One candidate's measurement against plain fp32 on the probe's product."""

    name: str
    rel_diff: float  # max |candidate - fp32| / max |fp32|
    ms: float  # best time of the product
    speedup: float  # fp32 time / candidate time

    @property
    def effect(self) -> bool:
        """The candidate changed the arithmetic (it really computed in bf16)."""
        return self.rel_diff > EFFECT_THRESHOLD

    @property
    def pays_off(self) -> bool:
        return self.effect and self.speedup >= MIN_SPEEDUP


@dataclass(frozen=True)
class CpuProbe:
    """The measured behaviour of this process's CPU (see the module docstring)."""

    cpu: str
    flags: tuple[str, ...]  # those of BF16_FLAGS the CPU advertises
    onednn_max_isa: str | None  # ONEDNN_MAX_CPU_ISA, when the environment caps oneDNN
    threads: int
    fp32_ms: float
    paths: dict[str, PathProbe]

    @property
    def kind(self) -> str:
        """The project's name of this CPU kind, from its flags: ``amx``, ``avx512-bf16`` (no AMX) or
        ``no-bf16`` (and the cap, where ``ONEDNN_MAX_CPU_ISA`` limits oneDNN). A label for tables of
        figures per kind; decisions use the measurement."""
        base = ("amx" if "amx_bf16" in self.flags else
                "avx512-bf16" if "avx512_bf16" in self.flags else "no-bf16")
        return f"{base}, oneDNN capped at {self.onednn_max_isa.lower()}" if self.onednn_max_isa else base

    def pays_off(self, name: str) -> bool:
        return name in self.paths and self.paths[name].pays_off

    def effect(self, name: str) -> bool:
        return name in self.paths and self.paths[name].effect

    def summary(self) -> str:
        """One line: the CPU, its bf16 flags and what each candidate did."""
        flags = ",".join(self.flags) or "none"
        isa = f", ONEDNN_MAX_CPU_ISA={self.onednn_max_isa}" if self.onednn_max_isa else ""
        parts = [f"{p.name}: {'effect' if p.effect else 'no effect'} (rel diff {p.rel_diff:.1e}), "
                 f"{p.speedup:.2f}x fp32{' -> pays off' if p.pays_off else ''}" for p in self.paths.values()]
        return (f"{self.cpu} (kind {self.kind}) [bf16 flags: {flags}{isa}; {self.threads} threads] "
                + "; ".join(parts))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["flags"] = list(self.flags)
        out["kind"] = self.kind
        for name, path in self.paths.items():
            out["paths"][name].update(effect=path.effect, pays_off=path.pays_off)
        return out


def cpu_flags() -> tuple[str, ...]:
    """Those of :data:`BF16_FLAGS` that ``/proc/cpuinfo`` lists (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as handle:
            words = set(handle.read().split())
    except OSError:
        return ()
    return tuple(flag for flag in BF16_FLAGS if flag in words)


def _best_ms(fn, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls after three warm-up calls (oneDNN creates and caches
    the primitive, and the AMX tiles are configured, on the first ones). The minimum, not the
    median: on a shared machine other load only ever adds time."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


def measure(shape: tuple[int, int, int] = PROBE_SHAPE, repeats: int = 15, matmul_precision=None) -> CpuProbe:
    """Run the probe now (see the module docstring); :func:`cpu_probe` caches it per process.

    ``matmul_precision`` is the context manager that applies oneDNN's fp32 matmul setting
    (default :func:`nbrisk_core.classifier.inference.onednn_matmul_precision`); a test passes one that
    does nothing to check that the probe then reports "no effect".
    """
    import torch
    import torch.nn.functional as F

    from nbrisk_core.classifier.onednn import cpu_name, onednn_matmul_precision

    matmul_precision = matmul_precision or onednn_matmul_precision
    tokens, k, n = shape
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, k, generator=generator)
    w = torch.randn(n, k, generator=generator) / k ** 0.5
    w_bf16 = w.to(torch.bfloat16)  # cast once, as a frozen compiled model holds its weights

    def fp32():
        return F.linear(x, w)

    def bf16():
        return F.linear(x.to(torch.bfloat16), w_bf16)

    with torch.inference_mode():
        with matmul_precision(None, "cpu"):
            reference = fp32()
            fp32_ms = _best_ms(fp32, repeats)
            bf16_out = bf16().float()
            bf16_ms = _best_ms(bf16, repeats)
        with matmul_precision("bf16", "cpu"):
            matmul_out = fp32()
            matmul_ms = _best_ms(fp32, repeats)
    scale = float(reference.abs().max())

    def path(name, out, ms):
        return PathProbe(name, float((out - reference).abs().max()) / scale, ms, fp32_ms / ms)

    return CpuProbe(cpu=cpu_name(), flags=cpu_flags(), onednn_max_isa=os.environ.get("ONEDNN_MAX_CPU_ISA"),
                    threads=torch.get_num_threads(), fp32_ms=fp32_ms,
                    paths={"bf16-matmul": path("bf16-matmul", matmul_out, matmul_ms),
                           "bf16": path("bf16", bf16_out, bf16_ms)})


@lru_cache(maxsize=1)
def cpu_probe() -> CpuProbe:
    """The probe of this process's CPU, measured at the first call (tens of milliseconds)."""
    return measure()


def no_op_precision(value, device="cpu"):
    """A stand-in for the oneDNN setting that sets nothing (the probe's self-test)."""
    return contextlib.nullcontext()


def main() -> int:
    """``python -m nbrisk_core.classifier.probe [--json]``: print the probe (CI's first line)."""
    import json
    import sys

    probe = cpu_probe()
    print(json.dumps(probe.to_dict()) if "--json" in sys.argv[1:] else f"cpu: {probe.summary()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
