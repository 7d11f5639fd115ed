"""One phase spelling: ``case_slices.phase`` and the keys of ``cases.phase_meta`` in lower case.

NBRisk spells a phase ``nc``, ``art``, ``pv`` everywhere (:class:`nbrisk_core.case.Phase`); the store
used ``NC``, ``ART``, ``PV`` until this revision. The cases' session objects are left as they were
saved: :func:`nbrisk_core.store.session.case_from_record` reads both formats.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_cases = sa.table("cases", sa.column("id", sa.Integer), sa.column("phase_meta", sa.JSON))


def _rewrite(spell) -> None:
    op.execute(sa.text("UPDATE case_slices SET phase = {}(phase)".format("lower" if spell is str.lower
                                                                          else "upper")))
    connection = op.get_bind()
    for case_id, meta in connection.execute(sa.select(_cases.c.id, _cases.c.phase_meta)).all():
        if not isinstance(meta, dict):
            continue
        rewritten = {spell(key) if spell(key) in ("nc", "art", "pv", "NC", "ART", "PV") else key: value
                     for key, value in meta.items()}
        if rewritten != meta:
            connection.execute(_cases.update().where(_cases.c.id == case_id).values(phase_meta=rewritten))


def upgrade() -> None:
    _rewrite(str.lower)


def downgrade() -> None:
    _rewrite(str.upper)
