"""Group commit for SQLite: many callers' transactions share one durable COMMIT.

SQLite has one writer at a time and every durable COMMIT (WAL, synchronous=FULL) costs an
fsync. So the writes of one process go through one shared connection: callers take turns;
each runs its statements inside its own SAVEPOINT of the open transaction (a failure rolls
back only that caller's work); when no caller is waiting, or ``max_batch`` callers have
joined, the turn holder COMMITs once for the whole batch and wakes every caller of it.
A caller's ``transaction()`` returns only after the COMMIT that holds its work is on disk,
so nothing is acknowledged before it is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import deque

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class GroupCommitWriter:
    """Serialises writers on one connection and batches their commits."""

    def __init__(self, engine: AsyncEngine, max_batch: int = 128) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._conn: AsyncConnection | None = None
        self._raw: sqlite3.Connection | None = None
        self._busy = False
        self._turns: deque[asyncio.Future[None]] = deque()
        self._first_turns: deque[asyncio.Future[None]] = deque()
        """Turns asked for with ``priority``: served before every other waiting turn."""
        self._batch: list[asyncio.Future[None]] = []
        self.commits = 0
        """How many COMMITs were issued (for tests and the benchmark)."""
        self.committed = 0
        """How many callers' transactions those COMMITs made durable."""

    # -- turns -----------------------------------------------------------------------------
    async def _acquire(self, priority: bool = False) -> None:
        if not self._busy:
            self._busy = True
            return
        turn = asyncio.get_running_loop().create_future()
        queue = self._first_turns if priority else self._turns
        queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                # We were handed the turn but cancelled before using it: pass it on.
                task = asyncio.ensure_future(self._release())
                task.add_done_callback(_ignore_result)
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(turn)
            raise

    def _hand_off(self) -> None:
        for queue in (self._first_turns, self._turns):
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self._busy = False

    async def _release(self) -> None:
        """End a turn: let the next caller join the batch, or commit the batch first."""
        waiting = any(not t.done() for t in self._first_turns) or any(
            not t.done() for t in self._turns
        )
        if self._batch and (not waiting or len(self._batch) >= self._max_batch):
            await self._commit()
        elif not waiting and self._conn is not None and self._conn.in_transaction():
            # Nothing to commit: never sit idle holding the write lock (other processes).
            await self._rollback(None)
        self._hand_off()

    # -- the shared transaction --------------------------------------------------------------
    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            self._conn = await self._engine.connect()
            self._raw = await _sqlite3_of(self._conn)
        if not self._conn.in_transaction():
            # The cross-process writer lock, then BEGIN IMMEDIATE (engine.py, WriterLock);
            # both are released as soon as COMMIT or ROLLBACK has ended the transaction.
            await self._conn.begin()
        return self._conn

    @property
    def raw(self) -> sqlite3.Connection:
        """The sqlite3 connection under the shared transaction, for the turn holder's
        statements on the hot path (no SQLAlchemy machinery, no await)."""
        if self._raw is None:
            raise RuntimeError("no open transaction")
        return self._raw

    async def _commit(self) -> None:
        batch, self._batch = self._batch, []
        assert self._conn is not None
        try:
            await self._conn.commit()
        except BaseException as exc:
            await self._rollback(exc, batch)
            return
        self.commits += 1
        self.committed += len(batch)
        for waiter in batch:
            if not waiter.done():
                waiter.set_result(None)

    async def _rollback(
        self, exc: BaseException | None, batch: list[asyncio.Future[None]] | None = None
    ) -> None:
        """Abandon the open transaction (and the connection, if it is broken)."""
        failed = batch if batch is not None else []
        if batch is None:
            failed, self._batch = self._batch, []
        conn, self._conn, self._raw = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.rollback()
            with contextlib.suppress(Exception):
                await conn.close()
        error = exc if isinstance(exc, Exception) else RuntimeError("group commit aborted")
        for waiter in failed:
            if not waiter.done():
                waiter.set_exception(error)

    def transaction(self, priority: bool = False) -> CallerTransaction:
        """One caller's transaction; ``async with`` it: it has exited once its work is
        durably committed (or rolled back, if the block raised). A ``priority`` caller takes
        the next turn before every waiting ordinary caller."""
        return CallerTransaction(self, priority)

    async def close(self) -> None:
        """Commit what is pending and close the shared connection."""
        if self._batch and self._conn is not None and not self._busy:
            await self._commit()
        if self._conn is not None:
            conn, self._conn, self._raw = self._conn, None, None
            with contextlib.suppress(Exception):
                await conn.close()


class CallerTransaction:
    """One caller's SAVEPOINT in the shared transaction (a class, not a generator-based
    context manager: it is entered on every write)."""

    __slots__ = ("_durable", "_priority", "_raw", "_writer")

    def __init__(self, writer: GroupCommitWriter, priority: bool) -> None:
        self._writer = writer
        self._priority = priority

    async def __aenter__(self) -> AsyncConnection:
        writer = self._writer
        await writer._acquire(self._priority)
        try:
            conn = await writer._connection()
            self._raw = writer.raw
            self._raw.execute("SAVEPOINT dompet_caller")
        except BaseException as exc:
            await writer._rollback(exc)
            writer._hand_off()
            raise
        self._durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._durable.add_done_callback(_ignore_result)
        return conn

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        writer, raw, durable = self._writer, self._raw, self._durable
        if exc is not None:
            try:
                raw.execute("ROLLBACK TO dompet_caller")
                raw.execute("RELEASE dompet_caller")
            except BaseException:
                await writer._rollback(exc)
                writer._hand_off()
                raise exc from None
            # The failure may be due to earlier callers' work in this batch (a unique key,
            # a balance): wait until that is committed too, so what the caller reads next
            # (to explain its failure) is what made it fail.
            writer._batch.append(durable)
            await writer._release()
            with contextlib.suppress(Exception):
                await asyncio.shield(durable)
            return  # the block's exception propagates
        try:
            raw.execute("RELEASE dompet_caller")
        except BaseException as exc:
            await writer._rollback(exc)
            writer._hand_off()
            raise
        writer._batch.append(durable)
        await writer._release()
        await durable  # a cancelled caller's work still commits with its batch


async def _sqlite3_of(conn: AsyncConnection) -> sqlite3.Connection:
    """The sqlite3 connection under the shared writer: savepoints are issued on it directly
    (on this thread, microseconds) rather than through SQLAlchemy's nested transactions."""
    fairy = await conn.get_raw_connection()
    raw: sqlite3.Connection = fairy.driver_connection._conn  # type: ignore[union-attr]
    return raw


def _ignore_result(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()
