"""Safe by default (issue 19): kept secrets, throttles, sessions, and a cap on every balance.

* ``server_secrets``: the secrets a server generates when none is configured (JWT and dashboard
  session keys), one row per name, written once (PostgreSQL; SQLite keeps them in a 0600 file
  beside the database, see dompet/security/kept_secrets.py).
* ``throttles``: attempt counters (failed logins per phone number, per operator, per client
  address; registrations per client address), taken atomically before any PIN is checked.
  Replaces ``login_throttle`` (its rows are dropped: a lock in force at the upgrade is lifted).
* ``sessions``: a login's session (wallet user or dashboard operator): the one live refresh
  token of a wallet session, and whether it ended. Replaces ``used_refresh_tokens``: a refresh
  token that is not its session's current one was used before, and ends the session.
* ``ck_accounts_balance_cap``: no customer balance above 10^15 Rupiah, far below the 64-bit
  limit, so no sum can overflow. SQLite cannot add a CHECK to a table: ``accounts`` is rebuilt
  (migrate.py runs SQLite migrations with foreign keys off, and checks them after).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dompet.storage.sql.tables import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MONEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
BALANCE_CAP = "kind = 'system' OR balance <= 1000000000000000"


def upgrade() -> None:
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "throttles",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("hits", MONEY, nullable=False),
        sa.Column("until", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_throttles_until", "throttles", ["until"])
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("subject", sa.String(100), nullable=False),
        sa.Column("refresh_jti", sa.String(36), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_sessions_subject", "sessions", ["subject"])
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])
    op.drop_table("login_throttle")
    op.drop_table("used_refresh_tokens")
    with op.batch_alter_table("accounts", recreate="auto") as batch:
        batch.create_check_constraint("ck_accounts_balance_cap", sa.text(BALANCE_CAP))


def downgrade() -> None:
    with op.batch_alter_table("accounts", recreate="auto") as batch:
        batch.drop_constraint("ck_accounts_balance_cap", type_="check")
    op.create_table(
        "used_refresh_tokens",
        sa.Column("jti", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "login_throttle",
        sa.Column("phone_number", sa.String(20), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", UtcDateTime(), nullable=True),
    )
    op.drop_index("ix_sessions_expires_at", table_name="sessions")
    op.drop_index("ix_sessions_subject", table_name="sessions")
    op.drop_table("sessions")
    op.drop_index("ix_throttles_until", table_name="throttles")
    op.drop_table("throttles")
    op.drop_table("server_secrets")
