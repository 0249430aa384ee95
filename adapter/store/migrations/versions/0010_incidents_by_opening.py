"""Index incidents by opening time: the API lists the newest first without sorting the whole history."""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_incidents_opened", "incidents", ["opened_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_incidents_opened", table_name="incidents")
