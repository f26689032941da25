"""SQLite's cross-process writer lock (storage/sql/engine.py, ``WriterLock``).

A writer connection flocks ``<db>.writer-lock`` just before BEGIN IMMEDIATE and lets go as
soon as its transaction has ended, so writers of other processes wait in the kernel instead
of in SQLite's sleeping busy handler. Checked from real other processes on real files.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.synchronize
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path
from subprocess import PIPE

import pytest

from dompet.domain.errors import InsufficientFunds
from dompet.domain.ids import new_id
from dompet.domain.invariants import check
from dompet.domain.ledger import deposit_journal, savings_account, wallet_account
from dompet.domain.savings import Customer
from dompet.storage import migrate
from dompet.storage.sql.access.sqlite import SqliteAccess
from dompet.storage.sql.engine import (
    SqlSettings,
    WriterLock,
    _InlineSqliteConnection,
    create_engines,
    writer_lock_path,
)
from dompet.storage.sql.store import SqlStore
from tests.contract.helpers import new_user, pay, top_up

# Exits 0 if it could take the lock at once, 3 if another process holds it.
PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    sys.exit(3)
"""


async def held_by_another_process(lock_file: Path) -> bool:
    """Whether a fresh process fails to take the lock without waiting."""
    probe = await asyncio.create_subprocess_exec(sys.executable, "-c", PROBE, str(lock_file))
    code = await probe.wait()
    assert code in (0, 3), code
    return code == 3


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'dompet.db'}"
    await migrate(url)
    return url


@pytest.fixture
async def sql_store(sqlite_url: str) -> SqlStore:
    return await SqlStore.open(sqlite_url)


def lock_file(url: str) -> Path:
    path = writer_lock_path(url)
    assert path is not None
    return path


def test_lock_file_is_beside_the_database_and_skipped_for_memory_and_uris(
    tmp_path: Path,
) -> None:
    assert writer_lock_path(f"sqlite:///{tmp_path}/a.db") == tmp_path / "a.db.writer-lock"
    assert writer_lock_path("sqlite://") is None
    assert writer_lock_path("sqlite:///:memory:") is None
    assert writer_lock_path(f"sqlite:///file:{tmp_path}/a.db?mode=rwc&uri=true") is None


async def test_held_only_while_a_write_transaction_is_open(
    sql_store: SqlStore, sqlite_url: str
) -> None:
    path = lock_file(sqlite_url)
    try:
        user = await new_user(sql_store)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert not await held_by_another_process(path)
        async with sql_store.access.write():
            assert await held_by_another_process(path)
        assert not await held_by_another_process(path)

        # A caller whose block fails: its savepoint is rolled back, the batch ends, released.
        held_inside: list[bool] = []

        async def failing_write() -> None:
            async with sql_store.access.write():
                held_inside.append(await held_by_another_process(path))
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await failing_write()
        assert held_inside == [True]
        assert not await held_by_another_process(path)

        # Refused by the store's overdraft guard: released as well.
        with pytest.raises(InsufficientFunds):
            await pay(sql_store, user.id, 1)
        assert not await held_by_another_process(path)
        await top_up(sql_store, user.id, 5)
        assert not await held_by_another_process(path)
    finally:
        await sql_store.close()
    assert not await held_by_another_process(path)


async def test_released_on_rollback_and_when_the_connection_closes(sqlite_url: str) -> None:
    path = lock_file(sqlite_url)
    writer, reader = create_engines(sqlite_url)
    try:
        async with writer.connect() as conn:
            await conn.begin()  # BEGIN IMMEDIATE
            assert await held_by_another_process(path)
            await conn.rollback()
            assert not await held_by_another_process(path)

            await conn.begin()
            assert await held_by_another_process(path)
            await conn.invalidate()  # the sqlite3 connection is closed mid-transaction
            assert not await held_by_another_process(path)

        async with writer.connect() as conn:
            await conn.begin()
            assert await held_by_another_process(path)
        # Back to the pool: reset (ROLLBACK) releases it.
        assert not await held_by_another_process(path)
    finally:
        await writer.dispose()
        await reader.dispose()


async def test_a_writer_waits_for_another_process_holding_the_lock(
    sql_store: SqlStore, sqlite_url: str
) -> None:
    """While another process holds the lock, our write waits on its connection's thread (the
    event loop keeps serving reads); once the other process lets go, it goes through -- no
    busy timeout, no 'database is locked'."""
    path = lock_file(sqlite_url)
    holder: asyncio.subprocess.Process | None = None
    try:
        first = await new_user(sql_store)  # opens the shared writer connection
        lock = await writer_lock_of(sql_store)
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _HOLD, str(path), stdin=PIPE, stdout=PIPE
        )
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert await holder.stdout.readline() == b"held\n"
        waiting = lock.contended
        write = asyncio.ensure_future(new_user(sql_store))
        # Until our BEGIN has found the lock taken (a counter bumped on the writer's thread).
        while lock.contended == waiting:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        assert await sql_store.get_user(first.id) == first  # the loop is not blocked
        assert not write.done()
        holder.stdin.close()  # the holder exits, the kernel wakes our writer
        second = await write
        assert await sql_store.get_user(second.id) == second
    finally:
        if holder is not None and holder.returncode is None:
            holder.kill()
            await holder.wait()
        await sql_store.close()


async def writer_lock_of(store: SqlStore) -> WriterLock:
    """The lock object of the store's shared SQLite writer connection (open)."""
    assert isinstance(store.access, SqliteAccess)
    assert store.access.group._conn is not None
    fairy = await store.access.group._conn.get_raw_connection()
    driver = fairy.driver_connection
    assert isinstance(driver, _InlineSqliteConnection)
    assert driver.writer_lock is not None
    return driver.writer_lock


# Takes the lock, says so, and holds it until its stdin is closed; then the write it blocked
# can begin. The store's BEGIN waits in flock on its own thread, not on the event loop.
_HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


# -- two processes writing at once through SqlStore ---------------------------------------------

TASKS, ROUNDS, TOP_UP, PRICE, DEPOSIT = 32, 12, 7, 3, 11
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def _write_many(
    database_url: str,
    user_ids: list[str],
    no_rekening: str,
    start: multiprocessing.synchronize.Barrier,
    results: multiprocessing.Queue[tuple[int, int, list[str]]],
) -> None:
    """Top-ups, payments and deposits from ``TASKS`` concurrent tasks; reports how many
    transactions took the writer lock, how many commits were made, and any errors."""

    async def run() -> tuple[int, int, list[str]]:
        store = await SqlStore.open(database_url)
        errors: list[str] = []

        async def task(user_id: str) -> None:
            for _ in range(ROUNDS):
                try:
                    await top_up(store, user_id, TOP_UP)
                    await pay(store, user_id, PRICE)
                    await store.post_journal(deposit_journal(new_id(), no_rekening, DEPOSIT, NOW))
                except Exception as exc:  # any failure fails the test (reported below)
                    errors.append(repr(exc))

        try:
            # Opens the shared writer connection (so its lock counts every transaction).
            await store.post_journal(deposit_journal(new_id(), no_rekening, DEPOSIT, NOW))
            await asyncio.to_thread(start.wait, 60)
            await asyncio.gather(*(task(u) for u in user_ids))
            lock = await writer_lock_of(store)
            assert not lock.held
            assert isinstance(store.access, SqliteAccess)
            return lock.acquired, store.access.group.commits, errors
        finally:
            await store.close()

    try:
        results.put(asyncio.run(run()))
    except BaseException as exc:  # reported, so the test fails at once instead of waiting
        results.put((0, 0, [repr(exc)]))
        raise


@pytest.mark.concurrency
async def test_two_processes_writing_at_once_keep_the_ledger_whole(
    sql_store: SqlStore, sqlite_url: str
) -> None:
    try:
        users = [await new_user(sql_store) for _ in range(2 * TASKS)]
        account = Customer(
            id=new_id(),
            nama="Nasabah Bersama",
            nik="3171000000009999",
            no_hp="081230009999",
            no_rekening="9900000001",
            created_at=NOW,
        )
        await sql_store.add_customer(account)
    finally:
        await sql_store.close()  # this process writes nothing more while they run
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    results: multiprocessing.Queue[tuple[int, int, list[str]]] = context.Queue()
    workers = [
        context.Process(
            target=_write_many,
            args=(sqlite_url, [u.id for u in half], account.no_rekening, start, results),
        )
        for half in (users[:TASKS], users[TASKS:])
    ]
    for worker in workers:
        worker.start()
    try:
        reports = [await asyncio.to_thread(results.get, True, 120) for _ in workers]
    finally:
        for worker in workers:
            worker.join(30)
    assert [w.exitcode for w in workers] == [0, 0]
    for acquired, commits, errors in reports:
        assert errors == []  # in particular no "database is locked"
        assert acquired >= commits  # every COMMIT came after taking the lock

    store = await SqlStore.open(sqlite_url)
    try:
        for user in users:
            assert await store.balance(wallet_account(user.id)) == ROUNDS * (TOP_UP - PRICE)
        expected = 2 * (TASKS * ROUNDS + 1) * DEPOSIT
        assert await store.balance(savings_account(account.no_rekening)) == expected
        assert check(await store.snapshot()).ok
    finally:
        await store.close()


async def test_the_lock_can_be_turned_off_for_ab_runs(sqlite_url: str) -> None:
    """SQLITE_WRITER_LOCK=off: writers leave other processes to SQLite's busy handler."""
    store = await SqlStore.open(sqlite_url, settings=SqlSettings(sqlite_writer_lock=False))
    try:
        await new_user(store)
        assert isinstance(store.access, SqliteAccess)
        assert store.access.group._conn is not None
        fairy = await store.access.group._conn.get_raw_connection()
        driver = fairy.driver_connection
        assert isinstance(driver, _InlineSqliteConnection)
        assert driver.writer_lock is None
        async with store.access.write():
            assert not await held_by_another_process(lock_file(sqlite_url))
    finally:
        await store.close()
