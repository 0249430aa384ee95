"""notices.state holds 32 characters: `awaiting_approval` (issue 18) does not fit in 16."""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite keeps text of any length in a VARCHAR column: only PostgreSQL needs the change.
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(
            "notices", "state", type_=sa.String(32), existing_type=sa.String(16), existing_nullable=False
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(
            "notices", "state", type_=sa.String(16), existing_type=sa.String(32), existing_nullable=False
        )
