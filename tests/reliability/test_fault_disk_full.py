"""The disk under the SQLite database fills up mid-storm, then space is freed.

The database lives on a small tmpfs that the test mounts (root only; skipped otherwise, a
failure in CI) and fills with a file. Writes then get a 503 saying the disk is full (never a
500), reads keep working, nothing is corrupted (``PRAGMA integrity_check``, reconcile), and
once the file is removed writes work again by themselves (tests/reliability/faults.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from dompet.storage import migrate
from dompet.storage.faults import DISK_FULL
from tests.reliability.faults import (
    FaultRun,
    fault_env,
    running,
    storm,
    verify_afterwards,
    wait_for,
)
from tests.reliability.live import ApiServer, User
from tests.support.tmpfs import fill, tmpfs

FULL_FOR = 3.0
SLOWEST = 2.0
RECOVERY = 5.0


@pytest.mark.slow
async def test_the_disk_fills_up_then_space_is_freed(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "32m") as disk:
        url = f"sqlite:///{disk / 'dompet.db'}"
        await migrate(url)
        api = ApiServer(fault_env(url), tmp_path / "api.log")
        await api.start_and_wait()
        with running(api):
            async with storm(api, "disk-full") as (run, users, ops):
                filler = disk / "filler"
                await asyncio.to_thread(fill, filler)
                run.timeline.began = time.monotonic()
                await wait_for(lambda: _refused_for_space(run), 20, "a write refused: disk full")
                reads = asyncio.create_task(_read_while_full(api, users[0], run))
                await asyncio.sleep(FULL_FOR)
                reads.cancel()
                read_answers = await reads
                filler.unlink()
                run.timeline.ended = time.monotonic()
                await wait_for(lambda: run.recovered_after() < RECOVERY, RECOVERY + 5, "recovery")
            print(run.summary("sqlite disk full"))
            run.check_answers(SLOWEST)
            messages = run.unavailable_messages()
            assert messages[DISK_FULL] > 0, messages
            assert run.recovered_after() <= RECOVERY
            read_statuses = Counter(read_answers)
            print(f"sqlite disk full: reads while full {read_statuses}")
            assert read_statuses, "no read was made while the disk was full"
            assert set(read_statuses) == {200}, read_statuses
            print(f"sqlite disk full: 503 messages {dict(messages)}")
            with sqlite3.connect(disk / "dompet.db") as db:
                assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            print(await verify_afterwards(run, api, url, users, ops))


def _refused_for_space(run: FaultRun) -> bool:
    return any(
        a.status == 503 and a.sent >= run.timeline.began and DISK_FULL in str(a.body)
        for a in run.answers
    )


async def _read_while_full(api: ApiServer, user: User, run: FaultRun) -> list[int]:
    """A customer reading their history and a teller the savings balance, meanwhile."""
    statuses: list[int] = []
    try:
        async with httpx.AsyncClient(
            base_url=api.base_url, headers={"Authorization": f"Bearer {user.token}"}, timeout=10
        ) as http:
            while True:
                statuses.append((await http.get("/transactions?limit=20")).status_code)
                rek = run.deposits.no_rekening
                statuses.append((await http.get(f"/saldo/{rek}")).status_code)
                statuses.append((await http.get(f"/mutasi/{rek}")).status_code)
                await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        return statuses
