"""`nbrisk audit verify`: check that the audit trail of the case store was not edited, cut or reordered.

Recomputes the hash chain of every event (:func:`nbrisk_core.store.audit.verify_chain`) and checks
that the database still refuses changes to the trail (:func:`nbrisk_core.store.audit.protection_problems`).
Exit 0 when both hold, printing the number of events and the head (seq and hash: keep it elsewhere
and pass it back with ``--anchor`` to detect removed newest events); exit 2 with one line naming the
first broken event or the missing protection otherwise. The store is ``NBRISK_DATABASE_URL`` (default
SQLite at ``data/nbrisk.db``) unless ``--database-url`` is given.
"""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("audit",
                                   help="check the audit trail (hash chain, append-only protections)")
    parser.add_argument("--database-url", default=None,
                        help="SQLAlchemy URL of the case store "
                        "(default: NBRISK_DATABASE_URL, else data/nbrisk.db)")
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION", parser_class=type(parser))
    sub.required = True
    verify = sub.add_parser("verify", help="recompute the hash chain; exit 2 naming the first broken event")
    verify.add_argument("--anchor", default=None, metavar="SEQ:HASH",
                        help="a head printed by an earlier verify: that event must still be there, unchanged")
    verify.set_defaults(handler=run_verify)


def _anchor(text: str | None) -> tuple[int, str] | None:
    from nbrisk_core.errors import InputError

    if text is None:
        return None
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InputError(f"--anchor = {text!r} is not valid (expected SEQ:HASH, e.g. 42: and 64 hex digits)")
    return int(seq), digest


def run_verify(args) -> int:
    from nbrisk_core.errors import InputError
    from nbrisk_core.store import audit, get_engine

    anchor = _anchor(args.anchor)
    engine = get_engine(args.database_url)
    report = audit.verify_chain(engine, anchor=anchor)
    if not report.ok:
        raise InputError(f"audit chain broken at {report.problem} "
                         f"({report.events} events before it verified)")
    problems = audit.protection_problems(engine)
    if problems:
        raise InputError(f"audit chain intact ({report.events} events) but the trail is not protected: "
                         + "; ".join(problems))
    print(f"audit chain intact: {report.events} events, head {report.head_seq}:{report.head_hash}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from nbrisk_core.cli import main

    sys.exit(main(["audit", *sys.argv[1:]]))
