"""jobs.finished_at_ms: a job whose last fire was claimed (one-time, end of window)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("finished_at_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "finished_at_ms")
