"""`nbrisk bench classifier` runs end to end on a tiny model and reports every figure (no timing asserts)."""

from __future__ import annotations

import json

import pytest

from nbrisk_core.cli import main


def test_bench_classifier_json(tiny_cohort, tiny_models_dir, monkeypatch, capsys):
    monkeypatch.setenv("NBRISK_DATA_DIR", str(tiny_cohort))
    code = main(["bench", "classifier", "--json", "--model", str(tiny_models_dir / "swin_art_demo.safetensors"),
                 "--repeats", "2", "--agreement-cases", "6", "--no-compile", "--threads", "1",
                 "--throughput", "off"])
    assert code == 0
    out = capsys.readouterr().out
    figures = json.loads(out)  # stdout is the one JSON object; the progress lines went to stderr
    assert set(figures) >= {"eager_ms", "optimized_ms", "speedup", "max_abs_diff", "gradcam_ms", "device", "threads",
                            "class_flips", "max_abs_diff_embedding", "optimized_path", "cpu_kind", "cpu_probe"}
    assert figures["cpu_probe"]["kind"] == figures["cpu_kind"]
    assert set(figures["cpu_probe"]["paths"]) == {"bf16-matmul", "bf16"}
    assert figures["eager_ms"] > 0 and figures["threads"] == 1
    assert "throughput" not in figures
    if "bf16" not in figures["optimized_path"]:  # fp32 on both paths: they must agree closely
        assert figures["max_abs_diff"] < 1e-5 and figures["max_abs_diff_embedding"] < 1e-4
        assert figures["auc_eager"] == figures["auc_optimized"] and figures["class_flips"] == 0


def test_bench_classifier_records_the_path_in_the_card(tiny_cohort, tiny_models_dir, tmp_path, monkeypatch,
                                                       capsys):
    """``--record`` writes the measured path under this CPU's kind in the card's inference section;
    the weights (and so the card's SHA-256) stay as they were."""
    import shutil

    from nbrisk_core.classifier.model_io import load_model

    monkeypatch.setenv("NBRISK_DATA_DIR", str(tiny_cohort))
    for suffix in (".safetensors", ".json"):
        shutil.copy(tiny_models_dir / f"swin_art_demo{suffix}", tmp_path)
    model = tmp_path / "swin_art_demo.safetensors"
    assert main(["bench", "classifier", "--json", "--record", "--model", str(model), "--repeats", "1",
                 "--agreement-cases", "2", "--no-compile", "--threads", "1", "--throughput", "off"]) == 0
    figures = json.loads(capsys.readouterr().out)
    card = json.loads((tmp_path / "swin_art_demo.json").read_text())
    recorded = card["inference"][figures["cpu_kind"]]
    assert recorded["optimized_path"] == figures["optimized_path"]
    assert recorded["max_abs_diff"] == figures["max_abs_diff"] and "measured" in recorded
    assert recorded["cpu_probe"]["paths"].keys() == {"bf16-matmul", "bf16"}
    assert load_model(model).sha256 == card["sha256"]  # still verifies


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
    """``--precision``: auto follows the CPU probe, fp16/bf16 autocast stay close to fp32, and
    fp16 (10 mantissa bits) is closer than bf16 (7); an unknown choice names the flag."""
    import numpy as np
    import pytest

    from nbrisk_core.classifier.inference import Predictor, optimized_config
    from nbrisk_core.classifier.model_io import load_model
    from nbrisk_core.classifier.probe import cpu_probe
    from nbrisk_core.errors import InputError

    auto = optimized_config("cpu")
    assert auto.autocast is None and auto.matmul == ("bf16" if cpu_probe().pays_off("bf16-matmul") else None)
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


def test_onednn_matmul_precision_is_scoped():
    """The process-wide oneDNN setting is set for the block only, restored after it (also when the
    block raises), and inside an exact block fp32 products are exact."""
    import pytest
    import torch

    from nbrisk_core.classifier.inference import onednn_matmul_precision

    setting = torch.backends.mkldnn.matmul
    before = setting.fp32_precision
    a, b = torch.randn(64, 256, generator=torch.Generator().manual_seed(0)), torch.randn(256, 64)
    exact = (a.double() @ b.double()).float()
    with onednn_matmul_precision("bf16"):
        assert setting.fp32_precision == "bf16"
        with onednn_matmul_precision("bf16"):  # nested, same value: fine
            assert setting.fp32_precision == "bf16"
        assert setting.fp32_precision == "bf16"
        # nested, another value: it would wait for itself
        with pytest.raises(RuntimeError, match="inside a 'bf16' block of the same thread"), \
                onednn_matmul_precision(None):
            pass
    assert setting.fp32_precision == before
    with onednn_matmul_precision(None):
        assert setting.fp32_precision == "ieee"
        torch.testing.assert_close(a @ b, exact, rtol=1e-5, atol=1e-4)
    with onednn_matmul_precision("bf16", "cuda"):  # no-op off the CPU
        assert setting.fp32_precision == before
    with pytest.raises(RuntimeError), onednn_matmul_precision("bf16"):
        raise RuntimeError("inside")
    assert setting.fp32_precision == before


def test_onednn_bf16_matmul_changes_the_arithmetic_where_the_probe_says_so():
    """Where the probe measured an effect, a product under the block is bf16-rounded (and exact
    again after it); elsewhere (the AVX512-BF16-only kind) the test says why it cannot apply."""
    import torch

    from nbrisk_core.classifier.inference import onednn_matmul_precision
    from nbrisk_core.classifier.probe import cpu_probe

    probe = cpu_probe()
    if not probe.effect("bf16-matmul"):
        pytest.skip(f"oneDNN's bf16 fpmath setting has no effect on this CPU (probe: {probe.summary()})")
    a, b = torch.randn(64, 256, generator=torch.Generator().manual_seed(0)), torch.randn(256, 64)
    exact = (a.double() @ b.double()).float()
    with onednn_matmul_precision("bf16"):
        reduced = a @ b
    assert float((reduced - exact).abs().max()) > 1e-3
    with onednn_matmul_precision(None):
        torch.testing.assert_close(a @ b, exact, rtol=1e-5, atol=1e-4)


def test_onednn_matmul_precision_across_threads():
    """Blocks of the same value run together; a block of another value waits until they are done,
    and sees its own value when it runs."""
    import threading

    import torch

    from nbrisk_core.classifier.inference import onednn_matmul_precision

    setting = torch.backends.mkldnn.matmul
    release, inside, seen = threading.Event(), threading.Event(), {}

    def hold_bf16():
        with onednn_matmul_precision("bf16"):
            inside.set()
            release.wait(10)

    def block(name, value, entered):
        with onednn_matmul_precision(value):
            seen[name] = setting.fp32_precision
            entered.set()

    holder = threading.Thread(target=hold_bf16)
    holder.start()
    assert inside.wait(10)
    same_in = threading.Event()
    same = threading.Thread(target=block, args=("same", "bf16", same_in))
    same.start()
    assert same_in.wait(5)  # a second bf16 block is let in at once
    exact_in = threading.Event()
    exact = threading.Thread(target=block, args=("exact", None, exact_in))
    exact.start()
    assert not exact_in.wait(0.3)  # the exact block waits while bf16 is in force
    release.set()
    assert exact_in.wait(10)
    for thread in (holder, same, exact):
        thread.join(10)
    assert seen == {"same": "bf16", "exact": "ieee"}


def test_bf16_matmul_rejected_where_the_probe_finds_no_effect(monkeypatch):
    """Where oneDNN's setting does nothing (measured with the setting forced off, as on the
    AVX512-BF16-only kind), ``bf16-matmul`` is refused with the reason, not silently fp32;
    ``auto`` falls back to fp32."""
    import pytest

    from nbrisk_core.classifier import inference, probe
    from nbrisk_core.errors import InputError

    without_effect = probe.measure(repeats=2, matmul_precision=probe.no_op_precision)
    monkeypatch.setattr(probe, "cpu_probe", lambda: without_effect)
    with pytest.raises(InputError, match="--precision bf16-matmul: .*measured to have no effect"):
        inference.optimized_config("cpu", precision="bf16-matmul")
    with pytest.raises(InputError, match="CUDA"):
        inference.optimized_config("cuda", precision="bf16-matmul")
    assert inference.optimized_config("cpu").describe() == "cpu fp32"


def test_bias_after_matmul_same_function_without_gelu_fusion():
    """:func:`_bias_after_matmul`: the same fp32 function, the caller's model unchanged, and in the
    frozen compiled graph under bf16 matmul the linear layer is no longer fused with the GELU after
    it (Inductor's counter of such fusions: one for the original, none for the copy)."""
    import torch
    from torch import nn
    from torch._dynamo.utils import counters

    from nbrisk_core.classifier.inference import (
        _bias_after_matmul,
        compile_for_inference,
        onednn_matmul_precision,
    )
    from nbrisk_core.classifier.probe import cpu_probe

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 8)).eval()
    x = torch.randn(1, 49, 32)  # tokens (batch, tokens, channels), as in Swin's MLPs
    copy_ = _bias_after_matmul(model)
    assert all(type(m) is nn.Linear for m in model if isinstance(m, nn.Linear))
    assert copy_[0].weight is not model[0].weight  # a copy, not shared
    with torch.inference_mode():
        torch.testing.assert_close(copy_(x), model(x), rtol=0, atol=1e-6)
        if not cpu_probe().effect("bf16-matmul"):
            pytest.skip("the fusion matters on oneDNN's bf16 path, which has no effect on this CPU "
                        f"(probe: {cpu_probe().summary()})")
        fused = {}
        for name, candidate in (("original", model), ("copy", copy_)):
            torch._dynamo.reset()
            counters.clear()
            with onednn_matmul_precision("bf16"):
                out = compile_for_inference(candidate, "cpu")(x)
            torch.testing.assert_close(out, model(x), rtol=0, atol=2e-2)
            fused[name] = counters["inductor"]["mkldnn_unary_fusion_matcher_count"]
    assert fused["original"] >= 1 and fused["copy"] == 0


def test_bf16_matmul_predictor_close_to_fp32(tiny_models_dir):
    """The default optimised path where the probe finds it effective (bf16-matmul), eager and compiled, stays close
    to fp32 and leaves the loaded model (the eager reference, the CAMs) as it was."""
    import numpy as np
    import pytest
    from torch import nn

    from nbrisk_core.classifier.inference import Predictor, optimized_config
    from nbrisk_core.classifier.model_io import load_model
    from nbrisk_core.classifier.probe import cpu_probe

    if not cpu_probe().effect("bf16-matmul"):
        pytest.skip(f"oneDNN's bf16 matrix products have no effect on this CPU (probe: {cpu_probe().summary()})")
    path = tiny_models_dir / "swin_art_demo.safetensors"
    x = np.random.default_rng(2).normal(size=(2, 3, 224, 224)).astype(np.float32)
    p32 = Predictor(load_model(path), optimized_config("cpu", precision="fp32")).logits_and_embedding(x)[0]
    loaded = load_model(path)
    for compiled in (False, True):
        predictor = Predictor(loaded, optimized_config("cpu", compile=compiled, precision="bf16-matmul"))
        assert "bf16 matmul" in predictor.config.describe()
        np.testing.assert_allclose(predictor.logits_and_embedding(x)[0], p32, atol=5e-3)
    assert all(type(m) is nn.Linear for m in loaded.model.modules() if isinstance(m, nn.Linear))


def test_bench_throughput_section(tiny_cohort, tiny_models_dir, monkeypatch, capsys):
    """``--throughput on`` (what a CUDA device gets by default) measures inference and training
    images/s and reports them beside timm's reference figures."""
    monkeypatch.setenv("NBRISK_DATA_DIR", str(tiny_cohort))
    path = tiny_models_dir / "swin_art_demo.safetensors"
    code = main(["bench", "classifier", "--json", "--model", str(path), "--repeats", "1", "--agreement-cases", "2",
                 "--no-compile", "--threads", "1", "--throughput", "on", "--throughput-batch", "2",
                 "--throughput-steps", "1"])
    assert code == 0
    out, err = capsys.readouterr()
    tp = json.loads(out)["throughput"]
    assert tp["device"] in ("cpu", "cuda") and tp["batch"] == 2 and tp["precision"] == "bf16 autocast"
    assert tp["inference_images_per_s"] > 0 and tp["training_images_per_s"] > 0
    assert {ref["what"] for ref in tp["timm_reference"]} == {"inference", "training"}
    assert "timm reference, training: 647 images/s on RTX 3090" in err  # the report's lines: stderr


def test_measure_throughput_training_updates_weights():
    """A training step of the throughput run is a real one: the weights move."""
    import torch

    from nbrisk_core.bench.classifier import measure_throughput
    from nbrisk_core.classifier.architectures import TINY_SWIN_KWARGS, build_model

    torch.manual_seed(0)
    model = build_model("swin_t", backbone_kwargs=TINY_SWIN_KWARGS)
    before = [p.detach().clone() for p in model.parameters()]
    assert measure_throughput(model, "cpu", batch_size=2, steps=1, train=True) > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not model.training


def test_onednn_matmul_precision_many_threads():
    """Eight threads entering bf16 and exact blocks at random: each sees its own value throughout,
    nobody waits forever, and the setting is restored at the end."""
    import random
    import threading
    import time

    import torch

    from nbrisk_core.classifier.inference import onednn_matmul_precision

    setting = torch.backends.mkldnn.matmul
    before, wrong, done = setting.fp32_precision, [], []

    def worker(seed):
        rng = random.Random(seed)
        for _ in range(40):
            value = rng.choice(["bf16", None])
            with onednn_matmul_precision(value):
                for _ in range(3):
                    if setting.fp32_precision != (value or "ieee"):
                        wrong.append((seed, value, setting.fp32_precision))
                    time.sleep(rng.random() / 2000)
        done.append(seed)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(done) == list(range(8)) and wrong == []
    assert setting.fp32_precision == before
