"""`nbrisk predict`: high-risk probability of one case with every shipped variant, and its embedding.

Each ``--PHASE PATH`` is a 2-D image (BMP/PNG, the paper's input) or a DICOM series (folder, zip or
file) with ``--slice-PHASE N`` naming the chosen slice (0-based, ascending z). Variants run when
their model file exists in ``models/`` and their phases were given. ``--json`` prints one object:
``variants`` ({variant: {p_high_risk, risk_class, ...}}), ``embedding`` (16 Swin-ART values),
``model_sha256``, ``device``, ``seconds`` (and ``prognosis`` with ``--labs``).
"""

from __future__ import annotations

import argparse

from nbrisk_core.case import PHASES as _PHASES
from nbrisk_core.classifier.inference import PRECISION_CHOICES

PHASES = _PHASES  # nbrisk_core.case.Phase, in acquisition order


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="high-risk probability of one case (every shipped Swin variant)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for phase in PHASES:
        p.add_argument(f"--{phase}", metavar="PATH", required=phase == "art",
                       help=f"{phase.upper()} phase: 2-D image or DICOM series")
        p.add_argument(f"--slice-{phase}", type=int, metavar="N", help=f"slice index in the {phase.upper()} series")
    p.add_argument("--labs", metavar="FILE", help="labs (JSON or one-row CSV): adds the individual prognosis")
    p.add_argument("--prognosis", metavar="BUNDLE",
                   help="with --labs: a frozen prognosis bundle folder ('nbrisk prognosis fit') "
                        "instead of fitting on the demo cohort")
    p.add_argument("--models", metavar="DIR", help="model directory (default models/)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                   help="precision of the forward pass (default auto: bf16 autocast on CUDA, "
                        "bf16-matmul where the CPU probe measured it effective and faster, else fp32)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def predict_paths(paths: dict, slices: dict, models_dir=None, precision: str = "auto") -> dict:
    """Library entry behind the CLI: read each phase, run each available variant."""
    import time
    from pathlib import Path

    from nbrisk_core.classifier.inference import Predictor, optimized_config
    from nbrisk_core.classifier.model_io import SHIPPED_MODELS, load_model
    from nbrisk_core.config import models_dir as default_models_dir
    from nbrisk_core.errors import InputError
    from nbrisk_core.imaging import read_phase_slice
    from nbrisk_core.service import score_case

    started = time.perf_counter()
    # HU as read (not rounded) or the 8-bit image: each model windows HU with its own card's window,
    # through the input builder the Risk page uses (DataConfig.model_input)
    chosen = {phase: read_phase_slice(path, slices.get(phase))[0] for phase, path in paths.items() if path}
    folder = Path(models_dir) if models_dir else default_models_dir()
    config = optimized_config(precision=precision)
    predictors = {}
    for variant, stem in SHIPPED_MODELS.items():
        weights = folder / f"{stem}.safetensors"
        if weights.exists():
            predictors[variant] = Predictor(load_model(weights, device=config.device), config)
    if "art" not in predictors:
        raise InputError(f"{folder}: no Swin-ART model ({SHIPPED_MODELS['art']}.safetensors); "
                         "train it with `nbrisk train` or set NBRISK_MODELS_DIR")
    # the Risk page's call: one model input per variant, every variant that has its phases
    result = score_case(predictors, chosen)
    variants = {v: {"label": s.label, "p_high_risk": s.p_high_risk, "risk_class": s.risk_class,
                    "threshold": s.threshold, "model_sha256": s.model_sha256}
                for v, s in result.scores.items()}
    return {"variants": variants, "embedding": [float(v) for v in result.embedding],
            "model_sha256": result.model_sha256, "device": result.device,
            "seconds": time.perf_counter() - started,
            "synthetic_data": predictors["art"].loaded.model_card.synthetic_data}


def run(args) -> int:
    import importlib.util
    import json

    from nbrisk_core.errors import InputError

    paths = {phase: getattr(args, phase) for phase in PHASES}
    slices = {phase: getattr(args, f"slice_{phase}") for phase in PHASES}
    if getattr(args, "prognosis", None) and not args.labs:
        raise InputError("--prognosis BUNDLE is used with --labs FILE (the individual prognosis)")
    if getattr(args, "prognosis", None):
        from nbrisk_core.prognosis.bundle import read_card

        read_card(args.prognosis)   # a missing or foreign bundle is refused before the images are read
    if args.labs:
        if importlib.util.find_spec("nbrisk_core.prognosis.pipeline") is None:
            raise InputError("--labs: prognosis not available in this installation")
        from nbrisk_core.prognosis.validation import validate_clinical

        # a bad lab file is refused before the images are read and the models run
        validate_clinical(args.labs, require=False)
    result = predict_paths(paths, slices, args.models, getattr(args, "precision", "auto"))
    # --- prognosis hook (owned by the prognosis engine) ---------------------------------------
    if args.labs and getattr(args, "prognosis", None):
        from nbrisk_core.prognosis.bundle import predict_from_labs as predict_from_bundle

        result["prognosis"] = predict_from_bundle(result["embedding"], args.labs, args.prognosis)
    elif args.labs:
        from nbrisk_core.config import demo_cohort_dir
        from nbrisk_core.features import cohort_ct_features
        from nbrisk_core.prognosis.pipeline import predict_from_labs

        # the caller embeds: the prognosis engine takes the cohort's CT feature table
        result["prognosis"] = predict_from_labs(result["embedding"], args.labs,
                                                embeddings=cohort_ct_features(demo_cohort_dir()))
    # ------------------------------------------------------------------------------------------
    if args.json:
        print(json.dumps(result, default=float))
        return 0
    for variant, r in result["variants"].items():
        print(f"{r['label']:<9} p(high risk) = {r['p_high_risk']:.3f}  -> {r['risk_class']}")
    print(f"embedding (16): {' '.join(f'{v:.3f}' for v in result['embedding'])}")
    print(f"model {result['model_sha256'][:16]}  device {result['device']}  {result['seconds']:.2f} s")
    if result.get("synthetic_data"):
        print("NOTE: the demo model was trained on synthetic data; not for clinical use.")
    if "prognosis" in result:
        print(json.dumps(result["prognosis"], indent=2, default=float))
    return 0
