"""The CPU probe: what a bf16 path really does on this CPU, measured rather than read off its flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbrisk_core.classifier import probe

REPO_ROOT = str(Path(__file__).resolve().parents[2])


def test_probe_reports_no_effect_when_the_setting_is_forced_off():
    """With a stand-in for oneDNN's setting that sets nothing, the probe sees plain fp32 products:
    ``bf16-matmul`` has no effect and so never pays off. Explicit bf16 products always round."""
    measured = probe.measure(repeats=2, matmul_precision=probe.no_op_precision)
    matmul = measured.paths["bf16-matmul"]
    assert matmul.rel_diff < probe.EFFECT_THRESHOLD and not matmul.effect and not matmul.pays_off
    assert not measured.pays_off("bf16-matmul")
    bf16 = measured.paths["bf16"]
    # bf16 keeps 8 significant bits: a rounding of both operands moves the product by ~1e-3 of its scale
    assert probe.EFFECT_THRESHOLD < bf16.rel_diff < 3e-2 and bf16.effect
    assert measured.fp32_ms > 0 and all(p.ms > 0 and p.speedup > 0 for p in measured.paths.values())


def test_probe_is_measured_once_per_process():
    assert probe.cpu_probe() is probe.cpu_probe()


def test_probe_where_the_setting_works_is_a_bf16_rounding():
    measured = probe.cpu_probe()
    if not measured.effect("bf16-matmul"):
        pytest.skip(f"oneDNN's bf16 fpmath setting has no effect on this CPU (probe: {measured.summary()})")
    # an effect is a rounding of the operands, not garbage: the same size as explicit bf16 products
    assert measured.paths["bf16-matmul"].rel_diff < 3e-2


def _run_capped(code: str) -> str:
    """Run ``code`` in a fresh interpreter whose oneDNN is capped below AMX (the AMD kind's ISA)."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16", "PYTHONPATH": REPO_ROOT}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_capped_onednn_behaves_as_the_avx512_bf16_kind():
    """``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16`` gives oneDNN the AMD kind's instructions (AVX512-BF16,
    no AMX) on any CPU: the probe finds ``bf16-matmul`` without effect, ``auto`` picks plain fp32
    and an explicit ``bf16-matmul`` is refused. This is the branch CI takes on that kind."""
    out = _run_capped(
        "import json\n"
        "from nbrisk_core.classifier.probe import cpu_probe\n"
        "from nbrisk_core.classifier.inference import optimized_config\n"
        "from nbrisk_core.errors import InputError\n"
        "p = cpu_probe()\n"
        "try:\n"
        "    optimized_config('cpu', precision='bf16-matmul'); refused = ''\n"
        "except InputError as error:\n"
        "    refused = str(error)\n"
        "print(json.dumps({'probe': p.to_dict(), 'auto': optimized_config('cpu').describe(),"
        " 'refused': refused}))\n")
    result = json.loads(out)
    assert result["probe"]["onednn_max_isa"] == "AVX512_CORE_BF16"
    assert result["probe"]["paths"]["bf16-matmul"]["effect"] is False
    assert result["auto"] == "cpu fp32"
    assert "measured to have no effect" in result["refused"]


def test_probe_command_prints_one_line_and_json():
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    line = subprocess.run([sys.executable, "-m", "nbrisk_core.classifier.probe"], env=env, capture_output=True,
                          text=True, timeout=300, check=True).stdout
    assert line.startswith("cpu: ") and line.count("\n") == 1 and "bf16-matmul:" in line
    data = json.loads(subprocess.run([sys.executable, "-m", "nbrisk_core.classifier.probe", "--json"], env=env,
                                     capture_output=True, text=True, timeout=300, check=True).stdout)
    assert set(data) >= {"cpu", "flags", "kind", "fp32_ms", "paths"}
    assert set(data["paths"]["bf16"]) >= {"rel_diff", "ms", "speedup", "effect", "pays_off"}
