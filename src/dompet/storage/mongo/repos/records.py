"""Whole-database export and import (example data, ``dompet example-data dump/load``): every
record, every id kept (``domain/records.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from dompet.domain.ledger import AccountKind, JournalKind, is_customer_account
from dompet.domain.records import (
    AccountRecord,
    DataRecord,
    JournalRecord,
    PostingRecord,
    UserRecord,
)
from dompet.domain.savings import Customer
from dompet.storage.mongo.access import MongoAccess, Session
from dompet.storage.mongo.client import Document, stamp, unstamp
from dompet.storage.mongo.documents import (
    SEQUENCES,
    customer_document,
    customer_of,
    int_or_none,
    journal_document,
    posting_document,
    transfer_document,
    transfer_of,
    user_document,
    user_of,
)


class Records:
    def __init__(self, access: MongoAccess) -> None:
        self._access = access
        self._db = access.db

    async def is_empty(self) -> bool:
        async with self._access.read():
            for name in ("users", "customers", "journals", "transfers"):
                if await self._db[name].find_one({}, {"_id": 1}) is not None:
                    return False
        return True

    async def export_records(self) -> AsyncIterator[DataRecord]:
        """Read in one snapshot transaction, then yield (no lock or session held across yields).

        Postings carry the sequence they were imported with (``n``); postings written here get
        numbers above every imported one, in per-account ``seq`` order, so a dump loaded into
        any engine keeps each account's history in order.
        """
        records = await self._access.transaction(self._read_records)
        for record in records:
            yield record

    async def _read_records(self, s: Session) -> list[DataRecord]:
        records: list[DataRecord] = [
            AccountRecord(
                id=d["_id"],
                kind=AccountKind(d["kind"]),
                balance=int(d["balance"]),
                blocked=bool(d["blocked"]),
                created_at=unstamp(d["created_at"]),
            )
            async for d in self._db.accounts.find(
                {"kind": {"$ne": AccountKind.SYSTEM.value}}, session=s
            ).sort("_id", ASCENDING)
        ]
        records += [
            UserRecord(user=user_of(d), pin_hash=d["pin_hash"])
            async for d in self._db.users.find({}, session=s).sort("_id", ASCENDING)
        ]
        records += [
            customer_of(d)
            async for d in self._db.customers.find({}, session=s).sort("_id", ASCENDING)
        ]
        legs: dict[str, list[Document]] = {}
        native: list[Document] = []
        top = 0
        async for d in self._db.postings.find({}, session=s):
            legs.setdefault(d["journal_id"], []).append(d)
            if d.get("n") is None:
                native.append(d)
            else:
                top = max(top, int(d["n"]))
        native.sort(key=lambda d: (d.get("seq") or 0, d["account_id"], d["journal_id"]))
        for rank, d in enumerate(native, start=top + 1):
            d["n"] = rank
        async for j in self._db.journals.find({}, session=s).sort("_id", ASCENDING):
            postings = sorted(legs.get(j["_id"], []), key=lambda d: int(d["n"]))
            records.append(
                JournalRecord(
                    id=j["_id"],
                    kind=JournalKind(j["kind"]),
                    reference=j["reference"],
                    remarks=j["remarks"],
                    created_at=unstamp(j["created_at"]),
                    postings=tuple(
                        PostingRecord(
                            sequence=int(p["n"]),
                            account_id=p["account_id"],
                            amount=int(p["amount"]),
                            balance_before=int_or_none(p["balance_before"]),
                            balance_after=int_or_none(p["balance_after"]),
                            created_at=unstamp(p["created_at"]),
                        )
                        for p in postings
                    ),
                )
            )
        records += [
            transfer_of(d)
            async for d in self._db.transfers.find({}, session=s).sort("_id", ASCENDING)
        ]
        return records

    async def import_records(self, records: Sequence[DataRecord]) -> None:
        top = max(
            (leg.sequence for r in records if isinstance(r, JournalRecord) for leg in r.postings),
            default=0,
        )

        async def work(s: Session) -> None:
            for record in records:
                await self._import_one(s, record)
            if top:  # new postings, on any account, get sequences above every imported one
                await self._db.accounts.update_many(
                    {"kind": {"$ne": AccountKind.SYSTEM.value}}, {"$max": {"seq": top}}, session=s
                )
                await self._db.ledger_meta.update_one(
                    {"_id": SEQUENCES}, {"$max": {"floor": top}}, upsert=True, session=s
                )

        try:
            await self._access.transaction(work)
        except DuplicateKeyError as exc:
            raise ValueError(f"a record already exists in the database: {exc}") from exc

    async def _import_one(self, s: Session, record: DataRecord) -> None:
        if isinstance(record, AccountRecord):
            if record.kind == AccountKind.SYSTEM and await self._db.accounts.find_one(
                {"_id": record.id}, {"_id": 1}, session=s
            ):
                return
            await self._db.accounts.insert_one(
                {
                    "_id": record.id,
                    "kind": record.kind.value,
                    "balance": record.balance,
                    "seq": 0,
                    "blocked": record.blocked,
                    "created_at": stamp(record.created_at),
                },
                session=s,
            )
        elif isinstance(record, UserRecord):
            await self._db.users.insert_one(user_document(record.user, record.pin_hash), session=s)
        elif isinstance(record, Customer):
            await self._db.customers.insert_one(customer_document(record), session=s)
        elif isinstance(record, JournalRecord):
            head = journal_document(
                record.id, record.kind, record.reference, record.remarks, record.created_at
            )
            await self._db.journals.insert_one(head, session=s)
            docs = [
                posting_document(
                    head,
                    leg.account_id,
                    leg.amount,
                    leg.balance_before,
                    leg.balance_after,
                    seq=leg.sequence if is_customer_account(leg.account_id) else None,
                    n=leg.sequence,
                    created_at=leg.created_at,
                )
                for leg in record.postings
            ]
            await self._db.postings.insert_many(docs, ordered=True, session=s)
        else:
            await self._db.transfers.insert_one(transfer_document(record), session=s)
