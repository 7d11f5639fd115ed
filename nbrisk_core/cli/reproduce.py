"""`nbrisk reproduce`: the paper's whole protocol in one resumable command."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "reproduce", help="run the paper's protocol end to end and write an HTML/JSON report",
        description="Split, train and evaluate the classifiers, embed, run the prognosis chain, and write "
        "report.html + report.json with the paper's value, NBRisk's value and the cohort's oracle side by "
        "side. Re-running with the same --out resumes after the last finished stage.")
    parser.add_argument("--data", type=Path, default=None, help="cohort directory (default: data/demo)")
    parser.add_argument("--profile", choices=("quick", "paper"), default="quick",
                        help="quick: every step, 1 epoch per classifier, tiny Swin, reduced grid (minutes); "
                        "paper: the paper's full recipe and grid (hours on CPU)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="training device (auto: CUDA when available)")
    parser.add_argument("--swin-init", type=Path, default=None,
                        help="weights the four Swin-T variants start from (a pretraining run's best.safetensors "
                        "or a model file): the synthetic stand-in for the paper's ImageNet weights; "
                        "default from scratch")
    parser.add_argument("--seed", type=int, default=2025, help="split and training seed (default 2025)")
    parser.add_argument("--out", type=Path, default=Path("reports/reproduce"), help="output directory")
    parser.set_defaults(handler=run)


def run(args) -> int:
    import os

    from nbrisk_core.config import demo_cohort_dir
    from nbrisk_core.errors import InputError
    from nbrisk_core.reproduce.protocol import protocol_stages
    from nbrisk_core.reproduce.runner import Context, StageFailed, run_stages

    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    else:
        from nbrisk_core.classifier.inference import resolve_device

        resolve_device(args.device)  # an unavailable --device cuda is an InputError here, not mid-run
    data = (args.data or demo_cohort_dir()).resolve()
    if not (data / "clinical.csv").exists():
        raise InputError(f"--data {data}: no clinical.csv (build the demo cohort with `nbrisk demo build`)")
    swin_init = None
    if args.swin_init is not None:
        swin_init = args.swin_init.resolve()
        if not swin_init.is_file():
            raise InputError(f"--swin-init {args.swin_init}: file not found (expected a .safetensors weights file)")
    ctx = Context(data_dir=data, out_dir=args.out.resolve(), profile=args.profile, device=args.device, seed=args.seed,
                  swin_init=swin_init)
    try:
        run_stages(protocol_stages(), ctx)
    except StageFailed as error:
        print(f"nbrisk reproduce: {error}\nThe finished stages are kept in {ctx.out_dir}; fix the cause and "
              "run the same command again to resume.", flush=True)
        return 1
    print(f"Report: {ctx.results['report']['html']}\nNumbers: {ctx.results['report']['json']}")
    return 0
