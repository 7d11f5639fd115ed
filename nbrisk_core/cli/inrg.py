"""``nbrisk inrg``: add the INRG and COG v2 pre-treatment risk groups to a table of patients.

::

    nbrisk inrg --csv patients.csv --out patients-risk.csv

The input columns, their codes and the added columns: ``docs/clinical-risk.md``. An invalid cell
fails the run (exit 2, one line per problem on stderr: row, column, value, what is accepted; nothing
written). An empty cell is a missing input, never a default.
"""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "inrg", help="add INRG and COG v2 risk groups to a CSV of patients",
        description="Classify every row of a CSV by the INRG pre-treatment classification (Cohn 2009) "
                    "and the COG v2 risk classification (Irwin 2021); adds the columns inrg_group, "
                    "inrg_risk, cog_risk, missing_inputs and risk_note (docs/clinical-risk.md).")
    parser.add_argument("--csv", type=Path, required=True, metavar="FILE", help="input table (.csv)")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="output table (.csv)")
    parser.set_defaults(handler=run_inrg)


def run_inrg(args) -> int:
    import sys

    import pandas as pd

    from nbrisk_core.clinical.risk_groups import RISK_INPUT_NAMES, RiskTableError, classify_table
    from nbrisk_core.errors import InputError

    source: Path = args.csv
    if not source.is_file():
        raise InputError(f"{source}: file not found (expected a .csv table with a header row)")
    if args.out.resolve() == source.resolve():
        raise InputError(f"--out {args.out}: is the input file; choose another file")
    try:
        table = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputError(f"{source}: not a readable CSV table ({' '.join(str(error).split())})") from None
    table.columns = [str(c).strip() for c in table.columns]
    known = [c for c in table.columns if c in RISK_INPUT_NAMES]
    if not known:
        raise InputError(f"{source}: no column named like an input; expected some of "
                         f"{', '.join(RISK_INPUT_NAMES)}")
    try:
        result = classify_table(table, source=str(source))
    except RiskTableError as error:
        for problem in error.problems:
            print(f"nbrisk inrg: {source}: {problem}", file=sys.stderr)
        raise InputError(f"{source}: {len(error.problems)} invalid cell(s); nothing written") from None
    result.to_csv(args.out, index=False)
    counts = result["inrg_risk"].value_counts().to_dict()
    disagree = int(result["risk_note"].str.startswith("INRG and COG disagree").sum())
    print(f"classified {len(result)} row(s) into {args.out}: INRG "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
          + f"; INRG and COG disagree on {disagree}")
    missing = [c for c in RISK_INPUT_NAMES if c not in table.columns]
    if missing:
        print(f"columns absent (missing for every row): {', '.join(missing)}")
    return 0
