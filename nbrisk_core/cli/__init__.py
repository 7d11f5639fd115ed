"""The ``nbrisk`` command line.

Each subcommand lives in its own module of this package with ``register(subparsers)``, which
declares its arguments with argparse only. Heavy imports (torch, timm, scikit-survival, the
database) happen inside the handlers, so ``nbrisk --help`` and ``nbrisk demo --help`` answer in
well under a second. Input problems raise :class:`nbrisk_core.errors.InputError`: the CLI prints
one line and exits 2; bad arguments also exit 2 with one line. :func:`main` is the one place that
turns the expected error families into that line (:func:`expected_error`): input errors, the file
system refusing a path (permission, read-only, no space, not a folder) and a database that cannot
be reached or used. Anything else is a bug and keeps its traceback (exit 1); ``NBRISK_DEBUG=1``
shows the traceback of the expected families too. An empty string is never a path argument.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from pathlib import Path

from nbrisk_core import __version__
from nbrisk_core.errors import InputError

#: subcommand -> module in this package that registers it (order = order in ``--help``)
COMMAND_MODULES: dict[str, str] = {
    "demo": "demo",
    "cohort": "cohort",
    "inspect": "inspect",
    "train": "train",
    "train-seg": "train_seg",
    "segment": "segment",
    "evaluate": "evaluate",
    "embed": "embed",
    "score": "score",
    "predict": "predict",
    "benchmark": "benchmark",
    "prognosis": "prognosis",
    "validate": "validate",
    "compare": "compare",
    "reproduce": "reproduce",
    "bench": "bench",
    "users": "users",
    "audit": "audit",
    "inrg": "inrg",
    "pacs": "pacs",
    "radiomics": "radiomics",
}

EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument on one line (``nbrisk demo: error: ...``), exit 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="nbrisk",
        description="NBRisk: neuroblastoma risk and prognosis from multiphase CT and clinical data "
        "(research use only).",
    )
    parser.add_argument("--version", action="version", version=f"nbrisk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for module in COMMAND_MODULES.values():
        importlib.import_module(f"{__name__}.{module}").register(sub)
    _refuse_empty_paths(parser)
    return parser


def path_argument(text: str) -> Path:
    """An argparse ``type`` for paths: ``Path(text)``, but an empty string is refused.

    ``Path("")`` is ``Path(".")``: without this, ``nbrisk inspect ""`` reads the current folder.
    """
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path; expected a file or folder")
    return Path(text)


def _refuse_empty_paths(parser: argparse.ArgumentParser) -> None:
    """Every ``type=Path`` argument of every subcommand becomes :func:`path_argument`."""
    for action in parser._actions:
        if action.type is Path:
            action.type = path_argument
        if isinstance(action, argparse._SubParsersAction):
            for subparser in {id(p): p for p in action.choices.values()}.values():
                _refuse_empty_paths(subparser)


def expected_error(error: BaseException) -> str | None:
    """The one-line message for an error a user or the site causes; None for a bug (keeps its traceback).

    Families: :class:`InputError`; :class:`OSError` (the file system or the network refused:
    permission denied, read-only, disk full, not a folder, connection refused); SQLAlchemy's
    ``OperationalError`` (DB-API: the database cannot be reached or used; never a programming
    error, which is ``ProgrammingError``/``IntegrityError`` and stays a traceback).
    """
    if isinstance(error, InputError):
        return str(error)
    if isinstance(error, OSError):
        where = " -> ".join(str(f) for f in (error.filename, error.filename2) if f is not None)
        reason = error.strerror or str(error) or type(error).__name__
        if error.errno in (errno.EEXIST, errno.ENOTDIR):
            reason += " (a file is where a folder is needed)"
        return f"{where}: {reason}" if where else reason
    database_errors = sys.modules.get("sqlalchemy.exc")
    if database_errors is not None and isinstance(error, database_errors.OperationalError):
        cause = str(getattr(error, "orig", None) or error).strip().splitlines()
        return (f"the database cannot be used ({cause[0] if cause else type(error).__name__}); "
                "check NBRISK_DATABASE_URL or --database-url and that the server is running")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
    except KeyboardInterrupt:
        print(f"nbrisk {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        message = expected_error(error)
        if message is None or os.environ.get("NBRISK_DEBUG") == "1":
            raise
        print(f"nbrisk {args.command}: error: {' '.join(message.split())}", file=sys.stderr)
        return EXIT_USAGE
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
