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
import os
import sqlite3
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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


class DurabilityLost(RuntimeError):
    """An fsync of the WAL failed: the file's state is unknown, so no write is made any more
    (until the process restarts; see :class:`WalFlusher`)."""


_Turn = asyncio.Future[None] | _Job
"""A waiting turn: a caller's transaction (the future that hands it the turn) or a job."""

_Answer = tuple[asyncio.Future[Any], Any, BaseException | None]
"""What a batch owes one caller once its COMMIT is done: the future, a value or an error."""


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
        self._batch: list[_Answer] = []
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
            _answer(batch)
        else:
            self._wal.answer_when_durable(batch)

    async def _rollback(
        self, exc: BaseException | None, batch: list[_Answer] | None = None
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


def _answer(batch: list[_Answer]) -> None:
    for answer, value, error in batch:
        if answer.done():
            continue
        if error is None:
            answer.set_result(value)
        else:
            answer.set_exception(error)


CHECKPOINT_EVERY = 0.25
"""Seconds between the flusher's WAL checkpoints while writes go on."""


class WalFlusher:
    """Durability for the shared writer without an fsync inside each COMMIT.

    With ``synchronous=FULL`` SQLite fsyncs the WAL inside every COMMIT, and the writer
    waits: nothing else can be written meanwhile. Instead the writer's connection commits
    with ``synchronous=NORMAL`` (no fsync) and this flusher fsyncs the WAL file on its own
    thread, after the COMMIT, while the writer goes on with the next batch; a batch's
    callers are answered only once an fsync that began after its COMMIT has returned. One
    fsync is in flight at a time; batches committed meanwhile share the next one.

    What a power loss keeps is what ``FULL`` keeps: every answered write (the WAL is
    append-only, so what survives is a prefix of the commits, each complete). The one
    difference: another connection may read a write up to one fsync before it is durable.
    An fsync that fails leaves the file's state unknown: every later write is refused.
    """

    def __init__(self, wal_path: str) -> None:
        self.wal_path = wal_path
        self.broken: Exception | None = None
        self.flushes = 0
        """How many fsyncs of the WAL were made (for tests and the benchmark)."""
        self._dir_synced_inode: int | None = None
        self._waiting: list[_Answer] = []
        self._in_flight: asyncio.Future[None] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="dompet-wal-fsync")
        self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="dompet-wal-checkpoint")
        self._checkpointing: asyncio.Future[None] | None = None
        self._last_checkpoint = 0.0
        self._checkpoint_db: sqlite3.Connection | None = None
        self.checkpoints = 0

    @classmethod
    def take_over(cls, raw: sqlite3.Connection) -> WalFlusher | None:
        """Take over the fsyncs of ``raw`` if it commits with ``synchronous=FULL`` to a WAL
        file; None (SQLite keeps doing them) for any other setting or an in-memory database."""
        synchronous = raw.execute("PRAGMA synchronous").fetchone()[0]
        mode = str(raw.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        main = [row[2] for row in raw.execute("PRAGMA database_list") if row[1] == "main"]
        if synchronous != 2 or mode != "wal" or not main or not main[0]:
            return None
        cls.configure(raw)
        return cls(main[0] + "-wal")

    @staticmethod
    def configure(raw: sqlite3.Connection) -> None:
        """COMMIT without an fsync, and without a checkpoint (the flusher runs those)."""
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.execute("PRAGMA wal_autocheckpoint=0")

    def answer_when_durable(self, batch: list[_Answer]) -> None:
        """Answer ``batch`` (just committed) once an fsync that starts now has returned."""
        self._waiting.extend(batch)
        if self._in_flight is None:
            self._start()

    def _start(self) -> None:
        batch, self._waiting = self._waiting, []
        loop = asyncio.get_running_loop()
        flush = asyncio.wrap_future(self._thread.submit(self._fsync), loop=loop)
        self._in_flight = flush
        flush.add_done_callback(lambda done: self._done(done, batch))

    def _done(self, flush: asyncio.Future[None], batch: list[_Answer]) -> None:
        self._in_flight = None
        error = flush.exception() if not flush.cancelled() else RuntimeError("fsync cancelled")
        if error is not None:
            self.broken = self.broken or DurabilityLost(f"fsync of the SQLite WAL failed: {error}")
            failed = batch + self._waiting
            self._waiting = []
            _answer([(answer, None, self.broken) for answer, _, _ in failed])
            return
        self.flushes += 1
        _answer(batch)
        if self._waiting:
            self._start()
        self._maybe_checkpoint()

    def _maybe_checkpoint(self) -> None:
        """Copy the WAL into the database now and then (SQLite would, every 1000 pages, inside
        a COMMIT), on a thread of its own, so that the WAL does not grow without end."""
        loop = asyncio.get_running_loop()
        if (
            self._checkpointing is not None
            or loop.time() - self._last_checkpoint < CHECKPOINT_EVERY
        ):
            return
        self._last_checkpoint = loop.time()
        job = asyncio.wrap_future(self._checkpointer.submit(self._checkpoint), loop=loop)
        self._checkpointing = job
        job.add_done_callback(self._checkpointed)

    def _checkpointed(self, job: asyncio.Future[None]) -> None:
        self._checkpointing = None
        if not job.cancelled() and job.exception() is None:
            self.checkpoints += 1
        # A failed checkpoint (a busy database) is retried at the next period.

    def _checkpoint(self) -> None:
        """On the checkpoint thread: a PASSIVE checkpoint (it waits for no reader or writer)."""
        if self._checkpoint_db is None:
            self._checkpoint_db = sqlite3.connect(
                self.wal_path.removesuffix("-wal"), isolation_level=None
            )
            self._checkpoint_db.execute("PRAGMA busy_timeout=1000")
        self._checkpoint_db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _close_checkpoint_db(self) -> None:
        if self._checkpoint_db is not None:
            self._checkpoint_db.close()
            self._checkpoint_db = None

    def _fsync(self) -> None:
        """On the flusher's thread: fsync the WAL file (and, once per WAL file, its folder,
        so that a new WAL file's name is durable too)."""
        fd = os.open(self.wal_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fdatasync(fd)  # as SQLite syncs its WAL on Linux: the data and the size
            inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        if inode != self._dir_synced_inode:
            folder = os.open(os.path.dirname(self.wal_path) or ".", os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
            self._dir_synced_inode = inode

    async def close(self) -> None:
        """Wait for the answers still owed, then stop the thread."""
        while self._in_flight is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._in_flight)
            await asyncio.sleep(0)
        if self._checkpointing is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._checkpointing)
        self._thread.shutdown(wait=True)
        self._checkpointer.submit(self._close_checkpoint_db)
        self._checkpointer.shutdown(wait=True)


async def _sqlite3_of(conn: AsyncConnection) -> sqlite3.Connection:
    """The sqlite3 connection under the shared writer: savepoints are issued on it directly
    (on this thread, microseconds) rather than through SQLAlchemy's nested transactions."""
    fairy = await conn.get_raw_connection()
    raw: sqlite3.Connection = fairy.driver_connection._conn  # type: ignore[union-attr]
    return raw


def _ignore_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
