"""`nbrisk bench`: not implemented yet (see the open issue that owns it)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="(not implemented yet)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    print("nbrisk bench: not implemented yet")
    return 1
