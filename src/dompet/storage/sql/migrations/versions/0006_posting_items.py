"""Postings may carry their history item, rendered when written (dompet/storage/history_items.py).

Both columns are NULL for the postings written before: a history page renders those when it
reads them, as it does every entry written without a layout. No table rewrite on either engine.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("postings", sa.Column("item", sa.Text(), nullable=True))
    op.add_column("postings", sa.Column("item_layout", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("postings") as batch:
        batch.drop_column("item_layout")
        batch.drop_column("item")
