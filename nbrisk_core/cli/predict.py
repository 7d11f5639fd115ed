"""`nbrisk predict`: not implemented yet (see the open issue that owns it)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="(not implemented yet)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    print("nbrisk predict: not implemented yet")
    return 1
