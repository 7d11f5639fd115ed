"""``nbrisk cohort import``: a research group's clinical sheet (and DICOM studies) -> a cohort directory;
``nbrisk cohort slices``: the slice review state, and (``--auto``) the automatic slice proposals.

::

    nbrisk cohort slices --cohort data/site-b --auto      # propose the max-area slices, then review them
    nbrisk cohort import --clinical site.xlsx --mapping site.toml --out data/site-b
    nbrisk cohort import --clinical site.csv --mapping site.toml --studies pacs/ --out data/site-b \
        --drop-invalid

The format of the cohort and of the mapping: ``docs/cohort-format.md``. Invalid rows fail the import
(exit 2, a table of every problem on stderr, nothing written) unless ``--drop-invalid`` is given.
"""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("cohort", help="import a research cohort (clinical sheet + DICOM "
                                                  "studies), propose and review its slices",
                                   description="Work with cohort directories "
                                               "(format: docs/cohort-format.md).")
    sub = parser.add_subparsers(dest="cohort_command", metavar="ACTION", parser_class=type(parser))
    sub.required = True
    imp = sub.add_parser("import", help="import a clinical sheet (.csv/.tsv/.xlsx) with a TOML mapping",
                         description="Import a clinical spreadsheet (and optionally one DICOM study per "
                                     "patient) into a cohort directory of format v1, using a TOML mapping of "
                                     "columns, units and codings.")
    imp.add_argument("--clinical", type=Path, required=True, metavar="FILE",
                     help=".csv, .tsv or .xlsx, one row per patient")
    imp.add_argument("--mapping", type=Path, required=True, metavar="MAP.toml", help="the TOML mapping")
    imp.add_argument("--studies", type=Path, metavar="DIR",
                     help="folder with one sub-folder or zip per patient (named by patient_id)")
    imp.add_argument("--studies-map", type=Path, metavar="CSV",
                     help="CSV patient_id,study naming each patient's sub-folder or zip in --studies")
    imp.add_argument("--out", type=Path, required=True, metavar="DIR", help="the cohort directory to write")
    imp.add_argument("--drop-invalid", action="store_true",
                     help="write the valid rows and list the dropped ones in DIR/import-report.{json,html}")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(handler=run_import)
    slices = sub.add_parser("slices", help="the slice review state of a cohort; --auto proposes the slices",
                            description="List the slice review state of every patient of a cohort. With "
                                        "--auto, the automatic segmentation proposes the max-area slice of "
                                        "every phase of every imported study (slices.csv chosen_by=auto, "
                                        "unconfirmed); a "
                                        "reviewer confirms them in the dashboard's Cohort builder page. "
                                        "Resumable: patients already proposed are skipped.")
    slices.add_argument("--cohort", type=Path, required=True, metavar="DIR", help="the cohort directory")
    slices.add_argument("--auto", action="store_true",
                        help="propose the slices with the automatic segmentation (models/seg_demo)")
    slices.add_argument("--redo", action="store_true",
                        help="with --auto: propose again for patients already proposed "
                             "(keeps confirmed slices)")
    slices.add_argument("--quiet", action="store_true", help="no progress bar")
    slices.set_defaults(handler=run_slices)


def run_import(args) -> int:
    import sys

    from nbrisk_core.cohort.importer import REPORT_HTML, CohortImportError, import_cohort, problems_table
    from nbrisk_core.errors import InputError

    if args.studies_map is not None and args.studies is None:
        raise InputError("--studies-map needs --studies DIR")
    progress = None
    if args.studies is not None and not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=None, unit="study", desc="studies", file=sys.stderr)

        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)
    try:
        result = import_cohort(args.clinical, args.mapping, args.out, studies=args.studies,
                               studies_map=args.studies_map, drop_invalid=args.drop_invalid,
                               progress=progress)
    except CohortImportError as error:
        print(problems_table(error.problems), file=sys.stderr)
        raise
    report = result.report
    print(f"imported {result.n_imported} of {result.n_rows} patients into {result.out}"
          + (f"; {len(result.dropped)} row(s) dropped" if result.dropped else ""))
    if report["unmapped_columns"]:
        print(f"source columns not mapped: {', '.join(report['unmapped_columns'])}")
    for pid, study in report["studies"].items():
        for problem in study["problems"]:
            print(f"  {pid}: {problem}")
    print(f"report: {result.out / REPORT_HTML}")
    return 0


def run_slices(args) -> int:
    import sys

    from nbrisk_core.cohort.review import patient_states, propose_cohort, review_progress
    from nbrisk_core.errors import InputError

    if args.redo and not args.auto:
        raise InputError("--redo needs --auto")
    if args.auto:
        progress = None
        if not args.quiet:
            from tqdm import tqdm

            bar = tqdm(total=None, unit="patient", desc="proposing", file=sys.stderr)

            def progress(done, total):
                bar.total = total
                bar.update(done - bar.n)
        result = propose_cohort(args.cohort, redo=args.redo, progress=progress)
        print(f"proposed {len(result.proposed)} patient(s); {len(result.skipped)} already proposed; "
              f"{len(result.no_study)} without a study; {result.low_confidence} low-confidence phase(s)")
    states = patient_states(args.cohort)
    counts = states["state"].value_counts()
    progress_now = review_progress(args.cohort)
    names = ("to propose", "to review", "confirmed", "problem", "no study")
    print(f"{len(states)} patients: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in names))
    print(f"review: {progress_now.decided} of {progress_now.total} phase proposal(s) decided "
          f"({progress_now.accepted} accepted, {progress_now.moved} moved, {progress_now.rejected} rejected)")
    if not args.auto and counts.get("to propose", 0):
        print(f"propose the slices with: nbrisk cohort slices --cohort {args.cohort} --auto")
    return 0
