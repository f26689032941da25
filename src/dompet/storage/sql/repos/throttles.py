"""Attempt throttles (logins, registrations, per client): counting an attempt and deciding
it in one statement, giving one back, forgetting a key, and the purge.

An attempt is counted by ONE upsert that also decides it (``take_throttle``): the counter and
the decision cannot be separated by another request, whatever runs at the same time, in this
process or another. ``hits`` counts the attempts of the current window (refused ones too);
an attempt is granted when its count is within the limit. A window whose ``until`` has passed
starts over at 1, so a row past its ``until`` means nothing and may be purged.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, case, delete, or_, select, update

from dompet.domain.sessions import ThrottleHit, ThrottleRule
from dompet.storage.sql.access import ConnectionAccess
from dompet.storage.sql.tables import UtcDateTime, throttles


class Throttles:
    def __init__(self, access: ConnectionAccess) -> None:
        self._access = access

    async def take_throttle(self, key: str, now: datetime, rule: ThrottleRule) -> ThrottleHit:
        t = throttles.c
        at = bindparam("now", now, type_=UtcDateTime)
        renewed = bindparam("renewed", now + rule.period, type_=UtcDateTime)
        fresh = t.until <= at  # the last window is over: this attempt opens a new one
        if rule.sliding:  # every granted attempt keeps the count (and a lock) another period
            until = case((or_(fresh, t.hits < rule.limit), renewed), else_=t.until)
        else:
            until = case((fresh, renewed), else_=t.until)
        statement = (
            self._access.upsert(throttles)
            .values(key=key, hits=1, until=renewed)
            .on_conflict_do_update(
                index_elements=[t.key],
                set_={"hits": case((fresh, 1), else_=t.hits + 1), "until": until},
            )
            .returning(t.hits, t.until)
        )
        async with self._access.write() as conn:
            row = (await conn.execute(statement)).one()
        return ThrottleHit(granted=row.hits <= rule.limit, until=row.until)

    async def release_throttle(self, key: str, now: datetime) -> None:
        """Take back one attempt of the current window (it succeeded: it does not count)."""
        t = throttles.c
        async with self._access.write() as conn:
            await conn.execute(
                update(throttles)
                .where(t.key == key, t.hits > 0, t.until > now)
                .values(hits=t.hits - 1)
            )

    async def clear_throttle(self, key: str) -> None:
        async with self._access.write() as conn:
            await conn.execute(delete(throttles).where(throttles.c.key == key))

    async def purge_throttles(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` rows whose window ended before ``before`` (by
        ix_throttles_until; the condition is checked again on the rows deleted)."""
        if limit <= 0:
            return 0
        t = throttles.c
        over = t.until < before
        batch = select(t.key).where(over).limit(limit)
        async with self._access.write() as conn:
            result = await conn.execute(delete(throttles).where(t.key.in_(batch), over))
        return int(result.rowcount)
