"""The double-entry ledger: accounts, postings and journals.

Every money movement is one :class:`Journal` whose postings sum to zero. Customer accounts
(wallets, savings) carry a materialised balance that never goes below zero; system accounts stand
for the outside world and may go negative, so their balance is simply the sum of their postings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from dompet.domain.money import check_amount


class AccountKind(StrEnum):
    WALLET = "wallet"
    SAVINGS = "savings"
    SYSTEM = "system"


class SystemAccount(StrEnum):
    """Accounts that stand for the world outside the ledger."""

    TOPUP = "system:topup"
    """Funds coming in by top-up (goes negative as money enters)."""
    PAYMENTS = "system:payments"
    """Merchants paid."""
    TRANSIT = "system:transit"
    """Transfers accepted but not yet credited: equals the sum of PENDING transfers."""
    TELLER = "system:teller"
    """Cash in and out of savings accounts."""


WALLET_PREFIX = "wallet:"
"""Every wallet account's id starts with it (then its user's id)."""


def wallet_account(user_id: str) -> str:
    return f"{WALLET_PREFIX}{user_id}"


def savings_account(no_rekening: str) -> str:
    return f"savings:{no_rekening}"


def is_customer_account(account_id: str) -> bool:
    return not account_id.startswith("system:")


class JournalKind(StrEnum):
    TOPUP = "topup"
    PAYMENT = "payment"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_SETTLE = "transfer_settle"
    TRANSFER_REFUND = "transfer_refund"
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"


@dataclass(frozen=True, slots=True)
class Posting:
    """One leg of a journal: ``amount`` > 0 credits the account, < 0 debits it.

    ``require_active`` makes the store refuse the posting when the account is blocked; refunds
    set it to False so money can always go back where it came from.
    """

    account_id: str
    amount: int
    require_active: bool = True


@dataclass(frozen=True, slots=True)
class Journal:
    """An atomic, balanced set of postings.

    ``reference`` is the id the customer sees (top_up_id, payment_id, transfer_id ...); several
    journals may share one (a transfer's debit, settlement and refund).
    """

    id: str
    kind: JournalKind
    reference: str
    remarks: str
    created_at: datetime
    postings: tuple[Posting, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if len(self.postings) < 2:
            raise ValueError("a journal needs at least two postings")
        if sum(p.amount for p in self.postings) != 0:
            raise ValueError("a journal's postings must sum to zero")
        if any(p.amount == 0 for p in self.postings):
            raise ValueError("a posting cannot be zero")
        if len({p.account_id for p in self.postings}) != len(self.postings):
            raise ValueError("an account appears twice in one journal")


class EntryType(StrEnum):
    CREDIT = "CREDIT"
    DEBIT = "DEBIT"


class EntryStatus(StrEnum):
    SUCCESS = "SUCCESS"
    PENDING = "PENDING"
    FAILED = "FAILED"


class Entry(NamedTuple):
    """A posting on a customer account, as the customer sees it in their history.

    A named tuple rather than a frozen dataclass: a history page builds fifty of them, and a
    frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) cost six times as
    much -- a tenth of the page's CPU time.
    """

    sequence: int
    account_id: str
    journal_id: str
    kind: JournalKind
    reference: str
    amount: int
    """Always positive; the direction is :attr:`entry_type`."""
    entry_type: EntryType
    balance_before: int
    balance_after: int
    remarks: str
    created_at: datetime
    status: EntryStatus = EntryStatus.SUCCESS


def _move(
    kind: JournalKind,
    journal_id: str,
    reference: str,
    source: str,
    target: str,
    amount: int,
    remarks: str,
    now: datetime,
    *,
    require_active: bool = True,
) -> Journal:
    check_amount(amount)
    return Journal(
        id=journal_id,
        kind=kind,
        reference=reference,
        remarks=remarks,
        created_at=now,
        postings=(
            Posting(source, -amount, require_active),
            Posting(target, amount, require_active),
        ),
    )


def topup_journal(journal_id: str, user_id: str, amount: int, now: datetime) -> Journal:
    return _move(
        JournalKind.TOPUP,
        journal_id,
        journal_id,
        SystemAccount.TOPUP,
        wallet_account(user_id),
        amount,
        "",
        now,
    )


def payment_journal(
    journal_id: str, user_id: str, amount: int, remarks: str, now: datetime
) -> Journal:
    return _move(
        JournalKind.PAYMENT,
        journal_id,
        journal_id,
        wallet_account(user_id),
        SystemAccount.PAYMENTS,
        amount,
        remarks,
        now,
    )


def transfer_out_journal(
    journal_id: str, transfer_id: str, sender_id: str, amount: int, remarks: str, now: datetime
) -> Journal:
    return _move(
        JournalKind.TRANSFER_OUT,
        journal_id,
        transfer_id,
        wallet_account(sender_id),
        SystemAccount.TRANSIT,
        amount,
        remarks,
        now,
    )


def settlement_journal(
    journal_id: str, transfer_id: str, target_id: str, amount: int, remarks: str, now: datetime
) -> Journal:
    return _move(
        JournalKind.TRANSFER_SETTLE,
        journal_id,
        transfer_id,
        SystemAccount.TRANSIT,
        wallet_account(target_id),
        amount,
        remarks,
        now,
    )


def refund_journal(
    journal_id: str, transfer_id: str, sender_id: str, amount: int, remarks: str, now: datetime
) -> Journal:
    return _move(
        JournalKind.TRANSFER_REFUND,
        journal_id,
        transfer_id,
        SystemAccount.TRANSIT,
        wallet_account(sender_id),
        amount,
        f"Refund: {remarks}",
        now,
        require_active=False,
    )


def deposit_journal(journal_id: str, no_rekening: str, amount: int, now: datetime) -> Journal:
    return _move(
        JournalKind.DEPOSIT,
        journal_id,
        journal_id,
        SystemAccount.TELLER,
        savings_account(no_rekening),
        amount,
        "",
        now,
    )


def withdrawal_journal(journal_id: str, no_rekening: str, amount: int, now: datetime) -> Journal:
    return _move(
        JournalKind.WITHDRAWAL,
        journal_id,
        journal_id,
        savings_account(no_rekening),
        SystemAccount.TELLER,
        amount,
        "",
        now,
    )


def posted_entry(
    journal: Journal, sequence: int, account_id: str, amount: int, before: int
) -> Entry:
    """The entry a customer posting of ``journal`` became, once written: ``sequence`` is
    its number in the account's history, ``before`` the balance it started from. A
    transfer's debit is PENDING until the transfer is settled."""
    return Entry(
        sequence=sequence,
        account_id=account_id,
        journal_id=journal.id,
        kind=journal.kind,
        reference=journal.reference,
        amount=abs(amount),
        entry_type=EntryType.CREDIT if amount > 0 else EntryType.DEBIT,
        balance_before=before,
        balance_after=before + amount,
        remarks=journal.remarks,
        created_at=journal.created_at,
        status=(
            EntryStatus.PENDING if journal.kind is JournalKind.TRANSFER_OUT else EntryStatus.SUCCESS
        ),
    )


def entry_for(entries: Sequence[Entry], account_id: str) -> Entry:
    """The entry of ``account_id`` among a posted journal's customer entries."""
    for entry in entries:
        if entry.account_id == account_id:
            return entry
    raise LookupError(f"no entry for {account_id}")
