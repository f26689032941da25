"""Power loss on SQLite: an acknowledged write survives the loss of everything not fsynced.

A process crash loses nothing the kernel already holds; a power cut loses every byte that was
written but not yet fsynced. The model used here is the harshest such loss: what survives a
power cut at an instant is each file as of its last completed fsync, nothing more.

How: the API (in this process, over real HTTP, under a storm) runs on a database whose main
file does not change during the storm (the WAL flusher's checkpoints are switched off, so
every write goes to the WAL, which SQLite then only appends to). Each fsync of the WAL
records the file's size *before* it began: those bytes are durable once it returns. Every
few tenths of a second the test takes a "power cut": first the operations answered 200 so
far, then the length of the WAL that is durable. Afterwards, for each cut, it builds the disk
as the power cut would have left it -- the main file and the durable prefix of the WAL, no
``-shm`` -- opens it (SQLite recovers the WAL: complete transactions up to the last commit
frame) and checks that every operation answered 200 before the cut is in it exactly once,
that ``PRAGMA integrity_check`` is ok and that every ledger invariant holds.

What it proves: no write is acknowledged before the fsync covering its commit has returned,
and SQLite's own recovery of such a disk gives back a whole ledger. What it does not: the
checkpoint path (switched off here; SQLite fsyncs the WAL before and the database after each
checkpoint itself), a drive that acknowledges a flush it has not made, writes torn or
reordered inside the lost bytes (the model drops them all; SQLite's WAL checksums are there
for the rest), and PostgreSQL (its crash tests run with fsync on; PostgreSQL's WAL makes the
same promise, tested by its own project). See docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import shutil
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn

from dompet.api.app import create_app
from dompet.domain.invariants import check
from dompet.domain.ledger import JournalKind, wallet_account
from dompet.storage import migrate, open_store
from dompet.storage.sql.access import wal_flusher
from tests.conftest import fast_settings
from tests.reliability.live import Driver, Op, User, make_users, plan, reconcile_exit_code
from tests.support.servers import find_free_port

USERS = 8
CLIENTS = 16
OPERATIONS = 1500
OPENING = 500_000
STORM_SECONDS = 3.0
KIND = {
    "topup": JournalKind.TOPUP,
    "pay": JournalKind.PAYMENT,
    "transfer": JournalKind.TRANSFER_OUT,
}
FIELD = {"topup": "top_up_id", "pay": "payment_id", "transfer": "transfer_id"}


class DurableWal:
    """How much of the WAL file is on disk: the size it had when the last completed fsync
    began (SQLite only appends to it while no checkpoint runs)."""

    def __init__(self) -> None:
        self.length = 0
        self.fsyncs = 0
        self._lock = threading.Lock()

    def hook(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = wal_flusher.WalFlusher._fsync
        durable = self

        def fsync(flusher: wal_flusher.WalFlusher) -> None:
            size = os.stat(flusher.wal_path).st_size  # written before the fsync: made durable
            real(flusher)
            with durable._lock:
                durable.length = max(durable.length, size)
                durable.fsyncs += 1

        monkeypatch.setattr(wal_flusher.WalFlusher, "_fsync", fsync)

        monkeypatch.setattr(wal_flusher, "CHECKPOINT_EVERY", float("inf"))
        monkeypatch.setattr(wal_flusher, "WAL_LIMIT_BYTES", 1 << 62)  # nor is it emptied

    def now(self) -> int:
        with self._lock:
            return self.length


class RecordingDriver(Driver):
    """The storm's clients, noting for each operation answered 200 how much of the WAL was
    durable the moment its answer arrived: a power cut then leaves exactly that much."""

    def __init__(self, base_url: str, users: list[User], durable: DurableWal) -> None:
        super().__init__(base_url, users)
        self.durable = durable
        self.cut_at: dict[str, int] = {}
        """Operation key -> durable WAL length when its 200 arrived."""

    async def send(self, op: Op, *, retry_until_answered: bool) -> None:
        await super().send(op, retry_until_answered=retry_until_answered)
        if op.status == 200:  # no await since the answer arrived: this is that moment
            self.cut_at[op.key] = self.durable.now()


@asynccontextmanager
async def serving(database_url: str) -> AsyncIterator[str]:
    """The real app under uvicorn, in this process, on a free loopback port."""
    settings = fast_settings(database_url, worker_heartbeat_seconds=3600.0)
    port = find_free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the server stopped while starting")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.mark.slow
async def test_every_acknowledged_write_survives_losing_what_was_not_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SQLITE_SYNCHRONOUS", raising=False)  # FULL: the WAL flusher syncs
    db = tmp_path / "dompet.db"
    url = f"sqlite:///{db}"
    await migrate(url)
    async with serving(url) as base_url:
        users = await make_users(base_url, USERS, OPENING)
    # Closed: its last connection checkpointed the WAL into the database file and removed it.
    wal_path = Path(f"{db}-wal")
    assert not wal_path.exists()  # noqa: ASYNC240 - a test's own files, between two runs
    base = db.read_bytes()

    durable = DurableWal()
    durable.hook(monkeypatch)
    ops = plan(random.Random("power"), USERS, OPERATIONS, "power")
    async with serving(url) as base_url:
        driver = RecordingDriver(base_url, users, durable)
        storm = asyncio.create_task(driver.run(ops, CLIENTS, retry_until_answered=True))
        try:
            await asyncio.sleep(STORM_SECONDS)
            driver.stopping = True
            await storm
        finally:
            await driver.aclose()
        # Before the server closes (its last connection would checkpoint and remove the WAL):
        wal, unchanged = _files_now(db, wal_path, base)
    assert driver.unexpected == []
    assert unchanged, "the database file changed during the storm: the model does not hold"
    acknowledged = [op for op in ops if op.status == 200]
    assert len(acknowledged) > 100, len(acknowledged)
    assert durable.fsyncs > 0

    # One disk per durable length seen by an answer; each operation is looked for on the disk
    # of the cut right after its own answer (a longer prefix keeps what a shorter one holds).
    by_cut: dict[int, list[Op]] = {}
    for op in acknowledged:
        by_cut.setdefault(driver.cut_at[op.key], []).append(op)
    lengths = sorted(by_cut)
    for number, length in enumerate(lengths):
        image = tmp_path / f"cut-{number}"
        image.mkdir()
        (image / "dompet.db").write_bytes(base)
        (image / "dompet.db-wal").write_bytes(wal[:length])
        _check_held(image / "dompet.db", length, by_cut[length], users)
        if number % 8 == 0 or number == len(lengths) - 1:
            await _check_whole(image / "dompet.db")
        if number < len(lengths) - 1:
            shutil.rmtree(image)
    code, output = reconcile_exit_code(f"sqlite:///{image / 'dompet.db'}")
    assert code == 0, output
    print(
        f"power loss: {len(acknowledged)} operations acknowledged, each found on the disk a "
        f"power cut at its answer leaves ({len(lengths)} such disks, {durable.fsyncs} fsyncs, "
        f"WAL {len(wal)} bytes); database file {hashlib.sha256(base).hexdigest()[:12]} unchanged"
    )


def _files_now(db: Path, wal_path: Path, base: bytes) -> tuple[bytes, bool]:
    """The WAL's bytes, and whether the database file is still ``base``."""
    return wal_path.read_bytes(), db.read_bytes() == base


def _check_held(path: Path, length: int, ops: list[Op], users: list[User]) -> None:
    """Each of ``ops`` is on the disk ``path`` exactly once (SQLite recovers the WAL prefix as
    it opens it)."""
    with sqlite3.connect(path) as db:
        missing = [
            op
            for op in ops
            if db.execute(
                "SELECT count(*) FROM postings WHERE account_id = ? AND kind = ? AND reference = ?",
                (
                    wallet_account(users[op.user].user_id),
                    KIND[op.kind].value,
                    op.result[FIELD[op.kind]],
                ),
            ).fetchone()
            != (1,)
        ]
    assert missing == [], (
        f"{len(missing)} of {len(ops)} writes acknowledged when {length} bytes of the WAL were "
        f"durable are not on the disk a power cut then leaves: {missing[:2]}"
    )


async def _check_whole(path: Path) -> None:
    """The disk passes SQLite's integrity check and every ledger invariant."""
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)], path
    store = await open_store(f"sqlite:///{path}")
    try:
        report = check(await store.snapshot())
    finally:
        await store.close()
    assert report.ok, (path, report.violations)
