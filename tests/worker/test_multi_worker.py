"""Several `dompet worker` OS processes drain one burst of transfers from a shared PostgreSQL.

Claims (FOR UPDATE SKIP LOCKED + a lease) never hand a transfer to two workers at once, and
settlement is idempotent anyway: every transfer is credited exactly once, even when a worker
is SIGKILLed holding claims (the lease runs out and the others take its work), and a worker
stopped with SIGTERM finishes its settlement in flight and releases the rest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from dompet.storage import migrate, open_store
from tests.worker.helpers import (
    WorkerProcess,
    assert_settled_exactly_once,
    claimed_by,
    make_burst,
    pending_count,
    start_worker,
    success_count,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.concurrency]

BURST = 300
HELPERS = 3


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:  # never leave a process behind, whatever happened
        if worker.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                worker.kill()


async def test_workers_settle_a_burst_exactly_once_despite_sigkill(
    postgres_db_url: str, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    await migrate(postgres_db_url)
    store = await open_store(postgres_db_url)
    try:
        burst = await make_burst(store, BURST)
        assert await pending_count(store) == BURST

        # The victim claims the whole burst in one batch, starts settling, and is killed.
        victim = start_worker(postgres_db_url, tmp_path, WORKER_BATCH=str(BURST))
        workers.append(victim)

        async def victim_started() -> bool:
            assert victim.proc.poll() is None, victim.log()
            return await success_count(store) > 0

        await wait_for(victim_started, "the victim's first settlement")
        victim.kill()
        held = await claimed_by(postgres_db_url, victim.worker_id)
        assert held > 0, "the victim died holding no claim: nothing was recovered"
        assert await pending_count(store) >= held

        # N more processes (two loops each) take over once the victim's lease runs out.
        for _ in range(HELPERS):
            workers.append(start_worker(postgres_db_url, tmp_path, "--concurrency", "2"))

        async def drained() -> bool:
            return await pending_count(store) == 0

        await wait_for(drained, "every transfer settled")
        await assert_settled_exactly_once(store, postgres_db_url, burst)

        for worker in workers[1:]:
            await wait_for(partial(worker.running, store), "the worker's heartbeat")
            assert worker.terminate() == 0, worker.log()
        beats = {b.worker_id: b for b in await store.heartbeats()}
        assert victim.worker_id in beats  # its last heartbeat stays, and goes stale
        assert beats[victim.worker_id].info["state"] == "running"
        helper_beats = [b for b in beats.values() if b.kind == "standalone"]
        assert len(helper_beats) == 1 + HELPERS * 2
        stopped = [b for b in helper_beats if b.info["state"] == "stopped"]
        assert len(stopped) == HELPERS * 2
        assert sum(b.settled for b in helper_beats) >= held
    finally:
        await store.close()


async def test_sigterm_finishes_in_flight_and_releases_claims(
    postgres_db_url: str, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    await migrate(postgres_db_url)
    store = await open_store(postgres_db_url)
    try:
        burst = await make_burst(store, 200)
        # A long lease: only release_claims can hand its batch back quickly.
        leaving = start_worker(
            postgres_db_url, tmp_path, WORKER_BATCH="200", WORKER_LEASE_SECONDS="3600"
        )
        workers.append(leaving)

        async def leaving_started() -> bool:
            assert leaving.proc.poll() is None, leaving.log()
            return await success_count(store) > 0

        await wait_for(leaving_started, "the first settlement")
        assert leaving.terminate() == 0, leaving.log()
        assert await claimed_by(postgres_db_url, leaving.worker_id) == 0

        workers.append(start_worker(postgres_db_url, tmp_path))

        async def drained() -> bool:
            return await pending_count(store) == 0

        await wait_for(drained, "the rest settled by the next worker")
        await assert_settled_exactly_once(store, postgres_db_url, burst)
        (beat,) = [b for b in await store.heartbeats() if b.worker_id == leaving.worker_id]
        assert beat.info["state"] == "stopped"
    finally:
        await store.close()
