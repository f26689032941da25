"""PostgreSQL's connection access (the seam: ``access/__init__.py``).

One fixed pool per process (``engine._postgres_engine``), and in front of it the priority
gate (``priority.py``) of the same size: every checkout, read or write, passes it first
come first served with settlement first, so none waits in the pool itself and the credit of
an accepted transfer does not queue behind new requests.

Two ways past the gate: SQLAlchemy connections (``write``, ``read``) for the repositories'
Core statements, and :meth:`PostgresAccess.raw`, the one raw-asyncpg helper: a pooled
driver connection with no transaction open, for the hot single statements (a history page,
a user, a transfer, a journal: ``journal/postgresql.py``), without SQLAlchemy's execution
and result layers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from dompet.storage.faults import StoreLimits
from dompet.storage.sql.access import CompiledSelect, CompiledSelects, Statement, named_row
from dompet.storage.sql.access.priority import PriorityGate

_BROKEN = (
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.InternalClientError,  # its protocol is out of step (the server died under it)
    OSError,
    TimeoutError,
)
"""Errors after which a raw connection is not given back to the pool."""


def naive_utc(moment: datetime) -> datetime:
    """The ``timestamp without time zone`` the schema stores (see tables.UtcDateTime)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return moment.astimezone(UTC).replace(tzinfo=None)


def aware_utc(stored: datetime) -> datetime:
    """A stored ``timestamp without time zone`` (UTC) as an aware datetime."""
    return stored.replace(tzinfo=UTC)


class PostgresAccess:
    """PostgreSQL, reached through the priority gate, on one pool."""

    engine_name = "postgresql"

    def __init__(
        self,
        writer: AsyncEngine,
        reader: AsyncEngine,
        pool_size: int,
        limits: StoreLimits | None = None,
    ) -> None:
        """``limits``: how many callers may wait at the gate, and for how long (a serving
        process; None: unbounded, for tools and migrations)."""
        self.writer = writer
        self.reader = reader
        """The writer's pool, in autocommit: a read needs no BEGIN/ROLLBACK round trips."""
        self.gate = PriorityGate(
            pool_size,
            max_waiting=limits.max_waiting if limits else None,
            wait_timeout=limits.wait_timeout if limits else None,
        )
        self.compiled = CompiledSelects(reader.dialect)

    @asynccontextmanager
    async def write(self, priority: bool = False) -> AsyncIterator[AsyncConnection]:
        async with self.gate.slot(priority), self.writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self, consistent: bool = False) -> AsyncIterator[AsyncConnection]:
        async with self.gate.slot(), self.reader.connect() as conn:
            if not consistent:
                yield conn
                return
            await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def raw(self, urgent: bool = False) -> AsyncIterator[Any]:
        """A pooled asyncpg connection with no transaction open (each statement commits
        alone), through the gate (``urgent``: settlement, served first). A connection that
        broke, or whose statement was cancelled midway, is dropped, not pooled again."""
        async with self.gate.slot(urgent):
            pooled = await self.writer.raw_connection()
            driver: Any = pooled.driver_connection
            try:
                yield driver
            except BaseException as exc:
                if driver.is_closed() or not isinstance(exc, Exception) or isinstance(exc, _BROKEN):
                    await greenlet_spawn(pooled.invalidate)
                raise
            finally:
                await greenlet_spawn(pooled.close)

    async def fetch(self, query: CompiledSelect, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        args = query.arguments(params)
        async with self.raw() as driver:
            records: Sequence[Sequence[Any]] = await driver.fetch(query.sql, *args)
        return records

    async def fetch_rows(self, statement: Statement, *args: Any) -> Sequence[Sequence[Any]]:
        async with self.raw() as driver:
            records: Sequence[Sequence[Any]] = await driver.fetch(statement.postgresql, *args)
        return records

    async def fetch_row(self, statement: Statement, *args: Any, urgent: bool = False) -> Any:
        async with self.raw(urgent) as driver:
            record = await driver.fetchrow(statement.postgresql, *args)
        return _named(record, statement)

    async def write_row(self, statement: Statement, *args: Any) -> Any:
        async with self.raw() as driver:
            record = await driver.fetchrow(statement.postgresql, *args)
        return _named(record, statement)

    utc = staticmethod(aware_utc)
    timestamp = staticmethod(naive_utc)

    @staticmethod
    def upsert(table: Any) -> Any:
        return pg_insert(table)

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(select(literal(1)))

    async def close(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


def _named(record: Any, statement: Statement) -> Any:
    if record is None:
        return None
    return named_row(list(record.keys()), list(record.values()), statement.times, aware_utc)
