"""Per-provider circuit breakers, shared by every worker and replica."""

import sqlalchemy as sa
from alembic import op

from adapter.store.schema import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "breakers",
        sa.Column("provider", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("open_until", UTCDateTime),
    )


def downgrade() -> None:
    op.drop_table("breakers")
