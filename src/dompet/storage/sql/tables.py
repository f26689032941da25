"""The SQL schema (SQLAlchemy Core). Alembic migrations create it; keep the two in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)


class UtcDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, hands back aware UTC datetimes on every engine."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


Id = String(36)
Money = BigInteger().with_variant(Integer(), "sqlite")
"""On SQLite, INTEGER is 64-bit and is what an autoincrement rowid needs."""

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True),
    Column("first_name", String(100), nullable=False),
    Column("last_name", String(100), nullable=False),
    Column("phone_number", String(20), nullable=False, unique=True),
    Column("address", String(500), nullable=False),
    Column("pin_hash", String(255), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("balance", Money, nullable=False),
    Column("blocked", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("kind = 'system' OR balance >= 0", name="ck_accounts_not_overdrawn"),
    # no customer balance above 10^15 (migration 0007; domain/money.py BALANCE_CAP)
    CheckConstraint(
        "kind = 'system' OR balance <= 1000000000000000", name="ck_accounts_balance_cap"
    ),
)

journals = Table(
    "journals",
    metadata,
    Column("id", Id, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("reference", Id, nullable=False, index=True),
    Column("remarks", String(500), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

postings = Table(
    "postings",
    metadata,
    Column("id", Money, primary_key=True, autoincrement=True),
    Column("journal_id", Id, ForeignKey("journals.id"), nullable=False),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("amount", Money, nullable=False),
    Column("balance_before", Money, nullable=True),
    Column("balance_after", Money, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # the journal's kind, reference and remarks, copied (migration 0004): a history page reads
    # postings (and a transfer's status) without joining journals
    Column("kind", String(32), nullable=False),
    Column("reference", Id, nullable=False),
    Column("remarks", String(500), nullable=False),
    # a wallet entry's history item, rendered once when written, and its layout's fingerprint
    # (migration 0006; storage/sql/history/written.py): NULL where it is rendered when read
    Column("item", Text, nullable=True),
    Column("item_layout", BigInteger, nullable=True),
    Index("ix_postings_account_id_id", "account_id", "id"),
    Index("ix_postings_journal_id", "journal_id"),
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", Id, primary_key=True),
    Column("sender_id", Id, nullable=False),
    Column("target_id", Id, nullable=False),
    Column("amount", Money, nullable=False),
    Column("remarks", String(500), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("settled_at", UtcDateTime, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("claimed_by", String(100), nullable=True),
    Column("claimed_until", UtcDateTime, nullable=True),
    Index("ix_transfers_status_next_attempt_at", "status", "next_attempt_at"),
    Index("ix_transfers_settled_at", "settled_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("journal_id", Id, nullable=True),
    Column("response_status", Integer, nullable=True),
    Column("response_body", LargeBinary, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index("ix_idempotency_keys_expires_at", "expires_at"),  # the purge (migration 0005)
)

customers = Table(
    "customers",
    metadata,
    Column("id", Id, primary_key=True),
    Column("nama", String(100), nullable=False),
    Column("nik", String(16), nullable=False, unique=True),
    Column("no_hp", String(20), nullable=False, unique=True),
    Column("no_rekening", String(10), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
)

worker_heartbeats = Table(
    "worker_heartbeats",
    metadata,
    Column("worker_id", String(200), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("settled", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("info", Text, nullable=False),
)

# -- dashboard operators (issue 4, migration 0003) --------------------------------------------
operators = Table(
    "operators",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)


# -- safe by default (issue 19, migration 0007) -----------------------------------------------
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

throttles = Table(
    "throttles",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("hits", Money, nullable=False),
    Column("until", UtcDateTime, nullable=False),
    Index("ix_throttles_until", "until"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("subject", String(100), nullable=False),
    Column("refresh_jti", Id, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),
    Index("ix_sessions_subject", "subject"),
    Index("ix_sessions_expires_at", "expires_at"),
)


def time_columns(*tables: Table) -> frozenset[str]:
    """The names of the ``UtcDateTime`` columns of ``tables`` (a hot read converts them)."""
    return frozenset(
        column.name
        for table in tables
        for column in table.columns
        if isinstance(column.type, UtcDateTime)
    )
