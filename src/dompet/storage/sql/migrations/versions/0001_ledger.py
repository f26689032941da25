"""The ledger: users, accounts, journals, postings, transfers, auth and idempotency tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from dompet.storage.sql.tables import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MONEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SYSTEM_ACCOUNTS = ("system:topup", "system:payments", "system:transit", "system:teller")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("first_name", sa.String(100), nullable=False),
        sa.Column("last_name", sa.String(100), nullable=False),
        sa.Column("phone_number", sa.String(20), nullable=False, unique=True),
        sa.Column("address", sa.String(500), nullable=False),
        sa.Column("pin_hash", sa.String(255), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    accounts = op.create_table(
        "accounts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("balance", MONEY, nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("kind = 'system' OR balance >= 0", name="ck_accounts_not_overdrawn"),
    )
    op.create_table(
        "journals",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("reference", sa.String(36), nullable=False),
        sa.Column("remarks", sa.String(500), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_journals_reference", "journals", ["reference"])
    op.create_table(
        "postings",
        sa.Column("id", MONEY, primary_key=True, autoincrement=True),
        sa.Column("journal_id", sa.String(36), sa.ForeignKey("journals.id"), nullable=False),
        sa.Column("account_id", sa.String(64), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("balance_before", MONEY, nullable=True),
        sa.Column("balance_after", MONEY, nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_postings_account_id_id", "postings", ["account_id", "id"])
    op.create_index("ix_postings_journal_id", "postings", ["journal_id"])
    op.create_table(
        "transfers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("sender_id", sa.String(36), nullable=False),
        sa.Column("target_id", sa.String(36), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("remarks", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("settled_at", UtcDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("claimed_until", UtcDateTime(), nullable=True),
    )
    op.create_index(
        "ix_transfers_status_next_attempt_at", "transfers", ["status", "next_attempt_at"]
    )
    op.create_table(
        "login_throttle",
        sa.Column("phone_number", sa.String(20), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", UtcDateTime(), nullable=True),
    )
    op.create_table(
        "used_refresh_tokens",
        sa.Column("jti", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("journal_id", sa.String(36), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("nama", sa.String(100), nullable=False),
        sa.Column("nik", sa.String(16), nullable=False, unique=True),
        sa.Column("no_hp", sa.String(20), nullable=False, unique=True),
        sa.Column("no_rekening", sa.String(10), nullable=False, unique=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        accounts,
        [
            {"id": account, "kind": "system", "balance": 0, "blocked": False, "created_at": now}
            for account in SYSTEM_ACCOUNTS
        ],
    )


def downgrade() -> None:
    for table in (
        "customers",
        "idempotency_keys",
        "used_refresh_tokens",
        "login_throttle",
        "transfers",
        "postings",
        "journals",
        "accounts",
        "users",
    ):
        op.drop_table(table)
