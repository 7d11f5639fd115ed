"""``nbrisk compare``: clinical, image and combined models side by side under one protocol.

::

    nbrisk compare --cohort data/demo --out reports/compare_demo
    nbrisk compare --cohort data/demo --external data/site-b --out reports/compare --models clinical_lr,swin_art,combined

Stratified K-fold cross-validation on the development cohort (the training part of the 8:2 split),
then the development-fitted models on the test split and, with --external, on another cohort (no
refit). Writes ``report.json``, ``predictions.csv``, ``summary.csv`` and ``report.html`` into --out
(docs/compare.md). A model whose inputs are missing is reported as "not run: <reason>".
"""

from __future__ import annotations

import argparse
from pathlib import Path



def register(subparsers) -> None:
    parser = subparsers.add_parser("compare", help="compare clinical, image and combined models (CV, test, external)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohort", type=Path, required=True, help="development cohort directory")
    parser.add_argument("--external", type=Path, help="external cohort scored with frozen models")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=2025, help="seed of the folds and bootstraps (default: %(default)s)")
    parser.add_argument("--models", help="comma-separated model names (default: all; see docs/compare.md)")
    parser.add_argument("--classifier", type=Path,
                        help="Swin-ART .safetensors (default: the cohort's shipped one)")
    parser.add_argument("--bootstrap", type=int, default=500,
                        help="bootstrap resamples of the C-index CIs (default: %(default)s)")
    parser.add_argument("--no-figures", action="store_true", help="report without figures")
    parser.set_defaults(handler=run)


def run(args) -> int:
    import sys

    from nbrisk_core.compare.candidates import parse_models
    from nbrisk_core.compare.data import load_compare_data
    from nbrisk_core.compare.protocol import run_compare, write_outputs
    from nbrisk_core.errors import InputError

    models = parse_models(args.models)
    if args.bootstrap < 50:
        raise InputError(f"--bootstrap {args.bootstrap}: expected at least 50 resamples", source="--bootstrap")
    data = load_compare_data(args.cohort, classifier=args.classifier)
    external = load_compare_data(args.external, classifier=args.classifier) if args.external else None
    result = run_compare(data, external=external, models=models, folds=args.folds, seed=args.seed,
                         n_bootstrap=args.bootstrap, progress=lambda m: print(m, file=sys.stderr))
    files = write_outputs(result, Path(args.out), figures=not args.no_figures)
    for name, entry in result.report["models"].items():
        if entry["status"] != "ok":
            print(f"{name}: not run: {entry['reason']}")
            continue
        cv, line = entry["cv"], f"{name}: CV AUC {entry['cv']['mean']:.3f}"
        line += (f" ± {cv['sd']:.3f}" if cv["sd"] is not None else "") + f", pooled {cv['oof_auc']:.3f}"
        for set_name in ("test", "external"):
            metrics = entry.get(set_name)
            if isinstance(metrics, dict) and "auc" in metrics:
                low, high = metrics["auc_ci"]
                line += f"; {set_name} AUC {metrics['auc']:.3f} ({low:.3f}-{high:.3f})"
        print(line)
    print(f"report: {files['report.html']}")
    return 0
