"""``nbrisk validate``: external validation of frozen models on another centre's cohort.

::

    nbrisk validate --prognosis models/prognosis_demo --classifier models/swin_art_demo.safetensors \\
        --cohort data/site-b --out reports/site-b
    nbrisk validate --prognosis models/site_a_clinical --cohort data/site-b --out reports/site-b  # no images

No refit, no re-standardisation, the frozen MLRS cut-off, imputation with the frozen training donors.
Writes ``report.html``, ``report.json``, ``patients.csv`` and ``case_mix.csv`` into --out
(docs/validation.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("validate", help="external validation of frozen models on another cohort",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prognosis", type=Path, required=True, help="prognosis bundle folder "
                                                                      "('nbrisk prognosis fit')")
    parser.add_argument("--cohort", type=Path, required=True, help="the external cohort directory")
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument("--classifier", type=Path,
                        help="classifier .safetensors (optional; needs images in the cohort): AUC, accuracy, "
                             "calibration, and the CT features of a bundle fitted on its embeddings")
    parser.add_argument("--embeddings", type=Path, help="CT features of the cohort (parquet/CSV, patient_id, "
                                                        "ct01..ct16) on the bundle's scale")
    parser.add_argument("--stand-in-embeddings", action="store_true",
                        help="STAND-IN CT features from truth.csv, for a bundle fitted on stand-ins (tests)")
    parser.add_argument("--bootstrap", type=int, default=500, help="bootstrap resamples of the CIs "
                                                                   "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=2025, help="seed of the bootstrap (default: %(default)s)")
    parser.add_argument("--no-figures", action="store_true", help="report without figures")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from nbrisk_core.errors import InputError
    from nbrisk_core.validation.external import validate_external

    if args.bootstrap < 50:
        raise InputError(f"--bootstrap {args.bootstrap}: expected at least 50 resamples")
    if args.embeddings and args.stand_in_embeddings:
        raise InputError("--embeddings and --stand-in-embeddings exclude each other")
    report = validate_external(args.prognosis, args.cohort, args.out, classifier=args.classifier,
                               embeddings_file=args.embeddings, stand_in=args.stand_in_embeddings,
                               n_bootstrap=args.bootstrap, seed=args.seed, figures=not args.no_figures)
    progn = report["prognosis"]
    low, high = progn["c_index_ci"]
    line = (f"{report['cohort']['name']}: n = {report['n']}, deaths = {report['events']}; MLRS C-index "
            f"{progn['c_index']:.3f}" + (f" ({low:.3f}-{high:.3f})" if low is not None else ""))
    if "classifier" in report:
        c = report["classifier"]
        line += f"; classifier AUC {c['auc']:.3f} ({c['auc_ci'][0]:.3f}-{c['auc_ci'][1]:.3f})"
    print(line)
    print(f"report: {args.out / 'report.html'}")
    return 0
