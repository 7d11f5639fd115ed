"""Initial case store: users, sign-in failures, cases, slices, predictions, append-only audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)

# The audit trail is append-only: the database itself refuses UPDATE and DELETE, so a bug or a
# hand-written SQL statement cannot rewrite history either.
SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
)
POSTGRES_TRIGGERS = (
    "CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_events is append-only'; END; $$ LANGUAGE plpgsql",
    "CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("disabled_at", TZ),
    )
    op.create_table(
        "sign_in_failures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, index=True),
        sa.Column("session_key", sa.String(64), nullable=False, index=True),
        sa.Column("at", TZ, nullable=False, index=True),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_uid", sa.String(32), nullable=False, unique=True),
        sa.Column("label", sa.String(64), nullable=False, index=True),
        sa.Column("age_months", sa.Float),
        sa.Column("sex", sa.String(8)),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("risk_class", sa.String(8), index=True),
        sa.Column("hr_probability", sa.Float),
        sa.Column("mlrs", sa.Float),
        sa.Column("mlrs_percentile", sa.Float),
        sa.Column("mlrs_group", sa.String(8), index=True),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("clinical_entered", sa.JSON, nullable=False),
        sa.Column("clinical_imputed", sa.JSON, nullable=False),
        sa.Column("phase_meta", sa.JSON, nullable=False),
        sa.Column("session_state", sa.JSON, nullable=False),
        sa.Column("session_arrays", sa.LargeBinary),
        sa.Column("software_versions", sa.JSON, nullable=False),
        sa.Column("include_series", sa.Boolean, nullable=False),
        sa.Column("created_at", TZ, nullable=False, index=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("reviewed_at", TZ),
        sa.Column("reviewed_by", sa.String(64)),
        sa.Column("signed_off_at", TZ),
        sa.Column("signed_off_by", sa.String(64)),
        sa.Column("deleted_at", TZ, index=True),
        sa.Column("deleted_by", sa.String(64)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.CheckConstraint("status IN ('draft', 'reviewed', 'signed_off')", name="ck_cases_status"),
    )
    op.create_table(
        "case_slices",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("phase", sa.String(8), nullable=False),
        sa.Column("slice_index", sa.Integer),
        sa.Column("slice_position_mm", sa.Float),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("cols", sa.Integer, nullable=False),
        sa.Column("hu_npz", sa.LargeBinary, nullable=False),
        sa.Column("hu_sha256", sa.String(64), nullable=False),
        sa.Column("series_npz", sa.LargeBinary),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.UniqueConstraint("case_id", "phase"),
    )
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model_name", sa.String(128)),
        sa.Column("model_sha256", sa.String(64)),
        sa.Column("input_sha256", sa.String(64), nullable=False),
        sa.Column("software_versions", sa.JSON, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("result_arrays", sa.LargeBinary),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", TZ, nullable=False, index=True),
        sa.Column("username", sa.String(64), nullable=False, index=True),
        sa.Column("action", sa.String(32), nullable=False, index=True),
        sa.Column("case_uid", sa.String(32), index=True),
        sa.Column("model_sha256", sa.String(64)),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": SQLITE_TRIGGERS, "postgresql": POSTGRES_TRIGGERS}.get(dialect, ()):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update_delete ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    for table in ("audit_events", "predictions", "case_slices", "cases", "sign_in_failures", "users"):
        op.drop_table(table)
