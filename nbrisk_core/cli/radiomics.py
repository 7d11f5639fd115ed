"""``nbrisk radiomics``: IBSI radiomics features of the tumour on every patient's chosen slice.

::

    nbrisk radiomics --cohort data/demo --out radiomics.parquet [--phase art] [--bin-width 25]

Cached as ``data/radiomics/<settings>-<cohort>.parquet`` (a second call reads it); ``--out`` writes a
copy (``.parquet`` or ``.csv``). Settings and the IBSI validation: ``docs/radiomics.md``.
"""

from __future__ import annotations

from pathlib import Path

from nbrisk_core.case import PHASES


def register(subparsers) -> None:
    from nbrisk_core.cli import path_argument

    p = subparsers.add_parser("radiomics",
                              help="IBSI radiomics features of a cohort's chosen slices (cached)",
                              description=__doc__)
    p.add_argument("--cohort", type=path_argument, help="cohort directory (default data/demo)")
    p.add_argument("--out", type=path_argument, required=True, metavar="FILE",
                   help="write the table here (.parquet or .csv)")
    p.add_argument("--phase", action="append", choices=[str(p) for p in PHASES],
                   help="phase(s) to extract (repeatable; default art)")
    p.add_argument("--bin-width", type=float, default=25.0, help="fixed bin size in HU (default 25)")
    p.add_argument("--spacing", type=float, default=1.0, help="in-plane resampling in mm (default 1.0)")
    p.add_argument("--aggregation", default="2D_smrg", choices=("2D_avg", "2D_smrg"),
                   help="texture aggregation on a slice (default 2D_smrg: directions merged)")
    p.add_argument("--no-cache", action="store_true", help="recompute and do not write the cache")
    p.add_argument("--baseline", type=path_argument, metavar="REPORT.json",
                   help="also fit the radiomics model (contour ICC, LASSO in CV, logistic) on the cohort's "
                        "8:2 split and write its test AUC beside Swin-ART's and the oracle's (DeLong)")
    p.add_argument("--save-model", type=path_argument, metavar="MODEL.json",
                   help="with --baseline: save the fitted model (logistic head, a linear rad-score; JSON, no "
                        "pickle) with its test evaluation, for the Risk and Cohort pages "
                        "(e.g. models/radiomics_demo.json)")
    p.add_argument("--grid-card", type=path_argument, action="append", metavar="BUNDLE",
                   help="with --save-model: record the survival grid's result of a prognosis bundle "
                        "('nbrisk prognosis fit --features radiomics|both ...'; repeatable) beside the model, "
                        "for the Cohort page")
    p.add_argument("--model", type=path_argument, help="Swin-ART model for --baseline "
                   "(default: the shipped models/swin_art_demo.safetensors)")
    p.set_defaults(handler=run)


def run(args) -> int:
    import dataclasses
    import time

    from nbrisk_core.errors import InputError
    from nbrisk_core.radiomics.cohort import SLICE_SETTINGS, cohort_radiomics

    out = Path(args.out)
    if out.suffix not in (".parquet", ".csv"):
        raise InputError(f"--out {out}: expected a .parquet or .csv file name")
    if not args.bin_width > 0:
        raise InputError(f"--bin-width {args.bin_width}: expected a positive number of HU")
    if not args.spacing > 0:
        raise InputError(f"--spacing {args.spacing}: expected a positive number of mm")
    settings = dataclasses.replace(SLICE_SETTINGS, bin_width=args.bin_width,
                                   new_spacing=(args.spacing, args.spacing), aggregation=args.aggregation)
    phases = tuple(dict.fromkeys(args.phase or ["art"]))
    started = time.perf_counter()
    frame = cohort_radiomics(Path(args.cohort) if args.cohort else None, phases, settings,
                             use_cache=not args.no_cache, progress=True)
    if out.suffix == ".parquet":
        frame.to_parquet(out)
    else:
        frame.to_csv(out)
    skipped = frame.attrs.get("skipped") or {}
    note = "; ".join(f"{len(v)} with {k}" for k, v in skipped.items())
    if args.save_model and not args.baseline:
        raise InputError("--save-model: needs --baseline REPORT.json (the model is fitted by the baseline)")
    if args.baseline:
        _baseline(args, phases[0])
    seconds = time.perf_counter() - started
    print(f"{len(frame)} patients x {frame.shape[1]} radiomics features in {seconds:.1f} s"
          f" -> {out}" + (f" (left out: {note})" if note else ""))
    return 0


def _baseline(args, phase: str) -> None:
    import json

    import pandas as pd

    from nbrisk_core.classifier.model_io import shipped_model_path
    from nbrisk_core.config import demo_cohort_dir
    from nbrisk_core.radiomics.model import run_baseline

    cohort = Path(args.cohort) if args.cohort else demo_cohort_dir()
    comparators = {}
    model = Path(args.model) if args.model else shipped_model_path("art", cohort)
    if model.is_file():
        from nbrisk_core.validation.external import run_classifier

        comparators["Swin-ART"] = run_classifier(model, cohort)[0]["p_high_risk"]
    truth = cohort / "truth.csv"
    if truth.is_file():
        table = pd.read_csv(truth, dtype={"patient_id": str}).set_index("patient_id")
        if "p_high_risk" in table:
            comparators["oracle"] = table["p_high_risk"]
    result = run_baseline(cohort, phase, comparators, progress=True)
    Path(args.baseline).write_text(json.dumps(result, indent=1, default=str))
    if args.save_model:
        from nbrisk_core.radiomics.score import RadScore, save

        evaluation = {k: result[k] for k in ("cohort", "cohort_sha256", "phase", "n_train", "n_test",
                                             "n_features", "n_robust", "cv_auc", "test_auc", "comparisons",
                                             "heads") if k in result}
        for head in evaluation.get("heads", {}).values():
            head.pop("best_params", None)
        evaluation["rad_score_survival"] = result.get("rad_score_survival")
        if args.grid_card:
            from nbrisk_core.radiomics.score import grid_record

            evaluation["survival_grid"] = [grid_record(card) for card in args.grid_card]
        save(RadScore.from_dict(result["rad_score"]), args.save_model, evaluation=evaluation)
        print(f"radiomics model -> {args.save_model}")
    auc = result["test_auc"]
    line = f"radiomics model: test AUC {auc['value']:.3f} ({auc['ci_low']:.3f}-{auc['ci_high']:.3f})"
    for name, c in result["comparisons"].items():
        line += (f"; {name} {c['test_auc']['value']:.3f}, DeLong p = {c['delong_vs_radiomics']['p']:.3g}")
    print(line + f" on {result['n_test']} test patients -> {args.baseline}")
