"""`nbrisk pacs find | pull | push`: studies from the hospital archive, and results back into it.

``find`` searches (QIDO-RS, or C-FIND for an archive without DICOMweb) by patient ID, accession
number and study date, CT studies only unless ``--any-modality``; ``pull STUDY_UID --out DIR``
retrieves the study's CT series, writes them de-identified as DICOM files under the new folder DIR
and prints what ``nbrisk inspect DIR`` prints; ``push CASE_UID`` stores a saved case's results
into the archive study it came from (DICOM SR, encapsulated PDF, Grad-CAM secondary capture).

The archive is ``--archive NAME`` of the PACS settings file, else ``NBRISK_DICOMWEB_URL``;
``--url`` overrides the URL (see :mod:`nbrisk_core.pacs.settings` and docs/pacs.md). Archive
errors (unreachable, 401, 404, no CT, partial transfer) are one line, exit 2.
"""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "pacs",
        help="find and pull studies from the archive (DICOMweb / DIMSE), push results back",
        description="Query/retrieve CT studies from a PACS and store NBRisk's results back into the study.",
    )
    sub = parser.add_subparsers(dest="pacs_command", metavar="ACTION", parser_class=type(parser))
    sub.required = True

    def archive_options(p) -> None:
        p.add_argument(
            "--url", metavar="URL", help="DICOMweb root of the archive (overrides NBRISK_DICOMWEB_URL)"
        )
        p.add_argument(
            "--archive",
            metavar="NAME",
            help="a named archive of the PACS settings file "
            "(NBRISK_PACS_CONFIG, default ~/.config/nbrisk/pacs.toml)",
        )

    find = sub.add_parser("find", help="search the archive's CT studies")
    archive_options(find)
    find.add_argument("--patient-id", metavar="ID", help="(0010,0020) Patient ID")
    find.add_argument("--accession", metavar="A", help="(0008,0050) Accession Number")
    find.add_argument("--study-date", metavar="DATE", help="YYYYMMDD or a range YYYYMMDD-YYYYMMDD")
    find.add_argument("--any-modality", action="store_true", help="also studies without CT")
    find.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of objects with keys study_uid, "
        "patient_id, study_date, modalities, n_series, n_instances",
    )
    find.set_defaults(handler=run_find)

    pull = sub.add_parser("pull", help="retrieve a study's CT series, de-identified, into a new folder")
    archive_options(pull)
    pull.add_argument("study_uid", metavar="STUDY_UID", help="Study Instance UID (from 'nbrisk pacs find')")
    pull.add_argument("--out", type=Path, required=True, metavar="DIR", help="new folder for the DICOM files")
    pull.add_argument("--json", action="store_true", help="print the inspect summary as JSON")
    pull.set_defaults(handler=run_pull)

    push = sub.add_parser("push", help="store a saved case's SR, PDF and Grad-CAM into its archive study")
    archive_options(push)
    push.add_argument("case_uid", metavar="CASE_UID", help="the saved case (see the Saved cases page)")
    push.add_argument("--database-url", metavar="URL", help="case store (default: NBRISK_DATABASE_URL)")
    push.add_argument("--user", metavar="NAME", default="-", help="who pushes (recorded in the audit trail)")
    push.add_argument("--json", action="store_true", help="print what was stored as JSON")
    push.set_defaults(handler=run_push)


def _archive(args):
    from nbrisk_core.pacs.archive import open_archive
    from nbrisk_core.pacs.settings import resolve

    return open_archive(resolve(url=args.url, archive=args.archive))


def run_find(args) -> int:
    import json

    archive = _archive(args)
    hits = archive.find_studies(
        patient_id=args.patient_id,
        accession=args.accession,
        study_date=args.study_date,
        modality=None if args.any_modality else "CT",
    )
    if args.json:
        print(json.dumps([h.to_json() for h in hits], indent=2))
        return 0
    print(f"{len(hits)} stud{'y' if len(hits) == 1 else 'ies'} in {archive.settings.display_url()}")
    for h in hits:
        counts = (
            f"{h.n_series if h.n_series is not None else '?'} series, "
            f"{h.n_instances if h.n_instances is not None else '?'} instances"
        )
        print(
            f"  {h.study_uid}  patient {h.patient_id}  {h.study_date or '(no date)'}  "
            f"{'/'.join(h.modalities) or '?'}  {counts}"
        )
    return 0


def run_pull(args) -> int:
    import json
    import sys

    from nbrisk_core.cli.inspect import _print_report, inspect_study
    from nbrisk_core.pacs.pull import export_deidentified, pull_study

    archive = _archive(args)

    def progress(done: int, total: int, what: str) -> None:
        if sys.stderr.isatty():
            print(f"\r  {done}/{total} instances ({what})", end="", file=sys.stderr, flush=True)

    pulled = pull_study(archive, args.study_uid, progress=progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    n = len(pulled.files)
    export_deidentified(pulled, args.out)
    print(f"pulled {n} instances of study {args.study_uid} into {args.out} (de-identified)", file=sys.stderr)
    report = inspect_study(args.out)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return 0


def run_push(args) -> int:
    import json

    from nbrisk_core.pacs.push import push_case
    from nbrisk_core.store.db import get_engine

    engine = get_engine(args.database_url)
    result = push_case(engine, args.case_uid, args.user, _archive(args))
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(
            f"stored {len(result.stored)} instance(s) into study {result.study_uid} of "
            f"{result.archive}: {', '.join(result.kinds)}"
        )
        for phase, why in result.seg_skipped.items():
            print(f"no SEG for phase {phase}: {why}")
    return 0


__all__ = ["register", "run_find", "run_pull", "run_push"]
