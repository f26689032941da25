"""Sessions on MongoDB (the same semantics as storage/sql/repos/sessions.py).

Rotation is one conditional update (the presented refresh token must be the session's current
one); a token that is not ends the session. Ending is one update_many.
"""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from dompet.domain.sessions import SessionRecord
from dompet.storage.mongo.access import MongoAccess
from dompet.storage.mongo.client import Document, stamp
from dompet.storage.mongo.documents import NULL


class Sessions:
    def __init__(self, access: MongoAccess) -> None:
        self._access = access
        self._db = access.db

    async def open_session(self, session: SessionRecord) -> None:
        async with self._access.write():
            await open_session(self._db, session)

    async def session_live(self, session_id: str, subject: str) -> bool:
        async with self._access.read():
            return await live(self._db, session_id, subject)

    async def rotate_session(
        self,
        session_id: str,
        subject: str,
        presented_jti: str,
        next_jti: str,
        expires_at: datetime,
        now: datetime,
    ) -> bool:
        async with self._access.write():
            return await rotate(
                self._db, session_id, subject, presented_jti, next_jti, expires_at, now
            )

    async def end_sessions(self, subject: str, now: datetime, session_id: str | None = None) -> int:
        async with self._access.write():
            return await end(self._db, subject, now, session_id)

    async def purge_sessions(self, before: datetime, limit: int) -> int:
        async with self._access.write():
            return await purge(self._db, before, limit) if limit > 0 else 0


async def open_session(db: AsyncDatabase[Document], session: SessionRecord) -> None:
    await db.sessions.insert_one(
        {
            "_id": session.id,
            "subject": session.subject,
            "refresh_jti": session.refresh_jti,
            "created_at": stamp(session.created_at),
            "expires_at": stamp(session.expires_at),
            "ended_at": None,
        }
    )


async def live(db: AsyncDatabase[Document], session_id: str, subject: str) -> bool:
    found = await db.sessions.find_one(
        {"_id": session_id, "subject": subject, "ended_at": NULL}, {"_id": 1}
    )
    return found is not None


async def rotate(
    db: AsyncDatabase[Document],
    session_id: str,
    subject: str,
    presented_jti: str,
    next_jti: str,
    expires_at: datetime,
    now: datetime,
) -> bool:
    where: Document = {"_id": session_id, "subject": subject, "ended_at": NULL}
    rotated = await db.sessions.update_one(
        {**where, "refresh_jti": presented_jti},
        {"$set": {"refresh_jti": next_jti, "expires_at": stamp(expires_at)}},
    )
    if rotated.matched_count == 1:
        return True
    await db.sessions.update_one(where, {"$set": {"ended_at": stamp(now)}})  # reuse: end it
    return False


async def end(
    db: AsyncDatabase[Document],
    subject: str,
    now: datetime,
    session_id: str | None = None,
    session: AsyncClientSession | None = None,
) -> int:
    where: Document = {"subject": subject, "ended_at": NULL}
    if session_id is not None:
        where["_id"] = session_id
    result = await db.sessions.update_many(
        where, {"$set": {"ended_at": stamp(now)}}, session=session
    )
    return int(result.modified_count)


async def purge(db: AsyncDatabase[Document], before: datetime, limit: int) -> int:
    over = {"expires_at": {"$lt": stamp(before)}}
    ids = [doc["_id"] async for doc in db.sessions.find(over, {"_id": 1}).limit(limit)]
    if not ids:
        return 0
    result = await db.sessions.delete_many({"_id": {"$in": ids}, **over})
    return int(result.deleted_count)
