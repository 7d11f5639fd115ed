"""The ``nbrisk`` command line.

Each subcommand lives in its own module of this package with ``register(subparsers)``, which
declares its arguments with argparse only. Heavy imports (torch, timm, scikit-survival, the
database) happen inside the handlers, so ``nbrisk --help`` and ``nbrisk demo --help`` answer in
well under a second. Input problems raise :class:`nbrisk_core.errors.InputError`: the CLI prints
one line and exits 2; bad arguments also exit 2 with one line. Tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nbrisk_core import __version__
from nbrisk_core.errors import InputError

#: subcommand -> module in this package that registers it (order = order in ``--help``)
COMMAND_MODULES: dict[str, str] = {
    "demo": "demo",
    "inspect": "inspect",
    "train": "train",
    "evaluate": "evaluate",
    "embed": "embed",
    "predict": "predict",
    "benchmark": "benchmark",
    "reproduce": "reproduce",
    "bench": "bench",
    "users": "users",
    "audit": "audit",
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
    except InputError as error:
        print(f"nbrisk {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"nbrisk {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
