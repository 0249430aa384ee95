"""incidents.pruned_at: when an incident's texts were removed past storage.retention; indexed with
resolved_at, so each pass finds the next ones to prune without reading those already pruned."""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("incidents", sa.Column("pruned_at", sa.DateTime(), nullable=True))
    op.create_index("ix_incidents_unpruned", "incidents", ["pruned_at", "resolved_at"])


def downgrade() -> None:
    op.drop_index("ix_incidents_unpruned", table_name="incidents")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("pruned_at")
