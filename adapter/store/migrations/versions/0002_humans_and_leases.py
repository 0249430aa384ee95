"""Fields humans set on incidents, and leases for work only one replica may do at a time."""

import sqlalchemy as sa
from alembic import op

from adapter.store.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_HUMAN_COLUMNS = (
    ("eta", UTCDateTime),
    ("workaround", sa.Text),
    ("root_cause", sa.Text),
    ("action_required", sa.Text),
    ("preventive_measures", sa.Text),
    ("postmortem_at", UTCDateTime),
)


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        for name, kind in _HUMAN_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
    with op.batch_alter_table("incidents") as batch:
        for name, _ in reversed(_HUMAN_COLUMNS):
            batch.drop_column(name)
