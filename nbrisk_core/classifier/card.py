"""The model card as a frozen, validated type: what inference reads from it.

A model's JSON card (``NAME.json`` next to ``NAME.safetensors``, :mod:`.model_io`) records how the
network was built, trained and judged. :class:`ModelCard` parses it once and checks every field that
inference depends on; a bad card is an :class:`~nbrisk_core.errors.InputError` naming the file, the
field, the value and what was expected. Its :class:`DataConfig` (timm's "data config": phases,
window, input size, mean/std) is what turns a case's slices into the model's tensor
(:meth:`DataConfig.model_input`), so a model trained with another window is fed with that window.

Fields NBRisk does not interpret (training recipe, metrics, history, evaluations) stay in
:attr:`ModelCard.record`, the card as read, for display and for appending evaluations.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from nbrisk_core.classifier import CLASS_ORDER, HIDDEN_UNITS
from nbrisk_core.errors import InputError
from nbrisk_core.imaging.model_input import INPUT_VARIANTS, build_model_input_from_chosen
from nbrisk_core.imaging.windowing import Window

#: version of the card's JSON format (fields are only ever added; every version still loads)
CARD_VERSION = 1
#: a card without ``decision_threshold`` (none was written without one): argmax of the softmax
DEFAULT_THRESHOLD = 0.5
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class DataConfig:
    """How a case becomes the model's input: the preprocessing recorded in the card.

    Attributes
    ----------
    phases : tuple of str
        The phases read, in channel order (``("art",)``; ``("nc", "art", "pv")`` for Swin-MP).
    window : Window
        The CT window that maps HU to 8 bits, (0028,1051) width / (0028,1050) centre.
    input_size : int
        Side of the square input in pixels (224 for Swin-T).
    mean, std : tuple of 3 floats
        Per-channel standardisation after scaling to [0, 1] (timm's ImageNet defaults for Swin-T).
    variant : str
        The classifier variant (``"art"``...), the key of
        :data:`nbrisk_core.imaging.model_input.INPUT_VARIANTS`.
    """

    variant: str
    phases: tuple[str, ...]
    window: Window
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def model_input(self, slices_by_phase: Mapping) -> np.ndarray:
        """The float32 ``(3, input_size, input_size)`` input of one case.

        ``slices_by_phase`` maps a phase to its chosen slice: HU (a 2-D float or signed-integer
        array, or a Case-page entry with ``"hu"``), windowed here with :attr:`window` without rounding
        HU first, or an 8-bit grey image (uint8, or an entry with ``"grey"``) taken as it is. The CLI
        and the dashboard both call this, so a case gives the same tensor in both.
        """
        return build_model_input_from_chosen(slices_by_phase, self.variant, window=self.window,
                                             mean=self.mean, std=self.std, size=self.input_size,
                                             phases=self.phases)


@dataclass(frozen=True)
class ModelCard:
    """The validated model card (see the module docstring); build it with :meth:`from_record`."""

    architecture: str
    variant: str
    variant_label: str
    data: DataConfig
    class_order: tuple[str, ...]
    decision_threshold: float
    sha256: str
    weights_file: str | None
    backbone_kwargs: Mapping = field(default_factory=dict, compare=False)
    n_aux: int = 0
    #: key layout of the weights file (:data:`nbrisk_core.classifier.architectures.STATE_DICT_LAYOUT`);
    #: cards written before the layout was recorded hold layout 1
    state_dict_layout: int = 1
    card_version: int = CARD_VERSION
    synthetic_data: bool = False
    record: Mapping = field(default_factory=dict, compare=False, repr=False)

    @property
    def phases(self) -> tuple[str, ...]:
        return self.data.phases

    @property
    def window(self) -> Window:
        return self.data.window

    @classmethod
    def from_record(cls, record: Mapping, source: str | Path = "model card") -> ModelCard:
        """Parse and validate a card read from JSON; ``source`` names the file in error messages."""
        if not isinstance(record, Mapping):
            raise InputError(f"{source}: a model card is a JSON object, got {type(record).__name__}")
        fields = _Fields(record, source)
        for key in ("architecture", "variant", "sha256", "class_order"):
            fields.require(key)
        weights_file = record.get("weights_file")
        if weights_file is not None and (not isinstance(weights_file, str) or weights_file in ("", ".", "..")
                                         or Path(weights_file).name != weights_file or "\\" in weights_file):
            raise InputError(f"{source}: weights_file {weights_file!r} must be a bare file name next to the "
                             "card (no folder, no '..', not absolute)")
        card_version = fields.integer("card_version", default=1, low=1)
        if card_version > CARD_VERSION:
            raise InputError(f"{source}: card_version = {card_version}; this NBRisk reads versions up to "
                             f"{CARD_VERSION} (the model was written by a newer NBRisk)")
        # the names only, not the architectures module: reading a card imports neither torch nor timm
        from nbrisk_core.classifier import ARCHITECTURE_NAMES, STATE_DICT_LAYOUT

        # "fusion": the image + clinical network of nbrisk_core.classifier.fusion (its own "fusion" section)
        architecture = fields.choice("architecture", sorted(ARCHITECTURE_NAMES) + ["fusion"])
        variant = fields.choice("variant", sorted(INPUT_VARIANTS))
        phases = tuple(fields.string_list("phases"))
        if phases != INPUT_VARIANTS[variant].phases:
            raise InputError(f"{source}: field 'phases' = {list(phases)}; variant {variant!r} reads "
                             f"{list(INPUT_VARIANTS[variant].phases)}")
        class_order = tuple(fields.string_list("class_order"))
        if class_order != CLASS_ORDER:
            raise InputError(f"{source}: field 'class_order' = {list(class_order)}; expected "
                             f"{list(CLASS_ORDER)} (output 0 = high risk)")
        sha256 = record["sha256"]
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise InputError(f"{source}: field 'sha256' = {sha256!r}; expected 64 lower-case hex digits")
        window = fields.mapping("window")
        width = fields.number("window.width", window.get("width"), low=1.0)
        level = fields.number("window.level", window.get("level"))
        normalisation = fields.mapping("normalisation")
        mean = fields.triple("normalisation.mean", normalisation.get("mean"))
        std = fields.triple("normalisation.std", normalisation.get("std"), positive=True)
        head = fields.mapping("head", default={})
        hidden = head.get("hidden_units", HIDDEN_UNITS)
        if hidden != HIDDEN_UNITS:
            raise InputError(f"{source}: field 'head.hidden_units' = {hidden!r}; expected {HIDDEN_UNITS}")
        backbone_kwargs = record.get("backbone_kwargs") or {}
        if not isinstance(backbone_kwargs, Mapping):
            raise InputError(f"{source}: field 'backbone_kwargs' = {backbone_kwargs!r}; "
                             "expected a JSON object")
        threshold = fields.number("decision_threshold", record.get("decision_threshold", DEFAULT_THRESHOLD),
                                  low=0.0, high=1.0)
        data = DataConfig(variant=variant, phases=phases,
                          window=Window("model card", width, level),
                          input_size=fields.integer("input_size", low=1), mean=mean, std=std)
        return cls(architecture=architecture, variant=variant,
                   variant_label=str(record.get("variant_label") or INPUT_VARIANTS[variant].label),
                   data=data, class_order=class_order, decision_threshold=threshold, sha256=sha256,
                   weights_file=weights_file, backbone_kwargs=MappingProxyType(dict(backbone_kwargs)),
                   n_aux=fields.integer("head.n_aux", head.get("n_aux", 0), low=0),
                   state_dict_layout=fields.integer("state_dict_layout", default=1, low=1,
                                                    high=STATE_DICT_LAYOUT),
                   card_version=card_version, synthetic_data=bool(record.get("synthetic_data", False)),
                   record=MappingProxyType(dict(record)))


class _Fields:
    """Typed reads of one card's fields, each failure an InputError naming file, field and value."""

    _MISSING = object()

    def __init__(self, record: Mapping, source):
        self.record, self.source = record, source

    def _fail(self, name: str, value, expected: str):
        return InputError(f"{self.source}: field {name!r} = {value!r}; expected {expected}")

    def require(self, name: str):
        if name not in self.record:
            raise InputError(f"{self.source}: model card lacks the field {name!r}")
        return self.record[name]

    def _get(self, name: str, value, default):
        if value is not self._MISSING:
            return value
        if name in self.record:
            return self.record[name]
        if default is not self._MISSING:
            return default
        return self.require(name)

    def choice(self, name: str, allowed: list[str]) -> str:
        value = self.require(name)
        if value not in allowed:
            raise self._fail(name, value, f"one of {allowed}")
        return value

    def string_list(self, name: str) -> list[str]:
        value = self.require(name)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self._fail(name, value, "a non-empty list of strings")
        return value

    def mapping(self, name: str, default=_MISSING) -> Mapping:
        value = self._get(name, self._MISSING, default)
        if not isinstance(value, Mapping):
            raise self._fail(name, value, "a JSON object")
        return value

    def number(self, name: str, value, low: float | None = None, high: float | None = None) -> float:
        bounds = f" in [{low}, {high}]" if low is not None and high is not None else (
            f" >= {low}" if low is not None else "")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or (low is not None and value < low) or (high is not None and value > high):
            raise self._fail(name, value, f"a finite number{bounds}")
        return float(value)

    def integer(self, name: str, value=_MISSING, default=_MISSING, low: int | None = None,
                high: int | None = None) -> int:
        value = self._get(name, value, default)
        if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low) \
                or (high is not None and value > high):
            bounds = f" in {low}-{high}" if high is not None else (f" >= {low}" if low is not None else "")
            raise self._fail(name, value, f"an integer{bounds}")
        return value

    def triple(self, name: str, value, positive: bool = False) -> tuple[float, float, float]:
        if not isinstance(value, list | tuple) or len(value) != 3 or any(
                isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)
                or (positive and v <= 0) for v in value):
            kind = "finite positive" if positive else "finite"
            raise self._fail(name, value, f"3 {kind} numbers (one per channel)")
        return tuple(float(v) for v in value)
