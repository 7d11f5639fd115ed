"""Runs behind `nbrisk train`: data assembly, the two stages, evaluation and the model card.

Kept apart from the CLI module so tests and notebooks call the same code with a Namespace.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nbrisk_core.cohort.format import cohort_hash
from nbrisk_core.errors import InputError

#: synthetic validation patients watched during pretraining (AUC on 32 was too noisy to read)
PRETRAIN_VAL_SIZE = 128

#: dense truth of the generator used as auxiliary pretraining targets (read from the embedding);
#: ``latent_score`` is the generator's latent aggressiveness, the continuous truth behind the label
AUX_TARGETS: tuple[str, ...] = ("tumour_area_mm2", "longest_diameter_mm", "calcification_count",
                                "necrotic_fraction", "enhancement_hu", "encasement", "crosses_midline",
                                "latent_score")
#: per-token pretraining target: the tumour fraction of each cell of a TOKEN_GRID x TOKEN_GRID grid
#: over the slice (Swin-T's last stage is 7 x 7 tokens of 32 x 32 input pixels)
TOKEN_GRID = 7


def token_fractions(masks: np.ndarray, grid: int = TOKEN_GRID) -> np.ndarray:
    """Fraction of each grid cell covered by the mask: ``(N, H, W)`` -> ``(N, grid, grid)`` float32.

    The model input is the whole slice resized (:func:`nbrisk_core.imaging.model_input.to_model_image`),
    so cells of the slice map onto the same cells of the input.

    >>> m = np.zeros((1, 14, 14), dtype=np.uint8); m[0, :2, :2] = 1
    >>> float(token_fractions(m)[0, 0, 0]), float(token_fractions(m)[0, 1, 1])
    (1.0, 0.0)
    """
    masks = np.asarray(masks, dtype=np.float32)
    n, h, w = masks.shape
    rows = np.linspace(0, h, grid + 1).round().astype(int)
    cols = np.linspace(0, w, grid + 1).round().astype(int)
    out = np.empty((n, grid, grid), dtype=np.float32)
    for i in range(grid):
        for j in range(grid):
            out[:, i, j] = masks[:, rows[i]:rows[i + 1], cols[j]:cols[j + 1]].mean(axis=(1, 2))
    return out


def cohort_meta(cohort_dir: Path) -> dict:
    path = Path(cohort_dir) / "cohort.json"
    return json.loads(path.read_text()) if path.exists() else {}


def split_cohort(patient_ids, risk_group, split_seed: int | None, val_fraction: float, seed: int) -> pd.DataFrame:
    """``patient_id, cohort`` with cohort in train / val / test: the fixed 8:2 stratified split
    (:func:`nbrisk_core.split.stratified_split`), then a stratified validation split of train."""
    from nbrisk_core.split import DEFAULT_SPLIT_SEED, stratified_split

    split = stratified_split(patient_ids, risk_group, seed=DEFAULT_SPLIT_SEED if split_seed is None else split_seed)
    train = split[split["cohort"] == "train"]
    strata = pd.Series(np.asarray(risk_group), index=list(patient_ids)).loc[train["patient_id"]].to_numpy()
    inner = stratified_split(train["patient_id"], strata, test_fraction=val_fraction, seed=seed)
    val_ids = set(inner.loc[inner["cohort"] == "test", "patient_id"])
    split.loc[split["patient_id"].isin(val_ids), "cohort"] = "val"
    return split


def synthetic_source(variant: str, seed: int, batch_size: int):
    """``(epoch, step) -> (uint8 images, labels, aux targets, token fractions)`` from the demo generator's
    ``synth_training_batch``; each batch seeded from (seed, epoch, step), so resuming repeats it."""
    from nbrisk_core.demo import synth_training_batch

    def batch(epoch: int, step: int):
        return synthetic_arrays(synth_training_batch, variant, batch_size, seed * 1_000_003 + epoch * 10_007 + step)
    return batch


def synthetic_arrays(generate, variant: str, n: int, seed: int):
    """Model images, labels, auxiliary targets and token tumour fractions (of the first phase's
    mask; the generator places the tumour alike in every phase) of ``n`` synthetic patients."""
    from nbrisk_core.classifier import CLASS_ORDER
    from nbrisk_core.imaging.model_input import INPUT_VARIANTS, hu_to_uint8, to_model_image

    phases = INPUT_VARIANTS[variant].phases
    batch = generate(n, seed=seed, phases=phases)
    images = np.stack([to_model_image({p: hu_to_uint8(batch.hu[p][i]) for p in phases}, variant)
                       for i in range(n)])
    # the generator's label is 1 = HR; the output layer's class index of HR is 0
    labels = np.where(batch.targets["label"].to_numpy() == 1, CLASS_ORDER.index("HR"),
                      CLASS_ORDER.index("NHR")).astype(np.int64)
    aux = batch.targets[list(AUX_TARGETS)].to_numpy(dtype=np.float32)
    return images, labels, aux, token_fractions(batch.mask[phases[0]])


def _initial_weights(model, args) -> str | None:
    """Load ``--init`` (run or model safetensors; the aux and dense outputs are dropped if absent here)."""
    from safetensors.torch import load_file

    from nbrisk_core.classifier.architectures import detect_layout, fold_pool_norm, upgrade_state_dict
    from nbrisk_core.classifier.model_io import load_backbone_weights, read_model_card, sha256_file

    if args.pretrained:
        load_backbone_weights(model, Path(args.pretrained))
    if not args.init:
        return None
    path = Path(args.init)
    if not path.exists():
        raise InputError(f"--init {path}: file not found")
    state = load_file(str(path))
    if path.with_suffix(".json").exists():
        # a shipped model: load_model would verify; here the hash is recorded; its card gives the layout
        state = upgrade_state_dict(state, model.arch, read_model_card(path).state_dict_layout)
    else:
        # a run's checkpoint has no card: its keys tell the layout
        state = upgrade_state_dict(state, model.arch, detect_layout(state))
    head_prefix = "head."
    own = model.state_dict()
    if f"{head_prefix}norm.running_mean" not in own:  # a pretraining run's standardisation -> the paper's head
        state = fold_pool_norm(state, head_prefix)
    usable = {k: v.float() for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    missing = [k for k in own if k not in usable
               and not any(k.startswith(f"{head_prefix}{p}.") for p in ("aux", "dense", "norm"))]
    if missing:
        raise InputError(f"--init {path}: weights do not fit this architecture (missing {missing[:3]})")
    model.load_state_dict(usable, strict=False)
    return sha256_file(path)


def train_run(args, recipe) -> dict:
    """Train one stage as the CLI asked; returns ``{"summary": str, "card": dict | None, ...}``."""
    import torch

    from nbrisk_core.classifier.architectures import TINY_SWIN_KWARGS, build_model
    from nbrisk_core.classifier.data import load_cohort_images, skipped_note, usable_patients
    from nbrisk_core.classifier.model_io import base_card, save_model
    from nbrisk_core.classifier.onednn import cpu_name
    from nbrisk_core.classifier.training import cohort_batches, fit, resolve_precision, world
    from nbrisk_core.config import demo_cohort_dir
    from nbrisk_core.imaging.model_input import INPUT_VARIANTS

    started = time.perf_counter()
    run_dir = Path(args.run)
    run_dir.mkdir(parents=True, exist_ok=True)
    world_size, rank = world()  # under `--nproc-per-node N`, rank 0 alone writes files
    backbone_kwargs = dict(TINY_SWIN_KWARGS) if args.tiny else {}
    # not a CLI flag: tests set e.g. {"drop_path_rate": 0.0} (stochastic depth draws a mask per image,
    # so a run split over ranks is not bitwise the 1-process run while it is on)
    backbone_kwargs.update(getattr(args, "backbone_overrides", None) or {})
    pretrain = recipe.stage == "pretrain"
    n_aux = len(AUX_TARGETS) if pretrain else 0
    n_dense = 1 if pretrain and recipe.dense_weight else 0
    torch.manual_seed(recipe.seed)
    model = build_model(args.arch, n_aux=n_aux, backbone_kwargs=backbone_kwargs, n_dense=n_dense,
                        pool_norm=pretrain and recipe.pool_norm)
    init_sha = _initial_weights(model, args)
    card = base_card(args.arch, args.variant, backbone_kwargs)
    log_lines: list[str] = []

    def log(line: str) -> None:
        log_lines.append(line)
        print(line, flush=True)

    hardware = _hardware(args)

    if recipe.stage == "pretrain":
        from nbrisk_core.demo import synth_training_batch

        val_images, val_labels, val_aux, _ = synthetic_arrays(synth_training_batch, args.variant, PRETRAIN_VAL_SIZE,
                                                              recipe.seed + 1)
        # z-scores: uncentred targets (areas of ~2,000 mm^2 / SD) made the embedding spend itself on
        # constant offsets (Adam moves the aux bias ~lr per step), leaving almost no image-dependent spread
        aux_center = val_aux.mean(axis=0)
        aux_scale = np.maximum(val_aux.std(axis=0), 1e-3)
        np.savetxt(run_dir / "aux_center.txt", aux_center)
        np.savetxt(run_dir / "aux_scale.txt", aux_scale)
        history = fit(model, run_dir, recipe, synthetic_source(args.variant, recipe.seed, recipe.batch_size),
                      val_images, val_labels, resume=args.resume, progress=not args.no_progress, log=log,
                      aux_scale=aux_scale, aux_center=aux_center, **hardware)
        evaluation = {"synthetic_validation": _evaluate(model, val_images, val_labels)}
        n_seen = sum(recipe.steps_per_epoch * recipe.batch_size for _ in history)
        card["training_cohort"] = {
            "name": "on-the-fly synthetic stream (nbrisk_core.demo.synth_training_batch)",
            "seed": recipe.seed, "size": int(n_seen), "synthetic": True,
            "sha256": None, "note": "fresh generator patients per batch, seeded by (seed, epoch, step); "
            "a random stream the demo cohorts never use"}
        card["synthetic_data"] = True
        card.update(training={"stage": "pretrain", "source": "nbrisk_core.demo.synth_training_batch (on the fly)",
                              "aux_targets": list(AUX_TARGETS),
                              "dense_target": f"tumour fraction per token ({TOKEN_GRID} x {TOKEN_GRID})"
                              if n_dense else None, "recipe": recipe.to_dict(),
                              "epochs_run": len(history), "init_sha256": init_sha})
    else:
        cohort_dir = Path(args.cohort) if args.cohort else demo_cohort_dir()
        clinical_path = cohort_dir / "clinical.csv"
        if not clinical_path.exists():
            raise InputError(f"--cohort {cohort_dir}: no clinical.csv (build one with `nbrisk demo build`)")
        clinical = pd.read_csv(clinical_path, dtype={"patient_id": str, "risk_group": str})
        if "risk_group" not in clinical.columns:
            raise InputError(f"{clinical_path}: column 'risk_group' (HR/NHR) is missing: the classifier "
                             "learns it")
        n_cohort = len(clinical)
        clinical, skipped = usable_patients(cohort_dir, clinical, INPUT_VARIANTS[args.variant].phases)
        if skipped:
            log(f"NOTE: {skipped_note(skipped, n_cohort)}; training on the {len(clinical)} others")
        split = split_cohort(clinical["patient_id"], clinical["risk_group"], args.split_seed,
                             args.val_fraction, recipe.seed)
        if rank == 0:
            split.to_csv(run_dir / "split.csv", index=False)
        data = load_cohort_images(cohort_dir, args.variant, split["patient_id"])
        by = {c: (split["cohort"] == c).to_numpy() for c in ("train", "val", "test")}
        monitor = "test" if recipe.monitor == "test" else "val"
        if recipe.monitor == "test":
            log("WARNING: early stopping monitors the TESTING cohort (the paper's variant): "
                "test metrics of this run are OPTIMISTIC")
        history = fit(model, run_dir, recipe,
                      cohort_batches(data.images[by["train"]], data.labels[by["train"]], recipe.batch_size),
                      data.images[by[monitor]], data.labels[by[monitor]], resume=args.resume,
                      progress=not args.no_progress, log=log, **hardware)
        if rank != 0:  # rank 0 alone evaluates and writes the run (only this stage is data-parallel)
            return {"summary": "", "card": None, "history": history}
        evaluation = {c: _evaluate(model, data.images[m], data.labels[m]) for c, m in by.items() if m.any()}
        meta = cohort_meta(cohort_dir)
        card.update(
            training_cohort={"name": meta.get("name", cohort_dir.name), "seed": meta.get("seed"),
                             "size": int(len(split)), "synthetic": bool(meta.get("synthetic", False)),
                             "sha256": cohort_hash(cohort_dir), "oracle_auc": meta.get("oracle_auc"),
                             "left_out": {k: len(v) for k, v in skipped.items()}},
            split={"method": "nbrisk_core.split.stratified_split (8:2, stratified by HR/NHR)",
                   "split_seed": args.split_seed if args.split_seed is not None else 2025,
                   "validation": f"stratified {args.val_fraction:.0%} of the training cohort, seed {recipe.seed}",
                   "counts": split["cohort"].value_counts().to_dict()},
            training={"stage": "finetune", "recipe": recipe.to_dict(), "epochs_run": len(history),
                      "early_stopping_monitor": "testing cohort (paper's variant; OPTIMISTIC)"
                      if recipe.monitor == "test" else "validation split of the training cohort",
                      "init_sha256": init_sha},
        )
        if meta.get("synthetic", False):
            card["synthetic_data"] = True
    card["training"]["hardware"] = {"device": hardware["device"], "precision": "bf16 autocast"
                                    if resolve_precision(hardware["precision"], hardware["device"]) else "fp32",
                                    "cpu": cpu_name()}
    card["training"]["world_size"] = world_size
    if world_size > 1 and (run_dir / "distributed.json").exists():
        card["training"]["distributed"] = json.loads((run_dir / "distributed.json").read_text())
    card["metrics"] = evaluation
    card["optimistic"] = recipe.monitor == "test"
    card["wall_seconds"] = round(time.perf_counter() - started, 1)
    card["history"] = [dict(epoch=h.epoch, stage=h.stage, train_loss=round(h.train_loss, 5),
                            val_loss=round(h.val_loss, 5), val_auc=round(h.val_auc, 4)) for h in history]
    if args.init and Path(args.init).with_name("run.json").exists():
        card["pretraining"] = json.loads(Path(args.init).with_name("run.json").read_text()).get("card", {}).get(
            "training")
    (run_dir / "run.json").write_text(json.dumps({"card": card, "world_size": world_size}, indent=2,
                                                 default=str))
    if args.out:
        # a written model carries the paper's head only: the pretraining-only outputs stay in the run
        head = model.head
        head.fold_norm()
        head.aux = head.dense = None
        card = save_model(model, Path(args.out), card)
    summary = "; ".join(f"{c}: AUC {r['auc']['value']:.3f} ({r['auc']['ci_low']:.3f}-{r['auc']['ci_high']:.3f}) "
                        f"acc {r['accuracy']:.3f}" for c, r in evaluation.items())
    if recipe.monitor == "test":
        summary += "  [OPTIMISTIC: early stopping watched the testing cohort]"
    return {"summary": summary, "card": card, "history": history}


def _hardware(args) -> dict:
    """``fit``'s device and precision from the CLI flags (older Namespaces: auto)."""
    from nbrisk_core.classifier.inference import resolve_device

    return {"device": resolve_device(getattr(args, "device", "auto")),
            "precision": getattr(args, "precision", "auto")}


def _evaluate(model, images: np.ndarray, labels: np.ndarray) -> dict:
    import torch

    from nbrisk_core.classifier.data import to_tensor_batch
    from nbrisk_core.classifier.metrics import evaluate_scores

    model.eval()
    with torch.no_grad():
        scores = np.concatenate([torch.softmax(model(to_tensor_batch(images[i:i + 16])), 1)[:, 0].numpy()
                                 for i in range(0, len(images), 16)])
    is_hr = (labels == 0).astype(int)
    if not 0 < is_hr.sum() < len(is_hr):
        return {"n": int(len(labels)), "note": "one class only: no AUC"}
    return evaluate_scores(is_hr, scores)
