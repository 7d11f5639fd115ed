"""`nbrisk train-seg`: train (or resume) the MONAI tumour-segmentation network on generator studies.

Checkpoints after every epoch into ``--checkpoint-dir``; running the same command again resumes after
the last completed epoch. When done, writes ``--out`` (``.safetensors`` fp16 + ``.json`` model card).
See :mod:`nbrisk_core.segment.training` for the recipe.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    from nbrisk_core.segment import SEG_TRAINING_SEED

    p = subparsers.add_parser("train-seg", help="train the tumour-segmentation network (resumable)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None, metavar="STEM",
                   help="model file stem (default models/seg_demo -> seg_demo.safetensors + seg_demo.json)")
    p.add_argument("--checkpoint-dir", type=Path, default=None, metavar="DIR",
                   help="where checkpoints go and resume from (default STEM.checkpoint/)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--patients-per-epoch", type=int, default=128, help="new generator patients per epoch")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--validation-patients", type=int, default=8)
    p.add_argument("--seed", type=int, default=SEG_TRAINING_SEED,
                   help=f"seed of the training patients (default {SEG_TRAINING_SEED}; not the demo cohort's)")
    p.add_argument("--input-size", type=int, default=128, help="network input in pixels (default 128)")
    p.add_argument("--channels", default="16,32,64,128,256", help="UNet channels per level")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 autocast on CUDA and where the CPU probe measured it faster")
    p.set_defaults(handler=run)


def run(args) -> int:
    import sys

    from nbrisk_core.errors import InputError
    from nbrisk_core.segment.data import SegDataConfig
    from nbrisk_core.segment.model import SegNetConfig
    from nbrisk_core.segment.training import SegRecipe, train_seg

    if args.out is None:
        from nbrisk_core.config import models_dir
        from nbrisk_core.segment import SHIPPED_SEG_MODEL

        args.out = models_dir() / SHIPPED_SEG_MODEL
    stem = args.out.with_suffix("") if args.out.suffix in (".safetensors", ".json") else args.out
    try:
        channels = tuple(int(c) for c in args.channels.split(","))
    except ValueError:
        raise InputError(f"--channels {args.channels!r}: expected comma-separated integers, "
                         "e.g. 16,32,64") from None
    if len(channels) < 2 or min(channels) < 1:
        raise InputError(f"--channels {args.channels!r}: expected at least two positive widths")
    network = SegNetConfig(channels=channels, strides=(2,) * (len(channels) - 1), input_size=args.input_size)
    data = SegDataConfig(seed=args.seed, input_size=args.input_size,
                         patients_per_epoch=args.patients_per_epoch)
    recipe = SegRecipe(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                       validation_patients=args.validation_patients)
    checkpoint = args.checkpoint_dir or stem.with_name(stem.name + ".checkpoint")
    card = train_seg(stem, checkpoint, data, network, recipe, device=args.device, precision=args.precision,
                     log=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"wrote {stem}.safetensors ({card['size_bytes']} bytes, sha256 {card['sha256'][:16]}...) "
          f"and {stem}.json")
    return 0
