"""Which errors mean "the database is unavailable" (storage/faults.py), and the guarded store.

The errors are real where they can be made cheaply here: SQLite's own "disk is full" from a
database capped by ``max_page_count``, a refused connection from asyncpg, SQLAlchemy's
wrapping of both. A bug (a wrong value, an integrity error) must never pass for an outage.
"""

from __future__ import annotations

import inspect
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from pymongo import errors as mongo_errors
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from dompet.domain.errors import InsufficientFunds, StoreUnavailable
from dompet.storage import faults
from dompet.storage.port import LedgerStore
from dompet.storage.sql.access.group_commit import PartialWriteError
from dompet.storage.sql.access.priority import GateFull, GateTimeout
from dompet.storage.sql.access.wal_flusher import DurabilityLost
from tests.support.servers import find_free_port


def _disk_full(tmp_path: Path) -> sqlite3.OperationalError:
    """SQLite's real SQLITE_FULL: a database that may not grow past a few pages."""
    db = sqlite3.connect(tmp_path / "full.db")
    db.execute("CREATE TABLE t (x BLOB)")
    db.execute("PRAGMA max_page_count = 3")
    try:
        for _ in range(10):
            db.execute("INSERT INTO t VALUES (zeroblob(4000))")
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        db.close()
    raise AssertionError("the database did not fill up")


async def _refused() -> OSError:
    try:
        await asyncpg.connect(host="127.0.0.1", port=find_free_port(), user="x", timeout=2)
    except OSError as exc:
        return exc
    raise AssertionError("a connection to a closed port was accepted")


def reason(exc: BaseException) -> str | None:
    fault = faults.unavailable(exc, retry_after=7)
    if fault is None:
        return None
    assert fault.retry_after_seconds == 7
    return fault.message


async def test_real_driver_faults_are_unavailable(tmp_path: Path) -> None:
    full = _disk_full(tmp_path)
    assert reason(full) == faults.DISK_FULL
    assert reason(sa_exc.OperationalError("COMMIT", None, full)) == faults.DISK_FULL
    assert reason(PartialWriteError(full)) == faults.DISK_FULL
    refused = await _refused()
    assert reason(refused) == faults.UNREACHABLE
    engine = create_async_engine(
        f"postgresql+asyncpg://x@127.0.0.1:{find_free_port()}/x", connect_args={"timeout": 2}
    )
    try:
        with pytest.raises(Exception) as caught:  # noqa: PT011 - whatever SQLAlchemy makes of it
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        assert reason(caught.value) == faults.UNREACHABLE
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("error", "message", "overloaded"),
    [
        (GateFull("8 waiting"), faults.BUSY, True),
        (GateTimeout("1 s"), faults.NO_CONNECTION, True),
        (sa_exc.TimeoutError("QueuePool limit"), faults.NO_CONNECTION, True),
        (TimeoutError(), faults.TOO_SLOW, True),
        (asyncpg.QueryCanceledError("statement timeout"), faults.TOO_SLOW, True),
        (asyncpg.CannotConnectNowError("starting up"), faults.UNREACHABLE, False),
        (asyncpg.AdminShutdownError("terminating"), faults.UNREACHABLE, False),
        (asyncpg.ConnectionDoesNotExistError("closed mid-operation"), faults.UNREACHABLE, False),
        (asyncpg.TooManyConnectionsError("too many"), faults.BUSY, True),
        (asyncpg.DiskFullError("no space left on device"), faults.DISK_FULL, False),
        (asyncpg.ReadOnlySQLTransactionError("a standby"), faults.UNREACHABLE, False),
        (asyncpg.OutOfMemoryError("out of memory"), faults.UNREACHABLE, False),
        (asyncpg.InterfaceError("connection is closed"), faults.UNREACHABLE, False),
        (
            asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is"),
            faults.UNREACHABLE,
            False,
        ),
        (ConnectionResetError(), faults.UNREACHABLE, False),
        (sa_exc.DisconnectionError("closed"), faults.UNREACHABLE, False),
        (sqlite3.OperationalError("disk I/O error"), faults.DISK_ERROR, False),
        (sqlite3.OperationalError("database is locked"), faults.TOO_SLOW, True),
        (DurabilityLost("fsync of the SQLite WAL failed: EIO"), faults.NOT_DURABLE, False),
        (mongo_errors.AutoReconnect("gone"), faults.UNREACHABLE, False),
        (mongo_errors.ServerSelectionTimeoutError("no server"), faults.UNREACHABLE, False),
        (mongo_errors.NetworkTimeout("slow"), faults.TOO_SLOW, True),
    ],
)
def test_faults_and_their_messages(error: BaseException, message: str, overloaded: bool) -> None:
    fault = faults.unavailable(error)
    assert fault is not None
    assert fault.message == message
    assert fault.overloaded is overloaded


def _with_unrelated_context() -> ValueError:
    try:
        try:
            raise ConnectionResetError()
        except ConnectionResetError:
            raise ValueError("a bug while handling it") from None
    except ValueError as exc:
        return exc


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad"),
        KeyError("x"),
        RuntimeError("journal was not written, for no known reason"),
        sqlite3.IntegrityError("UNIQUE constraint failed"),
        sqlite3.OperationalError("no such table: accounts"),
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        sa_exc.IntegrityError("INSERT", None, sqlite3.IntegrityError("UNIQUE")),
        InsufficientFunds(),
        _with_unrelated_context(),
    ],
)
def test_bugs_and_business_errors_are_not_outages(error: BaseException) -> None:
    assert faults.unavailable(error) is None


class _Store:
    """A stand-in for an engine: each call does what the test sets."""

    engine_name = "fake"

    def __init__(self) -> None:
        self.raise_: BaseException | None = None

    async def ping(self) -> None:
        if self.raise_ is not None:
            raise self.raise_

    async def balance(self, account_id: str) -> int | None:
        if self.raise_ is not None:
            raise self.raise_
        return 5


async def test_the_guard_translates_faults_and_nothing_else() -> None:
    inner = _Store()
    store = faults.guarded(inner, retry_after=3)  # type: ignore[arg-type]
    assert await store.balance("wallet:x") == 5
    assert store.engine_name == "fake"  # the store's own attributes pass through
    assert faults.guarded(store) is store

    inner.raise_ = ConnectionRefusedError()
    with pytest.raises(StoreUnavailable) as caught:
        await store.balance("wallet:x")
    assert caught.value.message == faults.UNREACHABLE
    assert caught.value.retry_after_seconds == 3
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)

    for passed in (InsufficientFunds(), ValueError("a bug")):
        inner.raise_ = passed
        with pytest.raises(type(passed)):
            await store.balance("wallet:x")


def test_the_guard_covers_every_call_of_the_port() -> None:
    calls: list[str] = [
        name
        for name, member in vars(LedgerStore).items()
        if inspect.iscoroutinefunction(member) and not name.startswith("_")
    ]
    assert set(faults._PORT_CALLS) == set(calls)
    assert {"post_journal", "open_transfer", "close_transfer", "claim_idempotency"} <= set(calls)


def test_mongodb_urls_get_the_connect_timeout_unless_they_set_their_own() -> None:
    from dompet.storage import mongodb_with_timeouts

    assert mongodb_with_timeouts("mongodb://h:27017/dompet?replicaSet=rs0", 5) == (
        "mongodb://h:27017/dompet?replicaSet=rs0"
        "&serverSelectionTimeoutMS=5000&connectTimeoutMS=5000"
    )
    assert mongodb_with_timeouts(
        "mongodb://u:p%40ss@h1,h2/db?serverselectiontimeoutms=100", 2.5
    ) == ("mongodb://u:p%40ss@h1,h2/db?serverselectiontimeoutms=100&connectTimeoutMS=2500")
    assert mongodb_with_timeouts("mongodb+srv://c.example.net/dompet", 1) == (
        "mongodb+srv://c.example.net/dompet?serverSelectionTimeoutMS=1000&connectTimeoutMS=1000"
    )
