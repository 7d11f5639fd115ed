"""`nbrisk users add|list|disable|enable|passwd|team`: the people who can sign in to the dashboard.

Passwords are read from a prompt (``getpass``, asked twice) or, for scripts, from the first line
of standard input with ``--password-stdin``; never from a command-line argument, which would end
up in the shell history and in ``ps``. The store is ``NBRISK_DATABASE_URL`` (default SQLite at
``data/nbrisk.db``) unless ``--database-url`` is given.
"""

from __future__ import annotations

import sys

ROLES = ("clinician", "admin")  # mirrors nbrisk_core.store.models.ROLES (kept import-free for --help)


def register(subparsers) -> None:
    parser = subparsers.add_parser("users", help="manage dashboard users (sign-in, roles)")
    parser.add_argument("--database-url", default=None,
                        help="SQLAlchemy URL of the case store (default: NBRISK_DATABASE_URL, else data/nbrisk.db)")
    sub = parser.add_subparsers(dest="users_command", metavar="ACTION", parser_class=type(parser))
    sub.required = True

    add = sub.add_parser("add", help="create a user (password from a prompt or --password-stdin)")
    add.add_argument("username")
    add.add_argument("--role", choices=ROLES, default="clinician", help="clinician (default) or admin")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.add_argument("--team", default=None,
                     help="the user's team (cases can be shared with the owner's team)")
    add.set_defaults(handler=run_add)

    lst = sub.add_parser("list", help="list users, their roles and whether they are active")
    lst.add_argument("--json", action="store_true", help="print the list as JSON")
    lst.set_defaults(handler=run_list)

    disable = sub.add_parser("disable", help="disable a user (kept for the audit trail; cannot sign in)")
    disable.add_argument("username")
    disable.set_defaults(handler=run_disable)

    enable = sub.add_parser("enable", help="re-enable a disabled user")
    enable.add_argument("username")
    enable.set_defaults(handler=run_enable)

    passwd = sub.add_parser("passwd", help="set a new password for a user")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    passwd.set_defaults(handler=run_passwd)

    team = sub.add_parser("team", help="set (or with --none, clear) a user's team")
    team.add_argument("username")
    team.add_argument("team", nargs="?", default=None, help="team name (lower-case letters, digits, . _ -)")
    team.add_argument("--none", action="store_true", help="take the user out of any team")
    team.set_defaults(handler=run_team)


def _engine(args):
    from nbrisk_core.store import get_engine

    return get_engine(args.database_url)


def _read_password(args) -> str:
    from nbrisk_core.errors import InputError

    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    import getpass

    if not sys.stdin.isatty():
        raise InputError("no terminal to ask the password on; pipe it in with --password-stdin")
    first = getpass.getpass(f"Password for {args.username}: ")
    second = getpass.getpass("Repeat the password: ")
    if first != second:
        raise InputError("the two passwords differ; nothing was changed")
    return first


def _operator() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "cli"


def run_add(args) -> int:
    from nbrisk_core.store import users

    password = _read_password(args)
    info = users.add_user(_engine(args), args.username, password, args.role, by=_operator(), team=args.team)
    print(f"user {info.username} added (role {info.role}" + (f", team {info.team})" if info.team else ")"))
    return 0


def run_list(args) -> int:
    from nbrisk_core.store import users

    rows = users.list_users(_engine(args))
    if args.json:
        import json

        print(json.dumps([{"username": u.username, "role": u.role, "active": u.active, "team": u.team,
                           "created_at": u.created_at.isoformat() if u.created_at else None} for u in rows], indent=2))
        return 0
    if not rows:
        print("no users yet: add one with `nbrisk users add NAME --role admin`")
        return 0
    width = max(len(u.username) for u in rows)
    team_width = max(len(u.team or "-") for u in rows)
    for u in rows:
        created = u.created_at.strftime("%Y-%m-%d") if u.created_at else ""
        print(f"{u.username:<{width}}  {u.role:<9}  {'active' if u.active else 'disabled':<8}  "
              f"{u.team or '-':<{team_width}}  {created}")
    return 0


def run_disable(args) -> int:
    from nbrisk_core.store import users

    users.set_active(_engine(args), args.username, False, by=_operator())
    print(f"user {args.username} disabled")
    return 0


def run_enable(args) -> int:
    from nbrisk_core.store import users

    users.set_active(_engine(args), args.username, True, by=_operator())
    print(f"user {args.username} enabled")
    return 0


def run_passwd(args) -> int:
    from nbrisk_core.store import users

    password = _read_password(args)
    users.set_password(_engine(args), args.username, password, by=_operator())
    print(f"password of {args.username} changed")
    return 0


def run_team(args) -> int:
    from nbrisk_core.errors import InputError
    from nbrisk_core.store import users

    if (args.team is None) == (not args.none):
        raise InputError("give either a team name or --none "
                         "(expected e.g. `nbrisk users team alice oncology`)")
    users.set_team(_engine(args), args.username, None if args.none else args.team, by=_operator())
    where = "is in no team" if args.none else f"is in team {args.team.strip().lower()}"
    print(f"user {args.username} {where}")
    return 0
