"""The typed arguments of one training run (:func:`nbrisk_core.classifier.pipeline.train_run`).

``nbrisk train`` parses them from its flags; library callers (``nbrisk reproduce``) build one directly
instead of going through the command line. The other argument of a run is its
:class:`~nbrisk_core.classifier.training.Recipe` (the hyper-parameters).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrainingRun:
    """What one run trains, on what, and where it writes (the fields of ``nbrisk train``'s flags)."""

    run: Path                      # run directory (checkpoint, history, split, run.json)
    arch: str = "swin_t"
    variant: str = "art"           # nc | art | pv | mp
    cohort: Path | None = None     # finetune: cohort directory (None: the demo cohort)
    out: Path | None = None        # write the model here (NAME -> NAME.safetensors + NAME.json)
    init: Path | None = None       # start from these weights
    pretrained: Path | None = None  # a local ImageNet weights file for the backbone
    resume: bool = False
    val_fraction: float = 0.2
    split_seed: int | None = None  # None: 2025
    tiny: bool = False             # tiny Swin configuration
    device: str = "auto"           # auto | cpu | cuda
    precision: str = "auto"        # auto | bf16 | fp32
    no_progress: bool = False
