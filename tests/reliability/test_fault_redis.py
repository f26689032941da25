"""Redis hangs, then dies mid-storm under SAQ workers, and comes back empty.

First it is paused (SIGSTOP: connections are accepted, nothing answers; with redis-py's
defaults an enqueue then waits forever), then killed, then started again empty. Transfers
accepted meanwhile are committed, so they are answered 200 without delay (the enqueue after
the commit waits for Redis at most REDIS_TIMEOUT_SECONDS, then leaves it to the sweep); the
worker process survives and reconnects; every accepted transfer is settled exactly once,
those of the outage by the sweep, within SAQ_SWEEP_AFTER_SECONDS and a sweep period of
Redis's return. Then the ledger is whole (tests/reliability/faults.py).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from dompet.domain.transfers import TransferStatus
from dompet.storage import open_store
from tests.reliability.faults import fault_env, running, storm, verify_afterwards, wait_for
from tests.reliability.live import ApiServer, Op, Process
from tests.support.servers import RedisServer, ServerUnavailable, require_or_skip

OUTAGE = 4.0
HUNG = 2.0
SWEEP_EVERY = 1.0
SWEEP_AFTER = 2.0
SLOWEST = 2.0
"""Seconds any answer may take: Redis is not the database, so at most REDIS_TIMEOUT (0.5 s)
more than usual, with room for a busy two-core machine."""


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
async def test_redis_dies_and_comes_back_empty(postgres_db_url: str, tmp_path: Path) -> None:
    from dompet.storage import migrate

    await migrate(postgres_db_url)
    try:
        redis = await asyncio.to_thread(RedisServer.start, tmp_path)
    except ServerUnavailable as exc:
        require_or_skip(exc)
    env = fault_env(
        postgres_db_url,
        REDIS_URL=redis.url,
        DOMPET_WORKER="0",
        SAQ_SWEEP_SECONDS=str(SWEEP_EVERY),
        SAQ_SWEEP_AFTER_SECONDS=str(SWEEP_AFTER),
    )
    api = ApiServer(env, tmp_path / "api.log")
    worker = Process(
        ["worker", "--queue", "saq", "--concurrency", "4"], env, tmp_path / "worker.log"
    )
    try:
        await api.start_and_wait()
        worker.start()
        with running(api, worker):
            async with storm(api, "redis-gone") as (run, users, ops):
                run.timeline.began = time.monotonic()
                gone_at = datetime.now(UTC)
                redis.pause()
                await asyncio.sleep(HUNG)
                redis.crash()
                await asyncio.sleep(OUTAGE - HUNG)
                await asyncio.to_thread(redis.start_again)  # empty: no queue, no jobs
                back_at = datetime.now(UTC)
                run.timeline.ended = time.monotonic()
                await asyncio.sleep(SWEEP_AFTER + SWEEP_EVERY)
            print(run.summary("redis SIGSTOP then SIGKILL, back empty"))
            run.check_answers(SLOWEST)
            during = run.statuses(run.during())
            assert set(during) <= {200, 400}, f"Redis is not the database: {during}"
            assert during[200] > 0
            assert worker.alive, worker.log_tail()
            print(await verify_afterwards(run, api, postgres_db_url, users, ops))

            # Every transfer of the outage was settled by the sweep, soon after Redis's return.
            outage_transfers = await _settled(postgres_db_url, ops, gone_at, back_at)
            assert outage_transfers, "no transfer was accepted while Redis was gone"
            latest = max(settled for _, settled in outage_transfers)
            lag = (latest - back_at).total_seconds()
            print(f"redis: {len(outage_transfers)} transfers of the outage, the last settled")
            print(f"redis: {lag:.2f} s after Redis came back")
            # the sweep's wait and period, and the time to settle that backlog
            assert lag <= SWEEP_AFTER + 2 * SWEEP_EVERY + 3.0

            # The worker and the API reconnected: a new transfer is delivered through the queue,
            # sooner than any sweep would take it.
            await _settles_through_the_queue(api, users[0].token, users[1].user_id, postgres_db_url)
    finally:
        redis.stop()


async def _settled(
    database_url: str, ops: list[Op], since: datetime, until: datetime
) -> list[tuple[datetime, datetime]]:
    """(created, settled) of the accepted transfers created between ``since`` and ``until``."""
    store = await open_store(database_url)
    try:
        found = []
        for op in ops:
            if op.kind != "transfer" or not op.accepted:
                continue
            transfer = await store.get_transfer(op.result["transfer_id"])
            assert transfer is not None
            assert transfer.status is TransferStatus.SUCCESS, transfer
            assert transfer.settled_at is not None
            if since <= transfer.created_at <= until:
                found.append((transfer.created_at, transfer.settled_at))
        return found
    finally:
        await store.close()


async def _settles_through_the_queue(
    api: ApiServer, token: str, target: str, database_url: str
) -> None:
    async with httpx.AsyncClient(
        base_url=api.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as http:
        sent = await http.post("/transfer", json={"target_user": target, "amount": 1})
    assert sent.status_code == 200, sent.text
    transfer_id = sent.json()["result"]["transfer_id"]
    store = await open_store(database_url)
    try:

        async def settled() -> bool:
            transfer = await store.get_transfer(transfer_id)
            return transfer is not None and transfer.status is TransferStatus.SUCCESS

        took = await wait_for(settled, SWEEP_AFTER, "a transfer after Redis's return to settle")
        assert took < SWEEP_AFTER, timedelta(seconds=took)
    finally:
        await store.close()
