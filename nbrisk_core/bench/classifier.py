"""`nbrisk bench classifier`: batch-1 inference, plain timm eager fp32 vs the optimised path,
and Grad-CAM time, all measured in one run on the same weights.

The optimised path is :func:`nbrisk_core.classifier.inference.optimized_config`: inference mode,
bf16 autocast on CUDA, fp32 with bf16 matrix products on a CPU where the probe
(:mod:`nbrisk_core.classifier.probe`, printed first) measured them effective and faster (AMX;
``--precision`` picks another), ``torch.compile`` (``--no-compile`` to skip) and threads = the cores
this process may use. Agreement is checked on
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
    parser.add_argument("--record", action="store_true",
                        help="record the optimised path and its figures in the model card's inference "
                             "section, under this CPU's kind (weights untouched)")
    from nbrisk_core.classifier.inference import PRECISION_CHOICES

    parser.add_argument("--throughput", choices=("auto", "on", "off"), default="auto",
                        help="images/s of bf16 inference and training at large batch "
                             "(auto: on a CUDA device)")
    parser.add_argument("--throughput-batch", type=int,
                        help="batch size of the throughput runs (default 256 on CUDA, 16 on the CPU)")
    parser.add_argument("--throughput-steps", type=int, default=20, help="timed steps of each throughput run")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                        help="precision of the optimised path (default auto: bf16 autocast on CUDA, "
                             "bf16-matmul where the CPU probe measured it effective and faster, "
                             "else fp32; docs/classifier.md)")


#: timm's own Swin-T throughput figures (huggingface/pytorch-image-models, ``results/`` at commit
#: aa4b5850c154, 2026-08-08): what ``--throughput`` is reported beside. Other GPUs and software than
#: any lent here, so a frame of reference, not a target.
TIMM_SWIN_T_REFERENCE = [
    {"what": "inference", "images_per_s": 2748.8, "batch": 1024, "precision": "AMP (fp16)", "gpu": "RTX 4090",
     "software": "torch 2.9.1, CUDA 12.8", "file": "results/benchmark-infer-amp-nchw-pt291-cu128-4090.csv"},
    {"what": "inference", "images_per_s": 4239.14, "batch": 1024, "precision": "AMP (fp16)",
     "gpu": "RTX 5090", "software": "torch 2.9.1, CUDA 13.0",
     "file": "results/benchmark-infer-amp-nchw-pt291-cu130-5090.csv"},
    {"what": "inference", "images_per_s": 7080.3, "batch": 2048, "precision": "AMP bf16, torch.compile",
     "gpu": "RTX Pro 6000 Max-Q", "software": "torch 2.9.1, CUDA 13.0",
     "file": "results/benchmark-infer-amp_bf16-nchw-pt291-cu130-pro6000maxq-dynamo.csv"},
    {"what": "training", "images_per_s": 646.76, "batch": 256, "precision": "AMP (fp16)", "gpu": "RTX 3090",
     "software": "torch 1.12, CUDA 11.3", "file": "results/benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv"},
]


def measure_throughput(model, device: str, batch_size: int, steps: int, train: bool) -> float:
    """Images per second of ``model`` under bf16 autocast on random ``(batch, 3, 224, 224)`` inputs,
    as timm's benchmark does: a forward pass in inference mode, or a training step (forward,
    cross-entropy through the paper's head, backward, the recipe's Adam step). Warm-up steps first;
    CUDA is synchronised around the timed loop. The model is moved to ``device`` and, with
    ``train``, trained in place: pass a copy you can spare. It is left in eval mode."""
    import time

    import torch

    from nbrisk_core.classifier.training import Recipe, _make_optimizer

    model = model.to(device)
    x = torch.randn(batch_size, 3, 224, 224, device=device)
    y = torch.randint(0, 2, (batch_size,), device=device)
    device_type = device.split(":")[0]
    optimizer = _make_optimizer(model, Recipe()) if train else None
    model.train(train)

    def step():
        if not train:
            with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16):
                return model.forward_with_embedding(x)
        with torch.autocast(device_type, dtype=torch.bfloat16):
            logits, _ = model.forward_with_embedding(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sync():
        if device_type == "cuda":
            torch.cuda.synchronize()

    try:
        for _ in range(min(3, steps)):
            step()
        sync()
        started = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        return batch_size * steps / (time.perf_counter() - started)
    finally:
        model.eval()


def throughput_figures(path, device: str, batch_size: int, steps: int) -> dict:
    """Inference and training images/s of fresh copies of the model at ``path`` on ``device``."""
    import torch

    from nbrisk_core.classifier.model_io import load_model

    cuda = device.startswith("cuda")
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    figures = {"device": device, "device_name": name, "batch": batch_size, "steps": steps,
               "precision": "bf16 autocast"}
    for what in ("inference", "training"):
        model = load_model(path).model  # fresh weights: the training run changes them
        try:
            figures[f"{what}_images_per_s"] = measure_throughput(model, device, batch_size, steps,
                                                                 what == "training")
        except torch.cuda.OutOfMemoryError as error:  # keep what was measured; say what did not fit
            figures[f"{what}_images_per_s"] = None
            first_line = str(error).splitlines()[0]
            figures[f"{what}_error"] = f"out of GPU memory at batch {batch_size}: {first_line}"
        del model
        if cuda:
            torch.cuda.empty_cache()
    figures["timm_reference"] = TIMM_SWIN_T_REFERENCE
    return figures


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

    from nbrisk_core.classifier.data import cohort_model_inputs
    from nbrisk_core.classifier.explain import compute_cam
    from nbrisk_core.classifier.inference import (
        Predictor,
        onednn_matmul_precision,
        optimized_config,
    )
    from nbrisk_core.classifier.metrics import roc_auc
    from nbrisk_core.classifier.model_io import load_model, shipped_model_path
    from nbrisk_core.classifier.probe import cpu_probe
    from nbrisk_core.config import demo_cohort_dir

    threads = getattr(args, "threads", None) or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    path = Path(args.model) if getattr(args, "model", None) else shipped_model_path("art")
    loaded = load_model(path)
    probe = cpu_probe()
    print(f"model {path.name} ({loaded.sha256[:16]}), {threads} threads")
    print(f"cpu probe: {probe.summary()}")
    cohort = demo_cohort_dir()
    if (cohort / "clinical.csv").exists():
        data, x_cohort = cohort_model_inputs(cohort, loaded.model_card.data)
        n = min(args.agreement_cases, len(data.labels))
        # both classes in the agreement set: as many HR as NHR patients, or the whole cohort
        order = np.argsort(data.labels, kind="stable")
        hr, nhr = order[data.labels[order] == 0], order[data.labels[order] == 1]
        index = order if n == len(order) else np.concatenate([hr[: n // 2], nhr[: n - n // 2]])
        x_all = x_cohort[index]
        is_hr = (data.labels[index] == 0).astype(int)
    else:
        x_all = np.random.default_rng(0).normal(size=(4, 3, 224, 224)).astype(np.float32)
        is_hr = None
    x1 = torch.from_numpy(x_all[:1])
    model = loaded.model.eval()

    def eager():
        with torch.no_grad(), onednn_matmul_precision(None):
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

    # the reference, one eager fp32 pass with exact products: probabilities and 16-d embeddings
    with torch.no_grad(), onednn_matmul_precision(None):
        reference = [model.forward_with_embedding(torch.from_numpy(x_all[i:i + 8]))
                     for i in range(0, len(x_all), 8)]
    p_eager = np.concatenate([torch.softmax(logits, 1).numpy() for logits, _ in reference])
    e_eager = np.concatenate([embedding.numpy() for _, embedding in reference])
    optimised = [predictor.logits_and_embedding(x_all[i:i + 1]) for i in range(len(x_all))]
    p_opt = np.concatenate([p for p, _ in optimised])
    e_opt = np.concatenate([e for _, e in optimised])
    max_abs_diff = float(np.abs(p_eager - p_opt).max())
    # what the clinician sees and what the prognosis engine reads: the risk class at the card's
    # threshold and the 16-d embedding
    threshold = loaded.model_card.decision_threshold
    figures = {"eager_ms": eager_ms, "optimized_ms": optimized_ms, "speedup": eager_ms / optimized_ms,
               "max_abs_diff": max_abs_diff, "optimized_path": config.describe(), "compile_s": warmup_s,
               "class_flips": int(((p_eager[:, 0] >= threshold) != (p_opt[:, 0] >= threshold)).sum()),
               "max_abs_diff_embedding": float(np.abs(e_eager - e_opt).max())}
    if is_hr is not None and 0 < is_hr.sum() < len(is_hr):
        figures["auc_eager"] = roc_auc(is_hr, p_eager[:, 0])
        figures["auc_optimized"] = roc_auc(is_hr, p_opt[:, 0])
        figures["agreement_cases"] = int(len(is_hr))
    print(f"speedup {figures['speedup']:.2f}x; max |p_eager - p_optimised| = {max_abs_diff:.2e} "
          f"over {len(x_all)} images; risk class changed at {threshold:g}: {figures['class_flips']}; "
          f"max |embedding difference| {figures['max_abs_diff_embedding']:.2e}")

    compute_cam(model, x_all[0], "gradcam", "HR")
    gradcam_ms = _median_ms(lambda: compute_cam(model, x_all[0], "gradcam", "HR"), max(3, args.repeats // 2))
    figures.update(gradcam_ms=gradcam_ms, gradcam_over_forward=gradcam_ms / eager_ms, device=config.device,
                   threads=threads, cpu_kind=probe.kind, cpu=probe.cpu, cpu_probe=probe.to_dict())
    print(f"Grad-CAM: {gradcam_ms:.1f} ms ({gradcam_ms / eager_ms:.2f}x the eager forward)")

    if getattr(args, "record", False):
        from datetime import date

        from nbrisk_core.classifier.model_io import record_inference

        keys = ("optimized_path", "eager_ms", "optimized_ms", "speedup", "max_abs_diff", "class_flips",
                "max_abs_diff_embedding", "agreement_cases", "auc_eager", "auc_optimized", "gradcam_ms",
                "threads", "cpu", "cpu_kind", "cpu_probe")
        record_inference(path, {**{k: figures[k] for k in keys if k in figures},
                                "measured": date.today().isoformat()})
        print(f"recorded in the model card of {path.name} (inference, kind {probe.kind})")

    mode = getattr(args, "throughput", "auto")
    if mode == "on" or (mode == "auto" and torch.cuda.is_available()):
        device = "cuda" if torch.cuda.is_available() else "cpu"
        batch = getattr(args, "throughput_batch", None) or (256 if device == "cuda" else 16)
        tp = throughput_figures(path, device, batch, getattr(args, "throughput_steps", 20))
        figures["throughput"] = tp
        rates = ", ".join(f"{what} " + (f"{tp[f'{what}_images_per_s']:.0f} images/s"
                                        if tp[f"{what}_images_per_s"] else tp[f"{what}_error"])
                          for what in ("inference", "training"))
        print(f"throughput on {tp['device_name']} (bf16 autocast, batch {tp['batch']}): {rates}")
        for ref in TIMM_SWIN_T_REFERENCE:
            print(f"  timm reference, {ref['what']}: {ref['images_per_s']:.0f} images/s on {ref['gpu']} "
                  f"({ref['precision']}, batch {ref['batch']}, {ref['software']})")
    elif mode == "auto":
        print("throughput: no CUDA device here (--throughput on measures it on this CPU)")
    return figures
