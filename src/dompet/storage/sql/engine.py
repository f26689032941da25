"""Creating SQLAlchemy engines for SQLite and PostgreSQL, with the settings each one needs."""

from __future__ import annotations

import os
import sqlite3
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def async_url(database_url: str) -> str:
    """Pin the async driver: sqlite -> aiosqlite, postgresql -> asyncpg."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"not an SQL database URL: {database_url!r}")
    return url.render_as_string(hide_password=False)


def is_sqlite(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "sqlite"


def _ensure_sqlite_dir(database_url: str) -> None:
    database = make_url(database_url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


class _InlineSqliteConnection(aiosqlite.Connection):
    """An aiosqlite connection that runs most statements right on the event loop thread.

    A statement on the writer's already-open transaction takes microseconds; a hop to
    aiosqlite's thread and back costs far more (two wake-ups, GIL hand-over), and a payment
    makes a dozen such calls. Only what may block runs on the connection's thread: BEGIN
    (waits for the write lock if another process holds it), COMMIT (the fsync) and close.
    """

    reader = False
    """A reader's statements never wait for a lock (WAL) and it never fsyncs: all inline."""

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if _may_block(fn, args, self.reader):
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)


_BLOCKING_CALLS = frozenset({"commit", "rollback", "close", "executescript"})
_BLOCKING_SQL = ("BEGIN", "COMMIT", "END", "ROLLBACK", "VACUUM", "PRAGMA WAL_CHECKPOINT")


def _may_block(fn: Any, args: tuple[Any, ...], reader: bool) -> bool:
    name = getattr(fn, "__name__", "")
    if isinstance(getattr(fn, "__self__", None), sqlite3.Cursor) and name == "close":
        return False
    if reader:
        return name == "close"
    if name in _BLOCKING_CALLS:
        return True
    if name in ("execute", "executemany") and args and isinstance(args[0], str):
        return args[0].lstrip().upper().startswith(_BLOCKING_SQL)
    return False


def _inline_creator(database_url: str, *, reader: bool) -> Any:
    database = make_url(database_url).database or ":memory:"

    async def connect() -> aiosqlite.Connection:
        connector = partial(
            sqlite3.connect,
            database,
            check_same_thread=False,  # used from the loop thread and its own thread, in turn
            uri=database.startswith("file:"),
        )
        connection = _InlineSqliteConnection(connector, iter_chunk_size=64)
        connection.reader = reader
        connection._thread.daemon = True
        return await connection

    return connect


def open_sqlite_reader(database_url: str) -> sqlite3.Connection:
    """A read-only driver connection for the hot reads, used right on the event loop thread.

    Those reads (a user, a transfer, a history page) are single statements that never wait
    for a lock under WAL, so they already ran inline; a connection of their own spares each
    one a pool checkout and reset. ``query_only`` makes it refuse any write.
    """
    database = make_url(database_url).database or ":memory:"
    connection = sqlite3.connect(
        database,
        isolation_level=None,  # autocommit: each statement reads its own snapshot
        check_same_thread=False,  # opened and used on the loop thread; closed from anywhere
        uri=database.startswith("file:"),
    )
    connection.execute("PRAGMA busy_timeout=30000")
    connection.execute("PRAGMA query_only=ON")
    return connection


SQLITE_READERS = 8
"""Reads in flight at once per process on SQLite (they run inline, so more would not help)."""


def _sqlite_engine(database_url: str, *, writer: bool) -> AsyncEngine:
    """SQLite: WAL, a busy timeout, durable commits; writers take the write lock up front.

    There is one writer connection per process, so writes queue in the pool (FIFO, no busy
    polling) and only other processes ever wait on the busy timeout.
    """
    _ensure_sqlite_dir(database_url)
    synchronous = os.environ.get("SQLITE_SYNCHRONOUS", "FULL").upper()
    if synchronous not in ("FULL", "NORMAL", "EXTRA"):
        raise ValueError("SQLITE_SYNCHRONOUS must be FULL, NORMAL or EXTRA")
    kwargs: dict[str, Any] = {
        "pool_size": 1,
        "max_overflow": 0,
        "pool_timeout": 120,
        "async_creator": _inline_creator(database_url, reader=False),
    }
    if not writer:
        # SqlStore._read() admits at most SQLITE_READERS at a time (a fair semaphore), so
        # the pool's own wait -- which lets newcomers barge past woken waiters and starved
        # some reads for seconds under 64 connections -- is never reached through it; the
        # overflow is headroom for direct users of the reader engine (export).
        kwargs = {
            "pool_size": SQLITE_READERS,
            "max_overflow": SQLITE_READERS,
            "pool_timeout": 120,
            "async_creator": _inline_creator(database_url, reader=True),
        }
    engine = create_async_engine(async_url(database_url), **kwargs)
    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


def create_engines(database_url: str) -> tuple[AsyncEngine, AsyncEngine]:
    """(writer, reader) engines; on PostgreSQL both share one pool."""
    if is_sqlite(database_url):
        return (
            _sqlite_engine(database_url, writer=True),
            _sqlite_engine(database_url, writer=False),
        )
    engine = _postgres_engine(database_url)
    # Reads run without BEGIN/ROLLBACK (autocommit; one round trip instead of three) on the
    # same pool; a read that needs one snapshot (snapshot, export) opens its own transaction.
    return engine, engine.execution_options(isolation_level="AUTOCOMMIT")


PG_POOL_SIZE = 20
"""Default connections per process on PostgreSQL (env PG_POOL_SIZE)."""


def postgres_pool_size() -> int:
    size = int(os.environ.get("PG_POOL_SIZE", PG_POOL_SIZE))
    if size < 1:
        raise ValueError("PG_POOL_SIZE must be at least 1")
    return size


def _postgres_engine(database_url: str) -> AsyncEngine:
    """PostgreSQL: a fixed pool, no overflow.

    Overflow connections are closed as soon as they are returned, so under a steady load
    above ``pool_size`` every few requests paid a new connection (TLS probe, fork of a
    backend): a fixed pool that callers queue for is cheaper on a small machine.
    """
    return create_async_engine(
        async_url(database_url),
        pool_size=postgres_pool_size(),
        max_overflow=0,
        pool_timeout=120,
        pool_pre_ping=False,
    )
