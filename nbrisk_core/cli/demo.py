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
    print("nbrisk demo build: not implemented yet")
    return 1


def run_case(args) -> int:
    print("nbrisk demo case: not implemented yet")
    return 1
