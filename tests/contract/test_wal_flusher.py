"""SQLite durability through the group writer's WAL flusher (storage/sql/access/wal_flusher.py).

With ``SQLITE_SYNCHRONOUS=FULL`` (the default) the shared writer commits without an fsync
and :class:`WalFlusher` fsyncs the WAL on its own thread; no caller is answered before an
fsync that began after its COMMIT has returned. A power loss cannot be staged here, so these
tests check the order of events on a real SQLite file (the fsyncs are real; the test only
records when they happen), the settings the takeover depends on, checkpoints, and that a
failed fsync refuses every later write.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dompet.domain.ids import new_id
from dompet.domain.ledger import payment_journal, topup_journal, wallet_account
from dompet.storage import faults, migrate, open_store
from dompet.storage.sql.access import wal_flusher
from dompet.storage.sql.access.group_commit import GroupCommitWriter
from dompet.storage.sql.access.sqlite import SqliteAccess
from dompet.storage.sql.access.wal_flusher import DurabilityLost, WalFlusher
from dompet.storage.sql.engine import SqlSettings
from dompet.storage.sql.store import SqlStore
from tests.contract.helpers import new_user


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    url = f"sqlite:///{tmp_path / 'wal.db'}"
    await migrate(url)
    opened = await open_store(url)
    assert isinstance(opened, SqlStore)
    try:
        yield opened
    finally:
        await opened.close()


def writer_of(store: SqlStore) -> GroupCommitWriter:
    assert isinstance(store.access, SqliteAccess)
    return store.access.group


async def test_the_writer_commits_without_fsync_and_the_flusher_takes_over(
    store: SqlStore,
) -> None:
    user = await new_user(store)
    writer = writer_of(store)
    assert writer._wal is not None
    assert writer._wal.wal_path.endswith("wal.db-wal")
    raw = writer._raw
    if raw is None:  # the transaction ended: the connection is kept by the pool
        await writer.run(lambda c: None)
        raw = writer._raw
    assert raw is not None
    assert raw.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    flushes = writer._wal.flushes
    await store.post_journal(topup_journal(new_id(), user.id, 100, _now()))
    assert writer._wal.flushes > flushes


async def test_no_answer_before_an_fsync_that_began_after_its_commit(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = [await new_user(store) for _ in range(8)]
    flusher = writer_of(store)._wal
    assert flusher is not None
    fsyncs: list[tuple[float, float]] = []  # (began, returned)
    committed: list[tuple[float, list[asyncio.Future[Any]]]] = []
    answered: dict[int, float] = {}
    real_fsync, real_answer = flusher._fsync, flusher.answer_when_durable

    def fsync() -> None:
        began = time.monotonic()
        real_fsync()  # the real fsync of the real WAL file
        fsyncs.append((began, time.monotonic()))

    def answer_when_durable(batch: list[Any]) -> None:  # called right after each COMMIT
        futures = [answer for answer, _, _ in batch]
        committed.append((time.monotonic(), futures))
        for future in futures:
            future.add_done_callback(lambda f: answered.setdefault(id(f), time.monotonic()))
        real_answer(batch)

    monkeypatch.setattr(flusher, "_fsync", fsync)
    monkeypatch.setattr(flusher, "answer_when_durable", answer_when_durable)

    async def pay(user_id: str) -> None:
        await store.post_journal(topup_journal(new_id(), user_id, 10, _now()))
        await store.post_journal(payment_journal(new_id(), user_id, 5, "x", _now()))

    await asyncio.gather(*(pay(u.id) for u in users for _ in range(5)))

    assert sum(len(futures) for _, futures in committed) == 80
    assert len(fsyncs) >= 1
    for commit_time, futures in committed:
        for future in futures:
            at = answered[id(future)]
            # Some fsync began after this COMMIT and returned before this answer.
            assert any(commit_time <= began and returned <= at for began, returned in fsyncs)
    for user in users:
        assert await store.balance(wallet_account(user.id)) == 25


async def test_other_settings_leave_the_fsyncs_to_sqlite(tmp_path: Path) -> None:
    for setting, expected in (("EXTRA", 3), ("NORMAL", 1)):
        url = f"sqlite:///{tmp_path / f'{setting}.db'}"
        await migrate(url)
        other = await open_store(url, sql_settings=SqlSettings(sqlite_synchronous=setting))
        try:
            assert isinstance(other, SqlStore)
            user = await new_user(other)
            await other.post_journal(topup_journal(new_id(), user.id, 100, _now()))
            writer = writer_of(other)
            assert writer._wal is None
            await writer.run(
                lambda c, want=expected: _assert_pragma(c, "synchronous", want)  # type: ignore[misc]
            )
        finally:
            await other.close()


async def test_the_flusher_checkpoints_the_wal(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wal_flusher, "CHECKPOINT_EVERY", 0.0)
    user = await new_user(store)
    flusher = writer_of(store)._wal
    assert flusher is not None
    for _ in range(20):
        await store.post_journal(topup_journal(new_id(), user.id, 1, _now()))
    for _ in range(100):
        if flusher.checkpoints:
            break
        await asyncio.sleep(0.01)
    assert flusher.checkpoints >= 1
    # What the checkpoint copied is in the database file itself, read without the WAL.
    database = flusher.wal_path.removesuffix("-wal")
    with sqlite3.connect(f"file:{database}?mode=ro&immutable=1", uri=True) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM postings WHERE account_id = ?", (wallet_account(user.id),)
        ).fetchone()
    assert count >= 1


async def test_a_failed_fsync_fails_its_callers_and_refuses_later_writes(
    store: SqlStore, tmp_path: Path
) -> None:
    user = await new_user(store)
    flusher = writer_of(store)._wal
    assert flusher is not None
    flusher.wal_path = str(tmp_path / "gone" / "wal.db-wal")  # a real fsync that fails (ENOENT)

    with pytest.raises(RuntimeError, match="fsync of the SQLite WAL failed"):
        await store.post_journal(topup_journal(new_id(), user.id, 100, _now()))
    with pytest.raises(RuntimeError, match="fsync of the SQLite WAL failed"):
        await store.post_journal(topup_journal(new_id(), user.id, 100, _now()))
    assert flusher.broken is not None
    with pytest.raises(DurabilityLost):  # /healthz: 503 until the process restarts
        await store.ping()
    fault = faults.unavailable(flusher.broken)
    assert fault is not None
    assert fault.message == faults.NOT_DURABLE


def test_take_over_declines_an_in_memory_database() -> None:
    raw = sqlite3.connect(":memory:")
    assert WalFlusher.take_over(raw) is None
    raw.close()


def _assert_pragma(raw: sqlite3.Connection, name: str, want: int) -> None:
    assert raw.execute(f"PRAGMA {name}").fetchone()[0] == want


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.mark.parametrize("bounded", [True, False], ids=["bounded", "unbounded"])
async def test_the_wal_stays_within_its_limit_under_steady_writes(
    store: SqlStore, bounded: bool
) -> None:
    """Passive checkpoints alone never let the WAL start over while writes keep coming; the
    writer empties it between two transactions once it reaches its limit. (The unbounded
    case shows the growth the limit stops: it is what the service did before.)"""
    users = [await new_user(store) for _ in range(8)]
    flusher = writer_of(store)._wal
    assert flusher is not None
    limit = 256 << 10
    flusher.limit = limit if bounded else 1 << 40
    wal = Path(flusher.wal_path)
    largest = 0
    stop = asyncio.Event()

    async def pay(user_id: str) -> None:
        while not stop.is_set():
            await store.post_journal(topup_journal(new_id(), user_id, 1, _now()))

    async def read() -> None:  # a reader always about, as under load
        while not stop.is_set():
            await store.balance(wallet_account(users[0].id))
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(pay(u.id)) for u in users] + [asyncio.create_task(read())]
    started = time.monotonic()
    while time.monotonic() - started < 3.0:
        largest = max(largest, _size(wal))
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.gather(*tasks)

    if bounded:
        assert flusher.emptied >= 1
        # the limit, plus what one fsync's worth of batches adds before the writer sees it
        assert largest < 4 * limit, largest
    else:
        assert largest > 4 * limit, f"the WAL started over by itself: {largest} bytes"


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
