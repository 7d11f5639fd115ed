"""``nbrisk prognosis``: fit the prognosis pipeline once and save it as a portable bundle.

::

    nbrisk prognosis fit --cohort data/demo --out models/prognosis_demo            # classifier CT features
    nbrisk prognosis fit --cohort DIR --features clinical --out models/site_a      # a cohort without images
    nbrisk prognosis fit --cohort data/demo --features radiomics --grid full --out runs/rad   # rad-score + clinical
    nbrisk prognosis fit --cohort DIR --stand-in-embeddings --grid test --out /tmp/b
    nbrisk prognosis show models/prognosis_demo       # verify and print the card

A bundle is a folder: ``bundle.json`` (structure), ``bundle.safetensors`` (arrays), ``card.json`` (model
card with the SHA-256 of both). Nothing is pickled (docs/validation.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("prognosis",
                                   help="fit the prognosis pipeline and save it as a portable bundle",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    fit = sub.add_parser("fit", help="fit on a cohort and write a bundle folder")
    fit.add_argument("--cohort", type=Path, required=True,
                     help="cohort directory (clinical.csv, cohort.json)")
    fit.add_argument("--out", type=Path, required=True, help="bundle folder to write (e.g. models/NAME)")
    fit.add_argument("--features", choices=["both", "clinical", "ct", "radiomics"], default="both",
                     help="candidate features: both (Swin-ART CT features + clinical, the paper), clinical, "
                          "ct (Swin-ART CT features alone), radiomics (the radiomics rad-score fitted on the "
                          "training patients + clinical; needs 'nbrisk radiomics' first) "
                          "(default: %(default)s)")
    fit.add_argument("--embeddings", type=Path, help="CT features: parquet or CSV (patient_id, ct01..ct16); "
                                                     "default: the shipped classifier's embeddings "
                                                     "of the cohort")
    fit.add_argument("--stand-in-embeddings", action="store_true",
                     help="STAND-IN CT features from truth.csv (synthetic cohorts, tests; labelled as such)")
    fit.add_argument("--grid", default="app", choices=["app", "test", "quick", "full"],
                     help="app: one combination (--selected, default the paper's best) with the full "
                          "hyperparameters; test/quick/full: the 117-combination grid (default: %(default)s)")
    fit.add_argument("--selected",
                     help="with --grid app: the combination to fit, e.g. 'StepCox[backward] + RSF'")
    fit.add_argument("--seed", type=int, default=2025,
                     help="seed of every random step (default: %(default)s)")
    fit.add_argument("--n-jobs", type=int, default=2,
                     help="parallel workers for the grid (default: %(default)s)")
    fit.set_defaults(handler=run_fit)
    show = sub.add_parser("show", help="verify a bundle (SHA-256, schema, versions) and print its card")
    show.add_argument("bundle", type=Path, help="bundle folder")
    show.set_defaults(handler=run_show)


def embeddings_for_fit(cohort: Path, features: str, embeddings_file, stand_in: bool, seed: int):
    """``(embeddings or None, provenance dict)`` for fitting a bundle."""
    import pandas as pd

    from nbrisk_core.errors import InputError
    from nbrisk_core.prognosis.pipeline import read_embeddings, stand_in_embeddings

    if embeddings_file and stand_in:
        raise InputError("--embeddings and --stand-in-embeddings exclude each other")
    if features in ("clinical", "radiomics"):
        if embeddings_file or stand_in:
            raise InputError(f"--features {features} uses no Swin-ART CT features: leave out --embeddings and "
                             "--stand-in-embeddings")
        if features == "radiomics":
            from nbrisk_core.features import cohort_radiomics_block

            return cohort_radiomics_block(cohort, seed=0, progress=True)
        return None, {"source": "none"}
    if embeddings_file:
        from nbrisk_core.hashing import sha256_file

        return read_embeddings(embeddings_file), {"source": "file", "path": str(embeddings_file),
                                                  "sha256": sha256_file(Path(embeddings_file))}
    if stand_in:
        truth_path = cohort / "truth.csv"
        if not truth_path.exists():
            raise InputError(f"{truth_path}: not found: --stand-in-embeddings needs the truth.csv of a "
                             "synthetic cohort")
        truth = pd.read_csv(truth_path, dtype={"patient_id": str})
        return stand_in_embeddings(truth, seed=seed), {
            "source": "stand-in", "seed": seed, "note": "noisy latent score; NOT classifier features"}
    from nbrisk_core.classifier.model_io import read_model_card, shipped_model_path
    from nbrisk_core.features import cohort_ct_features

    # the caller embeds: the prognosis engine takes the cohort's CT feature table
    embeddings = cohort_ct_features(cohort)   # InputError saying how to make them when the model is missing
    model_path = shipped_model_path("art", cohort)
    return embeddings, {"source": "classifier", "model": model_path.name,
                        "model_sha256": read_model_card(model_path).sha256}


def run_fit(args) -> int:
    import time

    from nbrisk_core.errors import InputError
    from nbrisk_core.prognosis.bundle import save_pipeline
    from nbrisk_core.prognosis.pipeline import fit_cohort_pipeline, read_cohort

    if args.n_jobs < 1:
        raise InputError(f"--n-jobs {args.n_jobs}: expected 1 or more")
    if args.selected and args.grid != "app":
        raise InputError("--selected is used with --grid app only")
    start = time.perf_counter()
    clinical, _, _ = read_cohort(args.cohort)
    embeddings, provenance = embeddings_for_fit(args.cohort, args.features, args.embeddings,
                                                args.stand_in_embeddings, args.seed)
    pipeline = fit_cohort_pipeline(args.cohort, embeddings, grid=args.grid, selected=args.selected,
                                   seed=args.seed, n_jobs=args.n_jobs, features=args.features,
                                   backend="sequential" if args.n_jobs == 1 else "loky")
    card = save_pipeline(pipeline, args.out, cohort_dir=args.cohort, clinical=clinical, embeddings=provenance)
    test = card["metrics"].get("test", {}).get("c_index") or [None, None, None]
    print(f"selected {pipeline.selected_}; testing C-index "
          + (f"{test[0]:.3f}" if test[0] is not None else "n/a")
          + f"; bundle {args.out} ({card['bundle_bytes'] / 1e6:.1f} MB, SHA-256 {card['sha256'][:16]}), "
          f"{time.perf_counter() - start:.1f} s")
    if provenance["source"] == "stand-in":
        print("NOTE: fitted on STAND-IN CT features (not the classifier's): "
              "for tests and demonstrations only")
    return 0


def run_show(args) -> int:
    import json

    from nbrisk_core.prognosis.bundle import load_pipeline

    bundle = load_pipeline(args.bundle)
    print(json.dumps(bundle.card, indent=2))
    print(f"verified: SHA-256 {bundle.sha256[:16]}, schema and library versions match; model "
          f"{bundle.pipeline.selected_}")
    return 0
