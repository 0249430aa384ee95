"""Index notices by stream in writing order, and due ones in claiming order: a claim reads the
streams it leases, not the incident's other streams (10,000 of them for a per-tenant provider)."""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Ordered as claims take them (due time, then writing order), so a claim's read stops at its limit.
    op.drop_index("ix_notices_due", table_name="notices")
    op.create_index("ix_notices_due", "notices", ["state", "due_at", "id"])
    # The shared streams' tenant is NULL; coalesced, one equality finds a stream (see outbox.stream_key).
    op.create_index(
        "ix_notices_stream_order",
        "notices",
        ["incident_id", "provider", sa.text("coalesce(tenant, '')"), "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_notices_stream_order", table_name="notices")
    op.drop_index("ix_notices_due", table_name="notices")
    op.create_index("ix_notices_due", "notices", ["state", "due_at"])
