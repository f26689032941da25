"""Connection access, the first of the SQL store's two engine seams (docs/storage.md).

The repositories (``storage/sql/repos``) and the history read model (``storage/sql/history``)
reach the database only through a :class:`ConnectionAccess`, and know no engine. One module
per engine implements it:

- ``access/sqlite.py``: the group-commit writer (``group_commit.py``), a read semaphore over
  the reader pool, and the hot reader (a read-only sqlite3 connection used inline);
- ``access/postgresql.py``: the priority gate (``priority.py``) in front of one pool, and one
  raw-asyncpg helper.

What a repository may ask for, and nothing else:

- ``write(priority)``: a write transaction (SQLAlchemy Core); durably committed when the
  block has exited. ``priority``: settlement, served before waiting requests;
- ``read(consistent)``: a connection to read on; ``consistent``: one snapshot of the whole
  database, in a transaction (reconcile, export);
- ``fetch(query, params)``, ``fetch_rows(statement, *args)`` and ``fetch_row(statement,
  *args)``: the hot reads (a history page, a session check, a user, a transfer; reconcile's
  item check), one statement on the driver itself, without SQLAlchemy's execution and result
  layers (more than half of such a read's cost);
- ``write_row(statement, *args)``: one write statement, atomic alone (on PostgreSQL without
  BEGIN/COMMIT: one round trip).

The other seam, the journal writer (``storage/sql/journal``), also has each engine's own way
in: SQLite's group-commit job (:meth:`SqliteAccess.job`) and PostgreSQL's raw connection
(:meth:`PostgresAccess.raw`). Those are the only other ways to a connection.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from enum import Enum
from types import SimpleNamespace
from typing import Any, Protocol

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

_PLACEHOLDER = r"\$(\d+)::\w+(?:\[\])?"


class Statement:
    """One SQL text for both engines' drivers, written with asyncpg's numbered placeholders
    (``$1::text``, in order, each once); SQLite's form has a ``?`` for each. (A statement
    with PostgreSQL's arrays, ``$1::text[]``, is for PostgreSQL only: a batch of reads.)

    ``times`` names the columns of its rows that hold a ``tables.UtcDateTime``: a row comes
    back with them as aware UTC datetimes, as SQLAlchemy would give them.
    """

    __slots__ = ("postgresql", "sqlite", "times")

    def __init__(self, sql: str, times: frozenset[str] = frozenset()) -> None:
        numbers = re.findall(_PLACEHOLDER, sql)
        if numbers != [str(n) for n in range(1, len(numbers) + 1)]:
            raise ValueError(f"placeholders must be $1, $2 ... in order: {sql!r}")
        self.postgresql = sql
        self.sqlite = re.sub(_PLACEHOLDER, "?", sql)
        self.times = times


class CompiledSelect:
    """A Core select compiled once for one dialect, to run on the driver connection itself.

    The SQL is SQLAlchemy's own compilation of the one query definition; only the rows skip
    SQLAlchemy's result layer. Its parameters are plain ints and strings (no bind processing).
    """

    __slots__ = ("_fixed", "_order", "sql")

    def __init__(self, query: Any, dialect: Dialect) -> None:
        compiled = query.compile(dialect=dialect)
        self.sql: str = compiled.string
        self._order: tuple[str, ...] = tuple(compiled.positiontup or ())
        self._fixed = {
            name: value.value if isinstance(value, Enum) else value
            for name, value in compiled.params.items()
        }

    def arguments(self, params: dict[str, Any]) -> tuple[Any, ...]:
        """The positional arguments: ``params`` by name, the query's own constants otherwise."""
        fixed = self._fixed
        return tuple(params[n] if n in params else fixed[n] for n in self._order)


class CompiledSelects:
    """The selects of one dialect, each built and compiled once per shape."""

    __slots__ = ("_dialect", "built")

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self.built: dict[tuple[Any, ...], CompiledSelect] = {}
        """Every select compiled so far, by ``(build, *shape)``."""

    def __call__(self, build: Callable[..., Any], *shape: Hashable) -> CompiledSelect:
        """``build(*shape)``'s select, compiled for this dialect."""
        key = (build, *shape)
        found = self.built.get(key)
        if found is None:
            found = self.built[key] = CompiledSelect(build(*shape), self._dialect)
        return found


class ConnectionAccess(Protocol):
    """How an engine is reached (see the module docstring)."""

    engine_name: str
    """'sqlite' or 'postgresql': for SQL that must differ (account_order.py, history)."""
    compiled: CompiledSelects
    """The hot selects, compiled for this engine's dialect."""

    def write(self, priority: bool = False) -> AbstractAsyncContextManager[AsyncConnection]:
        """A write transaction; it has committed, durably, once the block has exited."""
        ...

    def read(self, consistent: bool = False) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection to read on; ``consistent``: in a transaction on one snapshot."""
        ...

    async def fetch(self, query: CompiledSelect, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        """The rows of a hot select, bare (stored times as the driver gives them: ``utc``)."""
        ...

    async def fetch_rows(self, statement: Statement, *args: Any) -> Sequence[Sequence[Any]]:
        """The rows of a hot read, bare."""
        ...

    async def fetch_row(self, statement: Statement, *args: Any, urgent: bool = False) -> Any:
        """The first row of a hot read, its columns as attributes, or None. ``urgent``:
        settlement, served first."""
        ...

    async def write_row(self, statement: Statement, *args: Any) -> Any:
        """Run one write statement, atomic alone; its first row as attributes, or None."""
        ...

    def utc(self, stored: Any) -> datetime:
        """A stored ``UtcDateTime`` as the driver gives it, as an aware UTC datetime."""
        ...

    def timestamp(self, moment: datetime) -> Any:
        """An aware datetime as the driver takes it for a ``UtcDateTime`` column."""
        ...

    def upsert(self, table: Any) -> Any:
        """The dialect's ``INSERT`` for ``table``, with ``on_conflict_do_update``."""
        ...

    async def ping(self) -> None:
        """Raise if the database does not answer, or (SQLite) if writes are refused until a
        restart (a failed fsync: ``wal_flusher.DurabilityLost``)."""
        ...

    async def close(self) -> None: ...


def named_row(
    names: Sequence[str],
    values: Sequence[Any],
    times: frozenset[str],
    utc: Callable[[Any], datetime],
) -> Any:
    """A driver row as attributes, its ``times`` columns as aware UTC datetimes."""
    return SimpleNamespace(
        **{
            name: utc(value) if name in times and value is not None else value
            for name, value in zip(names, values, strict=True)
        }
    )
