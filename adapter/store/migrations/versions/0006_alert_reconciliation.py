"""What reconciliation with Alertmanager learns about an alert: silenced, or missing since when."""

import sqlalchemy as sa
from alembic import op

from adapter.store.schema import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("silenced", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("missing_since", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("missing_since")
        batch.drop_column("silenced")
