"""`nbrisk inspect PATH [--json]`: list the image series of a folder, zip or file.

For each series: the suggested phase (with confidence), slices, spacing, size and warnings; then
the files skipped with their reasons. Exit 0 when at least one image series loads; exit 2 (one
line on stderr) when nothing loadable is found or the input is unsafe (zip bomb, path traversal).
"""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect", help="list the series in a folder/zip/file, their phase guess and problems",
        description="Read a CT study (folder, zip, DICOM file, multi-frame file, DICOMDIR or 2-D image) "
        "and list its image series with the suggested phase, and the files skipped with the reason.")
    # PATH is checked in the handler, so a missing one is an input error (one line, exit 2) too
    parser.add_argument("path", nargs="?", type=Path, metavar="PATH", help="folder, zip or file to inspect")
    parser.add_argument("--json", action="store_true",
                        help='print one JSON object {"series": [...], "skipped": [...], "warnings": [...]}')
    parser.set_defaults(handler=run)


def inspect_study(path) -> dict:
    """The figures ``nbrisk inspect`` prints, as one JSON-friendly dict (also used by tests)."""
    from nbrisk_core.imaging.dicom_io import load_study
    from nbrisk_core.imaging.phases import suggest_phases

    study = load_study(path)
    suggestions = {s.series_uid: s for s in suggest_phases(study.series)}
    series = []
    for s in study.series:
        entry = s.summary()
        guess = suggestions.get(s.series_uid)
        entry["phase"] = guess.phase if guess else None
        entry["phase_confidence"] = guess.confidence if guess else 0.0
        entry["phase_reasons"] = guess.reasons if guess else []
        series.append(entry)
    return {
        "series": series,
        "skipped": [{"file": f.name, "reason": f.reason} for f in study.skipped],
        "warnings": list(study.warnings),
    }


def run(args) -> int:
    import json
    import sys

    from nbrisk_core.errors import InputError

    if args.path is None:
        raise InputError("missing PATH: give a folder, zip or file to inspect")
    report = inspect_study(args.path)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    if not report["series"]:
        reasons = "; ".join(f"{s['file']}: {s['reason']}" for s in report["skipped"][:3]) or "no files found"
        more = f" (and {len(report['skipped']) - 3} more)" if len(report["skipped"]) > 3 else ""
        print(f"nbrisk inspect: error: {args.path}: no loadable image series ({reasons}{more})", file=sys.stderr)
        return 2
    return 0


def _print_report(report: dict) -> None:
    print(f"{len(report['series'])} image series")
    for s in report["series"]:
        phase = (f"{s['phase'].upper()} ({s['phase_confidence']:.0%})" if s["phase"] else "phase ?")
        spacing = "x".join(f"{v:g}" for v in s["pixel_spacing_mm"])
        between = f", {s['slice_spacing_mm']:g} mm apart" if s["slice_spacing_mm"] else ""
        print(f"  {s['label'] or s['series_uid']}: {phase}, {s['n_slices']} slices of {s['rows']} x {s['columns']}"
              f", pixel {spacing} mm{between}, {s['units']}")
        for reason in s["phase_reasons"]:
            print(f"      phase: {reason}")
        for warning in s["warnings"]:
            print(f"      warning: {warning}")
    if report["skipped"]:
        print(f"{len(report['skipped'])} files skipped")
        for f in report["skipped"]:
            print(f"  {f['file']}: {f['reason']}")
    for warning in report["warnings"]:
        print(f"warning: {warning}")


__all__ = ["inspect_study", "register", "run"]
