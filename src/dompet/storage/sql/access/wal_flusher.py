"""Durability for SQLite's group-commit writer without an fsync inside each COMMIT
(:class:`WalFlusher`): the WAL is fsynced on a thread of its own after each COMMIT, its callers
answered once that fsync has returned; a checkpoint thread copies the WAL into the database
and, when the WAL has reached ``WAL_LIMIT_BYTES``, empties it between two of the writer's
transactions. docs/sqlite-group-commit.md has the whole story.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any

Answer = tuple[asyncio.Future[Any], Any, BaseException | None]
"""What a batch owes one caller once its COMMIT is done: the future, a value or an error."""


class DurabilityLost(RuntimeError):
    """An fsync of the WAL failed: the file's state is unknown, so no write is made any more
    (until the process restarts; see :class:`WalFlusher`)."""


def answer_batch(batch: list[Answer]) -> None:
    """Tell each caller of a batch its value or its error (those still waiting)."""
    for future, value, error in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)


CHECKPOINT_EVERY = 0.25
"""Seconds between the flusher's WAL checkpoints while writes go on."""

WAL_LIMIT_BYTES = 8 << 20
"""The WAL's size at which the writer, between two transactions, has it checkpointed and
emptied (TRUNCATE). The passive checkpoints alone never empty it under steady writes: SQLite
starts the WAL over only when a write begins with every frame checkpointed, and a new batch
has always been committed by then. Without this bound it grew by tens of MB a second under
a storm, and on a full disk the checkpoint that would shrink it could not run at all."""

EMPTY_RETRY_SECONDS = 0.25
"""After a checkpoint that could not empty the WAL (a reader still on it, the disk full),
the next try is not before this."""

EMPTY_BUSY_TIMEOUT_MS = 50
"""How long the emptying checkpoint waits for readers still on the WAL (writes wait too)."""


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
        self._waiting: list[Answer] = []
        self._in_flight: asyncio.Future[None] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="dompet-wal-fsync")
        self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="dompet-wal-checkpoint")
        self._checkpointing: asyncio.Future[None] | None = None
        self._last_checkpoint = 0.0
        self._checkpoint_db: sqlite3.Connection | None = None
        self.checkpoints = 0
        self.wal_bytes = 0
        """The WAL file's size at the last fsync."""
        self.limit = WAL_LIMIT_BYTES
        """The size at which the writer has the WAL emptied (``empty_wal``)."""
        self.emptied = 0
        """How many times the WAL was checkpointed and emptied (for tests and the benchmark)."""
        self._empty_after = 0.0
        self._full: str | None = None
        """Why the last emptying failed, if the disk was full: writes are refused meanwhile."""

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

    def answer_when_durable(self, batch: list[Answer]) -> None:
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

    def _done(self, flush: asyncio.Future[None], batch: list[Answer]) -> None:
        self._in_flight = None
        error = flush.exception() if not flush.cancelled() else RuntimeError("fsync cancelled")
        if error is not None:
            self.broken = self.broken or DurabilityLost(f"fsync of the SQLite WAL failed: {error}")
            failed = batch + self._waiting
            self._waiting = []
            answer_batch([(answer, None, self.broken) for answer, _, _ in failed])
            return
        self.flushes += 1
        answer_batch(batch)
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
        self._checkpointer_db().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    async def empty_wal(self) -> None:
        """Checkpoint every frame and empty the WAL file, while the caller (the writer, between
        two transactions) holds the turn: no write comes in between. A reader still on the
        WAL is waited for briefly; if it stays, the WAL stays as it is and writes go on (the
        next try comes ``EMPTY_RETRY_SECONDS`` later). A full disk, on which the database
        cannot grow to take the WAL's pages, refuses the write: the WAL must not take the
        space an operator frees before the checkpoint can use it."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._empty_after:
            if self._full is not None:
                raise sqlite3.OperationalError(self._full)
            return
        try:
            emptied = await asyncio.wrap_future(self._checkpointer.submit(self._empty), loop=loop)
        except sqlite3.Error as exc:
            self._empty_after = loop.time() + EMPTY_RETRY_SECONDS
            if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_FULL:
                self._full = str(exc)
                raise
            return  # e.g. another process's writer held the lock: writes go on
        self._full = None
        if emptied:
            self.wal_bytes = 0
            self.emptied += 1
        else:
            self._empty_after = loop.time() + EMPTY_RETRY_SECONDS

    def _empty(self) -> bool:
        """On the checkpoint thread: a TRUNCATE checkpoint; whether it emptied the WAL."""
        busy, _, _ = self._checkpointer_db().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy

    def _checkpointer_db(self) -> sqlite3.Connection:
        if self._checkpoint_db is None:
            self._checkpoint_db = sqlite3.connect(
                self.wal_path.removesuffix("-wal"), isolation_level=None
            )
            self._checkpoint_db.execute(f"PRAGMA busy_timeout={EMPTY_BUSY_TIMEOUT_MS}")
        return self._checkpoint_db

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
            stat = os.fstat(fd)
            inode, self.wal_bytes = stat.st_ino, stat.st_size
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
