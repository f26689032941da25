"""Sessions: opening one at a login, checking one on every authenticated request, rotating
its refresh token, ending it (logout, reuse, an operator's removal), and the purge.

The check is the hot read: whether a session is live, asked on every authenticated request.
SQLite answers it on the hot reader, inline (4 us). On PostgreSQL a round trip costs the API
process 40-200 us of CPU (the pool, asyncpg, the socket), as much again as a payment's own
statement; so the checks wanted at the same moment go to the database together, as one
statement (``SESSIONS_LIVE``, through ``ReadBatcher``), as history pages do. Each check is
still read by a statement that started after it was asked for: nothing is cached, and an
ended session is refused from the next request on.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dompet.domain.sessions import SessionRecord
from dompet.storage.sql.access import ConnectionAccess, Statement
from dompet.storage.sql.history.batched_reads import ReadBatcher
from dompet.storage.sql.tables import sessions

SESSION_LIVE = Statement(
    "SELECT 1 FROM sessions WHERE id = $1::text AND subject = $2::text AND ended_at IS NULL"
)
SESSIONS_LIVE = Statement(
    "SELECT s.id, s.subject FROM unnest($1::text[], $2::text[]) AS w (id, subject)"
    " JOIN sessions AS s ON s.id = w.id AND s.subject = w.subject WHERE s.ended_at IS NULL"
)
"""PostgreSQL: many checks in one statement (only where checks are batched)."""
CHECK_BATCHES = 2
"""PostgreSQL: session-check statements in flight at once (as history pages: batched_reads)."""
CHECK_BATCH_SIZE = 64
"""PostgreSQL: session checks in one statement at most (each a primary-key probe)."""

Wanted = tuple[str, str]
"""A session check: (session id, subject)."""


class Sessions:
    def __init__(self, access: ConnectionAccess, batched: bool) -> None:
        """``batched``: checks wanted at the same time go as one statement (where a read is a
        round trip)."""
        self._access = access
        self._checks: ReadBatcher[None, Wanted, bool] | None = (
            ReadBatcher(self._live_batch, in_flight=CHECK_BATCHES, most=CHECK_BATCH_SIZE)
            if batched
            else None
        )

    async def close(self) -> None:
        if self._checks is not None:
            await self._checks.close()

    async def open_session(self, session: SessionRecord) -> None:
        async with self._access.write() as conn:
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

    async def session_live(self, session_id: str, subject: str) -> bool:
        if self._checks is not None:
            return await self._checks.read(None, (session_id, subject))
        return bool(await self._access.fetch_rows(SESSION_LIVE, session_id, subject))

    async def _live_batch(self, _: None, wanted: list[Wanted]) -> list[bool]:
        """Whether each (session, subject) is live: one statement for the batch."""
        if len(wanted) == 1:
            return [bool(await self._access.fetch_rows(SESSION_LIVE, *wanted[0]))]
        ids, subjects = zip(*wanted, strict=True)
        rows = await self._access.fetch_rows(SESSIONS_LIVE, list(ids), list(subjects))
        live = {(row[0], row[1]) for row in rows}
        return [check in live for check in wanted]

    async def rotate_session(
        self,
        session_id: str,
        subject: str,
        presented_jti: str,
        next_jti: str,
        expires_at: datetime,
        now: datetime,
    ) -> bool:
        """Swap the session's refresh token for the next one, if ``presented_jti`` is the
        current one; otherwise the presented token was used before (or the session is over):
        end it."""
        s = sessions.c
        live = (s.id == session_id, s.subject == subject, s.ended_at.is_(None))
        async with self._access.write() as conn:
            rotated = await conn.execute(
                update(sessions)
                .where(*live, s.refresh_jti == presented_jti)
                .values(refresh_jti=next_jti, expires_at=expires_at)
            )
            if rotated.rowcount == 1:
                return True
            await conn.execute(update(sessions).where(*live).values(ended_at=now))
            return False

    async def end_sessions(self, subject: str, now: datetime, session_id: str | None = None) -> int:
        async with self._access.write() as conn:
            return await end_sessions(conn, subject, now, session_id)

    async def purge_sessions(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` sessions whose every token expired before ``before``."""
        if limit <= 0:
            return 0
        s = sessions.c
        over = s.expires_at < before
        batch = select(s.id).where(over).limit(limit)
        async with self._access.write() as conn:
            result = await conn.execute(delete(sessions).where(s.id.in_(batch), over))
        return int(result.rowcount)


async def end_sessions(
    conn: AsyncConnection, subject: str, now: datetime, session_id: str | None = None
) -> int:
    """End the subject's live sessions (only ``session_id`` when given) in ``conn``'s
    transaction; how many."""
    s = sessions.c
    where = [s.subject == subject, s.ended_at.is_(None)]
    if session_id is not None:
        where.append(s.id == session_id)
    result = await conn.execute(update(sessions).where(*where).values(ended_at=now))
    return int(result.rowcount)
