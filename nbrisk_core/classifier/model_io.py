"""Saving and loading classifiers: safetensors weights + a JSON model card. Never unpickles.

A model is two files side by side, ``NAME.safetensors`` and ``NAME.json``. The card records
everything needed to rebuild the network and to judge it (architecture, variant, input, class
order, threshold, training cohort, recipe, metrics, software) and the SHA-256 of the weights
file. :func:`load_model` refuses a weights file whose hash or tensors do not match the card, and
returns the card parsed as a :class:`~nbrisk_core.classifier.card.ModelCard` (its data config is what
inference reads). Weights written in an older state-dict layout (the card's ``state_dict_layout``,
absent = 1) are mapped to the current keys on load (:func:`~.architectures.upgrade_state_dict`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from nbrisk_core.classifier import CLASS_ORDER, HIDDEN_UNITS
from nbrisk_core.classifier.card import CARD_VERSION, ModelCard
from nbrisk_core.errors import InputError
from nbrisk_core.hashing import sha256_file
from nbrisk_core.imaging.model_input import IMAGENET_MEAN, IMAGENET_STD, INPUT_SIZE, INPUT_VARIANTS
from nbrisk_core.imaging.windowing import MODEL_WINDOW
from nbrisk_core.jsonable import json_default as _json_default

__all__ = ["CARD_VERSION", "DEFAULT_MODEL", "SHIPPED_MODELS", "LoadedModel", "ModelCard", "base_card",
           "load_backbone_weights", "load_model", "read_card", "read_model_card", "record_evaluation",
           "record_inference", "save_model", "sha256_file", "shipped_model_path", "software_versions"]

#: variant -> the shipped model file stem in ``models/`` (data, not if-chains)
SHIPPED_MODELS: dict[str, str] = {
    "art": "swin_art_demo",
    "nc": "swin_nc_demo",
    "pv": "swin_pv_demo",
    "mp": "swin_mp_demo",
}
DEFAULT_MODEL = SHIPPED_MODELS["art"]


def software_versions() -> dict:
    """NBRisk, Python, torch and timm versions, as a model card records them."""
    from nbrisk_core.versions import software_versions as versions

    return versions(("torch", "timm"))


def base_card(arch: str, variant: str, backbone_kwargs: dict | None = None) -> dict:
    """The model card fields fixed by the architecture and input (training fills in the rest)."""
    if variant not in INPUT_VARIANTS:
        raise InputError(f"unknown variant {variant!r}; expected one of {sorted(INPUT_VARIANTS)}")
    return {
        "card_version": CARD_VERSION,
        "architecture": arch,
        "backbone_kwargs": dict(backbone_kwargs or {}),
        "head": {"hidden_units": HIDDEN_UNITS, "activation": "GELU", "embedding": "after activation",
                 "n_aux": 0},
        "variant": variant,
        "variant_label": INPUT_VARIANTS[variant].label,
        "phases": list(INPUT_VARIANTS[variant].phases),
        "window": {"width": MODEL_WINDOW.width, "level": MODEL_WINDOW.level},
        "input_size": INPUT_SIZE,
        "normalisation": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "class_order": list(CLASS_ORDER),
        "decision_threshold": 0.5,
        "threshold_rule": "0.5 on p(HR) (argmax of the softmax), as the paper's accuracy figures imply",
    }


def save_model(model, stem: Path, card: dict, half: bool = True) -> dict:
    """Write ``stem.safetensors`` (fp16 if ``half``) and ``stem.json``; return the card written.

    The card gains ``weights_file``, ``weights_dtype``, ``state_dict_layout``, ``sha256`` and ``software``.
    """
    from safetensors.torch import save_file

    from nbrisk_core.classifier.architectures import STATE_DICT_LAYOUT

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights_path = stem.with_suffix(".safetensors")
    tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu()
               for k, v in model.state_dict().items()}
    save_file(tensors, str(weights_path), metadata={"format": "pt", "nbrisk_architecture": card["architecture"]})
    card = dict(card)
    card.update(weights_file=weights_path.name, weights_dtype="float16" if half else "float32",
                state_dict_layout=STATE_DICT_LAYOUT, sha256=sha256_file(weights_path),
                software=software_versions())
    stem.with_suffix(".json").write_text(json.dumps(card, indent=2, default=_json_default) + "\n")
    return card


def read_card(path: Path) -> dict:
    """The model card of ``path`` (the ``.json`` or its ``.safetensors``) as JSON, validated
    (:meth:`ModelCard.from_record`: an InputError names the field)."""
    card_path = Path(path).with_suffix(".json")
    if not card_path.exists():
        raise InputError(f"{card_path}: model card not found (expected next to the weights file)")
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"{card_path}: not a valid JSON model card ({error})") from None
    ModelCard.from_record(card, card_path)
    return card


def read_model_card(path: Path) -> ModelCard:
    """The validated :class:`ModelCard` of ``path`` (the ``.json`` or its ``.safetensors``)."""
    card_path = Path(path).with_suffix(".json")
    return ModelCard.from_record(read_card(card_path), card_path)


@dataclass(frozen=True)
class LoadedModel:
    """A verified model ready for inference: the network (eval mode, fp32) and its card.

    ``model_card`` is the typed card inference reads; ``card`` the JSON record (for display).
    """

    model: object  # nbrisk_core.classifier.architectures.RiskClassifier
    model_card: ModelCard
    path: Path

    @property
    def card(self) -> dict:
        """The card as read from JSON (fields NBRisk does not interpret included); a copy."""
        return dict(self.model_card.record)

    @property
    def sha256(self) -> str:
        return self.model_card.sha256

    @property
    def variant(self) -> str:
        return self.model_card.variant


def load_model(path: Path, device: str = "cpu") -> LoadedModel:
    """Load ``path`` (``.safetensors`` or ``.json``), verifying SHA-256 and architecture.

    Raises
    ------
    InputError
        The file is missing, its SHA-256 differs from the card (tampered or truncated), it is not
        a safetensors file, or its tensors do not fit the architecture the card names.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from nbrisk_core.classifier.architectures import build_model, upgrade_state_dict

    path = Path(path)
    card = read_model_card(path)
    weights_path = path.with_name(card.weights_file or path.with_suffix(".safetensors").name)
    if not weights_path.exists():
        raise InputError(f"{weights_path}: model weights file not found")
    actual = sha256_file(weights_path)
    if actual != card.sha256:
        raise InputError(f"{weights_path}: SHA-256 {actual[:16]}... does not match the model card's "
                         f"{card.sha256[:16]}...; the file is truncated, corrupted or was changed")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(f"{weights_path}: not a readable safetensors file ({error})") from None
    if card.architecture == "fusion":  # image + clinical network (its card's "fusion" section builds it)
        from nbrisk_core.classifier.fusion import build_fusion

        model = build_fusion(card)
    else:
        model = build_model(card.architecture, n_aux=card.n_aux,
                            backbone_kwargs=dict(card.backbone_kwargs) or None)
    tensors = upgrade_state_dict(tensors, card.architecture, card.state_dict_layout)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [k for k in expected if k in tensors and tuple(tensors[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        raise InputError(f"{weights_path}: weights do not fit architecture {card.architecture!r} "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]})")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
    model.eval().to(torch.device(device))
    return LoadedModel(model=model, model_card=card, path=weights_path)


def load_backbone_weights(model, weights_file: Path) -> list[str]:
    """Initialise a backbone from a local file (ImageNet weights a site may hold): safetensors,
    or a timm/torch checkpoint read with ``torch.load(weights_only=True)``, into ``model.backbone``
    (the checkpoint's keys are the bare timm model's; its ImageNet classifier has no place in a
    backbone without one, and the paper's head starts fresh). Returns the keys that were not loaded."""
    import torch
    from safetensors.torch import load_file

    weights_file = Path(weights_file)
    if not weights_file.exists():
        raise InputError(f"--pretrained {weights_file}: file not found")
    if weights_file.suffix == ".safetensors":
        state = load_file(str(weights_file))
    else:
        try:
            state = torch.load(weights_file, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several types for a bad or unsafe file
            raise InputError(f"--pretrained {weights_file}: not a plain tensor checkpoint ({error})") from None
        state = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state
    own = model.backbone.state_dict()
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not usable:
        raise InputError(f"--pretrained {weights_file}: no tensor fits this architecture")
    model.backbone.load_state_dict(usable, strict=False)
    return sorted(f"backbone.{k}" for k in set(own) - set(usable))


def shipped_model_path(variant: str = "art", cohort_dir: Path | str | None = None) -> Path:
    """``<models>/<stem>.safetensors`` of a variant's shipped model (it may not exist).

    ``<models>`` is the cohort's own ``<cohort_dir>/models/`` when it exists, else ``NBRISK_MODELS_DIR``
    (:func:`nbrisk_core.config.cohort_models_dir`)."""
    from nbrisk_core.config import cohort_models_dir

    return cohort_models_dir(cohort_dir) / f"{SHIPPED_MODELS[variant]}.safetensors"


def _update_card(path: Path, change) -> dict:
    """Read the model card next to ``path``, apply ``change(card)`` and write it back; the weights
    stay untouched, so the card's SHA-256 still matches. Returns the updated card."""
    card_path = Path(path).with_suffix(".json")
    card = read_card(card_path)
    change(card)
    card_path.write_text(json.dumps(card, indent=2, default=_json_default) + "\n")
    return card


def record_evaluation(path: Path, evaluation: dict) -> dict:
    """Append an evaluation to a model card (``evaluations`` list); returns the updated card."""
    return _update_card(path, lambda card: card.setdefault("evaluations", []).append(evaluation))


def record_inference(path: Path, figures: dict) -> dict:
    """Record the optimised inference path measured on one CPU kind in the model card's ``inference``
    section (``{cpu kind: figures}``: the last measurement per kind is kept); returns the updated card."""
    return _update_card(path, lambda card: card.setdefault("inference", {})
                        .update({figures["cpu_kind"]: figures}))
