"""Whole-database records: what a dump holds and a load writes, engine-neutral.

A database is exported as accounts, users, customers, journals (with their postings) and
transfers, every id preserved, so a dump loaded into any engine is the same ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dompet.domain.ledger import AccountKind, JournalKind
from dompet.domain.savings import Customer
from dompet.domain.transfers import Transfer
from dompet.domain.users import User


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """An account row. System accounts' balance is not materialised (always 0 here)."""

    id: str
    kind: AccountKind
    balance: int
    blocked: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A wallet user with their Argon2id PIN hash (never a clear PIN)."""

    user: User
    pin_hash: str


@dataclass(frozen=True, slots=True)
class PostingRecord:
    """One posting as stored: ``sequence`` orders an account's history (kept on load)."""

    sequence: int
    account_id: str
    amount: int
    balance_before: int | None
    balance_after: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class JournalRecord:
    id: str
    kind: JournalKind
    reference: str
    remarks: str
    created_at: datetime
    postings: tuple[PostingRecord, ...]


DataRecord = AccountRecord | UserRecord | Customer | JournalRecord | Transfer
"""One record of a whole-database export. A Transfer is exported without its lease."""

RECORD_KINDS: tuple[str, ...] = ("accounts", "users", "customers", "journals", "transfers")
"""The kinds in the order an export yields them and an import must receive them."""


def kind_of(record: DataRecord) -> str:
    """The RECORD_KINDS name of a record."""
    if isinstance(record, AccountRecord):
        return "accounts"
    if isinstance(record, UserRecord):
        return "users"
    if isinstance(record, Customer):
        return "customers"
    if isinstance(record, JournalRecord):
        return "journals"
    return "transfers"
