"""success statuses, start/end window, one-time jobs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        # [[low, high], ...] inclusive HTTP status ranges that count as success.
        batch.add_column(sa.Column("success_status", sa.JSON, nullable=True))
        batch.add_column(sa.Column("start_at_ms", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("end_at_ms", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("run_at_ms", sa.BigInteger, nullable=True))
    op.create_index("ix_jobs_created_id", "jobs", ["created_at_ms", "id"])
    op.create_index("ix_alerts_job_id_id", "alerts", ["job_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_alerts_job_id_id", "alerts")
    op.drop_index("ix_jobs_created_id", "jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in ("run_at_ms", "end_at_ms", "start_at_ms", "success_status"):
            batch.drop_column(column)
