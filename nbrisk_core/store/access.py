"""Who may see and change which saved case: owners, sharing with users or the owner's team, admins.

The model (enforced here, in the store, for every case function; the pages only show its result):

- A case's **owner** is the user who created it (cases saved before owners existed belong to their
  creator). The owner and **admins** may open, change, export, delete and share it.
- The owner (or an admin) may **share** it with named users and/or with the owner's **team** (users
  have an optional team, set by an admin with ``nbrisk users team``). A user it is shared with, or a
  member of the team it is shared with, may see it in the list, open, export and change it (review,
  sign off); deleting and sharing stay with the owner and admins.
- Nobody else sees it: it is not listed, and opening, exporting, changing or deleting it is refused
  with :class:`CaseAccessError` and written to the audit trail (``case_access_denied``); every
  change of sharing is audited too (``case_shared``, ``case_unshared``).
- A disabled user has no access. A name that is not a user of the store (e.g. ``local``, the
  dashboard with sign-in off) is an ordinary clinician without a team: it sees only its own cases.

The acting user is passed as a user name, looked up in the users table for its role and team, or as
an :class:`Actor` built by trusted code (the CLI, the benches): :func:`system`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, exists, false, or_, select, true
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from nbrisk_core.errors import InputError
from nbrisk_core.store.models import Case, CaseShare, User

#: operations on a case, as they are named in messages and in ``case_access_denied`` events
VIEW_OPERATIONS = ("list", "open", "export", "change")
MANAGE_OPERATIONS = ("delete", "share")


class CaseAccessError(InputError):
    """The acting user may not see or change this case."""


@dataclass(frozen=True)
class Actor:
    """Who acts on the store: name, role, optional team, and whether the account is active."""

    username: str
    role: str = "clinician"
    team: str | None = None
    active: bool = True

    @property
    def is_admin(self) -> bool:
        return self.active and self.role == "admin"


def system(name: str = "system") -> Actor:
    """An admin actor for trusted in-process callers (CLI maintenance, benches, tests), never a page."""
    return Actor(name, "admin")


def resolve(session: Session, user: str | Actor) -> Actor:
    """The :class:`Actor` behind ``user``: an Actor is taken as it is; a name is looked up."""
    if isinstance(user, Actor):
        return user
    name = (user or "-").strip().lower()[:64] or "-"
    row = session.execute(select(User.role, User.team, User.active).where(User.username == name)).first()
    if row is None:
        return Actor(name)
    return Actor(name, row.role, row.team, bool(row.active))


def visible(actor: Actor):
    """SQL condition on :class:`Case`: the cases ``actor`` may see (see the module docstring)."""
    if not actor.active:
        return false()
    if actor.is_admin:
        return true()
    shared_with_user = exists().where(CaseShare.case_id == Case.id, CaseShare.grantee_kind == "user",
                                      CaseShare.grantee == actor.username)
    conditions = [Case.owner == actor.username, shared_with_user]
    if actor.team:
        conditions.append(exists().where(and_(CaseShare.case_id == Case.id, CaseShare.grantee_kind == "team",
                                              CaseShare.grantee == actor.team)))
    return or_(*conditions)


def can_view(session: Session, actor: Actor, row: Case) -> bool:
    return bool(session.scalar(select(Case.id).where(Case.id == row.id, visible(actor))))


def can_manage(actor: Actor, row: Case) -> bool:
    return actor.is_admin or (actor.active and row.owner == actor.username)


def check(session: Session, actor: Actor, row: Case, operation: str) -> str | None:
    """Why ``actor`` may not do ``operation`` on ``row`` (None when allowed)."""
    if can_manage(actor, row):  # the owner and admins: no query
        return None
    if operation in MANAGE_OPERATIONS:
        if not actor.active:
            return f"user {actor.username!r} is disabled"
        return f"only its owner ({row.owner}) or an admin may {operation} it"
    if can_view(session, actor, row):
        return None
    if not actor.active:
        return f"user {actor.username!r} is disabled"
    return f"it is not shared with user {actor.username!r} (ask its owner or an admin to share it)"


def refuse(engine: Engine, actor: Actor, case_uid: str, operation: str, why: str) -> CaseAccessError:
    """Audit a refused ``operation`` (in a transaction of its own: the caller's is rolled back) and
    return the error to raise."""
    from nbrisk_core.store import audit

    audit.record(engine, actor.username, "case_access_denied", case_uid=case_uid,
                 detail={"operation": operation, "role": actor.role})
    return CaseAccessError(f"user {actor.username!r} may not {operation} case {case_uid}: {why}",
                           source="case_uid")
