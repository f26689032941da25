"""Sessions and operator removal on SQL (SQLite and PostgreSQL).

Statements on a caller's connection, plus the one hot read: whether a session is live, asked
on every authenticated request. SQLite answers it on the store's inline reader (4 us). On
PostgreSQL a round trip costs the API process 40-200 us of CPU (the pool, asyncpg, the socket),
as much again as a payment's own statement; so the checks wanted at the same moment go to the
database together, as one statement (``live_batch``, through ``batched_reads.ReadBatcher``),
as history pages do. Each check is still read by a statement that started after it was asked
for: nothing is cached, and an ended session is refused from the next request on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dompet.domain.sessions import SessionRecord, operator_subject
from dompet.storage.sql.tables import operators, sessions

PG_SESSION_LIVE = (
    "SELECT 1 FROM sessions WHERE id = $1::text AND subject = $2::text AND ended_at IS NULL"
)
SQLITE_SESSION_LIVE = PG_SESSION_LIVE.replace("$1::text", "?").replace("$2::text", "?")
PG_SESSIONS_LIVE = (
    "SELECT s.id, s.subject FROM unnest($1::text[], $2::text[]) AS w (id, subject)"
    " JOIN sessions AS s ON s.id = w.id AND s.subject = w.subject WHERE s.ended_at IS NULL"
)
CHECK_BATCHES = 2
"""PostgreSQL: session-check statements in flight at once (as history pages: batched_reads)."""
CHECK_BATCH_SIZE = 64
"""PostgreSQL: session checks in one statement at most (each a primary-key probe)."""

Wanted = tuple[str, str]
"""A session check: (session id, subject)."""


async def live_batch(driver: Any, wanted: list[Wanted]) -> list[bool]:
    """PostgreSQL, on an asyncpg connection: whether each (session, subject) is live."""
    if len(wanted) == 1:
        return [await driver.fetchval(PG_SESSION_LIVE, *wanted[0]) is not None]
    ids, subjects = zip(*wanted, strict=True)
    rows = await driver.fetch(PG_SESSIONS_LIVE, list(ids), list(subjects))
    live = {(row[0], row[1]) for row in rows}
    return [check in live for check in wanted]


async def open_session(conn: AsyncConnection, session: SessionRecord) -> None:
    await conn.execute(
        insert(sessions).values(
            id=session.id,
            subject=session.subject,
            refresh_jti=session.refresh_jti,
            created_at=session.created_at,
            expires_at=session.expires_at,
            ended_at=None,
        )
    )


async def rotate(
    conn: AsyncConnection,
    session_id: str,
    subject: str,
    presented_jti: str,
    next_jti: str,
    expires_at: datetime,
    now: datetime,
) -> bool:
    """Swap the session's refresh token for the next one, if ``presented_jti`` is the current
    one; otherwise the presented token was used before (or the session is over): end it."""
    s = sessions.c
    live = (s.id == session_id, s.subject == subject, s.ended_at.is_(None))
    rotated = await conn.execute(
        update(sessions)
        .where(*live, s.refresh_jti == presented_jti)
        .values(refresh_jti=next_jti, expires_at=expires_at)
    )
    if rotated.rowcount == 1:
        return True
    await conn.execute(update(sessions).where(*live).values(ended_at=now))
    return False


async def end(
    conn: AsyncConnection, subject: str, now: datetime, session_id: str | None = None
) -> int:
    s = sessions.c
    where = [s.subject == subject, s.ended_at.is_(None)]
    if session_id is not None:
        where.append(s.id == session_id)
    result = await conn.execute(update(sessions).where(*where).values(ended_at=now))
    return int(result.rowcount)


async def purge(conn: AsyncConnection, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` sessions whose every token expired before ``before``."""
    s = sessions.c
    over = s.expires_at < before
    batch = select(s.id).where(over).limit(limit)
    result = await conn.execute(delete(sessions).where(s.id.in_(batch), over))
    return int(result.rowcount)


async def remove_operator(conn: AsyncConnection, username: str, now: datetime) -> bool:
    """Delete the operator and end every session of theirs (one transaction: the caller's)."""
    removed = await conn.execute(delete(operators).where(operators.c.username == username))
    await end(conn, operator_subject(username), now)
    return bool(removed.rowcount == 1)
