"""SQLite's group-commit writer when the disk fills up under a batch.

A write that finds the disk full (SQLITE_FULL) while SQLite spills its page cache makes SQLite
roll back the whole transaction, not just the statement: the earlier jobs of the shared batch
are gone with it. The writer must see that and fail every caller of the batch; answering them
after the COMMIT would acknowledge writes that are not in the file.

The database lives on a small tmpfs the test mounts (root only; skipped otherwise, a failure
in CI).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from dompet.storage.faults import DISK_FULL, unavailable
from dompet.storage.sql.access.group_commit import GroupCommitWriter
from dompet.storage.sql.engine import create_engines
from tests.support.tmpfs import fill, tmpfs

BIG = 3 << 20
"""One row larger than SQLite's page cache (2 MB by default): writing it spills the cache."""


def insert(name: str, size: int = 10) -> Callable[[sqlite3.Connection], None]:
    def work(raw: sqlite3.Connection) -> None:
        raw.execute("INSERT INTO t (name, data) VALUES (?, zeroblob(?))", (name, size))

    return work


def names(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT name FROM t ORDER BY id")]


@pytest.mark.parametrize("savepoint", [False, True], ids=["bare-jobs", "savepoint-jobs"])
async def test_a_full_disk_that_rolls_back_the_batch_fails_every_caller_of_it(
    tmp_path: Path, savepoint: bool
) -> None:
    with tmpfs(tmp_path / "disk", "8m") as disk:
        path = disk / "full.db"
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, data BLOB)")
        engine, _ = create_engines(f"sqlite:///{path}")
        writer = GroupCommitWriter(engine)
        try:
            await writer.run(insert("before"), savepoint=savepoint)
            await asyncio.to_thread(fill, disk / "filler")
            # One batch: a small write, the write that fills the disk (its first statement:
            # it changes nothing before it fails), another small write.
            results = await asyncio.gather(
                writer.run(insert("a"), savepoint=savepoint),
                writer.run(insert("huge", BIG), savepoint=savepoint),
                writer.run(insert("b"), savepoint=savepoint),
                return_exceptions=True,
            )
            in_file = names(path)
            for name, result in zip(("a", "huge", "b"), results, strict=True):
                if result is None:  # answered as written: it must be in the file
                    assert name in in_file, (name, results, in_file)
                else:
                    assert name not in in_file, (name, results, in_file)
                    fault = unavailable(result)
                    assert fault is not None, repr(result)
                    assert str(fault) == DISK_FULL, repr(result)
            assert isinstance(results[1], Exception), results
            assert results[0] is not None, "the batch's first write was answered, then lost"

            (disk / "filler").unlink()
            await writer.run(insert("after"), savepoint=savepoint)
            assert names(path)[-1] == "after"  # the writer recovers by itself
        finally:
            await writer.close()
            await engine.dispose()
