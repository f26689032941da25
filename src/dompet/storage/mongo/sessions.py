"""Sessions and server secrets on MongoDB (the same semantics as storage/sql/sessions.py).

Rotation is one conditional update (the presented refresh token must be the session's current
one); a token that is not ends the session. Ending is one update_many. A server secret is one
upsert with ``$setOnInsert``: racing processes all read back the first value stored.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from dompet.domain.sessions import SessionRecord, operator_subject
from dompet.storage.mongo.client import Document, stamp

NULL: Document = {"$in": [None]}
"""Matches a null or missing field (nx-27017's ``{field: null}`` misses stored nulls)."""


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


async def remove_operator(
    db: AsyncDatabase[Document], s: AsyncClientSession, username: str, now: datetime
) -> bool:
    """Delete the operator and end their sessions, in the caller's transaction ``s``."""
    removed = await db.operators.delete_one({"_id": username}, session=s)
    await end(db, operator_subject(username), now, session=s)
    return removed.deleted_count == 1


async def keep_secret(db: AsyncDatabase[Document], name: str, candidate: str, now: datetime) -> str:
    with contextlib.suppress(DuplicateKeyError):  # a concurrent upsert was first: read it
        await db.server_secrets.update_one(
            {"_id": name},
            {"$setOnInsert": {"value": candidate, "created_at": stamp(now)}},
            upsert=True,
        )
    doc = await db.server_secrets.find_one({"_id": name})
    assert doc is not None
    return str(doc["value"])
