"""expansions: a per-tenant provider's notices of one event, to be written after the transaction
that planned the event (issue 16: a webhook's answer does not grow with the tenants it reaches)."""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "expansions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incidents.id"), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("event", sa.String(128), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("after", sa.String(64)),
    )


def downgrade() -> None:
    op.drop_table("expansions")
