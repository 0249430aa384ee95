"""Index inbound_events by received_at: the scheduler deletes ids past pagerduty.dedupe_window."""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inbound_events_received_at", "inbound_events", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_inbound_events_received_at", table_name="inbound_events")
