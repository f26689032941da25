"""Attempt throttles on SQL (SQLite and PostgreSQL): statements on a caller's connection.

An attempt is counted by ONE upsert that also decides it (``take``): the counter and the
decision cannot be separated by another request, whatever runs at the same time, in this
process or another. ``hits`` counts the attempts of the current window (refused ones too);
an attempt is granted when its count is within the limit. A window whose ``until`` has passed
starts over at 1, so a row past its ``until`` means nothing and may be purged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dompet.domain.sessions import ThrottleHit, ThrottleRule
from dompet.storage.sql.tables import UtcDateTime, throttles

Insert = Callable[[Any], Any]
"""The dialect's INSERT (with ON CONFLICT), given the table."""


async def take(
    conn: AsyncConnection, insert: Insert, key: str, now: datetime, rule: ThrottleRule
) -> ThrottleHit:
    t = throttles.c
    at = bindparam("now", now, type_=UtcDateTime)
    renewed = bindparam("renewed", now + rule.period, type_=UtcDateTime)
    fresh = t.until <= at  # the last window is over: this attempt opens a new one
    if rule.sliding:  # every granted attempt keeps the count (and a lock) for another period
        until = case((or_(fresh, t.hits < rule.limit), renewed), else_=t.until)
    else:
        until = case((fresh, renewed), else_=t.until)
    statement = (
        insert(throttles)
        .values(key=key, hits=1, until=renewed)
        .on_conflict_do_update(
            index_elements=[t.key],
            set_={"hits": case((fresh, 1), else_=t.hits + 1), "until": until},
        )
        .returning(t.hits, t.until)
    )
    row = (await conn.execute(statement)).one()
    return ThrottleHit(granted=row.hits <= rule.limit, until=row.until)


async def release(conn: AsyncConnection, key: str, now: datetime) -> None:
    """Take back one attempt of the current window (it succeeded: it does not count)."""
    t = throttles.c
    await conn.execute(
        update(throttles).where(t.key == key, t.hits > 0, t.until > now).values(hits=t.hits - 1)
    )


async def clear(conn: AsyncConnection, key: str) -> None:
    await conn.execute(delete(throttles).where(throttles.c.key == key))


async def purge(conn: AsyncConnection, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` rows whose window ended before ``before`` (by ix_throttles_until;
    the condition is checked again on the rows deleted)."""
    t = throttles.c
    over = t.until < before
    batch = select(t.key).where(over).limit(limit)
    result = await conn.execute(delete(throttles).where(t.key.in_(batch), over))
    return int(result.rowcount)
