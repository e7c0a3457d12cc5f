"""alert delivery state, system alerts, auto-disable

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.alter_column("job_id", existing_type=sa.String(36), nullable=True)  # system alerts
        batch.add_column(sa.Column("ref", sa.String(36), nullable=True))
        batch.add_column(sa.Column("webhook_url", sa.Text, nullable=True))
        # none (no webhook) / pending / delivered / failed
        batch.add_column(sa.Column("delivery_status", sa.String(16), nullable=False,
                                   server_default="none"))
        batch.add_column(sa.Column("delivery_attempts", sa.Integer, nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("delivery_error", sa.Text, nullable=True))
    op.create_index("ix_alerts_ref", "alerts", ["ref"], unique=True)
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("auto_disable_after", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("auto_disable_after")
    op.drop_index("ix_alerts_ref", "alerts")
    with op.batch_alter_table("alerts") as batch:
        for column in ("delivery_error", "delivery_attempts", "delivery_status", "webhook_url",
                       "ref"):
            batch.drop_column(column)
        batch.alter_column("job_id", existing_type=sa.String(36), nullable=False)
