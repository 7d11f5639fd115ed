"""Security: case owners and sharing, user teams, the sign-in limiter per client address, and an
append-only, hash-chained audit trail.

- ``cases.owner`` (existing cases belong to their creator), ``users.team``, ``case_shares``.
- ``sign_in_failures.client_address`` and ``pending`` (an attempt counts while it is checked).
- ``audit_events.seq``, ``prev_hash``, ``hash``: existing events are chained in ``id`` order.
- SQLite: a BEFORE INSERT trigger refuses an insert that would replace a row (``REPLACE INTO`` deletes
  the old row without firing the delete trigger unless ``recursive_triggers`` is on) or that does
  not extend the chain. PostgreSQL: the same chain check, and UPDATE, DELETE and TRUNCATE on
  ``audit_events`` revoked from PUBLIC and from the role running the migration (the owner can grant
  them back: ``nbrisk audit verify`` and the start-up check say so).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
GENESIS = "0" * 64

SQLITE_NO_REPLACE = (
    "CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events "
    "WHEN EXISTS (SELECT 1 FROM audit_events WHERE id = NEW.id OR seq = NEW.seq) "
    "OR NEW.seq IS NULL OR NEW.hash IS NULL "
    "OR NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_events) "
    "OR NEW.prev_hash IS NOT COALESCE((SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1), "
    f"'{GENESIS}') "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: an insert may not replace an event "
    "and must extend the hash chain'); END"
)
SQLITE_NO_UPDATE = ("CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
                    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END")
POSTGRES_CHAIN = (
    "CREATE FUNCTION audit_events_chain_check() RETURNS trigger AS $$ "
    "DECLARE last_seq integer; last_hash varchar; "
    "BEGIN "
    "SELECT seq, hash INTO last_seq, last_hash FROM audit_events ORDER BY seq DESC LIMIT 1; "
    "IF NEW.seq IS NULL OR NEW.hash IS NULL OR NEW.seq IS DISTINCT FROM COALESCE(last_seq, 0) + 1 "
    f"OR NEW.prev_hash IS DISTINCT FROM COALESCE(last_hash, '{GENESIS}') THEN "
    "RAISE EXCEPTION 'audit_events is append-only: event % does not extend the hash chain', NEW.seq; "
    "END IF; RETURN NEW; END; $$ LANGUAGE plpgsql",
    "CREATE TRIGGER audit_events_chain_only BEFORE INSERT ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_chain_check()",
)


def _chain_existing_events(bind) -> None:
    from nbrisk_core.store.audit import event_hash

    table = sa.table("audit_events", sa.column("id", sa.Integer), sa.column("at", TZ),
                     sa.column("username", sa.String), sa.column("action", sa.String),
                     sa.column("case_uid", sa.String), sa.column("model_sha256", sa.String),
                     sa.column("detail", sa.JSON), sa.column("seq", sa.Integer),
                     sa.column("prev_hash", sa.String), sa.column("hash", sa.String))
    rows = bind.execute(sa.select(table).order_by(table.c.id)).all()
    prev = GENESIS
    for seq, row in enumerate(rows, start=1):
        digest = event_hash(seq, row.at, row.username, row.action, row.case_uid, row.model_sha256,
                            dict(row.detail or {}), prev)
        bind.execute(table.update().where(table.c.id == row.id).values(seq=seq, prev_hash=prev, hash=digest))
        prev = digest


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.add_column("users", sa.Column("team", sa.String(64)))
    # existing cases belong to their creator (SQLite adds a NOT NULL column only with a default)
    op.add_column("cases", sa.Column("owner", sa.String(64), nullable=False, server_default=""))
    op.execute("UPDATE cases SET owner = created_by")
    if dialect == "postgresql":
        op.alter_column("cases", "owner", server_default=None)
    op.create_index("ix_cases_owner", "cases", ["owner"])
    op.create_table(
        "case_shares",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("grantee_kind", sa.String(8), nullable=False),
        sa.Column("grantee", sa.String(64), nullable=False),
        sa.Column("granted_by", sa.String(64), nullable=False),
        sa.Column("granted_at", TZ, nullable=False),
        sa.UniqueConstraint("case_id", "grantee_kind", "grantee"),
        sa.CheckConstraint("grantee_kind IN ('user', 'team')", name="ck_case_shares_kind"),
    )
    op.create_index("ix_case_shares_grantee", "case_shares", ["grantee_kind", "grantee"])

    op.add_column("sign_in_failures", sa.Column("client_address", sa.String(64), nullable=False,
                                                server_default="-"))
    op.add_column("sign_in_failures", sa.Column("pending", sa.Boolean, nullable=False,
                                                server_default=sa.false()))
    op.create_index("ix_sign_in_failures_client_address", "sign_in_failures", ["client_address"])

    op.add_column("audit_events", sa.Column("seq", sa.Integer))
    op.add_column("audit_events", sa.Column("prev_hash", sa.String(64)))
    op.add_column("audit_events", sa.Column("hash", sa.String(64)))
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        _chain_existing_events(bind)
        op.execute(SQLITE_NO_UPDATE)
        op.execute(SQLITE_NO_REPLACE)
    elif dialect == "postgresql":
        op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete")
        _chain_existing_events(bind)
        op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete")
        for statement in POSTGRES_CHAIN:
            op.execute(statement)
        op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM PUBLIC")
        op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM CURRENT_USER")
    op.create_index("ix_audit_events_seq", "audit_events", ["seq"], unique=True)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_index("ix_audit_events_seq", "audit_events")
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_replace")
    elif dialect == "postgresql":
        op.execute("GRANT UPDATE, DELETE, TRUNCATE ON audit_events TO CURRENT_USER")
        op.execute("DROP TRIGGER IF EXISTS audit_events_chain_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_chain_check()")
    # the chain columns stay on SQLite (dropping a column rebuilds the table, and the triggers refuse it)
    if dialect == "postgresql":
        for column in ("hash", "prev_hash", "seq"):
            op.drop_column("audit_events", column)
        op.drop_column("sign_in_failures", "pending")
        op.drop_column("sign_in_failures", "client_address")
        op.drop_column("cases", "owner")
        op.drop_column("users", "team")
    op.drop_index("ix_case_shares_grantee", "case_shares")
    op.drop_table("case_shares")
