"""Worker heartbeats for the operator dashboard; an index for settlement monitoring.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dompet.storage.sql.tables import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker_id", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.Column("settled", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("info", sa.Text(), nullable=False),
    )
    op.create_index("ix_transfers_settled_at", "transfers", ["settled_at"])


def downgrade() -> None:
    op.drop_index("ix_transfers_settled_at", table_name="transfers")
    op.drop_table("worker_heartbeats")
