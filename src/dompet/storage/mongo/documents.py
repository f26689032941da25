"""MongoDB documents and the domain objects they hold, both ways: one place for every
writer of a document (a new transfer and an imported one, say) and every reader of it.

Times are stored as whole microseconds since the epoch (``client.stamp``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dompet.domain.ledger import Entry, EntryStatus, EntryType, JournalKind
from dompet.domain.savings import Customer
from dompet.domain.transfers import Transfer, TransferStatus
from dompet.domain.users import User
from dompet.storage.mongo.client import Document, stamp, unstamp

SEQUENCES = "sequences"
"""The ledger_meta document holding the entry-sequence floor (raised by imports)."""
NULL: Document = {"$in": [None]}
"""Matches a null or missing field (nx-27017's ``{field: null}`` misses stored nulls)."""


def posting_id(journal_id: str, account_id: str) -> str:
    """A posting document's id: one leg per journal and account."""
    return f"{journal_id}:{account_id}"


def entry_of(doc: Document, transfer_statuses: dict[str, str]) -> Entry:
    """A customer posting as an entry (a transfer's debit has its transfer's status)."""
    kind = JournalKind(doc["kind"])
    status = EntryStatus.SUCCESS
    if kind is JournalKind.TRANSFER_OUT:
        status = EntryStatus(transfer_statuses.get(doc["reference"], EntryStatus.SUCCESS.value))
    amount = int(doc["amount"])
    return Entry(
        sequence=int(doc["seq"]),
        account_id=doc["account_id"],
        journal_id=doc["journal_id"],
        kind=kind,
        reference=doc["reference"],
        amount=abs(amount),
        entry_type=EntryType.CREDIT if amount > 0 else EntryType.DEBIT,
        balance_before=int(doc["balance_before"]),
        balance_after=int(doc["balance_after"]),
        remarks=doc["remarks"],
        created_at=unstamp(doc["created_at"]),
        status=status,
    )


def customer_of(doc: Document) -> Customer:
    return Customer(
        id=doc["_id"],
        nama=doc["nama"],
        nik=doc["nik"],
        no_hp=doc["no_hp"],
        no_rekening=doc["no_rekening"],
        created_at=unstamp(doc["created_at"]),
    )


def user_of(doc: Document) -> User:
    return User(
        id=doc["_id"],
        first_name=doc["first_name"],
        last_name=doc["last_name"],
        phone_number=doc["phone_number"],
        address=doc["address"],
        created_at=unstamp(doc["created_at"]),
        updated_at=unstamp(doc["updated_at"]),
    )


def transfer_of(doc: Document) -> Transfer:
    return Transfer(
        id=doc["_id"],
        sender_id=doc["sender_id"],
        target_id=doc["target_id"],
        amount=int(doc["amount"]),
        remarks=doc["remarks"],
        status=TransferStatus(doc["status"]),
        created_at=unstamp(doc["created_at"]),
        attempts=int(doc["attempts"]),
        last_error=doc["last_error"],
        next_attempt_at=unstamp(doc["next_attempt_at"]),
        settled_at=unstamp(doc.get("settled_at")),
    )


def int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def user_document(user: User, pin_hash: str) -> Document:
    return {
        "_id": user.id,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "phone_number": user.phone_number,
        "address": user.address,
        "pin_hash": pin_hash,
        "created_at": stamp(user.created_at),
        "updated_at": stamp(user.updated_at),
    }


def customer_document(customer: Customer) -> Document:
    return {
        "_id": customer.id,
        "nama": customer.nama,
        "nik": customer.nik,
        "no_hp": customer.no_hp,
        "no_rekening": customer.no_rekening,
        "created_at": stamp(customer.created_at),
    }


def journal_document(
    journal_id: str, kind: JournalKind, reference: str, remarks: str, created_at: datetime
) -> Document:
    return {
        "_id": journal_id,
        "kind": kind.value,
        "reference": reference,
        "remarks": remarks,
        "created_at": stamp(created_at),
    }


def posting_document(
    journal: Document,
    account_id: str,
    amount: int,
    before: int | None,
    after: int | None,
    *,
    seq: int | None,
    n: int | None,
    created_at: datetime,
) -> Document:
    """A posting of ``journal`` (its document), with the journal's kind, reference and
    remarks. ``seq``: the account's entry number (customer postings only); ``n``: the
    sequence it was imported with (None for a posting made here)."""
    return {
        "_id": posting_id(journal["_id"], account_id),
        "journal_id": journal["_id"],
        "account_id": account_id,
        "seq": seq,
        "n": n,
        "amount": amount,
        "balance_before": before,
        "balance_after": after,
        "kind": journal["kind"],
        "reference": journal["reference"],
        "remarks": journal["remarks"],
        "created_at": stamp(created_at),
    }


def transfer_document(transfer: Transfer) -> Document:
    """A transfer, unleased (a new one is PENDING and due at once; an imported one keeps its
    attempts, error and due time)."""
    settled_at = transfer.settled_at
    return {
        "_id": transfer.id,
        "sender_id": transfer.sender_id,
        "target_id": transfer.target_id,
        "amount": transfer.amount,
        "remarks": transfer.remarks,
        "status": transfer.status.value,
        "created_at": stamp(transfer.created_at),
        "settled_at": None if settled_at is None else stamp(settled_at),
        "attempts": transfer.attempts,
        "last_error": transfer.last_error,
        "next_attempt_at": stamp(transfer.next_attempt_at or transfer.created_at),
        "claimed_by": None,
        "claimed_until": None,
    }
