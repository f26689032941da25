"""Attempt throttles on MongoDB: each step one atomic single-document update.

The same semantics as the SQL engines (storage/sql/repos/throttles.py): ``hits`` counts the attempts
of the current window, refused ones too, and an attempt is granted when its count is within
the limit. MongoDB's single-document updates are atomic, so the attempt is counted and decided
by one ``find_one_and_update`` ($inc) that returns the count it made; only opening a new window
(an expired row, or none) needs a conditional reset or an insert, and a racer that loses either
simply counts again on the window the winner opened.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from dompet.domain.sessions import ThrottleHit, ThrottleRule
from dompet.storage.mongo.access import MongoAccess
from dompet.storage.mongo.client import Document, stamp, unstamp


class Throttles:
    def __init__(self, access: MongoAccess) -> None:
        self._access = access
        self._db = access.db

    async def take_throttle(self, key: str, now: datetime, rule: ThrottleRule) -> ThrottleHit:
        async with self._access.write():
            return await take(self._db.throttles, key, now, rule)

    async def release_throttle(self, key: str, now: datetime) -> None:
        async with self._access.write():
            await release(self._db.throttles, key, now)

    async def clear_throttle(self, key: str) -> None:
        async with self._access.write():
            await self._db.throttles.delete_one({"_id": key})

    async def purge_throttles(self, before: datetime, limit: int) -> int:
        async with self._access.write():
            return await purge(self._db.throttles, before, limit) if limit > 0 else 0


ROUNDS = 16
"""Attempts at opening a window before giving up (each lost only to a concurrent opener)."""


async def take(
    throttles: AsyncCollection[Document], key: str, now: datetime, rule: ThrottleRule
) -> ThrottleHit:
    at, renewed = stamp(now), stamp(now + rule.period)
    live: Document = {"_id": key, "until": {"$gt": at}}
    for _ in range(ROUNDS):
        doc = None
        if rule.sliding:  # a granted attempt keeps the count (and the lock) another period
            doc = await _counted(
                throttles,
                {**live, "hits": {"$lt": rule.limit}},
                {"$inc": {"hits": 1}, "$set": {"until": renewed}},
            )
        if doc is None:
            doc = await _counted(throttles, live, {"$inc": {"hits": 1}})
        if doc is None:  # no live window: open one (expired row, or none yet)
            opened = {"hits": 1, "until": renewed}
            doc = await _counted(throttles, {"_id": key, "until": {"$lte": at}}, {"$set": opened})
            if doc is None:
                try:
                    await throttles.insert_one({"_id": key, **opened})
                except DuplicateKeyError:
                    continue  # another attempt opened it first: count on its window
                doc = {"_id": key, **opened}
        return ThrottleHit(granted=int(doc["hits"]) <= rule.limit, until=unstamp(doc["until"]))
    raise RuntimeError(f"throttle {key!r}: could not count the attempt (contention)")


async def _counted(
    throttles: AsyncCollection[Document], where: Document, change: dict[str, Any]
) -> Document | None:
    return await throttles.find_one_and_update(
        where, change, projection={"hits": 1, "until": 1}, return_document=ReturnDocument.AFTER
    )


async def release(throttles: AsyncCollection[Document], key: str, now: datetime) -> None:
    """Take back one attempt of the current window (it succeeded: it does not count)."""
    await throttles.update_one(
        {"_id": key, "hits": {"$gt": 0}, "until": {"$gt": stamp(now)}}, {"$inc": {"hits": -1}}
    )


async def purge(throttles: AsyncCollection[Document], before: datetime, limit: int) -> int:
    over = {"until": {"$lt": stamp(before)}}
    ids = [doc["_id"] async for doc in throttles.find(over, {"_id": 1}).limit(limit)]
    if not ids:
        return 0
    result = await throttles.delete_many({"_id": {"$in": ids}, **over})
    return int(result.deleted_count)
