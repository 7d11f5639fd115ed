"""The resumable training run behind ``nbrisk train-seg``.

Recipe (MONAI's usual 2-D segmentation recipe, sized for 2 CPU cores): dictionary transforms
(``EnsureTyped``, ``ScaleIntensityd`` from the uint8 samples of :mod:`.data` to [0, 1], a mild
``RandAffined`` -- rotation, scaling, translation -- and ``RandGaussianNoised``), ``DiceCELoss``
(softmax, one-hot labels, Dice over the batch), Adam with a cosine learning-rate decay, and each
epoch on new patients drawn from the generator. bf16 autocast where it pays off (CUDA, or a CPU where
:mod:`nbrisk_core.classifier.probe` measured bf16 products faster than fp32), fp32 otherwise; CUDA
when present.

After every epoch the run writes ``CHECKPOINT_DIR/checkpoint.safetensors`` (network and optimizer
tensors, fp32) and ``CHECKPOINT_DIR/state.json`` (settings, epochs done, the optimizer's
hyperparameters, the per-epoch history and the checkpoint's SHA-256). Running the same command again
resumes after the last completed epoch; every epoch's data and augmentation are a function of the
seed and the epoch number, so an interrupted and resumed run trains on what an uninterrupted one
would. When all epochs are done, the network is exported as fp16 safetensors with its model card
(:func:`nbrisk_core.segment.model.save_seg_model`), after a final validation on held-out patients.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nbrisk_core.case import PHASES
from nbrisk_core.errors import InputError
from nbrisk_core.segment.data import SegDataConfig
from nbrisk_core.segment.model import SegNetConfig

STATE_VERSION = 1
#: patients rendered together, their samples shuffled together
PATIENT_GROUP = 16


@dataclass(frozen=True)
class SegRecipe:
    """Optimisation settings (recorded in the state and the card)."""

    epochs: int = 12
    batch_size: int = 16
    learning_rate: float = 2e-3
    min_learning_rate: float = 2e-5
    weight_decay: float = 1e-5
    validation_patients: int = 8

    def to_dict(self) -> dict:
        return asdict(self)


def learning_rate(recipe: SegRecipe, epoch: int) -> float:
    """Cosine decay from ``learning_rate`` (epoch 0) to ``min_learning_rate`` (last epoch)."""
    if recipe.epochs <= 1:
        return recipe.learning_rate
    t = epoch / (recipe.epochs - 1)
    span = recipe.learning_rate - recipe.min_learning_rate
    return recipe.min_learning_rate + 0.5 * span * (1 + math.cos(math.pi * t))


def train_transforms():
    from monai.transforms import Compose, EnsureTyped, RandAffined, RandGaussianNoised, ScaleIntensityRanged

    return Compose([
        EnsureTyped(keys=("image", "label"), dtype=None, track_meta=False),
        ScaleIntensityRanged(keys="image", a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True),
        RandAffined(keys=("image", "label"), prob=0.5, rotate_range=0.15, scale_range=0.1,
                    translate_range=(6, 6), mode=("bilinear", "nearest"), padding_mode="border"),
        RandGaussianNoised(keys="image", prob=0.3, std=0.01),
    ])


def _settings(data: SegDataConfig, network: SegNetConfig, recipe: SegRecipe) -> dict:
    return {"data": data.to_dict(), "network": network.to_dict(), "recipe": recipe.to_dict()}


def _save_checkpoint(folder: Path, network, optimizer, state: dict) -> None:
    from safetensors.torch import save_file

    from nbrisk_core.classifier.model_io import sha256_file

    tensors = {f"model.{k}": v.detach().float().contiguous().cpu() for k, v in network.state_dict().items()}
    optim = optimizer.state_dict()
    for index, values in optim["state"].items():
        for name, value in values.items():
            tensors[f"optim.{index}.{name}"] = value.detach().contiguous().cpu().reshape(value.shape)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "checkpoint.safetensors.partial"
    save_file(tensors, str(partial))
    state = dict(state, param_groups=[{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]}
                                      for g in optim["param_groups"]],
                 checkpoint_sha256=sha256_file(partial))
    partial.replace(folder / "checkpoint.safetensors")
    text = json.dumps(state, indent=2) + "\n"
    (folder / "state.json.partial").write_text(text)
    (folder / "state.json.partial").replace(folder / "state.json")


def _load_checkpoint(folder: Path, network, optimizer, settings: dict) -> dict:
    import torch
    from safetensors.torch import load_file

    from nbrisk_core.classifier.model_io import sha256_file

    state_path, weights = folder / "state.json", folder / "checkpoint.safetensors"
    try:
        state = json.loads(state_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{state_path}: unreadable training state ({error})") from None
    if state.get("settings") != settings:
        raise InputError(f"{state_path}: the checkpoint was made with other settings "
                         f"({state.get('settings')}); resume with the same options or use a new "
                         "--checkpoint-dir")
    if not weights.is_file() or sha256_file(weights) != state.get("checkpoint_sha256"):
        raise InputError(f"{weights}: missing or its SHA-256 differs from {state_path}; "
                         "remove the checkpoint folder to start again")
    tensors = load_file(str(weights))
    network.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    optim_state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            optim_state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": optim_state, "param_groups": state["param_groups"]})
    for group in optimizer.param_groups:
        group["lr"] = float(group["lr"])
    del torch
    return state


def validate(network_model, data: SegDataConfig, n_patients: int) -> dict:
    """Segment held-out generator patients (all three phases, whole volumes) and score against truth:
    share of max-area slices within one slice, mean Dice on the chosen slice (against the true
    max-area mask), median relative volume error."""
    from nbrisk_core.segment.data import patient_geometry, render_volume, validation_patients
    from nbrisk_core.segment.inference import PhaseVolume, segment_phases

    rows = []
    for number in validation_patients(n_patients):
        geom = patient_geometry(data.seed, number)
        z = np.arange(geom.n_slices) * geom.slice_thickness
        volumes, truth = {}, {}
        for phase in PHASES:
            hu, mask = render_volume(geom, phase)
            volumes[phase] = PhaseVolume(hu, z, (geom.pixel_spacing,) * 2, geom.slice_thickness)
            truth[phase] = mask
        results = segment_phases(network_model, volumes)
        for phase in PHASES:
            rows.append(score_phase(results[phase], truth[phase], geom.max_area_slice(phase),
                                    geom.pixel_spacing, geom.slice_thickness))
    return summarise(rows)


def score_phase(result, true_mask: np.ndarray, true_slice: int, pixel_spacing: float,
                thickness: float) -> dict:
    from nbrisk_core.imaging.segmentation import dice

    true_volume = float(true_mask.sum()) * pixel_spacing ** 2 * thickness / 1000.0
    return {"within_1": abs(result.max_area_slice - true_slice) <= 1,
            "dice": dice(result.mask[result.max_area_slice], true_mask[true_slice]),
            "volume_error": (abs(result.volume_ml - true_volume) / true_volume if true_volume
                             else float("nan")),
            "confidence": result.confidence, "found": result.found}


def summarise(rows: list[dict]) -> dict:
    if not rows:
        return {}
    return {"n_series": len(rows),
            "within_1_slice": float(np.mean([r["within_1"] for r in rows])),
            "mean_dice": float(np.mean([r["dice"] for r in rows])),
            "median_volume_error": float(np.nanmedian([r["volume_error"] for r in rows])),
            "found": float(np.mean([r["found"] for r in rows]))}


def train_seg(out_stem, checkpoint_dir, data: SegDataConfig = SegDataConfig(),
              network_config: SegNetConfig = SegNetConfig(), recipe: SegRecipe = SegRecipe(),
              device: str = "auto", precision: str = "auto", log=print) -> dict:
    """Train (or resume) and export; returns the model card written (see the module docstring)."""
    import torch
    from monai.data import DataLoader, Dataset
    from monai.losses import DiceCELoss

    from nbrisk_core.classifier.inference import resolve_device
    from nbrisk_core.classifier.training import resolve_precision
    from nbrisk_core.segment.data import epoch_patients, patient_samples
    from nbrisk_core.segment.model import LoadedSegModel, base_card, build_network, save_seg_model

    if recipe.epochs < 1 or recipe.batch_size < 1 or data.patients_per_epoch < 1:
        raise InputError(f"epochs {recipe.epochs}, batch size {recipe.batch_size} and patients per epoch "
                         f"{data.patients_per_epoch} must all be at least 1")
    device = resolve_device(device)
    bf16 = resolve_precision(precision, device)
    checkpoint_dir = Path(checkpoint_dir)
    settings = _settings(data, network_config, recipe)
    torch.manual_seed(data.seed)
    network = build_network(network_config).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=recipe.learning_rate,
                                 weight_decay=recipe.weight_decay)
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
    state = {"state_version": STATE_VERSION, "settings": settings, "epochs_done": 0, "history": [],
             "seconds": 0.0}
    if (checkpoint_dir / "state.json").is_file():
        state = _load_checkpoint(checkpoint_dir, network, optimizer, settings)
        log(f"resuming after epoch {state['epochs_done']} of {recipe.epochs} ({checkpoint_dir})")
    log(f"training on {device}, {'bf16 autocast' if bf16 else 'fp32'}; "
        f"{sum(p.numel() for p in network.parameters())} parameters")
    transforms = train_transforms()
    for epoch in range(state["epochs_done"], recipe.epochs):
        started = time.perf_counter()
        lr = learning_rate(recipe, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(data.seed + epoch)
        transforms.set_random_state(seed=(data.seed + epoch) % 2**32)
        rng = np.random.default_rng([data.seed, epoch])
        network.train()
        losses = []
        numbers = list(epoch_patients(data, epoch))
        for first in range(0, len(numbers), PATIENT_GROUP):
            samples = [s for n in numbers[first: first + PATIENT_GROUP]
                       for s in patient_samples(data.seed, n, data)]
            samples = [samples[i] for i in rng.permutation(len(samples))]
            items = [{"image": s["image"], "label": s["label"]} for s in samples]
            loader = DataLoader(Dataset(items, transform=transforms), batch_size=recipe.batch_size,
                                shuffle=False, num_workers=0)
            for batch in loader:
                images = batch["image"].float().to(device)
                labels = batch["label"].float().to(device)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                    logits = network(images)
                loss = loss_function(logits.float(), labels)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
        network.eval()
        metrics = validate(LoadedSegModel(network, network_config, {}, Path("."), device), data,
                           recipe.validation_patients)
        seconds = time.perf_counter() - started
        state["epochs_done"] = epoch + 1
        state["seconds"] = float(state["seconds"]) + seconds
        state["history"].append({"epoch": epoch + 1, "learning_rate": lr, "loss": float(np.mean(losses)),
                                 "seconds": round(seconds, 1), "validation": metrics})
        _save_checkpoint(checkpoint_dir, network, optimizer, state)
        log(f"epoch {epoch + 1}/{recipe.epochs}: loss {np.mean(losses):.4f}, validation "
            + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k != "n_series")
            + f" ({seconds:.0f} s)")

    network.eval()
    card = base_card(network_config)
    card.update({
        "training_data": {
            "source": "synthetic demo generator (nbrisk_core.demo), on the fly; never demo-cohort patients",
            "seed": data.seed, "random_stream": 2, **data.to_dict(),
            "patients_seen": recipe.epochs * data.patients_per_epoch, "phases": [str(p) for p in PHASES],
            "validation_patients": f"{recipe.validation_patients} held-out generator patients "
                                   "(numbers from 10,000,000 on), all three phases, whole volumes",
        },
        "recipe": {**recipe.to_dict(), "loss": "monai.losses.DiceCELoss(to_onehot_y, softmax, batch)",
                   "optimizer": "Adam, cosine learning-rate decay",
                   "transforms": "EnsureTyped, ScaleIntensityRanged, RandAffined(p 0.5), "
                                 "RandGaussianNoised(p 0.3)",
                   "device": device, "precision": "bf16 autocast" if bf16 else "fp32",
                   "training_seconds": round(float(state["seconds"]), 1)},
        "history": state["history"],
        "metrics": {"validation": state["history"][-1]["validation"] if state["history"] else {}},
    })
    return save_seg_model(network.cpu(), out_stem, card)
