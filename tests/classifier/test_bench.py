"""`nbrisk bench classifier` runs end to end on a tiny model and reports every figure (no timing asserts)."""

from __future__ import annotations

import json

from nbrisk_core.cli import main


def test_bench_classifier_json(tiny_cohort, tiny_models_dir, monkeypatch, capsys):
    monkeypatch.setenv("NBRISK_DATA_DIR", str(tiny_cohort))
    code = main(["bench", "classifier", "--json", "--model", str(tiny_models_dir / "swin_art_demo.safetensors"),
                 "--repeats", "2", "--agreement-cases", "6", "--no-compile", "--threads", "1"])
    assert code == 0
    out = capsys.readouterr().out
    figures = json.loads(out[out.index("{"):])
    assert set(figures) >= {"eager_ms", "optimized_ms", "speedup", "max_abs_diff", "gradcam_ms", "device", "threads"}
    assert figures["eager_ms"] > 0 and figures["threads"] == 1
    if "bf16" not in figures["optimized_path"]:  # fp32 on both paths: they must agree closely
        assert figures["max_abs_diff"] < 1e-5
        assert figures["auc_eager"] == figures["auc_optimized"]


def test_compiled_frozen_predictor_matches_eager(tiny_models_dir):
    """The optimised path's torch.compile (with Inductor freezing on CPU) gives the eager model's
    probabilities and embedding (fp32 here, so only compilation differs)."""
    import numpy as np

    from nbrisk_core.classifier.inference import InferenceConfig, Predictor
    from nbrisk_core.classifier.model_io import load_model

    path = tiny_models_dir / "swin_art_demo.safetensors"
    x = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
    p_eager, e_eager = Predictor(load_model(path), InferenceConfig()).logits_and_embedding(x)
    p_comp, e_comp = Predictor(load_model(path), InferenceConfig(compiled=True)).logits_and_embedding(x)
    np.testing.assert_allclose(p_comp, p_eager, atol=1e-4)
    np.testing.assert_allclose(e_comp, e_eager, atol=1e-3)


def test_inference_precision_choice(tiny_models_dir):
    """``--precision``: auto follows the hardware rule, fp16/bf16 autocast stay close to fp32, and
    fp16 (10 mantissa bits) is closer than bf16 (7); an unknown choice names the flag."""
    import numpy as np
    import pytest

    from nbrisk_core.classifier.inference import Predictor, bf16_pays_off, optimized_config
    from nbrisk_core.classifier.model_io import load_model
    from nbrisk_core.errors import InputError

    assert optimized_config("cpu").autocast == ("bfloat16" if bf16_pays_off("cpu") else None)
    assert optimized_config("cpu", precision="fp32").describe() == "cpu fp32"
    assert optimized_config("cpu", precision="fp16").describe() == "cpu fp16 autocast"
    with pytest.raises(InputError, match="--precision 'int4'"):
        optimized_config("cpu", precision="int4")
    path = tiny_models_dir / "swin_art_demo.safetensors"
    x = np.random.default_rng(1).normal(size=(4, 3, 224, 224)).astype(np.float32)
    p = {name: Predictor(load_model(path), optimized_config("cpu", precision=name)).logits_and_embedding(x)[0]
         for name in ("fp32", "fp16", "bf16")}
    fp16_diff, bf16_diff = (float(np.abs(p[name] - p["fp32"]).max()) for name in ("fp16", "bf16"))
    assert fp16_diff < 1e-2 and bf16_diff < 5e-2
    assert fp16_diff <= bf16_diff
