"""Training the fusion network (``nbrisk train --arch fusion``): resumable, on a cohort directory.

The cohort's 8:2 split and the validation split of its training part are Swin-ART's
(:func:`~nbrisk_core.classifier.pipeline.split_cohort`, same seeds), so the test patients are the ones the
shipped Swin-ART is judged on. The clinical preprocessing (:class:`~.fusion.ClinicalEncoder`) is fitted on
the training rows only and written to the run (``encoder.json``) and to the card.

Loss per batch: cross-entropy of the high-risk head + ``cox_weight`` x the Cox partial likelihood (Efron)
of the survival head, under modality dropout. Adam(W) with two parameter groups (the trainable Swin stages
at ``max_lr``, everything after them at ``max_lr * head_lr_mult``), cosine schedule, the paper's image
augmentation, early stopping on the validation loss. Every epoch writes ``checkpoint.safetensors`` (fp32),
``state.pt`` (optimizer, torch RNG, history: plain tensors, read with ``weights_only=True``),
``history.csv`` and, when the monitored loss improved, ``best.safetensors``; ``--resume`` continues and
gives the weights of an uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nbrisk_core.classifier import HIDDEN_UNITS
from nbrisk_core.classifier.fusion import FUSION_ARCH, SWIN_T, ClinicalEncoder, FusionConfig
from nbrisk_core.errors import InputError

#: the budget recipe (docs/classifier.md, "Fusion network"): only the last Swin stage, the projections,
#: the clinical branch, the fusion and the heads train; batch 16; AdamW; heads at 50x the stage's rate
FUSION_RECIPE_DEFAULTS: dict = {"optimizer": "adamw", "max_lr": 2e-5, "min_lr": 1e-7, "t_max": 16,
                                "batch_size": 16, "max_epochs": 16, "early_stop_after": 10, "patience": 5,
                                "head_lr_mult": 50.0, "weight_decay": 0.01, "grad_clip": 1.0, "cox_weight": 0.5}


def fusion_card(config: FusionConfig, encoder: ClinicalEncoder) -> dict:
    """The card fields of a fusion model (the base card of Swin-ART's ART input + the ``fusion`` section)."""
    from nbrisk_core.classifier.model_io import base_card

    card = base_card("swin_t", "art", config.backbone_kwargs)
    card["architecture"] = FUSION_ARCH
    card["variant_label"] = "Fusion-ART"
    card["head"] = {"hidden_units": HIDDEN_UNITS, "activation": "GELU", "embedding": "after activation",
                    "n_aux": 0, "survival": "log-risk = linear(embedding), Cox partial likelihood"}
    card["fusion"] = config.to_dict() | {
        "image_branch": f"timm {SWIN_T}, 4 stages mean-pooled, LayerNorm + Linear({config.stage_width}) + GELU each",
        "conditioning": "FiLM: v' = (1 + gamma(c)) * v + beta(c), gamma/beta linear in the clinical vector c, "
                        "initialised to zero; hidden layer reads [v', c]",
        "clinical_preprocessing": encoder.to_dict()}
    return card


def save_fusion(net: FusionNet, stem: Path, card: dict) -> dict:
    """``stem.safetensors`` (fp16) + ``stem.json`` through :func:`~.model_io.save_model`."""
    from nbrisk_core.classifier.model_io import save_model

    return save_model(net, Path(stem), card, half=True)


def init_image_branch(net, path: Path) -> int:
    """Initialise a fusion net's image branch from a Swin-T classifier's weights (e.g. the shipped
    ``models/swin_art_demo.safetensors``, loaded with its SHA-256 checked). Returns the tensors loaded."""
    from nbrisk_core.classifier.model_io import load_model

    loaded = load_model(Path(path))
    if loaded.model_card.architecture != "swin_t":
        raise InputError(f"{path}: architecture {loaded.model_card.architecture!r}; the fusion image branch "
                         "starts from a swin_t model")
    state = loaded.model.backbone.state_dict()
    own = net.backbone.state_dict()
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if len(usable) < len(own) // 2:
        raise InputError(f"{path}: its backbone does not fit this fusion configuration "
                         f"({len(usable)} of {len(own)} tensors fit)")
    net.backbone.load_state_dict(usable, strict=False)
    return len(usable)


@dataclass
class FusionEpoch:
    epoch: int
    lr: float
    train_loss: float
    val_loss: float
    val_auc: float
    val_c_index: float
    seconds: float


@dataclass
class CohortTables:
    """Images, encoded clinical rows and outcomes of a cohort's usable patients, with their split."""

    patient_ids: list[str]
    images: np.ndarray       # (N, 224, 224, 3) uint8
    labels: np.ndarray       # (N,) class index (0 = HR)
    clinical: pd.DataFrame   # the raw clinical rows (schema columns)
    time: np.ndarray         # (N,) float days
    event: np.ndarray        # (N,) bool
    split: pd.DataFrame      # patient_id, cohort (train / val / test)


def c_index(time, event, risk) -> float:
    """Harrell's C (scikit-survival) of a risk score (higher = worse); NaN without a comparable pair."""
    from sksurv.metrics import concordance_index_censored

    event = np.asarray(event, dtype=bool)
    if event.sum() == 0:
        return float("nan")
    return float(concordance_index_censored(event, np.asarray(time, dtype=float), np.asarray(risk, dtype=float))[0])


def load_tables(cohort_dir: Path, split_seed: int | None, val_fraction: float, seed: int, size: int = 224,
                log=print) -> CohortTables:
    from nbrisk_core.classifier.data import load_cohort_images, skipped_note, usable_patients
    from nbrisk_core.classifier.pipeline import split_cohort

    clinical_path = Path(cohort_dir) / "clinical.csv"
    if not clinical_path.exists():
        raise InputError(f"--cohort {cohort_dir}: no clinical.csv (build one with `nbrisk demo build`)")
    clinical = pd.read_csv(clinical_path, dtype={"patient_id": str, "risk_group": str})
    for column in ("risk_group", "os_days", "os_event"):
        if column not in clinical.columns:
            raise InputError(f"{clinical_path}: column {column!r} is missing: the fusion network learns "
                             "the risk group and overall survival")
    n = len(clinical)
    clinical, skipped = usable_patients(cohort_dir, clinical, ("art",))
    outcome_missing = clinical["os_days"].isna() | clinical["os_event"].isna()
    if outcome_missing.any():
        log(f"NOTE: {int(outcome_missing.sum())} patients without os_days/os_event left out")
        clinical = clinical[~outcome_missing].reset_index(drop=True)
    if skipped:
        log(f"NOTE: {skipped_note(skipped, n)}; training on the {len(clinical)} others")
    split = split_cohort(clinical["patient_id"], clinical["risk_group"], split_seed, val_fraction, seed)
    data = load_cohort_images(cohort_dir, "art", split["patient_id"], size=size)
    rows = clinical.set_index("patient_id").loc[data.patient_ids].reset_index()
    return CohortTables(data.patient_ids, data.images, data.labels, rows,
                        rows["os_days"].to_numpy(dtype=float), rows["os_event"].to_numpy().astype(bool), split)


def _optimizer(net, recipe):
    import torch

    stage_ids = {id(p) for p in net.backbone.parameters()}
    trainable = [p for p in net.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) in stage_ids], "lr_mult": 1.0},
              {"params": [p for p in trainable if id(p) not in stage_ids], "lr_mult": recipe.head_lr_mult}]
    groups = [g for g in groups if g["params"]]
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.max_lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=recipe.max_lr, weight_decay=recipe.weight_decay)
    raise InputError(f"--optimizer {recipe.optimizer!r}: expected 'adam' or 'adamw'")


def batch_loss(out: dict, labels, time, event, cox_weight: float):
    import torch

    from nbrisk_core.classifier.fusion import cox_partial_nll

    loss = torch.nn.functional.cross_entropy(out["logits"].float(), labels)
    if cox_weight:
        loss = loss + cox_weight * cox_partial_nll(out["log_risk"], time, event, ties="efron")
    return loss


def image_vectors(net, images: np.ndarray, batch_size: int = 16, mean=None, std=None) -> np.ndarray:
    """The multiscale image vectors ``v`` of uint8 images (eval mode, no augmentation)."""
    import torch

    from nbrisk_core.classifier.data import to_tensor_batch

    kwargs = {} if mean is None else {"mean": mean, "std": std}
    net.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            out.append(net.image_features(to_tensor_batch(images[start:start + batch_size], **kwargs)).numpy())
    return np.concatenate(out) if out else np.zeros((0, net.image_width), dtype=np.float32)


def heads_of(net, v: np.ndarray, clinical: np.ndarray | None) -> dict:
    """Eval-mode heads of image vectors (and encoded clinical rows, None = dropped) as numpy."""
    import torch

    net.eval()
    with torch.no_grad():
        out = net.fuse(torch.as_tensor(v), None if clinical is None else torch.as_tensor(clinical))
    return {"p_hr": torch.softmax(out["logits"], 1)[:, 0].numpy(), "embedding": out["embedding"].numpy(),
            "log_risk": out["log_risk"].numpy(), "logits": out["logits"]}


def evaluate_part(net, v, clinical, labels, time, event, cox_weight: float = 0.0) -> dict:
    """Loss, AUC (DeLong CI) and C-index of one cohort part, with the clinical rows and image only."""
    import torch

    from nbrisk_core.classifier.metrics import evaluate_scores

    result = {}
    for name, rows in (("fusion", clinical), ("image_only", None)):
        out = heads_of(net, v, rows)
        is_hr = (labels == 0).astype(int)
        entry = evaluate_scores(is_hr, out["p_hr"]) if 0 < is_hr.sum() < len(is_hr) else {"n": int(len(labels))}
        entry["c_index_survival_head"] = c_index(time, event, out["log_risk"])
        entry["c_index_p_hr"] = c_index(time, event, out["p_hr"])
        if name == "fusion":
            with torch.no_grad():
                loss = batch_loss({"logits": out["logits"], "log_risk": torch.as_tensor(out["log_risk"])},
                                  torch.as_tensor(labels), torch.as_tensor(time), torch.as_tensor(event), cox_weight)
            entry["loss"] = float(loss)
        result[name] = entry
    return result


def fit_fusion(net, run_dir: Path, recipe, tables: CohortTables, encoded: np.ndarray, resume: bool = False,
               log=print, progress: bool = False, bf16: bool = False) -> list[FusionEpoch]:
    """Train ``net`` in place on the ``train`` rows, monitor the ``val`` rows; the best weights end in it.

    ``bf16``: the training forward under bf16 autocast (losses, weights and evaluation stay fp32)."""
    import torch
    from safetensors.torch import load_file, save_file

    from nbrisk_core.classifier.data import to_tensor_batch
    from nbrisk_core.classifier.training import _lr_at

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cohort = tables.split.set_index("patient_id").loc[tables.patient_ids, "cohort"].to_numpy()
    train, val = np.flatnonzero(cohort == "train"), np.flatnonzero(cohort == "val")
    if len(val) == 0:
        raise InputError("the validation split is empty: lower --val-fraction's precision or use a larger cohort")
    optimizer = _optimizer(net, recipe)
    augment = recipe.augmentation.transform()
    history: list[FusionEpoch] = []
    best, bad, start_epoch = math.inf, 0, 0
    torch.manual_seed(recipe.seed)
    checkpoint, state_path = run_dir / "checkpoint.safetensors", run_dir / "state.pt"
    if resume:
        if not (checkpoint.exists() and state_path.exists()):
            raise InputError(f"--resume: no checkpoint in {run_dir} (expected checkpoint.safetensors and state.pt)")
        net.load_state_dict(load_file(str(checkpoint)))
        state = torch.load(state_path, weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, best, bad = state["epoch"] + 1, state["best_loss"], state["bad_epochs"]
        history = [FusionEpoch(**json.loads(h)) for h in state["history"]]
        log(f"resuming fusion training at epoch {start_epoch + 1} (best validation loss {best:.4f})")
    x_clin = torch.as_tensor(encoded)
    y_all = torch.as_tensor(tables.labels, dtype=torch.long)
    t_all, e_all = torch.as_tensor(tables.time), torch.as_tensor(tables.event)
    steps = math.ceil(len(train) / recipe.batch_size)
    for epoch in range(start_epoch, recipe.max_epochs):
        if epoch >= recipe.early_stop_after and bad >= recipe.patience:
            log(f"early stop after epoch {epoch} (no improvement in {bad} epochs)")
            break
        started = time.perf_counter()
        net.train()
        order = train[torch.randperm(len(train)).numpy()]
        total, count = 0.0, 0
        for step in range(steps):
            index = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
            lr = _lr_at(recipe, epoch, step, steps)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_mult", 1.0)
            x = to_tensor_batch(tables.images[index], augment)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = net.forward_all(x, x_clin[index])
            out = {k: v.float() for k, v in out.items()}
            loss = batch_loss(out, y_all[index], t_all[index], e_all[index], recipe.cox_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip:
                torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], recipe.grad_clip)
            optimizer.step()
            total += loss.item() * len(index)
            count += len(index)
            if progress:
                print(f"  epoch {epoch + 1} step {step + 1}/{steps} loss {total / count:.4f}", flush=True)
        v_val = image_vectors(net, tables.images[val])
        part = evaluate_part(net, v_val, encoded[val], tables.labels[val], tables.time[val], tables.event[val],
                             recipe.cox_weight)["fusion"]
        record = FusionEpoch(epoch + 1, lr, total / max(count, 1), part["loss"],
                             part.get("auc", {}).get("value", float("nan")), part["c_index_survival_head"],
                             time.perf_counter() - started)
        history.append(record)
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        improved = record.val_loss < best
        if improved:
            best, bad = record.val_loss, 0
            save_file(state, str(run_dir / "best.safetensors"))
        else:
            bad += 1
        save_file(state, str(checkpoint))
        torch.save({"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(), "epoch": epoch,
                    "best_loss": best, "bad_epochs": bad,
                    "history": [json.dumps(asdict(h)) for h in history]}, state_path)
        with open(run_dir / "history.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(asdict(history[0])))
            writer.writeheader()
            writer.writerows(asdict(h) for h in history)
        log(f"fusion epoch {epoch + 1}: train loss {record.train_loss:.4f}  val loss {record.val_loss:.4f}  "
            f"AUC {record.val_auc:.3f}  C {record.val_c_index:.3f}  lr {lr:.2e}  {record.seconds:.0f}s"
            + ("  *best" if improved else ""))
    if (run_dir / "best.safetensors").exists():
        net.load_state_dict(load_file(str(run_dir / "best.safetensors")))
    net.eval()
    return history


def train_fusion(args, recipe) -> dict:
    """``nbrisk train --arch fusion``: returns ``{"summary", "card", "history"}`` like ``pipeline.train_run``."""
    import torch

    from nbrisk_core.classifier.architectures import TINY_SWIN_KWARGS
    from nbrisk_core.classifier.fusion import FusionNet
    from nbrisk_core.classifier.model_io import sha256_file
    from nbrisk_core.classifier.onednn import cpu_name
    from nbrisk_core.classifier.pipeline import cohort_meta
    from nbrisk_core.classifier.training import resolve_precision
    from nbrisk_core.cohort.format import cohort_hash
    from nbrisk_core.config import demo_cohort_dir

    started = time.perf_counter()
    if getattr(args, "variant", "art") != "art":
        raise InputError(f"--variant {args.variant!r}: the fusion network reads the ART slice (--variant art)")
    if getattr(args, "device", "auto") == "cuda":
        raise InputError("--device cuda: the fusion network trains on the CPU (--device cpu or auto)")
    bf16 = resolve_precision(getattr(args, "precision", "auto"), "cpu")
    run_dir = Path(args.run)
    run_dir.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    cohort_dir = Path(args.cohort) if getattr(args, "cohort", None) else demo_cohort_dir()
    tables = load_tables(cohort_dir, getattr(args, "split_seed", None), getattr(args, "val_fraction", 0.2),
                         recipe.seed, log=log)
    tables.split.to_csv(run_dir / "split.csv", index=False)
    cohort = tables.split.set_index("patient_id").loc[tables.patient_ids, "cohort"].to_numpy()
    encoder = ClinicalEncoder.fit(tables.clinical[cohort == "train"])  # training rows only
    (run_dir / "encoder.json").write_text(json.dumps(encoder.to_dict(), indent=2) + "\n")
    encoded = encoder.transform(tables.clinical)
    backbone_kwargs = dict(TINY_SWIN_KWARGS) if getattr(args, "tiny", False) else {}
    backbone_kwargs.update(getattr(args, "backbone_overrides", None) or {})
    config = FusionConfig(n_clinical=encoder.width, backbone_kwargs=backbone_kwargs,
                          **{k: v for k, v in {"trainable_stages": getattr(args, "trainable_stages", None),
                                               "p_drop_clinical": getattr(args, "p_drop_clinical", None),
                                               "p_drop_image": getattr(args, "p_drop_image", None)}.items()
                             if v is not None})
    torch.manual_seed(recipe.seed)
    net = FusionNet(config)
    net.encoder = encoder
    init_sha = None
    if getattr(args, "init", None):
        init = Path(args.init)
        if not init.exists():
            raise InputError(f"--init {init}: file not found")
        n_loaded = init_image_branch(net, init)
        init_sha = sha256_file(init)
        log(f"image branch initialised from {init} ({n_loaded} tensors)")
    log(f"fusion: {sum(p.numel() for p in net.parameters() if p.requires_grad):,} trainable of "
        f"{sum(p.numel() for p in net.parameters()):,} parameters; {int((cohort == 'train').sum())} training, "
        f"{int((cohort == 'val').sum())} validation, {int((cohort == 'test').sum())} test patients; CPU, "
        + ("bf16 autocast (the CPU probe measured it faster)" if bf16 else "fp32"))
    history = fit_fusion(net, run_dir, recipe, tables, encoded, resume=getattr(args, "resume", False), log=log,
                         progress=not getattr(args, "no_progress", True), bf16=bf16)
    v_all = image_vectors(net, tables.images)
    evaluation = {part: evaluate_part(net, v_all[cohort == part], encoded[cohort == part], tables.labels[cohort == part],
                                      tables.time[cohort == part], tables.event[cohort == part], recipe.cox_weight)
                  for part in ("train", "val", "test") if (cohort == part).any()}
    meta = cohort_meta(cohort_dir)
    card = fusion_card(config, encoder)
    card.update(
        training_cohort={"name": meta.get("name", cohort_dir.name), "seed": meta.get("seed"),
                         "size": int(len(tables.split)), "synthetic": bool(meta.get("synthetic", False)),
                         "sha256": cohort_hash(cohort_dir), "oracle_auc": meta.get("oracle_auc"),
                         "oracle_c_index": meta.get("oracle_c_index")},
        split={"method": "nbrisk_core.split.stratified_split (8:2, stratified by HR/NHR), as Swin-ART's",
               "split_seed": args.split_seed if getattr(args, "split_seed", None) is not None else 2025,
               "validation": f"stratified {getattr(args, 'val_fraction', 0.2):.0%} of the training cohort, "
                             f"seed {recipe.seed}",
               "counts": tables.split["cohort"].value_counts().to_dict()},
        training={"stage": "fusion", "recipe": recipe.to_dict(), "epochs_run": len(history),
                  "loss": f"cross-entropy + {recipe.cox_weight} x Cox partial likelihood (Efron ties)",
                  "early_stopping_monitor": "validation split of the training cohort",
                  "init_sha256": init_sha, "init": str(getattr(args, "init", None) or ""),
                  "frozen": f"patch_embed and the first {4 - config.trainable_stages} Swin stages",
                  "hardware": {"device": "cpu", "precision": "bf16 autocast" if bf16 else "fp32", "cpu": cpu_name(),
                               "threads": torch.get_num_threads()}},
        metrics=evaluation, optimistic=False,
        history=[asdict(h) for h in history])
    if meta.get("synthetic", False):
        card["synthetic_data"] = True
        card["note"] = "trained on the SYNTHETIC demo cohort: research demonstration only, not for clinical use"
    card["wall_seconds"] = round(time.perf_counter() - started, 1)
    (run_dir / "run.json").write_text(json.dumps({"card": card}, indent=2, default=str))
    if getattr(args, "out", None):
        card = save_fusion(net, Path(args.out), card)
    summary = "; ".join(
        f"{part}: AUC {r['fusion']['auc']['value']:.3f} ({r['fusion']['auc']['ci_low']:.3f}-"
        f"{r['fusion']['auc']['ci_high']:.3f}), image only {r['image_only']['auc']['value']:.3f}, "
        f"C-index {r['fusion']['c_index_survival_head']:.3f}"
        for part, r in evaluation.items() if "auc" in r["fusion"] and "auc" in r["image_only"])
    return {"summary": summary, "card": card, "history": history}
