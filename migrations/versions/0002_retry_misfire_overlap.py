"""per-job retry policy, misfire and overlap policies; final flag on executions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("max_retries", sa.Integer, nullable=False,
                                   server_default="3"))
        batch.add_column(sa.Column("retry_backoff_ms", sa.Integer, nullable=False,
                                   server_default="1000"))
        batch.add_column(sa.Column("misfire", sa.String(16), nullable=False,
                                   server_default="skip"))
        batch.add_column(sa.Column("concurrency", sa.String(16), nullable=False,
                                   server_default="allow"))
    with op.batch_alter_table("executions") as batch:
        # True on the last failed attempt of a fire: no retry follows (dead letter).
        batch.add_column(sa.Column("final", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
    op.create_index("ix_executions_status_final_id", "executions", ["status", "final", "id"])


def downgrade() -> None:
    op.drop_index("ix_executions_status_final_id", "executions")
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("final")
    with op.batch_alter_table("jobs") as batch:
        for column in ("concurrency", "misfire", "retry_backoff_ms", "max_retries"):
            batch.drop_column(column)
