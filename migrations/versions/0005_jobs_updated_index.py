"""index jobs by updated_at_ms (the reconciler's incremental pass)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_updated_id", "jobs", ["updated_at_ms", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_updated_id", table_name="jobs")
