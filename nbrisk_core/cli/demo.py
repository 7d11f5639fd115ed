"""`nbrisk demo build|case`: the synthetic known-truth multiphase-CT cohort."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="build the synthetic demo cohort or one demo study")
    sub = parser.add_subparsers(dest="demo_command", metavar="ACTION", parser_class=type(parser))
    sub.required = True

    build = sub.add_parser("build", help="generate the synthetic cohort (clinical, truth, slices, studies)")
    build.add_argument("--patients", type=_positive_int, default=202, help="number of patients (default 202)")
    build.add_argument("--seed", type=int, default=20250416, help="random seed (default 20250416)")
    build.add_argument("--out", type=Path, default=Path("data/demo"), help="output directory (default data/demo)")
    build.add_argument("--studies", type=_non_negative_int, default=5,
                       help="number of example patients with full DICOM studies (default 5)")
    build.set_defaults(handler=run_build)

    case = sub.add_parser("case", help="write the full 3-phase DICOM study of one demo patient")
    case.add_argument("patient_id", help="patient ID, e.g. P0007")
    case.add_argument("--out", type=Path, required=True, help="output directory")
    case.add_argument("--data", type=Path, default=Path("data/demo"), help="cohort directory (default data/demo)")
    case.add_argument("--zip", action="store_true", help="also write the study as one zip file")
    case.set_defaults(handler=run_case)


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def run_build(args) -> int:
    """Build the cohort and print its summary (the oracle figures included)."""
    import sys

    from nbrisk_core.demo import build_cohort

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty() and (done == total or done % 10 == 0):
            print(f"\r  rendered {done}/{total} patients", end="\n" if done == total else "",
                  file=sys.stderr, flush=True)

    summary = build_cohort(args.out, n_patients=args.patients, seed=args.seed, n_studies=args.studies,
                           progress=progress)
    print(format_summary(summary))
    return 0


def format_summary(summary: dict) -> str:
    """Readable lines of a build summary."""
    lines = [
        "SYNTHETIC demo cohort (nbrisk-synthetic-demo): generated data, no real patient.",
        f"  written to          {summary['path']}",
        f"  patients            {summary['n_patients']} ({summary['n_hr']} HR / {summary['n_nhr']} NHR), "
        f"{summary['deaths']} deaths",
        f"  median age          {summary['median_age_months']:.1f} months "
        f"(IQR {summary['age_iqr_months'][0]:.1f}-{summary['age_iqr_months'][1]:.1f})",
        f"  median follow-up    {summary['median_follow_up_days']:.0f} days "
        f"(IQR {summary['follow_up_iqr_days'][0]:.0f}-{summary['follow_up_iqr_days'][1]:.0f})",
        "  missing per lab     " + ", ".join(f"{name} {100 * frac:.0f}%"
                                             for name, frac in summary["missing_fraction"].items()),
        f"  oracle AUC (HR/NHR) {summary['oracle_auc']:.3f}",
        f"  oracle C-index (OS) {summary['oracle_c_index']:.3f}",
        f"  DICOM studies       {summary['n_studies']} ({', '.join(summary['example_patients']) or 'none'})",
        f"  wall time           {summary['wall_time_s']:.1f} s",
        f"  size on disk        {summary['size_bytes'] / 1e6:.1f} MB",
    ]
    return "\n".join(lines)


def run_case(args) -> int:
    """Write one patient's full 3-phase DICOM study (regenerated from the cohort's seed)."""
    import time

    from nbrisk_core.demo import write_study

    started = time.perf_counter()
    paths = write_study(args.data, args.patient_id, args.out, as_zip=args.zip)
    n_dicom = sum(1 for p in paths if p.suffix == ".dcm")
    print(f"SYNTHETIC study of {args.patient_id}: {n_dicom} DICOM files (NC, ART, PV) in "
          f"{args.out / args.patient_id} ({time.perf_counter() - started:.1f} s)")
    for path in paths:
        if path.suffix == ".zip":
            print(f"  zip: {path}")
    return 0
