"""Creating SQLAlchemy engines for SQLite and PostgreSQL, with the settings each one needs.

The knobs (:class:`SqlSettings`) come from ``config.Settings`` through the composition roots
(``container.open_settings_store``); nothing here reads the environment.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dompet.storage import faults

PG_POOL_SIZE = 20
"""Default connections per process on PostgreSQL (setting PG_POOL_SIZE)."""

SQLITE_SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")
"""The ``PRAGMA synchronous`` values a store accepts (docs/sqlite-group-commit.md)."""


@dataclass(frozen=True, slots=True)
class SqlSettings:
    """The SQL engines' settings (README's configuration table); the defaults are Settings'."""

    sqlite_synchronous: str = "FULL"
    """``PRAGMA synchronous`` of every SQLite connection: FULL, NORMAL or EXTRA."""
    sqlite_writer_lock: bool = True
    """Writers of different processes hand over through ``WriterLock`` (off: A/B runs only)."""
    pg_pool_size: int = PG_POOL_SIZE
    """Connections per process on PostgreSQL (a fixed pool, and the priority gate's size)."""

    def __post_init__(self) -> None:
        if self.sqlite_synchronous not in SQLITE_SYNCHRONOUS:
            raise ValueError("SQLITE_SYNCHRONOUS must be FULL, NORMAL or EXTRA")
        if self.pg_pool_size < 1:
            raise ValueError("PG_POOL_SIZE must be at least 1")


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


WRITER_LOCK_SUFFIX = ".writer-lock"
"""The sidecar file next to an SQLite database that its writers flock (docs/sqlite-writers.md)."""


def writer_lock_path(database_url: str) -> Path | None:
    """The writer-lock file of an SQLite database file; None for ``:memory:`` and ``file:``
    URIs (a memory database has no other process to share it with; a URI's path and options
    are SQLite's to interpret, so we do not guess a sidecar for it)."""
    database = make_url(database_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().with_name(Path(database).name + WRITER_LOCK_SUFFIX)


class WriterLock:
    """An exclusive ``flock`` on the sidecar file, held by one writer connection from just
    before its BEGIN IMMEDIATE until its transaction has ended.

    Writers of other processes that also take it wait in the kernel and are woken the moment
    it is released, instead of sleeping in SQLite's busy handler (1, 2, 5 ... 100 ms between
    retries). It is only ever taken and released on the connection's own thread; the kernel
    drops it if the process dies. SQLite's own lock still decides: the busy timeout remains
    the fallback for writers that do not take this lock (the sqlite3 shell, other tools).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self.held = False
        self.acquired = 0
        """How many times it was taken (for tests and measurements)."""
        self.contended = 0
        """How many of those had to wait for another holder."""

    def acquire(self) -> None:
        if self.held:
            return
        if self._fd < 0:
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
            self._fd = os.open(self.path, flags, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.contended += 1
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # sleeps in the kernel until released
        self.held = True
        self.acquired += 1

    def release(self) -> None:
        if self.held:
            self.held = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.held = False
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)  # drops the lock too

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # e.g. at interpreter exit
            self.close()

    def around(self, fn: Any, connection: sqlite3.Connection, sql: str | None) -> Any:
        """``fn`` (a blocking call on ``connection``, run on its thread) with the lock taken
        before a BEGIN and released once no transaction is open after the call (COMMIT,
        ROLLBACK, a failed BEGIN) or the connection is closed."""
        begins = sql is not None and sql.lstrip()[:5].upper() == "BEGIN"
        closes = getattr(fn, "__name__", "") == "close" and isinstance(
            getattr(fn, "__self__", None), sqlite3.Connection
        )

        def call(*args: Any, **kwargs: Any) -> Any:
            if begins:
                self.acquire()
            try:
                return fn(*args, **kwargs)
            finally:
                if closes:
                    self.close()
                elif self.held and not _in_transaction(connection):
                    self.release()

        return call


def _in_transaction(connection: sqlite3.Connection) -> bool:
    try:
        return connection.in_transaction
    except sqlite3.ProgrammingError:  # closed
        return False


class _InlineSqliteConnection(aiosqlite.Connection):
    """An aiosqlite connection that runs most statements right on the event loop thread.

    A statement on the writer's already-open transaction takes microseconds; a hop to
    aiosqlite's thread and back costs far more (two wake-ups, GIL hand-over), and a payment
    makes a dozen such calls. Only what may block runs on the connection's thread: BEGIN
    (waits for the write lock if another process holds it), COMMIT (the fsync) and close.
    """

    reader = False
    """A reader's statements never wait for a lock (WAL) and it never fsyncs: all inline."""
    writer_lock: WriterLock | None = None
    """A writer's cross-process lock (see ``WriterLock``), taken around its transactions."""

    commits_inline = False
    """Set by the group-commit writer once COMMIT cannot block: ``synchronous=NORMAL`` (its
    WalFlusher fsyncs instead) and no automatic checkpoint (the flusher runs them)."""

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.commits_inline and getattr(fn, "__name__", "") == "commit":
            if not self._running or not self._connection:
                raise ValueError("Connection closed")
            try:
                return fn(*args, **kwargs)
            finally:
                lock = self.writer_lock
                if lock is not None and lock.held and not _in_transaction(self._connection):
                    lock.release()
        if _may_block(fn, args, self.reader):
            if self.writer_lock is not None and self._connection is not None:
                sql = args[0] if args and isinstance(args[0], str) else None
                fn = self.writer_lock.around(fn, self._connection, sql)
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


def _inline_creator(database_url: str, *, reader: bool, writer_lock: bool) -> Any:
    """Connections that run inline (see ``_InlineSqliteConnection``); a writer's take the
    cross-process ``WriterLock`` unless ``writer_lock`` is off (SQLITE_WRITER_LOCK: A/B runs
    only, leaving other processes' writers to SQLite's busy handler)."""
    database = make_url(database_url).database or ":memory:"
    lock_path = None if reader or not writer_lock else writer_lock_path(database_url)

    async def connect() -> aiosqlite.Connection:
        connector = partial(
            sqlite3.connect,
            database,
            check_same_thread=False,  # used from the loop thread and its own thread, in turn
            uri=database.startswith("file:"),
        )
        connection = _InlineSqliteConnection(connector, iter_chunk_size=64)
        connection.reader = reader
        if lock_path is not None:
            connection.writer_lock = WriterLock(lock_path)
        connection._thread.daemon = True
        return await connection

    return connect


def open_sqlite_reader(database_url: str | URL) -> sqlite3.Connection:
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
    # 16 MiB of page cache instead of 2: history pages cycling through a 10,000-entry account
    # took 37 us each with the default, 30 us with all its pages cached (docs/read-path.md)
    connection.execute(f"PRAGMA cache_size=-{HOT_READER_CACHE_KIB}")
    return connection


HOT_READER_CACHE_KIB = 16 * 1024
"""The hot reader's page cache (SQLite's default is 2,000 KiB); filled only as pages are read."""


SQLITE_READERS = 8
"""Reads in flight at once per process on SQLite (they run inline, so more would not help)."""


def _sqlite_engine(database_url: str, settings: SqlSettings, *, writer: bool) -> AsyncEngine:
    """SQLite: WAL, a busy timeout, durable commits; writers take the write lock up front.

    There is one writer connection per process, so writes queue in the pool (FIFO, no busy
    polling). Writers of different processes hand over through ``WriterLock`` (a kernel
    wake-up); the busy timeout is left for writers that do not take it.
    """
    _ensure_sqlite_dir(database_url)
    synchronous = settings.sqlite_synchronous
    kwargs: dict[str, Any] = {
        "pool_size": 1,
        "max_overflow": 0,
        "pool_timeout": 120,
        "async_creator": _inline_creator(
            database_url, reader=False, writer_lock=settings.sqlite_writer_lock
        ),
    }
    if not writer:
        # SqliteAccess.read() admits at most SQLITE_READERS at a time (a fair semaphore), so
        # the pool's own wait -- which lets newcomers barge past woken waiters and starved
        # some reads for seconds under 64 connections -- is never reached through it; the
        # overflow is headroom for users of the reader engine that do not go through it.
        kwargs = {
            "pool_size": SQLITE_READERS,
            "max_overflow": SQLITE_READERS,
            "pool_timeout": 120,
            "async_creator": _inline_creator(database_url, reader=True, writer_lock=False),
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


def create_engines(
    database_url: str,
    settings: SqlSettings = SqlSettings(),
    limits: faults.StoreLimits | None = None,
) -> tuple[AsyncEngine, AsyncEngine]:
    """(writer, reader) engines; on PostgreSQL both share one pool. ``limits``: the timeouts
    of a serving process (None: the drivers' own, for migrations and tools)."""
    if is_sqlite(database_url):
        return (
            _sqlite_engine(database_url, settings, writer=True),
            _sqlite_engine(database_url, settings, writer=False),
        )
    engine = _postgres_engine(database_url, settings.pg_pool_size, limits)
    # Reads run without BEGIN/ROLLBACK (autocommit; one round trip instead of three) on the
    # same pool; a read that needs one snapshot (snapshot, export) opens its own transaction.
    return engine, engine.execution_options(isolation_level="AUTOCOMMIT")


def _postgres_engine(
    database_url: str, pool_size: int, limits: faults.StoreLimits | None = None
) -> AsyncEngine:
    """PostgreSQL: a fixed pool, no overflow.

    Overflow connections are closed as soon as they are returned, so under a steady load
    above ``pool_size`` every few requests paid a new connection (TLS probe, fork of a
    backend): a fixed pool that callers queue for is cheaper on a small machine.

    Last in, first out: a caller gets the connection returned last, so a load that needs few
    connections at a time keeps using the same few (warm) server processes. First in, first
    out rotated every request through all twenty: on two cores the API then waited 20-40 ms
    for a history batch that PostgreSQL had run in under 8 (BENCHMARKS.md, stop 18).

    With ``limits`` (docs/reliability.md): connecting, each statement (the server's
    ``statement_timeout``, and asyncpg's ``command_timeout`` for a network that stops
    answering) and the pool's wait are bounded; see :func:`_recover_by_itself` for how the
    pool gets over a restarted server.
    """
    connect_args: dict[str, Any] = {}
    pool_timeout = 120.0
    if limits is not None:
        connect_args["timeout"] = limits.connect_timeout
        pool_timeout = limits.wait_timeout
        if limits.statement_timeout > 0:
            connect_args["command_timeout"] = limits.statement_timeout
            milliseconds = max(1, round(limits.statement_timeout * 1000))
            connect_args["server_settings"] = {"statement_timeout": str(milliseconds)}
    engine = create_async_engine(
        async_url(database_url),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
        pool_pre_ping=False,
        pool_use_lifo=True,
        connect_args=connect_args,
    )
    _recover_by_itself(engine)
    return engine


def _recover_by_itself(engine: AsyncEngine) -> None:
    """Let the pool get over a database that went away, without a round trip per checkout.

    * At checkout, a connection whose socket is already closed (the server was killed or
      restarted: asyncpg saw the connection end) is replaced at once, instead of failing the
      request that drew it (``pool_pre_ping`` would cost every checkout a round trip).
    * A statement that failed for a fault (a timeout, a broken connection) invalidates its
      connection: after a client-side timeout its state is unknown, and a reset (ROLLBACK)
      on a network that no longer answers would wait out another timeout. A connection
      error also recycles the rest of the pool (they are likely dead too); a timeout only
      its own connection.
    """

    @event.listens_for(engine.sync_engine, "checkout")
    def _closed_at_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if driver is not None and driver.is_closed():
            raise sa_exc.DisconnectionError("the connection was closed by the server")

    @event.listens_for(engine.sync_engine, "handle_error")
    def _invalidate_on_fault(context: ExceptionContext) -> None:
        if context.is_disconnect:
            return
        fault = faults.unavailable(context.original_exception)
        if fault is None or fault.message == faults.BUSY:
            return
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = fault.message == faults.UNREACHABLE
