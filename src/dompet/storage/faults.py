"""When the database fails under the service: which errors mean "unavailable", and the limits
that keep a request from waiting for it without end.

* :class:`StoreLimits`: the connect, statement and wait timeouts and the bound on requests
  waiting for a connection (from Settings; the engines and the PostgreSQL gate apply them).
* :func:`unavailable`: the :class:`StoreUnavailable` that a driver, pool or OS error stands for
  (server gone, connection refused or broken, a timeout, the disk full, an fsync failed), or
  None for anything else: a bug stays a bug (500), it is never disguised as an outage.
* :func:`guarded`: the store with that translation on every call of the port, so services and
  workers see one domain error and the API answers one 503 (api/errors.py).
"""

from __future__ import annotations

import inspect
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import asyncpg
from pymongo import errors as mongo_errors
from sqlalchemy import exc as sa_exc

from dompet.domain.errors import DomainError, StoreUnavailable
from dompet.storage.port import LedgerStore
from dompet.storage.sql.access.priority import GateFull, GateTimeout
from dompet.storage.sql.access.wal_flusher import DurabilityLost

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoreLimits:
    """How long a request may wait for the database, and how many may wait at once."""

    connect_timeout: float = 5.0
    """Seconds to open a connection (PostgreSQL; MongoDB server selection)."""
    statement_timeout: float = 10.0
    """Seconds one statement may run, server side and client side (PostgreSQL); 0: none."""
    wait_timeout: float = 5.0
    """Seconds a request waits for a free connection (PostgreSQL gate and pool)."""
    max_waiting: int = 256
    """Requests waiting for a connection at once (PostgreSQL); one more is refused at once."""
    retry_after: int = 1
    """The ``Retry-After`` (seconds) of the 503 a fault gets."""


# What the client reads; the cause (driver, message) goes to the log.
BUSY = "The database is busy: too many requests are waiting for it. Try again shortly."
NO_CONNECTION = "No database connection became free in time. Try again shortly."
TOO_SLOW = "The database did not answer in time. Try again shortly."
UNREACHABLE = "The database cannot be reached. Try again shortly."
DISK_FULL = (
    "The database cannot accept writes: its disk is full. Reads still work; "
    "try the write again later."
)
DISK_ERROR = "The database cannot read or write its disk. Try again later."
NOT_DURABLE = (
    "The database could not make a write durable (an fsync failed): writes are refused "
    "until the service is restarted."
)

_OVERLOADED = frozenset({BUSY, NO_CONNECTION, TOO_SLOW})

_PG_STATES = {
    "57014": TOO_SLOW,  # query_canceled: the server-side statement_timeout fired
    "53100": DISK_FULL,  # disk_full
    "53300": BUSY,  # too_many_connections
    "25006": UNREACHABLE,  # read_only_sql_transaction: a standby (after a failover)
}
_PG_UNAVAILABLE_CLASSES = ("08", "53", "57P")
"""SQLSTATE classes of a server that is gone, starting, stopping or out of resources."""


def unavailable(exc: BaseException, retry_after: int = 1) -> StoreUnavailable | None:
    """The StoreUnavailable that ``exc`` (or an error it wraps) stands for; None if none."""
    chain = list(_chain(exc))
    message = next((m for m in map(_reason, chain) if m is not None), None)
    if message is None and any(
        isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated for e in chain
    ):
        message = UNREACHABLE  # SQLAlchemy saw a disconnect it has no finer word for
    if message is None:
        return None
    return StoreUnavailable(message, retry_after, overloaded=message in _OVERLOADED)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: SQLAlchemy's ``orig``, the explicit ``__cause__`` (``raise
    .. from``) and the group-commit writer's ``cause``; not ``__context__``, which may be an
    unrelated error that was being handled."""
    seen: set[int] = set()
    error: object = exc
    while isinstance(error, BaseException) and id(error) not in seen and len(seen) < 16:
        seen.add(id(error))
        yield error
        wrapped = getattr(error, "orig", None) or getattr(error, "cause", None)
        error = wrapped if isinstance(wrapped, BaseException) else error.__cause__


def _reason(error: BaseException) -> str | None:
    """The client's message for one error, if it is a database fault."""
    if isinstance(error, DomainError):
        return None
    if isinstance(error, GateFull):
        return BUSY
    if isinstance(error, GateTimeout | sa_exc.TimeoutError | mongo_errors.WaitQueueTimeoutError):
        return NO_CONNECTION
    if isinstance(error, DurabilityLost):
        return NOT_DURABLE
    if isinstance(error, sqlite3.Error):
        return _sqlite_reason(error)
    if isinstance(error, asyncpg.PostgresError):
        state = str(getattr(error, "sqlstate", "") or "")
        if state in _PG_STATES:
            return _PG_STATES[state]
        return UNREACHABLE if state.startswith(_PG_UNAVAILABLE_CLASSES) else None
    if isinstance(error, asyncpg.InterfaceError):  # e.g. "connection is closed"
        return UNREACHABLE if "closed" in str(error) else None
    if isinstance(error, asyncpg.InternalClientError):
        # "another operation is in progress": the connection's protocol was left out of
        # step by a server that went away under it (our connections have one user at a time)
        return UNREACHABLE if "another operation" in str(error) else None
    if isinstance(
        error, TimeoutError | mongo_errors.NetworkTimeout | mongo_errors.ExecutionTimeout
    ):
        return TOO_SLOW
    if isinstance(error, OSError | mongo_errors.ConnectionFailure | sa_exc.DisconnectionError):
        return UNREACHABLE
    return None


def _sqlite_reason(error: sqlite3.Error) -> str | None:
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(error).lower()
    if primary == sqlite3.SQLITE_FULL or "database or disk is full" in text:
        return DISK_FULL
    if primary in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN) or "disk i/o error" in text:
        return DISK_ERROR
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "database is locked" in text:
        return TOO_SLOW  # another process held the write lock past the busy timeout
    return None


# -- the store, guarded -------------------------------------------------------------------------
_PORT_CALLS = tuple(
    name
    for name, member in vars(LedgerStore).items()
    if not name.startswith("_") and inspect.iscoroutinefunction(member)
)
"""The port's coroutine methods: the calls whose faults :func:`guarded` translates."""

LOG_EVERY = 5.0
"""Seconds between two log lines about faults (a 503 each is in the access log anyway)."""


class _Log:
    """One warning per ``LOG_EVERY`` seconds, saying how many faults it stands for."""

    last = 0.0
    since = 0

    @classmethod
    def fault(cls, call: str, exc: BaseException) -> None:
        cls.since += 1
        now = time.monotonic()
        if now - cls.last >= LOG_EVERY:
            log.warning(
                "database unavailable (%d faults since the last line); %s: %s: %s",
                cls.since,
                call,
                type(exc).__name__,
                exc,
            )
            cls.last, cls.since = now, 0


def _translating(name: str, store: LedgerStore, retry_after: int) -> Callable[..., Awaitable[Any]]:
    async def translated(*args: Any, **kwargs: Any) -> Any:
        try:
            return await getattr(store, name)(*args, **kwargs)
        except DomainError:
            raise
        except Exception as exc:
            fault = unavailable(exc, retry_after)
            if fault is None:
                raise
            _Log.fault(name, exc)
            raise fault from exc

    translated.__name__ = name
    return translated


class _GuardedStore:
    """A LedgerStore whose calls raise StoreUnavailable for database faults; anything else
    (engine_name, an engine's own helpers) is the store's own."""

    def __init__(self, store: LedgerStore, retry_after: int) -> None:
        self.inner = store
        for name in _PORT_CALLS:
            setattr(self, name, _translating(name, store, retry_after))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def guarded(store: LedgerStore, retry_after: int = 1) -> LedgerStore:
    """``store`` with every port call's database faults raised as :class:`StoreUnavailable`.

    A wrapper of the port rather than code in each engine: it covers every engine and every
    path (the raw driver statements, the group-commit jobs, SQLAlchemy) in one place, and
    costs a call one coroutine frame (well under a microsecond)."""
    if isinstance(store, _GuardedStore):
        return store
    return cast(LedgerStore, _GuardedStore(store, retry_after))
