"""Group commit for SQLite: many callers' transactions share one durable COMMIT.

SQLite has one writer at a time and every durable COMMIT (WAL, synchronous=FULL) costs an
fsync. So the writes of one process go through one shared connection, in turns; a failed turn
is undone alone (in its own SAVEPOINT, or, for a job that fails before changing anything,
by nature); when no turn is waiting, or ``max_batch`` turns have joined, the transaction
COMMITs once for the whole batch and every caller of it is answered. Nothing is acknowledged
before the COMMIT that holds it is on disk (with ``synchronous=FULL`` the :class:`WalFlusher`
makes the fsync, off the writer's path). docs/sqlite-group-commit.md has the whole story.

A turn is one of two things:

- a **job** (:meth:`GroupCommitWriter.run`): a plain function of the sqlite3 connection,
  for the hot journal writes. The writer's own drain task runs queued jobs back to back and
  answers each caller once, after the COMMIT, with the job's result or error: a caller waits
  once and its task is woken once;
- a **caller's transaction** (:meth:`GroupCommitWriter.transaction`): an ``async with``
  block holding the turn, for writes that need SQLAlchemy and awaits.

Both kinds queue in one order (priority turns first) and share the batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dompet.storage.sql.access.wal_flusher import (
    Answer,
    WalFlusher,
    answer_batch,
)

T = TypeVar("T")


class _Job:
    """A queued job: the function to run in the shared transaction, and its caller."""

    __slots__ = ("answer", "savepoint", "work")

    def __init__(
        self,
        work: Callable[[sqlite3.Connection], Any],
        answer: asyncio.Future[Any],
        savepoint: bool,
    ) -> None:
        self.work = work
        self.answer = answer
        self.savepoint = savepoint


class PartialWriteError(RuntimeError):
    """A job without a SAVEPOINT failed after a change: its batch was rolled back."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(
            f"a write failed part-way ({type(cause).__name__}); its batch was rolled back"
        )
        self.cause = cause


class BatchLost(RuntimeError):
    """SQLite rolled back the whole shared transaction on a job's error (it does, for one,
    when the disk fills up while it spills its page cache): every write of the batch is gone,
    so every caller of it is told."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(
            f"SQLite rolled back the shared transaction ({type(cause).__name__}: {cause}); "
            "its batch is lost"
        )
        self.cause = cause


_Turn = asyncio.Future[None] | _Job
"""A waiting turn: a caller's transaction (the future that hands it the turn) or a job."""


class GroupCommitWriter:
    """Serialises writers on one connection and batches their commits."""

    def __init__(self, engine: AsyncEngine, max_batch: int = 128) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._conn: AsyncConnection | None = None
        self._raw: sqlite3.Connection | None = None
        self._busy = False
        """Someone holds the turn: a caller's transaction, or the drain task."""
        self._turns: deque[_Turn] = deque()
        self._first_turns: deque[_Turn] = deque()
        """Turns asked for with ``priority``: served before every other waiting turn."""
        self._batch: list[Answer] = []
        self._drainer: asyncio.Task[None] | None = None
        self._wal: WalFlusher | None = None
        self.commits = 0
        """How many COMMITs were issued (for tests and the benchmark)."""
        self.committed = 0
        """How many turns those COMMITs made durable."""

    # -- jobs ------------------------------------------------------------------------------
    async def run(
        self,
        work: Callable[[sqlite3.Connection], T],
        priority: bool = False,
        savepoint: bool = True,
    ) -> T:
        """Run ``work(connection)`` in the shared transaction; return what it returned (or
        raise what it raised, its statements undone) once the COMMIT that holds its batch is
        durable. ``work`` must not block: it runs on the event loop, between other callers'
        jobs. A caller cancelled before its job ran leaves no trace; once it ran, the work
        commits with its batch.

        With ``savepoint`` (the default) the job runs in its own SAVEPOINT. Without, it must
        fail, when it fails, before its first change (guards first, then the writes): a
        failure that finds no change made is the job's alone; one that finds changes made
        cannot be undone alone, so the whole batch is rolled back and every caller of it
        told. A SAVEPOINT costs a payment about a tenth of its CPU time (SQLite copies each
        page it changes to a statement journal), hence the choice.
        """
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        turn = _Job(work, answer, savepoint)
        (self._first_turns if priority else self._turns).append(turn)
        if not self._busy:
            self._busy = True
            self._start_drain()
        return await answer

    def _start_drain(self) -> None:
        self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        """Hold the turn: run the queued jobs, commit the batches, and hand the turn on."""
        head: _Turn | None = None
        try:
            while True:
                head = self._head()
                if isinstance(head, _Job) and len(self._batch) < self._max_batch:
                    self._pop()
                    raw = self._raw
                    if raw is None or self._conn is None or not self._conn.in_transaction():
                        try:
                            await self._connection()
                        except Exception as exc:
                            await self._rollback(exc)
                            head.answer.set_exception(exc)
                            continue
                        raw = self.raw
                    broken = self._run_job(raw, head)
                    if broken is not None:  # the shared transaction is unusable
                        await self._rollback(broken)
                    continue
                if self._batch and (head is None or len(self._batch) >= self._max_batch):
                    await self._commit()
                    continue
                if head is None and self._conn is not None and self._conn.in_transaction():
                    await self._rollback(None)  # nothing to commit: do not hold the lock
                self._hand_off()
                return
        except BaseException as exc:  # pragma: no cover - cancelled at shutdown
            if isinstance(head, _Job) and not head.answer.done():  # popped, not answered
                head.answer.set_exception(RuntimeError("group commit aborted"))
            await self._rollback(exc)
            self._hand_off()
            raise

    def _run_job(self, raw: sqlite3.Connection, job: _Job) -> Exception | None:
        """Run one job and queue its answer for the COMMIT; the error that broke the shared
        transaction, if any (then the job's caller has been answered already)."""
        if job.savepoint:
            return self._run_in_savepoint(raw, job)
        changes = raw.total_changes
        try:
            value = job.work(raw)
        except Exception as exc:
            if not raw.in_transaction:  # SQLite ended the batch's transaction itself
                job.answer.set_exception(exc)
                return BatchLost(exc)
            if raw.total_changes != changes:  # part of it is in the shared transaction
                job.answer.set_exception(exc)
                return PartialWriteError(exc)
            # Nothing of it was written: its failure is its own, told after the COMMIT.
            self._batch.append((job.answer, None, exc))
            return None
        self._batch.append((job.answer, value, None))
        return None

    def _run_in_savepoint(self, raw: sqlite3.Connection, job: _Job) -> Exception | None:
        """``_run_job`` in a SAVEPOINT: a failure is rolled back to it, the job's alone."""
        value: Any = None
        error: Exception | None = None
        try:
            raw.execute("SAVEPOINT dompet_caller")
            try:
                value = job.work(raw)
            except Exception as exc:
                error = exc
                if not raw.in_transaction:  # SQLite ended the batch's transaction itself
                    job.answer.set_exception(exc)
                    return BatchLost(exc)
                raw.execute("ROLLBACK TO dompet_caller")
            raw.execute("RELEASE dompet_caller")
        except Exception as broken:  # a SAVEPOINT statement itself failed
            job.answer.set_exception(error or broken)
            return broken
        # A failure, too, is answered after the COMMIT: it may be due to an earlier job of
        # this batch, and what its caller reads next must show that job.
        self._batch.append((job.answer, value, error))
        return None

    # -- turns -----------------------------------------------------------------------------
    def _head(self) -> _Turn | None:
        """The next waiting turn (not removed), dropping turns whose callers left."""
        for queue in (self._first_turns, self._turns):
            while queue:
                turn = queue[0]
                if not (turn.answer if isinstance(turn, _Job) else turn).done():
                    return turn
                queue.popleft()
        return None

    def _pop(self) -> None:
        (self._first_turns if self._first_turns else self._turns).popleft()

    def _hand_off(self) -> None:
        """Give the turn to the next waiting caller, or to the drain task for jobs."""
        head = self._head()
        if head is None:
            self._busy = False
        elif isinstance(head, _Job):
            self._start_drain()
        else:
            self._pop()
            head.set_result(None)

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

    async def _release(self) -> None:
        """End a caller's turn: let the next turn join the batch, or commit the batch first."""
        waiting = self._head() is not None
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
            if self._wal is None:
                self._wal = WalFlusher.take_over(self._raw)
            elif self._wal.broken is None:
                WalFlusher.configure(self._raw)  # a new connection: still the flusher's
            if self._wal is not None:
                fairy = await self._conn.get_raw_connection()
                fairy.driver_connection.commits_inline = True  # type: ignore[union-attr]
        if not self._conn.in_transaction():
            if self._wal is not None and self._wal.wal_bytes >= self._wal.limit:
                await self._wal.empty_wal()  # no write in between: the WAL can start over
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
        if self._wal is not None and self._wal.broken is not None:
            await self._rollback(self._wal.broken, batch)  # an fsync failed: write nothing more
            return
        try:
            await self._conn.commit()
        except BaseException as exc:
            await self._rollback(exc, batch)
            return
        self.commits += 1
        self.committed += len(batch)
        if self._wal is None:
            answer_batch(batch)
        else:
            self._wal.answer_when_durable(batch)

    async def _rollback(self, exc: BaseException | None, batch: list[Answer] | None = None) -> None:
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
        for answer, _, _ in failed:
            if not answer.done():
                answer.set_exception(error)

    def raise_if_broken(self) -> None:
        """Raise :class:`DurabilityLost` if an fsync failed: every write is refused until the
        process restarts, so a health check must say so (a supervisor can then restart it)."""
        if self._wal is not None and self._wal.broken is not None:
            raise self._wal.broken

    def transaction(self, priority: bool = False) -> CallerTransaction:
        """One caller's transaction; ``async with`` it: it has exited once its work is
        durably committed (or rolled back, if the block raised). A ``priority`` caller takes
        the next turn before every waiting ordinary caller."""
        return CallerTransaction(self, priority)

    async def close(self) -> None:
        """Finish the queued work, commit what is pending and close the shared connection."""
        if self._drainer is not None and not self._drainer.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._drainer)
        if self._batch and self._conn is not None and not self._busy:
            await self._commit()
        if self._wal is not None:
            await self._wal.close()
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
            writer._batch.append((durable, None, None))
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
        writer._batch.append((durable, None, None))
        await writer._release()
        await durable  # a cancelled caller's work still commits with its batch


async def _sqlite3_of(conn: AsyncConnection) -> sqlite3.Connection:
    """The sqlite3 connection under the shared writer: savepoints are issued on it directly
    (on this thread, microseconds) rather than through SQLAlchemy's nested transactions."""
    fairy = await conn.get_raw_connection()
    raw: sqlite3.Connection = fairy.driver_connection._conn  # type: ignore[union-attr]
    return raw


def _ignore_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
