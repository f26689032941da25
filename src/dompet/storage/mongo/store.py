"""The MongoDB implementation of the storage port.

Every journal (and every other multi-document step) runs in one multi-document transaction
through ``session.with_transaction``, which retries transient transaction errors (write
conflicts, elections) and unknown commit results. A customer balance changes in one guarded
update: ``{_id, balance >= -delta, blocked: false}`` + ``{$inc: {balance: delta, seq: 1}}``,
never read-modify-write. ``seq`` numbers each account's entries 1, 2, 3..., so history is
keyset-paged by sequence exactly like the SQL engines.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, NoReturn, TypeVar

from bson import Binary
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import ReadPreference
from pymongo.write_concern import WriteConcern

from dompet.domain.errors import (
    AccountBlocked,
    AccountNotFound,
    AccountNumberTaken,
    BalanceLimitExceeded,
    IdempotencyConflict,
    InsufficientFunds,
    NikTaken,
    NoHpTaken,
    OperatorTaken,
    PhoneTaken,
)
from dompet.domain.idempotency import (
    Claimed,
    ClaimOutcome,
    IdempotencyKey,
    ReplayJournal,
    ReplayResponse,
)
from dompet.domain.invariants import LedgerSnapshot
from dompet.domain.ledger import (
    AccountKind,
    Entry,
    EntryStatus,
    EntryType,
    Journal,
    JournalKind,
    is_customer_account,
    savings_account,
    wallet_account,
)
from dompet.domain.money import BALANCE_CAP
from dompet.domain.monitoring import SettledSample, WorkerHeartbeat
from dompet.domain.operators import Operator
from dompet.domain.records import (
    AccountRecord,
    DataRecord,
    JournalRecord,
    PostingRecord,
    UserRecord,
)
from dompet.domain.savings import Customer
from dompet.domain.sessions import SessionRecord, ThrottleHit, ThrottleRule
from dompet.domain.transfers import Transfer, TransferStatus
from dompet.domain.users import Credentials, ProfileChanges, User
from dompet.storage.mongo import sessions, throttles
from dompet.storage.mongo.client import Document, MongoConnection, connect, stamp, unstamp
from dompet.storage.port import ItemLayout, RenderedItems

IN_FLIGHT = "A request with this Idempotency-Key is still being processed; retry later."
KEY_REUSED = "This Idempotency-Key was already used with a different request."

T = TypeVar("T")
SEQUENCES = "sequences"
"""The ledger_meta document holding the entry-sequence floor (raised by imports)."""
NULL: Document = {"$in": [None]}
"""Matches a null or missing field (nx-27017's ``{field: null}`` misses stored nulls)."""
Session = AsyncClientSession


class _NoLock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


class MongoStore:
    """The ledger on MongoDB. Each public method is one atomic step (one transaction)."""

    engine_name = "mongodb"

    def __init__(self, connection: MongoConnection) -> None:
        self._connection = connection
        self._db = connection.db
        self._serialise = connection.standalone
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        if connection.standalone:  # test servers: no real concurrency control
            self._txn_options: dict[str, Any] = {}
        else:
            self._txn_options = {
                "read_concern": ReadConcern("snapshot"),
                "write_concern": WriteConcern("majority"),
                "read_preference": ReadPreference.PRIMARY,
            }

    @classmethod
    async def open(cls, database_url: str, *, allow_standalone: bool = False) -> MongoStore:
        return cls(await connect(database_url, allow_standalone=allow_standalone))

    async def close(self) -> None:
        await self._connection.close()

    async def ping(self) -> None:
        async with self._guard():
            await self._db.command("ping")

    # -- plumbing ----------------------------------------------------------------------------
    def _guard(self) -> asyncio.Lock | _NoLock:
        """On a standalone test server (nx-27017), one operation at a time per event loop."""
        if not self._serialise:
            return _NoLock()
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[None]:
        async with self._guard():
            yield

    _read = _write

    async def _transaction(self, work: Callable[[Session], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction; transient errors re-run it (driver's retry loop)."""
        async with self._guard(), self._connection.client.start_session() as session:
            result: T = await session.with_transaction(work, **self._txn_options)
            return result

    # -- wallet users ------------------------------------------------------------------------
    async def add_user(self, user: User, pin_hash: str) -> None:
        async def work(s: Session) -> None:
            await self._db.users.insert_one(
                {
                    "_id": user.id,
                    "first_name": user.first_name,
                    "last_name": user.last_name,
                    "phone_number": user.phone_number,
                    "address": user.address,
                    "pin_hash": pin_hash,
                    "created_at": stamp(user.created_at),
                    "updated_at": stamp(user.updated_at),
                },
                session=s,
            )
            await self._open_account(
                s, wallet_account(user.id), AccountKind.WALLET, user.created_at
            )

        try:
            await self._transaction(work)
        except DuplicateKeyError as exc:
            raise PhoneTaken() from exc

    async def find_credentials(self, phone_number: str) -> Credentials | None:
        async with self._read():
            doc = await self._db.users.find_one({"phone_number": phone_number}, {"pin_hash": 1})
        return Credentials(user_id=doc["_id"], pin_hash=doc["pin_hash"]) if doc else None

    async def get_user(self, user_id: str) -> User | None:
        async with self._read():
            doc = await self._db.users.find_one({"_id": user_id})
        return _user(doc) if doc else None

    async def update_profile(
        self, user_id: str, changes: ProfileChanges, now: datetime
    ) -> User | None:
        async with self._write():
            doc = await self._db.users.find_one_and_update(
                {"_id": user_id},
                {"$set": {**changes.as_dict(), "updated_at": stamp(now)}},
                return_document=ReturnDocument.AFTER,
            )
        return _user(doc) if doc else None

    # -- server secrets, throttles and sessions (issue 19: sessions.py, throttles.py) ---------
    async def keep_secret(self, name: str, candidate: str, now: datetime) -> str:
        async with self._write():
            return await sessions.keep_secret(self._db, name, candidate, now)

    async def take_throttle(self, key: str, now: datetime, rule: ThrottleRule) -> ThrottleHit:
        async with self._write():
            return await throttles.take(self._db.throttles, key, now, rule)

    async def release_throttle(self, key: str, now: datetime) -> None:
        async with self._write():
            await throttles.release(self._db.throttles, key, now)

    async def clear_throttle(self, key: str) -> None:
        async with self._write():
            await self._db.throttles.delete_one({"_id": key})

    async def purge_throttles(self, before: datetime, limit: int) -> int:
        async with self._write():
            return await throttles.purge(self._db.throttles, before, limit) if limit > 0 else 0

    async def open_session(self, session: SessionRecord) -> None:
        async with self._write():
            await sessions.open_session(self._db, session)

    async def session_live(self, session_id: str, subject: str) -> bool:
        async with self._read():
            return await sessions.live(self._db, session_id, subject)

    async def rotate_session(
        self,
        session_id: str,
        subject: str,
        presented_jti: str,
        next_jti: str,
        expires_at: datetime,
        now: datetime,
    ) -> bool:
        async with self._write():
            return await sessions.rotate(
                self._db, session_id, subject, presented_jti, next_jti, expires_at, now
            )

    async def end_sessions(self, subject: str, now: datetime, session_id: str | None = None) -> int:
        async with self._write():
            return await sessions.end(self._db, subject, now, session_id)

    async def purge_sessions(self, before: datetime, limit: int) -> int:
        async with self._write():
            return await sessions.purge(self._db, before, limit) if limit > 0 else 0

    async def remove_operator(self, username: str, now: datetime) -> bool:
        async def work(s: Session) -> bool:
            return await sessions.remove_operator(self._db, s, username, now)

        return await self._transaction(work)

    # -- savings customers -------------------------------------------------------------------
    async def add_customer(self, customer: Customer) -> None:
        async def work(s: Session) -> None:
            await self._db.customers.insert_one(
                {
                    "_id": customer.id,
                    "nama": customer.nama,
                    "nik": customer.nik,
                    "no_hp": customer.no_hp,
                    "no_rekening": customer.no_rekening,
                    "created_at": stamp(customer.created_at),
                },
                session=s,
            )
            await self._open_account(
                s, savings_account(customer.no_rekening), AccountKind.SAVINGS, customer.created_at
            )

        try:
            await self._transaction(work)
        except DuplicateKeyError as exc:
            async with self._read():
                taken = [
                    doc
                    async for doc in self._db.customers.find(
                        {"$or": [{"nik": customer.nik}, {"no_hp": customer.no_hp}]},
                        {"nik": 1, "no_hp": 1},
                    )
                ]
            if any(doc["nik"] == customer.nik for doc in taken):
                raise NikTaken() from exc
            if taken:
                raise NoHpTaken() from exc
            raise AccountNumberTaken() from exc

    async def get_customer(self, no_rekening: str) -> Customer | None:
        async with self._read():
            doc = await self._db.customers.find_one({"no_rekening": no_rekening})
        return _customer(doc) if doc else None

    # -- the ledger --------------------------------------------------------------------------
    async def post_journal(
        self, journal: Journal, idem: IdempotencyKey | None = None
    ) -> list[Entry]:
        async def work(s: Session) -> list[Entry]:
            entries = await self._apply(s, journal)
            if idem is not None:
                await self._answer_with_journal(s, idem, journal.id)
            return entries

        return await self._transaction(work)

    async def open_transfer(
        self, transfer: Transfer, journal: Journal, idem: IdempotencyKey | None = None
    ) -> list[Entry]:
        async def work(s: Session) -> list[Entry]:
            entries = await self._apply(s, journal)
            await self._db.transfers.insert_one(
                {
                    "_id": transfer.id,
                    "sender_id": transfer.sender_id,
                    "target_id": transfer.target_id,
                    "amount": transfer.amount,
                    "remarks": transfer.remarks,
                    "status": TransferStatus.PENDING.value,
                    "created_at": stamp(transfer.created_at),
                    "settled_at": None,
                    "attempts": 0,
                    "last_error": "",
                    "next_attempt_at": stamp(transfer.created_at),
                    "claimed_by": None,
                    "claimed_until": None,
                },
                session=s,
            )
            if idem is not None:
                await self._answer_with_journal(s, idem, journal.id)
            # The debit entry is PENDING: the transfer it belongs to is, from now on.
            return entries

        return await self._transaction(work)

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

        return await self._transaction(work)

    async def get_transfer(self, transfer_id: str) -> Transfer | None:
        async with self._read():
            doc = await self._db.transfers.find_one({"_id": transfer_id})
        return _transfer(doc) if doc else None

    async def claim_due_transfers(
        self, worker_id: str, now: datetime, lease: timedelta, limit: int
    ) -> list[Transfer]:
        """Each claim is one conditional update: a transfer leased to another worker (or
        already settled) no longer matches, so no transfer is ever leased to two workers."""
        due: Document = {
            "status": TransferStatus.PENDING.value,
            "next_attempt_at": {"$lte": stamp(now)},
            "$or": [{"claimed_until": NULL}, {"claimed_until": {"$lt": stamp(now)}}],
        }
        claimed: list[Transfer] = []
        async with self._write():
            candidates = [
                doc["_id"]
                async for doc in self._db.transfers.find(due, {"_id": 1})
                .sort("next_attempt_at", ASCENDING)
                .limit(limit)
            ]
            for transfer_id in candidates:
                doc = await self._db.transfers.find_one_and_update(
                    {"_id": transfer_id, **due},
                    {"$set": {"claimed_by": worker_id, "claimed_until": stamp(now + lease)}},
                    return_document=ReturnDocument.AFTER,
                )
                if doc is not None:
                    claimed.append(_transfer(doc))
        return sorted(claimed, key=lambda t: t.created_at)

    async def record_settlement_failure(
        self, transfer_id: str, error: str, next_attempt_at: datetime
    ) -> Transfer | None:
        async with self._write():
            doc = await self._db.transfers.find_one_and_update(
                {"_id": transfer_id, "status": TransferStatus.PENDING.value},
                {
                    "$inc": {"attempts": 1},
                    "$set": {
                        "last_error": error[:2000],
                        "next_attempt_at": stamp(next_attempt_at),
                        "claimed_by": None,
                        "claimed_until": None,
                    },
                },
                return_document=ReturnDocument.AFTER,
            )
        return _transfer(doc) if doc else None

    async def retry_transfer_now(self, transfer_id: str, now: datetime) -> bool:
        async with self._write():
            result = await self._db.transfers.update_one(
                {"_id": transfer_id, "status": TransferStatus.PENDING.value},
                {
                    "$set": {
                        "next_attempt_at": stamp(now),
                        "claimed_by": None,
                        "claimed_until": None,
                    }
                },
            )
        return result.matched_count == 1

    async def set_account_blocked(self, account_id: str, blocked: bool) -> bool:
        async with self._write():
            result = await self._db.accounts.update_one(
                {"_id": account_id, "kind": {"$ne": AccountKind.SYSTEM.value}},
                {"$set": {"blocked": blocked}},
            )
        return result.matched_count == 1

    async def balance(self, account_id: str) -> int | None:
        async with self._read():
            doc = await self._db.accounts.find_one({"_id": account_id}, {"balance": 1})
        return int(doc["balance"]) if doc else None

    async def entries(
        self,
        account_id: str,
        *,
        limit: int | None = None,
        before: int | None = None,
        oldest_first: bool = False,
    ) -> list[Entry]:
        query: Document = {"account_id": account_id, "seq": {"$gte": 1}}
        if before is not None:
            query["seq"] = {"$gt": before} if oldest_first else {"$lt": before, "$gte": 1}
        async with self._read():
            cursor = self._db.postings.find(query).sort(
                "seq", ASCENDING if oldest_first else DESCENDING
            )
            if limit is not None:
                cursor = cursor.limit(limit)
            docs = [doc async for doc in cursor]
            statuses = await self._transfer_statuses(docs)
        return [_entry(doc, statuses) for doc in docs]

    async def render_entries(
        self,
        account_id: str,
        user_id: str,
        layout: ItemLayout,
        *,
        limit: int | None = None,
        before: int | None = None,
    ) -> RenderedItems | None:
        """Not rendered here: the presenter renders MongoDB's entries."""
        return None

    async def entry_of_journal(self, journal_id: str, account_id: str) -> Entry | None:
        async with self._read():
            doc = await self._db.postings.find_one(
                {"_id": _posting_id(journal_id, account_id), "seq": {"$gte": 1}}
            )
            if doc is None:
                return None
            statuses = await self._transfer_statuses([doc])
        return _entry(doc, statuses)

    async def _misjournaled_transfers(self, s: Session) -> list[str]:
        """Transfers whose journals do not match their status (see LedgerSnapshot)."""
        kinds = (JournalKind.TRANSFER_OUT, JournalKind.TRANSFER_SETTLE, JournalKind.TRANSFER_REFUND)
        counts: dict[str, Counter[str]] = {}
        async for doc in self._db.journals.find(
            {"kind": {"$in": [k.value for k in kinds]}}, {"kind": 1, "reference": 1}, session=s
        ):
            counts.setdefault(str(doc["reference"]), Counter())[doc["kind"]] += 1
        wrong: list[str] = []
        async for doc in self._db.transfers.find({}, {"status": 1}, session=s).sort(
            "_id", ASCENDING
        ):
            seen = counts.pop(str(doc["_id"]), Counter())
            status = TransferStatus(doc["status"])
            if (
                seen[JournalKind.TRANSFER_OUT.value] != 1
                or seen[JournalKind.TRANSFER_SETTLE.value] != int(status is TransferStatus.SUCCESS)
                or seen[JournalKind.TRANSFER_REFUND.value] != int(status is TransferStatus.FAILED)
            ):
                wrong.append(str(doc["_id"]))
        return wrong

    async def snapshot(self) -> LedgerSnapshot:
        async def work(s: Session) -> LedgerSnapshot:
            balances = {
                doc["_id"]: int(doc["balance"])
                async for doc in self._db.accounts.find(
                    {"kind": {"$ne": AccountKind.SYSTEM.value}}, {"balance": 1}, session=s
                )
            }
            sums = {
                doc["_id"]: int(doc["total"])
                async for doc in await self._db.postings.aggregate(
                    [{"$group": {"_id": "$account_id", "total": {"$sum": "$amount"}}}], session=s
                )
            }
            pending = 0
            async for doc in await self._db.transfers.aggregate(
                [
                    {"$match": {"status": TransferStatus.PENDING.value}},
                    {"$group": {"_id": None, "total": {"$sum": "$amount"}}},
                ],
                session=s,
            ):
                pending = int(doc["total"])
            unbalanced = [
                doc["_id"]
                async for doc in await self._db.postings.aggregate(
                    [
                        {"$group": {"_id": "$journal_id", "total": {"$sum": "$amount"}}},
                        {"$match": {"total": {"$ne": 0}}},
                    ],
                    session=s,
                )
            ]
            broken_entries: list[str] = []
            broken_chains: list[str] = []
            previous: tuple[str, int] | None = None  # (account, balance_after)
            async for doc in self._db.postings.find(
                {"seq": {"$gte": 1}},
                {"account_id": 1, "amount": 1, "balance_before": 1, "balance_after": 1},
                session=s,
            ).sort([("account_id", ASCENDING), ("seq", ASCENDING)]):
                account, before, after = (
                    doc["account_id"],
                    doc["balance_before"],
                    doc["balance_after"],
                )
                if after != before + doc["amount"]:
                    broken_entries.append(str(doc["_id"]))
                expected = previous[1] if previous and previous[0] == account else 0
                if before != expected and (not broken_chains or broken_chains[-1] != account):
                    broken_chains.append(account)
                previous = (account, after)
            return LedgerSnapshot(
                customer_balances=balances,
                posting_sums=sums,
                pending_transfer_total=pending,
                broken_entries=broken_entries,
                broken_chains=broken_chains,
                unbalanced_journals=unbalanced,
                misjournaled_transfers=await self._misjournaled_transfers(s),
            )

        return await self._transaction(work)

    # -- idempotency keys --------------------------------------------------------------------
    async def claim_idempotency(
        self, key: IdempotencyKey, now: datetime, ttl: timedelta, stale_after: timedelta
    ) -> ClaimOutcome:
        where = {"scope": key.scope, "key": key.key}

        async def work(s: Session) -> ClaimOutcome:
            doc = await self._db.idempotency_keys.find_one(where, session=s)
            if doc is not None and doc["expires_at"] <= stamp(now):
                await self._db.idempotency_keys.delete_one({"_id": doc["_id"]}, session=s)
                doc = None
            if doc is None:
                await self._db.idempotency_keys.insert_one(
                    {
                        **where,
                        "fingerprint": key.fingerprint,
                        "journal_id": None,
                        "response_status": None,
                        "response_body": None,
                        "created_at": stamp(now),
                        "expires_at": stamp(now + ttl),
                    },
                    session=s,
                )
                return Claimed()
            if doc["fingerprint"] != key.fingerprint:
                raise IdempotencyConflict(KEY_REUSED)
            if doc.get("journal_id") is not None:
                return ReplayJournal(journal_id=doc["journal_id"])
            if doc.get("response_status") is not None:
                return ReplayResponse(
                    status=int(doc["response_status"]), body=bytes(doc["response_body"] or b"")
                )
            if doc["created_at"] > stamp(now - stale_after):
                raise IdempotencyConflict(IN_FLIGHT)
            # The first request died without moving money: the key is free again.
            await self._db.idempotency_keys.update_one(
                {"_id": doc["_id"]}, {"$set": {"created_at": stamp(now)}}, session=s
            )
            return Claimed()

        try:
            return await self._transaction(work)
        except DuplicateKeyError as exc:  # a concurrent first use won the insert
            raise IdempotencyConflict(IN_FLIGHT) from exc

    async def answer_idempotency(self, key: IdempotencyKey, status: int, body: bytes) -> None:
        async with self._write():
            await self._db.idempotency_keys.update_one(
                {"scope": key.scope, "key": key.key, "journal_id": NULL},
                {"$set": {"response_status": status, "response_body": Binary(body)}},
            )

    async def release_idempotency(self, key: IdempotencyKey) -> None:
        async with self._write():
            await self._db.idempotency_keys.delete_one(
                {"scope": key.scope, "key": key.key, "journal_id": NULL, "response_status": NULL}
            )

    # -- monitoring ---------------------------------------------------------------------------
    async def transfer_counts(self) -> dict[TransferStatus, int]:
        counts = dict.fromkeys(TransferStatus, 0)
        async with self._read():
            async for doc in await self._db.transfers.aggregate(
                [{"$group": {"_id": "$status", "n": {"$sum": 1}}}]
            ):
                counts[TransferStatus(doc["_id"])] = int(doc["n"])
        return counts

    async def oldest_pending_created_at(self) -> datetime | None:
        async with self._read():
            doc = await self._db.transfers.find_one(
                {"status": TransferStatus.PENDING.value},
                {"created_at": 1},
                sort=[("created_at", ASCENDING)],
            )
        return unstamp(doc["created_at"]) if doc else None

    async def settled_since(self, since: datetime, limit: int = 10000) -> list[SettledSample]:
        async with self._read():
            docs = [
                doc
                async for doc in self._db.transfers.find(
                    {"settled_at": {"$gte": stamp(since)}},
                    {"status": 1, "created_at": 1, "settled_at": 1},
                )
                .sort("settled_at", DESCENDING)
                .limit(limit)
            ]
        return [
            SettledSample(d["_id"], d["status"], unstamp(d["created_at"]), unstamp(d["settled_at"]))
            for d in docs
        ]

    async def troubled_transfers(self, limit: int = 50) -> list[Transfer]:
        async with self._read():
            docs = [
                doc
                async for doc in self._db.transfers.find(
                    {
                        "$or": [
                            {"status": TransferStatus.FAILED.value},
                            {"status": TransferStatus.PENDING.value, "attempts": {"$gt": 0}},
                        ]
                    }
                )
                .sort("created_at", DESCENDING)
                .limit(limit)
            ]
        return [_transfer(d) for d in docs]

    async def record_heartbeat(self, heartbeat: WorkerHeartbeat) -> None:
        async with self._write():
            await self._db.worker_heartbeats.update_one(
                {"_id": heartbeat.worker_id},
                {
                    "$set": {
                        "kind": heartbeat.kind,
                        "started_at": stamp(heartbeat.started_at),
                        "last_seen_at": stamp(heartbeat.last_seen_at),
                        "settled": heartbeat.settled,
                        "failed": heartbeat.failed,
                        "info": dict(heartbeat.info),
                    }
                },
                upsert=True,
            )

    async def heartbeats(self) -> list[WorkerHeartbeat]:
        async with self._read():
            docs = [
                doc
                async for doc in self._db.worker_heartbeats.find().sort("last_seen_at", DESCENDING)
            ]
        return [
            WorkerHeartbeat(
                worker_id=d["_id"],
                kind=d["kind"],
                started_at=unstamp(d["started_at"]),
                last_seen_at=unstamp(d["last_seen_at"]),
                settled=int(d["settled"]),
                failed=int(d["failed"]),
                info={str(k): str(v) for k, v in (d.get("info") or {}).items()},
            )
            for d in docs
        ]

    async def release_claims(self, worker_id: str) -> int:
        async with self._write():
            result = await self._db.transfers.update_many(
                {"claimed_by": worker_id, "status": TransferStatus.PENDING.value},
                {"$set": {"claimed_by": None, "claimed_until": None}},
            )
        return int(result.modified_count)

    # -- internals ---------------------------------------------------------------------------
    async def _open_account(
        self, s: Session, account_id: str, kind: AccountKind, now: datetime
    ) -> None:
        # Entry sequences start above every imported one (the floor is 0 until an import).
        meta = await self._db.ledger_meta.find_one({"_id": SEQUENCES}, session=s)
        await self._db.accounts.insert_one(
            {
                "_id": account_id,
                "kind": kind.value,
                "balance": 0,
                "seq": int(meta["floor"]) if meta else 0,
                "blocked": False,
                "created_at": stamp(now),
            },
            session=s,
        )

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
        await self._db.journals.insert_one(
            {
                "_id": journal.id,
                "kind": journal.kind.value,
                "reference": journal.reference,
                "remarks": journal.remarks,
                "created_at": stamp(journal.created_at),
            },
            session=s,
        )
        common = {
            "n": None,  # the sequence a posting was imported with; none for postings made here
            "journal_id": journal.id,
            "kind": journal.kind.value,
            "reference": journal.reference,
            "remarks": journal.remarks,
            "created_at": stamp(journal.created_at),
        }
        entries: list[Entry] = []
        postings: list[Document] = []
        for posting in journal.postings:
            doc_id = _posting_id(journal.id, posting.account_id)
            if not is_customer_account(posting.account_id):
                postings.append(
                    {
                        "_id": doc_id,
                        "account_id": posting.account_id,
                        "seq": None,
                        "amount": posting.amount,
                        "balance_before": None,
                        "balance_after": None,
                        **common,
                    }
                )
                continue
            guard: Document = {"_id": posting.account_id}
            if posting.amount < 0:
                guard["balance"] = {"$gte": -posting.amount}
            else:  # the cap (BALANCE_CAP; the validator is the second line, on a real server)
                guard["balance"] = {"$lte": BALANCE_CAP - posting.amount}
            if posting.require_active:
                guard["blocked"] = False
            account = await self._db.accounts.find_one_and_update(
                guard,
                {"$inc": {"balance": posting.amount, "seq": 1}},
                projection={"balance": 1, "seq": 1},
                return_document=ReturnDocument.AFTER,
                session=s,
            )
            if account is None:
                await self._explain_refusal(s, posting.account_id, posting.amount)
            after, sequence = int(account["balance"]), int(account["seq"])
            before = after - posting.amount
            postings.append(
                {
                    "_id": doc_id,
                    "account_id": posting.account_id,
                    "seq": sequence,
                    "amount": posting.amount,
                    "balance_before": before,
                    "balance_after": after,
                    **common,
                }
            )
            entries.append(
                Entry(
                    sequence=sequence,
                    account_id=posting.account_id,
                    journal_id=journal.id,
                    kind=journal.kind,
                    reference=journal.reference,
                    amount=abs(posting.amount),
                    entry_type=EntryType.CREDIT if posting.amount > 0 else EntryType.DEBIT,
                    balance_before=before,
                    balance_after=after,
                    remarks=journal.remarks,
                    created_at=journal.created_at,
                    status=(
                        EntryStatus.PENDING
                        if journal.kind is JournalKind.TRANSFER_OUT
                        else EntryStatus.SUCCESS
                    ),
                )
            )
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

    async def _transfer_statuses(self, docs: list[Document]) -> dict[str, str]:
        """The status of the transfer behind each transfer_out entry among ``docs``."""
        references = {d["reference"] for d in docs if d["kind"] == JournalKind.TRANSFER_OUT.value}
        if not references:
            return {}
        return {
            t["_id"]: t["status"]
            async for t in self._db.transfers.find(
                {"_id": {"$in": sorted(references)}}, {"status": 1}
            )
        }

    # -- whole-database export and import (example data, dump/load) ------------------------
    async def is_empty(self) -> bool:
        async with self._read():
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
        records = await self._transaction(self._read_records)
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
            UserRecord(user=_user(d), pin_hash=d["pin_hash"])
            async for d in self._db.users.find({}, session=s).sort("_id", ASCENDING)
        ]
        records += [
            _customer(d)
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
                            balance_before=_int_or_none(p["balance_before"]),
                            balance_after=_int_or_none(p["balance_after"]),
                            created_at=unstamp(p["created_at"]),
                        )
                        for p in postings
                    ),
                )
            )
        records += [
            _transfer(d)
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
            await self._transaction(work)
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
            user = record.user
            await self._db.users.insert_one(
                {
                    "_id": user.id,
                    "first_name": user.first_name,
                    "last_name": user.last_name,
                    "phone_number": user.phone_number,
                    "address": user.address,
                    "pin_hash": record.pin_hash,
                    "created_at": stamp(user.created_at),
                    "updated_at": stamp(user.updated_at),
                },
                session=s,
            )
        elif isinstance(record, Customer):
            await self._db.customers.insert_one(
                {
                    "_id": record.id,
                    "nama": record.nama,
                    "nik": record.nik,
                    "no_hp": record.no_hp,
                    "no_rekening": record.no_rekening,
                    "created_at": stamp(record.created_at),
                },
                session=s,
            )
        elif isinstance(record, JournalRecord):
            await self._db.journals.insert_one(
                {
                    "_id": record.id,
                    "kind": record.kind.value,
                    "reference": record.reference,
                    "remarks": record.remarks,
                    "created_at": stamp(record.created_at),
                },
                session=s,
            )
            docs: list[Document] = []
            for leg in record.postings:
                customer = is_customer_account(leg.account_id)
                docs.append(
                    {
                        "_id": _posting_id(record.id, leg.account_id),
                        "journal_id": record.id,
                        "account_id": leg.account_id,
                        "seq": leg.sequence if customer else None,
                        "n": leg.sequence,
                        "amount": leg.amount,
                        "balance_before": leg.balance_before,
                        "balance_after": leg.balance_after,
                        "kind": record.kind.value,
                        "reference": record.reference,
                        "remarks": record.remarks,
                        "created_at": stamp(leg.created_at),
                    }
                )
            await self._db.postings.insert_many(docs, ordered=True, session=s)
        else:
            await self._db.transfers.insert_one(
                {
                    "_id": record.id,
                    "sender_id": record.sender_id,
                    "target_id": record.target_id,
                    "amount": record.amount,
                    "remarks": record.remarks,
                    "status": record.status.value,
                    "created_at": stamp(record.created_at),
                    "settled_at": None if record.settled_at is None else stamp(record.settled_at),
                    "attempts": record.attempts,
                    "last_error": record.last_error,
                    "next_attempt_at": stamp(record.next_attempt_at or record.created_at),
                    "claimed_by": None,
                    "claimed_until": None,
                },
                session=s,
            )

    # -- dashboard operators (issue 4) --------------------------------------------------------
    async def add_operator(self, operator: Operator) -> None:
        try:
            async with self._write():
                await self._db.operators.insert_one(
                    {
                        "_id": operator.username,
                        "password_hash": operator.password_hash,
                        "created_at": stamp(operator.created_at),
                    }
                )
        except DuplicateKeyError as exc:
            raise OperatorTaken(operator.username) from exc

    async def find_operator(self, username: str) -> Operator | None:
        async with self._read():
            doc = await self._db.operators.find_one({"_id": username})
        if doc is None:
            return None
        return Operator(doc["_id"], doc["password_hash"], unstamp(doc["created_at"]))

    # -- scale-out dispatch (issue 4) ---------------------------------------------------------
    async def overdue_transfers(self, due_before: datetime, limit: int) -> list[Transfer]:
        async with self._read():
            docs = [
                doc
                async for doc in self._db.transfers.find(
                    {
                        "status": TransferStatus.PENDING.value,
                        "next_attempt_at": {"$lte": stamp(due_before)},
                    }
                )
                .sort("next_attempt_at", ASCENDING)
                .limit(limit)
            ]
        return [_transfer(d) for d in docs]

    # -- idempotency-key purge ---------------------------------------------------------------
    async def purge_idempotency(self, before: datetime, limit: int) -> int:
        if limit <= 0:
            return 0
        expired = {"expires_at": {"$lt": stamp(before)}}
        async with self._write():
            # A batch of ids by ix_idempotency_expires_at, then one delete that checks the
            # expiry again (a key reclaimed in between has a new expiry and stays).
            ids = [
                doc["_id"]
                async for doc in self._db.idempotency_keys.find(expired, {"_id": 1}).limit(limit)
            ]
            if not ids:
                return 0
            result = await self._db.idempotency_keys.delete_many({"_id": {"$in": ids}, **expired})
        return int(result.deleted_count)


def _posting_id(journal_id: str, account_id: str) -> str:
    return f"{journal_id}:{account_id}"


def _entry(doc: Document, transfer_statuses: dict[str, str]) -> Entry:
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


def _customer(doc: Document) -> Customer:
    return Customer(
        id=doc["_id"],
        nama=doc["nama"],
        nik=doc["nik"],
        no_hp=doc["no_hp"],
        no_rekening=doc["no_rekening"],
        created_at=unstamp(doc["created_at"]),
    )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _user(doc: Document) -> User:
    return User(
        id=doc["_id"],
        first_name=doc["first_name"],
        last_name=doc["last_name"],
        phone_number=doc["phone_number"],
        address=doc["address"],
        created_at=unstamp(doc["created_at"]),
        updated_at=unstamp(doc["updated_at"]),
    )


def _transfer(doc: Document) -> Transfer:
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
