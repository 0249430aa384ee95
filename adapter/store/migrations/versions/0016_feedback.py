"""feedback and detail_requests: what readers said of notices, who asked for details (issue 19)."""

import sqlalchemy as sa
from alembic import op

from adapter.store.schema import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("notice_id", sa.Integer(), sa.ForeignKey("notices.id"), nullable=False),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incidents.id"), nullable=False),
        sa.Column("reader", sa.String(64), nullable=False),
        sa.Column("segment", sa.String(16), nullable=False),
        sa.Column("helpful", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("notice_id", "reader", name="uq_feedback_notice_reader"),
    )
    op.create_index("ix_feedback_created", "feedback", ["created_at"])
    op.create_table(
        "detail_requests",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("notice_id", sa.Integer(), sa.ForeignKey("notices.id"), nullable=False),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incidents.id"), nullable=False),
        sa.Column("tenant", sa.String(64)),
        sa.Column("segment", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_detail_requests_at", "detail_requests", ["at"])


def downgrade() -> None:
    op.drop_table("detail_requests")
    op.drop_table("feedback")
