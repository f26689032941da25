"""SQLite's group-commit writer running jobs (storage/sql/access/group_commit.py, ``run``).

A job is a plain function of the shared sqlite3 connection, run by the writer's drain task
in its own SAVEPOINT; its caller is answered once, after the COMMIT that holds it. These
tests drive the writer directly, on a real SQLite file, and read the file back through a
separate sqlite3 connection (another process's view).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from dompet.storage.sql.access.group_commit import GroupCommitWriter, PartialWriteError
from dompet.storage.sql.engine import create_engines
from tests.contract.helpers import hold_the_turn


class Boom(Exception):
    pass


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[GroupCommitWriter]:
    path = tmp_path / "jobs.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)")
        db.execute("CREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent(id))")
    engine, _ = create_engines(f"sqlite:///{path}")
    group = GroupCommitWriter(engine)
    try:
        yield group
    finally:
        await group.close()
        await engine.dispose()


def names(writer: GroupCommitWriter) -> list[str]:
    """What a fresh connection (another process) sees: only committed rows."""
    path = writer._engine.url.database
    assert path is not None
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT name FROM t ORDER BY id")]


def insert(name: str, fail: bool = False) -> Callable[[sqlite3.Connection], int]:
    def work(raw: sqlite3.Connection) -> int:
        cursor = raw.execute("INSERT INTO t (name) VALUES (?) RETURNING id", (name,))
        row_id = int(cursor.fetchall()[0][0])
        if fail:
            raise Boom(name)
        return row_id

    return work


async def test_jobs_answer_with_their_results_in_shared_commits(writer: GroupCommitWriter) -> None:
    ids = await asyncio.gather(*(writer.run(insert(f"n{i}")) for i in range(40)))

    assert sorted(ids) == list(range(1, 41))
    assert names(writer) == [f"n{i}" for i in range(40)]  # in the order they were queued
    assert writer.committed == 40
    assert writer.commits < 40  # batched: the point of group commit
    assert writer._conn is None or not writer._conn.in_transaction()  # no idle write lock


async def test_answer_comes_after_the_commit_of_its_own_row(writer: GroupCommitWriter) -> None:
    """When ``run`` returns, another connection already sees the row: it is durable."""

    async def one(name: str) -> bool:
        await writer.run(insert(name))
        return name in names(writer)

    assert all(await asyncio.gather(*(one(f"k{i}") for i in range(25))))


async def test_a_failing_job_is_undone_alone_and_told_after_the_commit(
    writer: GroupCommitWriter,
) -> None:
    async def attempt(name: str, fail: bool) -> str:
        try:
            await writer.run(insert(name, fail))
        except Boom:
            # Told only once its batch (with the others' work) is durable.
            assert "ok0" in names(writer)
            return "failed"
        return "ok"

    plan = [("ok0", False)] + [
        (f"bad{i}", True) if i % 2 else (f"ok{i}", False) for i in range(1, 30)
    ]
    outcomes = await asyncio.gather(*(attempt(n, f) for n, f in plan))

    assert outcomes.count("failed") == 15
    stored = names(writer)
    assert not [n for n in stored if n.startswith("bad")]  # the failing jobs' inserts undone
    assert len(stored) == 15


async def test_a_unique_clash_between_jobs_of_one_batch_fails_only_the_second(
    writer: GroupCommitWriter,
) -> None:
    results = await asyncio.gather(
        *(writer.run(insert("same")) for _ in range(3)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, sqlite3.IntegrityError) for r in results) == 2
    assert names(writer) == ["same"]


async def test_a_caller_cancelled_before_its_job_ran_leaves_no_trace(
    writer: GroupCommitWriter,
) -> None:
    holder, release = await hold_the_turn(writer)
    queued = asyncio.create_task(writer.run(insert("never")))
    kept = asyncio.create_task(writer.run(insert("kept")))
    await asyncio.sleep(0)
    queued.cancel()
    release.set()
    await holder
    await kept
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert names(writer) == ["kept"]


async def test_a_caller_cancelled_after_its_job_ran_still_commits(
    writer: GroupCommitWriter,
) -> None:
    ran = asyncio.Event()

    def work(raw: sqlite3.Connection) -> None:
        raw.execute("INSERT INTO t (name) VALUES ('ran')")
        ran.set()

    task = asyncio.create_task(writer.run(work))
    await ran.wait()  # the job ran; its COMMIT is under way
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await writer.run(insert("after"))
    assert names(writer) == ["ran", "after"]


async def test_jobs_and_transactions_share_one_order_priority_first(
    writer: GroupCommitWriter,
) -> None:
    order: list[str] = []

    def job(name: str) -> Callable[[sqlite3.Connection], None]:
        def work(raw: sqlite3.Connection) -> None:
            order.append(name)

        return work

    async def block(name: str, priority: bool) -> None:
        async with writer.transaction(priority):
            order.append(name)

    holder, release = await hold_the_turn(writer)
    waiting = [
        asyncio.create_task(writer.run(job("job 0"))),
        asyncio.create_task(block("block 1", False)),
        asyncio.create_task(writer.run(job("job 2"))),
    ]
    await asyncio.sleep(0)
    waiting += [
        asyncio.create_task(writer.run(job("settle 0"), priority=True)),
        asyncio.create_task(block("settle 1", True)),
    ]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(holder, *waiting)
    assert order == ["settle 0", "settle 1", "job 0", "block 1", "job 2"]
    assert writer.committed >= 6


async def test_a_failed_commit_fails_every_caller_of_the_batch_and_the_writer_recovers(
    writer: GroupCommitWriter,
) -> None:
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with writer.transaction() as conn:
            holding.set()
            await release.wait()
            await conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")

    def orphan(raw: sqlite3.Connection) -> None:
        # Deferred, so the statement passes and the COMMIT of the batch refuses it.
        raw.execute("INSERT INTO child (p) VALUES (42)")

    holder = asyncio.create_task(hold())
    await holding.wait()
    batch = [
        asyncio.create_task(writer.run(insert("a"))),
        asyncio.create_task(writer.run(orphan)),
        asyncio.create_task(writer.run(insert("b"))),
    ]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(holder, *batch, return_exceptions=True)

    assert all(isinstance(r, Exception) for r in results), results
    assert "FOREIGN KEY" in str(results[1])
    assert names(writer) == []  # nothing of the batch was committed
    assert await writer.run(insert("later")) == 1
    assert names(writer) == ["later"]


async def test_a_job_without_savepoint_that_fails_before_changing_is_alone(
    writer: GroupCommitWriter,
) -> None:
    def refuse(raw: sqlite3.Connection) -> None:
        raw.execute("SELECT count(*) FROM t").fetchall()  # reads, changes nothing
        raise Boom("refused")

    results = await asyncio.gather(
        writer.run(insert("a"), savepoint=False),
        writer.run(refuse, savepoint=False),
        writer.run(insert("b"), savepoint=False),
        return_exceptions=True,
    )
    assert isinstance(results[1], Boom)
    assert names(writer) == ["a", "b"]


async def test_a_job_without_savepoint_that_fails_after_a_change_rolls_back_its_batch(
    writer: GroupCommitWriter,
) -> None:
    results = await asyncio.gather(
        writer.run(insert("a"), savepoint=False),
        writer.run(insert("half", fail=True), savepoint=False),  # inserts, then raises
        writer.run(insert("b"), savepoint=False),
        return_exceptions=True,
    )
    assert isinstance(results[1], Boom)  # its own error
    assert isinstance(results[0], PartialWriteError)  # the batch it broke
    committed = names(writer)
    assert "a" not in committed  # the batch's other work went with it
    assert "half" not in committed  # and so did the half-done job
    # "b" ran in a fresh transaction after the rollback (or went with the batch).
    assert committed == (["b"] if results[2] == 1 else [])
    await writer.run(insert("later"), savepoint=False)
    assert names(writer) == [*committed, "later"]
