"""MongoDB's journal writer: every journal in one multi-document transaction.

A customer balance changes in one guarded update: ``{_id, balance >= -delta, blocked:
false}`` + ``{$inc: {balance: delta, seq: 1}}``, never read-modify-write. ``seq`` numbers
each account's entries 1, 2, 3..., so history is keyset-paged by sequence exactly like the SQL
engines; a credit is guarded by the balance cap the same way (``balance <= BALANCE_CAP -
delta``). With the journal, in the same transaction: a new transfer, the flip of a transfer to
its final status, or the idempotency key it answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import NoReturn

from pymongo import ReturnDocument

from dompet.domain.errors import (
    AccountBlocked,
    AccountNotFound,
    BalanceLimitExceeded,
    IdempotencyConflict,
    InsufficientFunds,
)
from dompet.domain.idempotency import IN_FLIGHT, IdempotencyKey
from dompet.domain.ledger import Entry, Journal, is_customer_account, posted_entry
from dompet.domain.money import BALANCE_CAP
from dompet.domain.transfers import Transfer, TransferStatus
from dompet.storage.mongo.access import MongoAccess, Session
from dompet.storage.mongo.client import Document, stamp
from dompet.storage.mongo.documents import (
    NULL,
    journal_document,
    posting_document,
    transfer_document,
)


class MongoJournal:
    """The port's three money-moving methods (``storage/port.py`` says what each promises)."""

    def __init__(self, access: MongoAccess) -> None:
        self._access = access
        self._db = access.db

    async def post(self, journal: Journal, idem: IdempotencyKey | None = None) -> list[Entry]:
        async def work(s: Session) -> list[Entry]:
            entries = await self._apply(s, journal)
            if idem is not None:
                await self._answer_with_journal(s, idem, journal.id)
            return entries

        return await self._access.transaction(work)

    async def open_transfer(
        self, transfer: Transfer, journal: Journal, idem: IdempotencyKey | None = None
    ) -> list[Entry]:
        async def work(s: Session) -> list[Entry]:
            entries = await self._apply(s, journal)
            await self._db.transfers.insert_one(transfer_document(transfer), session=s)
            if idem is not None:
                await self._answer_with_journal(s, idem, journal.id)
            # The debit entry is PENDING: the transfer it belongs to is, from now on.
            return entries

        return await self._access.transaction(work)

    async def close_transfer(
        self, transfer_id: str, status: TransferStatus, journal: Journal, now: datetime
    ) -> bool:
        async def work(s: Session) -> bool:
            flipped = await self._db.transfers.update_one(
                {"_id": transfer_id, "status": TransferStatus.PENDING.value},
                {
                    "$set": {
                        "status": status.value,
                        "settled_at": stamp(now),
                        "claimed_by": None,
                        "claimed_until": None,
                    }
                },
                session=s,
            )
            if flipped.matched_count != 1:
                return False
            await self._apply(s, journal)
            return True

        return await self._access.transaction(work)

    async def _answer_with_journal(self, s: Session, key: IdempotencyKey, journal_id: str) -> None:
        """Tie the key to the journal in the journal's own transaction: at most one per key."""
        result = await self._db.idempotency_keys.update_one(
            {
                "scope": key.scope,
                "key": key.key,
                "fingerprint": key.fingerprint,
                "journal_id": NULL,
                "response_status": NULL,
            },
            {"$set": {"journal_id": journal_id}},
            session=s,
        )
        if result.matched_count != 1:
            raise IdempotencyConflict(IN_FLIGHT)

    async def _apply(self, s: Session, journal: Journal) -> list[Entry]:
        """Write the journal; guard and change each customer balance in one update."""
        at = journal.created_at
        head = journal_document(journal.id, journal.kind, journal.reference, journal.remarks, at)
        await self._db.journals.insert_one(head, session=s)
        entries: list[Entry] = []
        postings: list[Document] = []
        for posting in journal.postings:
            account_id, amount = posting.account_id, posting.amount
            if not is_customer_account(account_id):
                postings.append(
                    posting_document(
                        head, account_id, amount, None, None, seq=None, n=None, created_at=at
                    )
                )
                continue
            guard: Document = {"_id": account_id}
            if amount < 0:
                guard["balance"] = {"$gte": -amount}
            else:  # the cap (BALANCE_CAP; the validator is the second line, on a real server)
                guard["balance"] = {"$lte": BALANCE_CAP - amount}
            if posting.require_active:
                guard["blocked"] = False
            account = await self._db.accounts.find_one_and_update(
                guard,
                {"$inc": {"balance": amount, "seq": 1}},
                projection={"balance": 1, "seq": 1},
                return_document=ReturnDocument.AFTER,
                session=s,
            )
            if account is None:
                await self._explain_refusal(s, account_id, amount)
            after, sequence = int(account["balance"]), int(account["seq"])
            before = after - amount
            postings.append(
                posting_document(
                    head, account_id, amount, before, after, seq=sequence, n=None, created_at=at
                )
            )
            entries.append(posted_entry(journal, sequence, account_id, amount, before))
        await self._db.postings.insert_many(postings, ordered=True, session=s)
        return entries

    async def _explain_refusal(self, s: Session, account_id: str, amount: int) -> NoReturn:
        doc = await self._db.accounts.find_one(
            {"_id": account_id}, {"blocked": 1, "balance": 1}, session=s
        )
        if doc is None:
            raise AccountNotFound(account_id)
        if doc["blocked"]:
            raise AccountBlocked(account_id)
        if amount > 0 and int(doc["balance"]) + amount > BALANCE_CAP:
            raise BalanceLimitExceeded()
        raise InsufficientFunds()
