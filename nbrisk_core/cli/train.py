"""`nbrisk train`: train a classifier (the paper's recipe by default; `--stage pretrain` first).

Two stages, each a resumable run directory (``runs/<name>``: ``checkpoint.safetensors``,
``state.pt``, ``best.safetensors``, ``history.csv``, ``run.json``, ``split.csv``):

* ``--stage pretrain``: on-the-fly synthetic images with the generator's dense truth as auxiliary
  targets (stands where ImageNet pretraining stands in the paper; no network here).
* ``--stage finetune`` (default): the paper's recipe on a cohort directory, 8:2 stratified split
  fixed by ``--split-seed`` and saved with the run, early stopping on a stratified validation split
  of the training cohort (``--monitor-test`` gives the paper's optimistic variant).

``--out models/NAME`` writes the fp16 safetensors and the JSON model card with metrics.
"""

from __future__ import annotations

import argparse




def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a Swin-T / CNN risk classifier (paper's recipe)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=("finetune", "pretrain"), default="finetune")
    p.add_argument("--arch", default="swin_t", help="swin_t (default), resnet50, densenet121, vgg16, alexnet, "
                   "or fusion (Swin-T + clinical, two heads; --init a Swin-T model for its image branch)")
    p.add_argument("--variant", default="art", choices=("nc", "art", "pv", "mp"))
    p.add_argument("--cohort", help="cohort directory (finetune; default data/demo)")
    p.add_argument("--run", required=True, help="run directory, e.g. runs/swin_art")
    p.add_argument("--out", help="write the model here (models/NAME -> NAME.safetensors + NAME.json)")
    p.add_argument("--init", help="start from these weights (a run's best.safetensors or a model file)")
    p.add_argument("--pretrained", help="initialise the backbone from a local ImageNet weights file")
    p.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    p.add_argument("--monitor-test", action="store_true",
                   help="early-stop on the TESTING cohort's loss, as the paper did (optimistic)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="validation share of the training cohort")
    p.add_argument("--split-seed", type=int, default=None, help="train/test split seed (default 2025)")
    p.add_argument("--seed", type=int, default=2025)
    p.add_argument("--lr", type=float, help="max learning rate (paper 1e-5)")
    p.add_argument("--min-lr", type=float, help="cosine floor (paper 0)")
    p.add_argument("--t-max", type=int, help="cosine period in epochs (paper 20)")
    p.add_argument("--batch-size", type=int, help="paper 8")
    p.add_argument("--epochs", type=int, help="max epochs (paper 100)")
    p.add_argument("--early-stop-after", type=int, help="paper 25")
    p.add_argument("--patience", type=int, help="paper 10")
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--grad-clip", type=float)
    p.add_argument("--aux-weight", type=float)
    p.add_argument("--dense-weight", type=float, help="pretrain: weight of the per-token tumour-fraction loss")
    p.add_argument("--head-lr-mult", type=float, help="the head's learning rate relative to the backbone's")
    p.add_argument("--steps-per-epoch", type=int, help="pretrain: synthetic batches per epoch")
    p.add_argument("--optimizer", choices=("adam", "adamw"))
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--rotation", type=float, help="max rotation in degrees (paper 10)")
    p.add_argument("--translate", type=float, help="max translation fraction (paper 0.1)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CUDA when available, else the CPU")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 autocast on CUDA and where the CPU probe measured bf16 faster, else fp32")
    p.add_argument("--tiny", action="store_true", help="tiny Swin configuration (tests)")
    p.add_argument("--nproc-per-node", type=int, metavar="N",
                   help="data-parallel training in N processes on this machine (DistributedDataParallel; "
                        "gloo on CPU, NCCL on CUDA; --batch-size is the global batch). Across machines "
                        "start it with torchrun instead: torchrun --nnodes M --nproc-per-node N "
                        "--rdzv-backend c10d --rdzv-endpoint HOST:PORT -m nbrisk_core -- train ... "
                        "(docs/classifier.md)")
    p.add_argument("--cox-weight", type=float, help="fusion: weight of the Cox partial likelihood (default 0.5)")
    p.add_argument("--trainable-stages", type=int, help="fusion: how many of the last Swin stages train (default 1)")
    p.add_argument("--p-drop-clinical", type=float, help="fusion: modality dropout of the clinical vector (0.3)")
    p.add_argument("--p-drop-image", type=float, help="fusion: modality dropout of the image vector (0.15)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=run)


def build_recipe(args):
    """Recipe from the stage defaults overridden by every flag given."""
    import dataclasses

    from nbrisk_core.classifier.training import PRETRAIN_RECIPE, Recipe

    recipe = PRETRAIN_RECIPE if args.stage == "pretrain" else Recipe()
    if getattr(args, "arch", None) == "fusion":
        from nbrisk_core.classifier.fusion_training import FUSION_RECIPE_DEFAULTS

        recipe = dataclasses.replace(Recipe(stage=args.stage), **FUSION_RECIPE_DEFAULTS)  # pretrain is refused
    overrides = {"max_lr": args.lr, "min_lr": args.min_lr, "t_max": args.t_max, "batch_size": args.batch_size,
                 "max_epochs": args.epochs, "early_stop_after": args.early_stop_after, "patience": args.patience,
                 "warmup_steps": args.warmup_steps, "grad_clip": args.grad_clip, "aux_weight": args.aux_weight,
                 "steps_per_epoch": args.steps_per_epoch, "optimizer": args.optimizer,
                 "dense_weight": args.dense_weight, "head_lr_mult": args.head_lr_mult,
                 "weight_decay": args.weight_decay, "seed": args.seed,
                 "cox_weight": getattr(args, "cox_weight", None)}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.monitor_test:
        overrides["monitor"] = "test"
    aug = dataclasses.replace(recipe.augmentation, **{k: v for k, v in {"rotation_deg": args.rotation,
                                                         "translate_fraction": args.translate}.items()
                                      if v is not None})
    return dataclasses.replace(recipe, augmentation=aug, **overrides)


def run(args) -> int:
    import torch

    from nbrisk_core.classifier import pipeline

    torch.set_num_threads(max(1, args.threads))
    recipe = build_recipe(args)
    from nbrisk_core.classifier.distributed import join, launched_by_torchrun

    if launched_by_torchrun():  # torchrun ... -m nbrisk_core -- train ...: join its world
        summary = join(args, recipe)
        if summary:
            print(summary)
        return 0
    if getattr(args, "nproc_per_node", None):
        if args.arch == "fusion":
            from nbrisk_core.errors import InputError

            raise InputError("--nproc-per-node: the fusion network trains in one process")
        from nbrisk_core.classifier.distributed import launch

        print(launch(args.nproc_per_node, args, recipe))
        return 0
    if args.arch == "fusion":  # image + clinical network: its own loop (classifier.fusion_training)
        from nbrisk_core.classifier.fusion_training import train_fusion
        from nbrisk_core.errors import InputError

        if recipe.stage != "finetune":
            raise InputError(f"--stage {recipe.stage}: the fusion network has no pretraining stage; "
                             "--init a pretrained Swin-T model instead")
        result = train_fusion(args, recipe)
    else:
        result = pipeline.train_run(args, recipe)
    print(result["summary"])
    return 0
