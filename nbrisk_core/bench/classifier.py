"""`nbrisk bench classifier`: batch-1 inference, plain timm eager fp32 vs the optimised path,
and Grad-CAM time, all measured in one run on the same weights.

The optimised path is :func:`nbrisk_core.classifier.inference.optimized_config`: inference mode,
bf16 autocast where the hardware has native bf16 (CUDA, AVX512-BF16, AMX; ``--precision`` picks
another), ``torch.compile``
(``--no-compile`` to skip) and threads = the cores this process may use. Agreement is checked on
probabilities (max absolute difference) over the demo cohort's images when present, with the AUC
of both paths on that cohort.
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--model", help="model .safetensors (default the shipped Swin-ART)")
    parser.add_argument("--repeats", type=int, default=10, help="timed forward passes per path")
    parser.add_argument("--agreement-cases", type=int, default=24, help="demo images for the agreement check")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out of the optimised path")
    parser.add_argument("--threads", type=int, help="torch threads (default: the usable cores)")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), default="auto",
                        help="autocast of the optimised path (default auto: bf16 where the hardware has it); "
                             "fp16 is the closer one to fp32 (docs/classifier.md)")


def _median_ms(fn, repeats: int) -> float:
    import statistics
    import time

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def run(args) -> dict:
    import os
    from pathlib import Path

    import numpy as np
    import torch

    from nbrisk_core.classifier.data import load_cohort_images, to_tensor_batch
    from nbrisk_core.classifier.explain import compute_cam
    from nbrisk_core.classifier.inference import Predictor, cpu_has_native_bf16, optimized_config
    from nbrisk_core.classifier.metrics import roc_auc
    from nbrisk_core.classifier.model_io import load_model, shipped_model_path
    from nbrisk_core.config import demo_cohort_dir

    threads = getattr(args, "threads", None) or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    path = Path(args.model) if getattr(args, "model", None) else shipped_model_path("art")
    loaded = load_model(path)
    print(f"model {path.name} ({loaded.sha256[:16]}), {threads} threads, "
          f"native bf16: {cpu_has_native_bf16() or torch.cuda.is_available()}")
    cohort = demo_cohort_dir()
    if (cohort / "clinical.csv").exists():
        data = load_cohort_images(cohort, loaded.variant)
        n = min(args.agreement_cases, len(data.labels))
        # both classes in the agreement set: take alternating HR / NHR patients
        order = np.argsort(data.labels, kind="stable")
        hr, nhr = order[data.labels[order] == 0], order[data.labels[order] == 1]
        index = np.concatenate([hr[: n // 2], nhr[: n - n // 2]])
        x_all = to_tensor_batch(data.images[index]).numpy()
        is_hr = (data.labels[index] == 0).astype(int)
    else:
        x_all = np.random.default_rng(0).normal(size=(4, 3, 224, 224)).astype(np.float32)
        is_hr = None
    x1 = torch.from_numpy(x_all[:1])
    model = loaded.model.eval()

    def eager():
        with torch.no_grad():
            return model(x1)

    eager()
    eager_ms = _median_ms(eager, args.repeats)
    print(f"eager fp32 (timm, no_grad): {eager_ms:.1f} ms / image")

    config = optimized_config(device="cpu", compile=not args.no_compile,
                              precision=getattr(args, "precision", "auto"))
    config.threads = threads
    predictor = Predictor(loaded, config)
    import time

    started = time.perf_counter()
    predictor.logits_and_embedding(x_all[:1])  # compile (if asked) happens here
    warmup_s = time.perf_counter() - started
    optimized_ms = _median_ms(lambda: predictor.logits_and_embedding(x_all[:1]), args.repeats)
    print(f"optimised ({config.describe()}): {optimized_ms:.1f} ms / image (first call {warmup_s:.1f} s)")

    with torch.no_grad():
        p_eager = np.concatenate([torch.softmax(model(torch.from_numpy(x_all[i:i + 8])), 1).numpy()
                                  for i in range(0, len(x_all), 8)])
    p_opt = np.concatenate([predictor.logits_and_embedding(x_all[i:i + 1])[0] for i in range(len(x_all))])
    max_abs_diff = float(np.abs(p_eager - p_opt).max())
    figures = {"eager_ms": eager_ms, "optimized_ms": optimized_ms, "speedup": eager_ms / optimized_ms,
               "max_abs_diff": max_abs_diff, "optimized_path": config.describe(), "compile_s": warmup_s}
    if is_hr is not None and 0 < is_hr.sum() < len(is_hr):
        figures["auc_eager"] = roc_auc(is_hr, p_eager[:, 0])
        figures["auc_optimized"] = roc_auc(is_hr, p_opt[:, 0])
        figures["agreement_cases"] = int(len(is_hr))
    print(f"speedup {figures['speedup']:.2f}x; max |p_eager - p_optimised| = {max_abs_diff:.2e} "
          f"over {len(x_all)} images")

    compute_cam(model, x_all[0], "gradcam", "HR")
    gradcam_ms = _median_ms(lambda: compute_cam(model, x_all[0], "gradcam", "HR"), max(3, args.repeats // 2))
    figures.update(gradcam_ms=gradcam_ms, gradcam_over_forward=gradcam_ms / eager_ms, device=config.device,
                   threads=threads)
    print(f"Grad-CAM: {gradcam_ms:.1f} ms ({gradcam_ms / eager_ms:.2f}x the eager forward)")
    return figures
