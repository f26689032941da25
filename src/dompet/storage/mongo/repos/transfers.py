"""Transfers, settlement's side: reading one, leasing the due ones to a worker, recording a
failed attempt, retrying, releasing a worker's leases.

A transfer is written with its debit journal, and flipped to its final status with its
credit or refund journal, by the journal writer (``mongo/journal.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import ASCENDING, ReturnDocument

from dompet.domain.transfers import Transfer, TransferStatus
from dompet.storage.mongo.access import MongoAccess
from dompet.storage.mongo.client import Document, stamp
from dompet.storage.mongo.documents import NULL, transfer_of


class Transfers:
    def __init__(self, access: MongoAccess) -> None:
        self._access = access
        self._db = access.db

    async def get_transfer(self, transfer_id: str) -> Transfer | None:
        async with self._access.read():
            doc = await self._db.transfers.find_one({"_id": transfer_id})
        return transfer_of(doc) if doc else None

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
        async with self._access.write():
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
                    claimed.append(transfer_of(doc))
        return sorted(claimed, key=lambda t: t.created_at)

    async def record_settlement_failure(
        self, transfer_id: str, error: str, next_attempt_at: datetime
    ) -> Transfer | None:
        async with self._access.write():
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
        return transfer_of(doc) if doc else None

    async def retry_transfer_now(self, transfer_id: str, now: datetime) -> bool:
        async with self._access.write():
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

    async def release_claims(self, worker_id: str) -> int:
        async with self._access.write():
            result = await self._db.transfers.update_many(
                {"claimed_by": worker_id, "status": TransferStatus.PENDING.value},
                {"$set": {"claimed_by": None, "claimed_until": None}},
            )
        return int(result.modified_count)

    async def overdue_transfers(self, due_before: datetime, limit: int) -> list[Transfer]:
        async with self._access.read():
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
        return [transfer_of(d) for d in docs]
