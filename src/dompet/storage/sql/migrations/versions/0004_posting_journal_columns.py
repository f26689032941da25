"""Postings carry their journal's kind, reference and remarks (a history page joins no journals).

Existing postings are filled from their journals in one UPDATE per engine (no Python loop).
SQLite keeps the columns' DEFAULT '' (dropping it would rebuild the table); the writers always
give the values. PostgreSQL adds them with a default (no table rewrite), fills them, then
drops the defaults.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = (("kind", 32), ("reference", 36), ("remarks", 500))


def upgrade() -> None:
    for name, length in COLUMNS:
        op.add_column(
            "postings",
            sa.Column(name, sa.String(length), nullable=False, server_default=sa.text("''")),
        )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "UPDATE postings SET (kind, reference, remarks) = (SELECT journals.kind,"
            " journals.reference, journals.remarks FROM journals"
            " WHERE journals.id = postings.journal_id)"
        )
        return
    op.execute(
        "UPDATE postings SET kind = journals.kind, reference = journals.reference,"
        " remarks = journals.remarks FROM journals WHERE journals.id = postings.journal_id"
    )
    for name, _length in COLUMNS:
        op.alter_column("postings", name, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("postings") as batch:
        for name, _length in reversed(COLUMNS):
            batch.drop_column(name)
