"""Idempotency keys: claiming one, answering it without a journal, releasing it, and the
purge of expired ones.

A key answered by a journal is tied to it in the journal's own transaction, by the journal
writer (``mongo/journal.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bson import Binary
from pymongo.errors import DuplicateKeyError

from dompet.domain.errors import IdempotencyConflict
from dompet.domain.idempotency import (
    IN_FLIGHT,
    KEY_REUSED,
    Claimed,
    ClaimOutcome,
    IdempotencyKey,
    ReplayJournal,
    ReplayResponse,
)
from dompet.storage.mongo.access import MongoAccess, Session
from dompet.storage.mongo.client import stamp
from dompet.storage.mongo.documents import NULL


class IdempotencyKeys:
    def __init__(self, access: MongoAccess) -> None:
        self._access = access
        self._db = access.db

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
            return await self._access.transaction(work)
        except DuplicateKeyError as exc:  # a concurrent first use won the insert
            raise IdempotencyConflict(IN_FLIGHT) from exc

    async def answer_idempotency(self, key: IdempotencyKey, status: int, body: bytes) -> None:
        async with self._access.write():
            await self._db.idempotency_keys.update_one(
                {"scope": key.scope, "key": key.key, "journal_id": NULL},
                {"$set": {"response_status": status, "response_body": Binary(body)}},
            )

    async def release_idempotency(self, key: IdempotencyKey) -> None:
        async with self._access.write():
            await self._db.idempotency_keys.delete_one(
                {"scope": key.scope, "key": key.key, "journal_id": NULL, "response_status": NULL}
            )

    async def purge_idempotency(self, before: datetime, limit: int) -> int:
        if limit <= 0:
            return 0
        expired = {"expires_at": {"$lt": stamp(before)}}
        async with self._access.write():
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
