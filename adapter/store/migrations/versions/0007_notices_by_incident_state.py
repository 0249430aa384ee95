"""Index notices by (incident, state): otherwise SQLite answers 'this incident's held notices' by
scanning every held notice of every incident (through ix_notices_due), under the write lock."""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_notices_incident_state", "notices", ["incident_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_notices_incident_state", table_name="notices")
