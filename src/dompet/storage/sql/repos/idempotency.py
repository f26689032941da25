"""Idempotency keys: claiming one, answering it without a journal, releasing it, and the
purge of expired ones.

A key answered by a journal is tied to it in the journal's own transaction, by the journal
writer (``storage/sql/journal``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError

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
from dompet.storage.sql.access import ConnectionAccess, Statement
from dompet.storage.sql.tables import idempotency_keys

CLAIM_NEW_KEY = Statement(
    "INSERT INTO idempotency_keys (scope, key, fingerprint, journal_id, response_status,"
    " response_body, created_at, expires_at) VALUES ($1::text, $2::text, $3::text, NULL, NULL,"
    " NULL, $4::timestamp, $5::timestamp) ON CONFLICT (scope, key) DO NOTHING RETURNING 1"
)
"""A key never seen before, claimed in one statement (the usual case: one round trip on
PostgreSQL, one raw statement on SQLite); it inserts nothing when the key exists."""


class IdempotencyKeys:
    def __init__(self, access: ConnectionAccess) -> None:
        self._access = access

    async def claim_idempotency(
        self, key: IdempotencyKey, now: datetime, ttl: timedelta, stale_after: timedelta
    ) -> ClaimOutcome:
        at = self._access.timestamp
        new = await self._access.write_row(
            CLAIM_NEW_KEY, key.scope, key.key, key.fingerprint, at(now), at(now + ttl)
        )
        if new is not None:
            return Claimed()
        # The key exists: expired, answered, in flight, or abandoned by its first request.
        where = and_(idempotency_keys.c.scope == key.scope, idempotency_keys.c.key == key.key)
        try:
            async with self._access.write() as conn:
                row = (
                    await conn.execute(select(idempotency_keys).where(where).with_for_update())
                ).first()
                if row is not None and row.expires_at <= now:
                    await conn.execute(delete(idempotency_keys).where(where))
                    row = None
                if row is None:
                    await conn.execute(
                        insert(idempotency_keys).values(
                            scope=key.scope,
                            key=key.key,
                            fingerprint=key.fingerprint,
                            journal_id=None,
                            response_status=None,
                            response_body=None,
                            created_at=now,
                            expires_at=now + ttl,
                        )
                    )
                    return Claimed()
                if row.fingerprint != key.fingerprint:
                    raise IdempotencyConflict(KEY_REUSED)
                if row.journal_id is not None:
                    return ReplayJournal(journal_id=row.journal_id)
                if row.response_status is not None:
                    return ReplayResponse(status=row.response_status, body=row.response_body)
                if row.created_at > now - stale_after:
                    raise IdempotencyConflict(IN_FLIGHT)
                # The first request died without moving money: the key is free again.
                await conn.execute(update(idempotency_keys).where(where).values(created_at=now))
                return Claimed()
        except IntegrityError as exc:  # a concurrent first use won the insert
            raise IdempotencyConflict(IN_FLIGHT) from exc

    async def answer_idempotency(self, key: IdempotencyKey, status: int, body: bytes) -> None:
        async with self._access.write() as conn:
            await conn.execute(
                update(idempotency_keys)
                .where(
                    idempotency_keys.c.scope == key.scope,
                    idempotency_keys.c.key == key.key,
                    idempotency_keys.c.journal_id.is_(None),
                )
                .values(response_status=status, response_body=body)
            )

    async def release_idempotency(self, key: IdempotencyKey) -> None:
        async with self._access.write() as conn:
            await conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.scope == key.scope,
                    idempotency_keys.c.key == key.key,
                    idempotency_keys.c.journal_id.is_(None),
                    idempotency_keys.c.response_status.is_(None),
                )
            )

    async def purge_idempotency(self, before: datetime, limit: int) -> int:
        if limit <= 0:
            return 0
        keys = idempotency_keys.c
        expired = keys.expires_at < before
        # One bounded DELETE by primary key (ix_idempotency_keys_expires_at finds the batch);
        # the outer condition is checked again on the rows actually deleted.
        batch = select(keys.scope, keys.key).where(expired).limit(limit)
        async with self._access.write() as conn:
            result = await conn.execute(
                delete(idempotency_keys).where(tuple_(keys.scope, keys.key).in_(batch), expired)
            )
        return int(result.rowcount)
