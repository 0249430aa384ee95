"""audit and desk_sessions: who did what (append-only), and desk log-ins (issue 18)."""

import sqlalchemy as sa
from alembic import op

from adapter.store.schema import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incidents.id")),
        sa.Column("ref", sa.String(32)),
        sa.Column("changes", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audit_incident", "audit", ["incident_id", "id"])
    op.create_index("ix_audit_at", "audit", ["at"])
    op.create_table(
        "desk_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_desk_sessions_expires", "desk_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("desk_sessions")
    op.drop_table("audit")
