"""Training: the paper's fine-tuning recipe and the synthetic pretraining stage, both resumable.

Fine-tuning (``stage="finetune"``) follows ``../shared/spec/method.md`` section 3: augmentation,
cross-entropy, Adam, cosine annealing (T_max 20, 1e-5 -> 0), batch 8, at most 100 epochs, early
stopping after epoch 25 with patience 10 on the monitored loss. The monitored cohort is a
stratified validation split carved from the training cohort; monitoring the testing cohort
(the paper's variant) is possible only by asking for it, and the run is then marked optimistic.

Pretraining (``stage="pretrain"``) stands where ImageNet pretraining stands in the paper: no
weights can be downloaded here, so the backbone first learns from unlimited on-the-fly synthetic
images with the generator's dense truth next to the class loss: scalar targets (tumour size,
calcifications, ...) read from the 16-d embedding, and the tumour fraction of every final-stage
token; pooled features are standardised before the head (folded into it afterwards), with linear
warm-up and gradient clipping (a from-scratch Swin-T on a plain schedule stays at the class prior).

Every epoch writes ``checkpoint.safetensors`` (weights, fp32) and ``state.pt`` (optimizer,
scheduler, history with each epoch's world size, the sampler seed; plain tensors and dicts, read back
with ``weights_only=True``), appends to ``history.csv``, and keeps ``best.safetensors``;
``resume=True`` continues from them and gives the same weights as an uninterrupted run, also with
another number of processes (the global batches and each rank's random stream depend only on the
seed, the epoch and the rank: :func:`cohort_batches`, :func:`rank_seed`).

Precision: ``precision="auto"`` trains under bf16 autocast on CUDA and on CPUs where the probe
(:mod:`nbrisk_core.classifier.probe`) measured bf16 products faster than fp32 (AMX: 75 ms vs 240 ms
per Swin-T image at batch 16 on 2 cores), fp32 elsewhere (oneDNN's bf16 emulation is slower).
Weights, optimizer state and the losses stay fp32; only the matrix products run in bf16.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from nbrisk_core.classifier.data import Augmentation, to_tensor_batch
from nbrisk_core.classifier.inference import resolve_device  # the one device rule (also re-exported here)
from nbrisk_core.errors import InputError


@dataclass(frozen=True)
class Recipe:
    """Training hyper-parameters; the defaults are the paper's fine-tuning recipe."""

    stage: str = "finetune"            # "finetune" (paper) or "pretrain" (synthetic dense truth)
    optimizer: str = "adam"
    max_lr: float = 1e-5
    min_lr: float = 0.0
    t_max: int = 20                    # cosine annealing period, in epochs
    warmup_steps: int = 0
    batch_size: int = 8
    max_epochs: int = 100
    early_stop_after: int = 25
    patience: int = 10
    grad_clip: float | None = None
    aux_weight: float = 0.0
    dense_weight: float = 0.0          # per-token tumour-fraction loss (pretrain)
    head_lr_mult: float = 1.0          # the head's learning rate relative to the backbone's
    pool_norm: bool = False            # standardise pooled features before the head (pretrain; folded after)
    weight_decay: float = 0.0
    cox_weight: float = 0.0            # fusion network: weight of the survival head's Cox partial likelihood
    steps_per_epoch: int | None = None  # pretrain: synthetic batches per epoch
    seed: int = 2025
    monitor: str = "validation"         # "validation" (sound) or "test" (the paper's, optimistic)
    augmentation: Augmentation = field(default_factory=Augmentation)

    def to_dict(self) -> dict:
        return asdict(self)


#: Synthetic pretraining (measured on 2 CPU cores, docs/classifier.md): AdamW 1e-4 (3e-4 collapsed the
#: tokens), warm-up 60 steps, clipping 1.0, z-scored auxiliary targets, the per-token tumour fraction
#: (dense supervision: 49 targets per image instead of a few scalars) and standardised pooled features
#: before the head (``pool_norm``, folded into the hidden layer afterwards; see ``RiskHead``).
#: Photometric augmentation only: a rotated image would no longer match its token targets, and the
#: stream has unlimited distinct patients anyway.
PRETRAIN_RECIPE = Recipe(stage="pretrain", optimizer="adamw", max_lr=1e-4, min_lr=1e-6, t_max=12, warmup_steps=60,
                         batch_size=16, max_epochs=12, early_stop_after=12, patience=100, grad_clip=1.0,
                         aux_weight=1.0, dense_weight=2.0, head_lr_mult=3.0, pool_norm=True, weight_decay=0.05,
                         steps_per_epoch=50,
                         augmentation=Augmentation(rotation_deg=0.0, translate_fraction=0.0))


@dataclass
class EpochRecord:
    epoch: int
    stage: str
    lr: float
    train_loss: float
    val_loss: float
    val_auc: float
    seconds: float
    world_size: int = 1  # processes that trained this epoch (a resumed run may change it)


def world() -> tuple[int, int]:
    """``(world_size, rank)``; ``(1, 0)`` outside a process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _derived_seed(*words: int) -> int:
    """A 63-bit seed mixed from non-negative integers (``numpy.random.SeedSequence``)."""
    mask = 2 ** 64 - 1
    return int(np.random.SeedSequence([int(w) & mask for w in words]).generate_state(1, np.uint64)[0] >> 1)


def rank_seed(seed: int, rank: int, epoch: int) -> int:
    """The seed of rank ``rank``'s random stream in ``epoch``: augmentation and stochastic depth.

    :func:`fit` reseeds torch's global generators (CPU and CUDA) with it at the start of every epoch,
    so each rank draws its own augmentation and drop-path masks (not the same stream for different
    images), a rerun draws the same ones, and a resumed run, with the same or another world size,
    continues with the streams an uninterrupted run of that world size would draw.
    """
    return _derived_seed(seed, rank, epoch, 0x52414E4B)  # "RANK"


def sampler_seed_for(seed: int) -> int:
    """The ``DistributedSampler`` seed of a run with seed ``seed`` (the same on every rank)."""
    return _derived_seed(seed, 0x53414D50) % (2 ** 31 - 1)  # "SAMP"


def _make_optimizer(model, recipe: Recipe):
    """Adam / AdamW with two parameter groups: the backbone, and the head at ``head_lr_mult`` times
    the learning rate (each group's ``lr_mult``; :func:`fit` sets ``lr = schedule * lr_mult``)."""
    import torch

    head_ids = {id(p) for p in model.head.parameters()}
    groups = [{"params": [p for p in model.parameters() if id(p) not in head_ids], "lr_mult": 1.0},
              {"params": [p for p in model.parameters() if id(p) in head_ids], "lr_mult": recipe.head_lr_mult}]
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.max_lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=recipe.max_lr, weight_decay=recipe.weight_decay)
    raise InputError(f"--optimizer {recipe.optimizer!r}: expected 'adam' or 'adamw'")


def dense_loss(dense_logits, target):
    """Binary cross-entropy of per-token logits ``(N, h, w, k)`` against token fractions in [0, 1]
    ``(N, H, W[, k])``, the target area-averaged onto the token grid when the grids differ."""
    import torch

    target = torch.as_tensor(target, dtype=torch.float32, device=dense_logits.device)
    if target.ndim == 3:
        target = target.unsqueeze(-1)
    if tuple(target.shape[1:3]) != tuple(dense_logits.shape[1:3]):
        target = torch.nn.functional.adaptive_avg_pool2d(target.permute(0, 3, 1, 2), dense_logits.shape[1:3])
        target = target.permute(0, 2, 3, 1)
    return torch.nn.functional.binary_cross_entropy_with_logits(dense_logits, target)


def _lr_at(recipe: Recipe, epoch: int, step_in_epoch: int, steps_per_epoch: int) -> float:
    """Linear warm-up over ``warmup_steps`` then cosine annealing with period ``t_max`` epochs,
    stepped per epoch like ``torch.optim.lr_scheduler.CosineAnnealingLR`` (periodic past T_max)."""
    step = epoch * steps_per_epoch + step_in_epoch
    cosine = recipe.min_lr + (recipe.max_lr - recipe.min_lr) * (1 + math.cos(math.pi * epoch / recipe.t_max)) / 2
    if recipe.warmup_steps and step < recipe.warmup_steps:
        return cosine * (step + 1) / recipe.warmup_steps
    return cosine


PRECISIONS = ("auto", "bf16", "fp32")


def resolve_precision(precision: str, device: str) -> bool:
    """True when training should run under bf16 autocast (see the module docstring)."""
    from nbrisk_core.classifier.inference import bf16_pays_off

    if precision not in PRECISIONS:
        raise InputError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return bf16_pays_off(device)
    return precision == "bf16"


def evaluate_loss_auc(model, images: np.ndarray, labels: np.ndarray, batch_size: int = 16, bf16: bool = False):
    """Cross-entropy and AUC of p(HR) on uint8 images, no augmentation (on the model's device)."""
    import torch

    from nbrisk_core.classifier.metrics import roc_auc

    model.eval()
    device = next(model.parameters()).device
    losses, scores = [], []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, len(images), batch_size):
            x = to_tensor_batch(images[start:start + batch_size]).to(device)
            y = torch.from_numpy(labels[start:start + batch_size]).to(device)
            logits = model(x).float()
            losses.append(torch.nn.functional.cross_entropy(logits, y, reduction="sum").item())
            scores.append(torch.softmax(logits, 1)[:, 0].cpu().numpy())
    score = np.concatenate(scores)
    is_hr = (labels == 0).astype(int)
    auc = roc_auc(is_hr, score) if 0 < is_hr.sum() < len(is_hr) else float("nan")
    return sum(losses) / len(images), auc


BatchSource = Callable[[int, int], tuple]  # (epoch, step) -> (uint8 images, labels, aux or None)


def cohort_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int | None = None):
    """Per epoch, a shuffled pass over a cohort in global batches of ``batch_size``.

    A ``DistributedSampler`` over the world (one process outside a process group) gives each of the
    N ranks ``batch_size / N`` images of each global batch. Its seed is :func:`sampler_seed_for`
    ``(seed)`` (drawn once from torch's global RNG when ``seed`` is None), the same on every rank and
    for every N, and ``set_epoch`` reshuffles per epoch: epoch ``e``'s global batches depend only on
    the seed and ``e``, so a run resumed with another number of processes continues where it was.
    The returned callable carries the seed as ``sampler_seed`` (:func:`fit` records it).
    """
    import torch

    from nbrisk_core.errors import InputError

    sampler_seed = (int(torch.randint(0, 2 ** 31 - 1, (1,)).item()) if seed is None
                    else sampler_seed_for(seed))

    def epoch_batches(epoch: int):
        from torch.utils.data import DistributedSampler

        size, rank = world()
        if batch_size % size:
            raise InputError(f"--batch-size {batch_size}: the global batch must split evenly over the "
                             f"{size} processes")
        sampler = DistributedSampler(range(len(images)), num_replicas=size, rank=rank, shuffle=True,
                                     seed=sampler_seed)
        sampler.set_epoch(epoch)
        mine, local = list(sampler), batch_size // size
        for start in range(0, len(mine), local):
            index = np.asarray(mine[start:start + local])
            yield images[index], labels[index], None
    epoch_batches.sampler_seed = sampler_seed
    return epoch_batches


def fit(model, run_dir: Path, recipe: Recipe, epoch_batches, val_images: np.ndarray, val_labels: np.ndarray,
        resume: bool = False, progress: bool = True, log: Callable[[str], None] = print,
        aux_scale: np.ndarray | None = None, aux_center: np.ndarray | None = None,
        device: str = "auto", precision: str = "auto") -> list[EpochRecord]:
    """Train ``model`` in place; return the epoch history. Best weights end up in the model.

    Parameters
    ----------
    epoch_batches : callable
        ``epoch -> iterable of (uint8 images (B,224,224,3), labels (B,), aux targets (B,k) or None[,
        token fractions (B,h,w) or None])``.
    val_images, val_labels : ndarray
        The monitored cohort (validation split, or the testing cohort when ``recipe.monitor == "test"``).
    device : {"auto", "cpu", "cuda"}
        Where to train; the model is moved there and, at the end, back to the CPU.
    precision : {"auto", "bf16", "fp32"}
        ``auto``: bf16 autocast where the CPU probe measured it faster (:func:`resolve_precision`).
    """
    import torch
    from safetensors.torch import load_file, save_file
    from tqdm import tqdm


    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    world_size, rank = world()
    if rank != 0:  # rank 0 alone logs and writes files
        log, progress = (lambda _: None), False
    device = resolve_device(device)
    bf16 = resolve_precision(precision, device)
    model.to(device)
    optimizer = _make_optimizer(model, recipe)
    augment = recipe.augmentation.transform()
    history: list[EpochRecord] = []
    best_loss, bad_epochs, start_epoch = math.inf, 0, 0
    torch.manual_seed(recipe.seed)
    checkpoint, state_path = run_dir / "checkpoint.safetensors", run_dir / "state.pt"
    if resume:
        if not (checkpoint.exists() and state_path.exists()):
            raise InputError(f"--resume: no checkpoint in {run_dir} (expected checkpoint.safetensors and state.pt)")
        model.load_state_dict(_run_state(load_file(str(checkpoint), device=device), model))
        state = torch.load(state_path, weights_only=True, map_location=device)
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, best_loss, bad_epochs = state["epoch"] + 1, state["best_loss"], state["bad_epochs"]
        history = [EpochRecord(**json.loads(h)) for h in state["history"]]
        recorded, ours = state.get("sampler_seed"), getattr(epoch_batches, "sampler_seed", None)
        if recorded is not None and ours is not None and int(recorded) != int(ours):
            raise InputError(f"--resume {run_dir}: the run shuffled with sampler seed {int(recorded)}, this "
                             f"one would use {int(ours)} (was --seed changed? resume with the run's seed)")
        before = history[-1].world_size if history else world_size
        log(f"resuming {recipe.stage} at epoch {start_epoch + 1} (best monitored loss {best_loss:.4f})"
            + (f"; {before} process(es) before, {world_size} now" if before != world_size else ""))
    aux_scale_t = None if aux_scale is None else torch.as_tensor(aux_scale, dtype=torch.float32, device=device)
    aux_center_t = None if aux_center is None else torch.as_tensor(aux_center, dtype=torch.float32, device=device)
    log(f"{recipe.stage}: training on {device}, {'bf16 autocast' if bf16 else 'fp32'}"
        + (f", {world_size} processes (DistributedDataParallel)" if world_size > 1 else ""))
    step_model = _train_forward_class()(model)
    if world_size > 1:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        # the auxiliary/dense layers may sit out a step (pretraining heads); the paper's head never does
        head = model.head
        step_model = DistributedDataParallel(step_model, find_unused_parameters=head.aux is not None
                                             or head.dense is not None)
    spread = 0.0  # largest difference of a weight between ranks after any step (must stay 0)

    for epoch in range(start_epoch, recipe.max_epochs):
        if epoch >= recipe.early_stop_after and bad_epochs >= recipe.patience:
            break
        started = time.perf_counter()
        torch.manual_seed(rank_seed(recipe.seed, rank, epoch))  # this rank's own stream (also CUDA's)
        model.train()
        batches = list(epoch_batches(epoch)) if recipe.steps_per_epoch is None else None
        n_steps = len(batches) if batches is not None else recipe.steps_per_epoch
        iterator = batches if batches is not None else (epoch_batches(epoch, s) for s in range(n_steps))
        bar = tqdm(iterator, total=n_steps, desc=f"{recipe.stage} epoch {epoch + 1}/{recipe.max_epochs}",
                   disable=not progress, leave=False)
        total, count = 0.0, 0
        for step, (images, labels, aux, *dense_target) in enumerate(bar):
            lr = _lr_at(recipe, epoch, step, n_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_mult", 1.0)
            x = to_tensor_batch(images, augment).to(device)
            y = torch.as_tensor(labels, dtype=torch.long, device=device)
            want_dense = bool(recipe.dense_weight and dense_target and dense_target[0] is not None)
            with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
                want_aux = bool(recipe.aux_weight and aux is not None)
                logits, dense, aux_pred = step_model(x, want_aux, want_dense)
            # the losses in fp32 (autocast covers the matrix products only)
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
            if want_dense and dense is not None:
                loss = loss + recipe.dense_weight * dense_loss(dense.float(), dense_target[0])
            if aux_pred is not None:
                target = torch.as_tensor(aux, dtype=torch.float32, device=device)
                if aux_center_t is not None:
                    target = target - aux_center_t
                if aux_scale_t is not None:
                    target = target / aux_scale_t
                loss = loss + recipe.aux_weight * torch.nn.functional.smooth_l1_loss(aux_pred.float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            optimizer.step()
            if world_size > 1:
                spread = max(spread, _rank_spread(model))
            total += loss.item() * len(labels)
            count += len(labels)
            bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{lr:.2e}")
        if world_size > 1:  # the epoch's loss over the global batches, not this rank's share
            sums = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
            dist.all_reduce(sums)
            total, count = float(sums[0]), int(sums[1])
        val_loss, val_auc = evaluate_loss_auc(model, val_images, val_labels, bf16=bf16)
        record = EpochRecord(epoch + 1, recipe.stage, lr, total / max(count, 1), val_loss, val_auc,
                             time.perf_counter() - started, world_size)
        history.append(record)
        improved = val_loss < best_loss
        if improved:
            best_loss, bad_epochs = val_loss, 0
            if rank == 0:
                save_file(_cpu_state(model), str(run_dir / "best.safetensors"))
        else:
            bad_epochs += 1
        if rank == 0:
            save_file(_cpu_state(model), str(checkpoint))
            torch.save({"optimizer": optimizer.state_dict(),
                        "epoch": epoch, "best_loss": best_loss, "bad_epochs": bad_epochs,
                        "history": [json.dumps(asdict(h)) for h in history], "world_size": world_size,
                        "sampler_seed": getattr(epoch_batches, "sampler_seed", None)}, state_path)
            _write_history(run_dir / "history.csv", history)
            if world_size > 1:
                (run_dir / "distributed.json").write_text(json.dumps(
                    {"world_size": world_size, "backend": dist.get_backend(), "device": device,
                     "max_rank_weight_difference": spread, "epochs": epoch + 1}))
        if world_size > 1:
            dist.barrier()  # the other ranks read best.safetensors at the end
        log(f"{recipe.stage} epoch {epoch + 1}: train loss {record.train_loss:.4f}  "
            f"{'test' if recipe.monitor == 'test' else 'val'} loss {val_loss:.4f}  AUC {val_auc:.3f}  "
            f"lr {lr:.2e}  {record.seconds:.0f}s{'  *best' if improved else ''}")
    if (run_dir / "best.safetensors").exists():
        model.load_state_dict(_run_state(load_file(str(run_dir / "best.safetensors"), device=device), model))
    model.to("cpu")
    return history


def world_size_record(history: list[EpochRecord]) -> list[dict]:
    """The world sizes a run trained with: ``[{"first_epoch", "last_epoch", "world_size"}, ...]``, one
    entry per stretch of consecutive epochs with the same number of processes (``run.json``)."""
    record: list[dict] = []
    for h in history:
        if record and record[-1]["world_size"] == h.world_size:
            record[-1]["last_epoch"] = h.epoch
        else:
            record.append({"first_epoch": h.epoch, "last_epoch": h.epoch, "world_size": h.world_size})
    return record


def _train_forward_class():
    import torch

    class TrainForward(torch.nn.Module):
        """One training forward as a module (what DistributedDataParallel wraps): ``(logits, dense or
        None, aux prediction or None)``; outputs not asked for are left out so that DDP sees their
        layers as unused."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x, want_aux: bool, want_dense: bool):
            logits, embedding, dense = self.model.forward_tokens(x)
            head = self.model.head
            aux_pred = head.aux(embedding) if want_aux and head.aux is not None else None
            return logits, dense if want_dense else None, aux_pred

    return TrainForward


def _rank_spread(model) -> float:
    """Largest difference between ranks of any parameter's sum (0.0 when the ranks agree)."""
    import torch
    import torch.distributed as dist

    sums = torch.stack([p.detach().double().sum() for p in model.parameters()])
    high, low = sums.clone(), sums.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    return float((high - low).max())


def _run_state(state: dict, model) -> dict:
    """A run's checkpoint in the current key layout (a run started before layout 2 resumes)."""
    from nbrisk_core.classifier.architectures import detect_layout, upgrade_state_dict

    return upgrade_state_dict(state, model.arch, detect_layout(state))


def _cpu_state(model) -> dict:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def _write_history(path: Path, history: list[EpochRecord]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(history[0])))
        writer.writeheader()
        writer.writerows(asdict(h) for h in history)
