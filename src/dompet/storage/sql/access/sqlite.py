"""SQLite's connection access (the seam: ``access/__init__.py``).

- Writes go through one shared writer connection whose callers' transactions commit in
  groups (``group_commit.py``): ``write()`` is a caller's transaction on it, and the SQLite
  journal writer runs its jobs on it (``group.run``) as raw sqlite3 statements.
- Reads through SQLAlchemy take a pooled reader connection, at most ``SQLITE_READERS`` at
  once, first come first served (the pool's own wait let newcomers barge past woken waiters).
- The hot reads (a history page, a user, a transfer) run inline on the event loop thread on a
  read-only sqlite3 connection of their own (``engine.open_sqlite_reader``): single
  statements that never wait for a lock under WAL, spared a pool checkout and reset.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dompet.storage.sql.access import CompiledSelect, CompiledSelects, Statement, named_row
from dompet.storage.sql.access.group_commit import CallerTransaction, GroupCommitWriter
from dompet.storage.sql.engine import SQLITE_READERS, open_sqlite_reader


def sqlite_utc(stored: str) -> datetime:
    """SQLite's stored ``YYYY-MM-DD HH:MM:SS.ffffff`` (naive UTC) as an aware datetime."""
    return datetime.fromisoformat(stored + "+00:00")


def sqlite_timestamp(moment: datetime) -> str:
    """A UtcDateTime as SQLAlchemy stores it on SQLite, for raw sqlite3 statements: naive UTC
    text with microseconds always, 'YYYY-MM-DD HH:MM:SS.ffffff' (the same text, not
    sqlite3's own datetime adapter)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


class SqliteAccess:
    """SQLite, reached through the shared writer, the reader pool and the hot reader."""

    engine_name = "sqlite"

    def __init__(self, writer: AsyncEngine, reader: AsyncEngine) -> None:
        self.writer = writer
        self.reader = reader
        self.group = GroupCommitWriter(writer)
        """The shared writer: callers' transactions and the journal writer's jobs."""
        self.compiled = CompiledSelects(reader.dialect)
        self._read_slots = asyncio.Semaphore(SQLITE_READERS)
        self._hot: sqlite3.Connection | None = None

    def write(self, priority: bool = False) -> CallerTransaction:
        return self.group.transaction(priority)

    @asynccontextmanager
    async def read(self, consistent: bool = False) -> AsyncIterator[AsyncConnection]:
        async with self._read_slots, self.reader.connect() as conn:  # FIFO: no starvation
            if not consistent:
                yield conn
                return
            async with conn.begin():
                yield conn

    def hot_reader(self) -> sqlite3.Connection:
        """The hot reads' connection (statements run inline on the loop thread), opened on
        first use."""
        if self._hot is None:
            self._hot = open_sqlite_reader(self.reader.url)
        return self._hot

    async def fetch(self, query: CompiledSelect, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        # inline on the loop thread: it never waits (WAL)
        return self.hot_reader().execute(query.sql, query.arguments(params)).fetchall()

    async def fetch_rows(self, statement: Statement, *args: Any) -> Sequence[Sequence[Any]]:
        return self.hot_reader().execute(statement.sqlite, args).fetchall()

    async def fetch_row(self, statement: Statement, *args: Any, urgent: bool = False) -> Any:
        cursor = self.hot_reader().execute(statement.sqlite, args)
        row = cursor.fetchone()
        return _named(cursor, row, statement)

    async def write_row(self, statement: Statement, *args: Any) -> Any:
        # one statement changes all or nothing: its job needs no SAVEPOINT (group_commit.py)
        job = functools.partial(_write_row, statement, args)
        return await self.group.run(job, savepoint=False)

    utc = staticmethod(sqlite_utc)
    timestamp = staticmethod(sqlite_timestamp)

    @staticmethod
    def upsert(table: Any) -> Any:
        return sqlite_insert(table)

    async def ping(self) -> None:
        self.group.raise_if_broken()  # writes refused until a restart: not healthy
        async with self.read() as conn:
            await conn.execute(select(literal(1)))

    async def close(self) -> None:
        if self._hot is not None:
            self._hot.close()
            self._hot = None
        await self.group.close()
        await self.writer.dispose()
        await self.reader.dispose()


def _write_row(statement: Statement, args: tuple[Any, ...], raw: sqlite3.Connection) -> Any:
    """``write_row``'s job on the shared writer (all its rows fetched: RETURNING)."""
    cursor = raw.execute(statement.sqlite, args)
    rows = cursor.fetchall()
    return _named(cursor, rows[0] if rows else None, statement)


def _named(cursor: sqlite3.Cursor, row: Any, statement: Statement) -> Any:
    """``row`` of ``cursor`` (closed here) as attributes, or None."""
    names = [column[0] for column in cursor.description or ()]
    cursor.close()
    return named_row(names, row, statement.times, sqlite_utc) if row is not None else None
