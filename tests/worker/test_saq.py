"""SAQ dispatch on a real Redis (started by the tests) and a real database.

The API enqueues after commit (deduplicated by job key), `dompet worker --queue saq` processes
settle every transfer exactly once, the sweep re-enqueues transfers whose enqueue was lost,
and retries back off until the transfer is FAILED and the sender refunded.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest

from dompet.config import Settings
from dompet.container import Container
from dompet.domain.invariants import check
from dompet.domain.ledger import wallet_account
from dompet.domain.transfers import TransferStatus
from dompet.services.ports import utc_now
from dompet.storage import migrate
from dompet.storage.port import LedgerStore
from dompet.worker.saq import SaqDispatcher, SaqSettlement, job_key, settlement_queue
from tests.api.wallet_client import register
from tests.conftest import AsyncClientContext, fast_settings
from tests.support.servers import RedisServer
from tests.worker.helpers import (
    AMOUNT,
    WorkerProcess,
    assert_settled_exactly_once,
    make_burst,
    pending_count,
    settlement_counts,
    start_worker,
    success_count,
    wait_for,
)

pytestmark = [pytest.mark.redis]


@pytest.fixture
def queue_name() -> str:
    return f"dompet-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def saq_settings(database_url: str, redis_server: RedisServer, queue_name: str) -> Settings:
    return fast_settings(
        database_url,
        redis_url=redis_server.url,
        saq_queue_name=queue_name,
        saq_sweep_after_seconds=0.5,
        settle_max_attempts=3,
    )


@pytest.fixture
async def container(saq_settings: Settings) -> AsyncIterator[Container]:
    built = await Container.build(saq_settings)
    try:
        yield built
    finally:
        await built.aclose()


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        if worker.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                worker.kill()


async def test_the_api_enqueues_once_per_transfer_and_attempt(container: Container) -> None:
    assert container.worker is None  # with Redis, settlement belongs to the SAQ workers
    dispatcher = container.dispatcher
    assert isinstance(dispatcher, SaqDispatcher)
    store = container.store
    burst = await make_burst(store, 3, senders=1, targets=1)
    for transfer in burst.transfers:
        await dispatcher.transfer_accepted(transfer)
        await dispatcher.transfer_accepted(transfer)  # a repeated delivery: same job key
    assert await dispatcher.queue_depth() == {"queued": 3, "active": 0, "incomplete": 3}
    job = await dispatcher.queue.job(job_key(burst.transfers[0].id, 0))
    assert job is not None
    assert job.kwargs == {"transfer_id": burst.transfers[0].id}
    await dispatcher.transfer_retried(burst.transfers[0].id, 1)  # a new attempt: a new job
    assert (await dispatcher.queue_depth())["queued"] == 4


async def test_sweep_re_enqueues_overdue_transfers_once_per_round(container: Container) -> None:
    store = container.store
    burst = await make_burst(store, 4, senders=1, targets=2)
    queue = settlement_queue(container.settings.redis_url or "", container.settings.saq_queue_name)
    await queue.connect()
    try:
        sweeper = SaqSettlement(store, container.settlement, utc_now, queue)
        assert await sweeper.sweep() == 0  # not overdue yet (SAQ_SWEEP_AFTER 30 s here)
        eager = SaqSettlement(store, container.settlement, utc_now, queue, sweep_after=timedelta())
        assert await eager.sweep() == 4
        assert await eager.sweep() == 0  # same round: the jobs are already queued
        for transfer in burst.transfers:
            result = await eager.settle(transfer.id)
            assert result.outcome == "settled"
            assert (await eager.settle(transfer.id)).outcome == "already_final"
        assert await eager.sweep() == 0
        assert check(await store.snapshot()).ok
    finally:
        await queue.disconnect()


async def test_retries_back_off_then_fail_and_refund(container: Container) -> None:
    store: LedgerStore = container.store
    burst = await make_burst(store, 1, senders=1, targets=1)
    (transfer,) = burst.transfers
    (target_id,) = burst.expected_credit
    await store.set_account_blocked(wallet_account(target_id), True)
    dispatcher = container.dispatcher
    assert isinstance(dispatcher, SaqDispatcher)
    runner = SaqSettlement(store, container.settlement, utc_now, dispatcher.queue)
    first = await runner.settle(transfer.id)
    assert first.outcome == "retry_later"
    assert "blocked" in first.error
    # The retry is a scheduled job keyed by the attempt it will be.
    retry_job = await dispatcher.queue.job(job_key(transfer.id, 1))
    assert retry_job is not None
    after_first = await store.get_transfer(transfer.id)
    assert after_first is not None
    assert after_first.next_attempt_at is not None
    assert retry_job.scheduled == int(after_first.next_attempt_at.timestamp())
    assert (await runner.settle(transfer.id)).outcome == "retry_later"
    last = await runner.settle(transfer.id)  # SETTLE_MAX_ATTEMPTS=3: give up
    assert last.outcome == "refunded"
    failed = await store.get_transfer(transfer.id)
    assert failed is not None
    assert failed.status is TransferStatus.FAILED
    assert failed.attempts == 3
    sender_id = burst.transfers[0].sender_id
    assert await store.balance(wallet_account(sender_id)) == AMOUNT  # refunded in full
    history = await store.entries(wallet_account(sender_id))
    assert [e.kind for e in history][:1] == ["transfer_refund"]
    assert await store.balance(wallet_account(target_id)) == 0
    report = check(await store.snapshot())
    assert report.ok, report.violations
    assert report.transit_balance == 0
    assert runner.counters.as_tuple() == (0, 1, 3)  # settled, refunded, failed attempts


@pytest.mark.concurrency
async def test_saq_worker_processes_settle_api_transfers_and_swept_ones_exactly_once(
    saq_settings: Settings,
    redis_server: RedisServer,
    queue_name: str,
    tmp_path: Path,
    workers: list[WorkerProcess],
) -> None:
    settings = saq_settings.model_copy(update={"saq_sweep_after_seconds": 1.0})
    async with AsyncClientContext(settings) as http:
        container = await Container.build(settings)  # a second "API process" for the store
        try:
            store = container.store
            sender = await register(http, "Sender")
            target = await register(http, "Target")
            assert (await sender.topup(30 * AMOUNT)).status_code == 200
            sent = []
            for _ in range(30):
                response = await sender.transfer(target.user_id, AMOUNT, "Burst")
                assert response.status_code == 200, response.text
                sent.append(response.json()["result"]["transfer_id"])
            assert isinstance(container.dispatcher, SaqDispatcher)
            assert (await container.dispatcher.queue_depth())["incomplete"] == 30
            lost = await make_burst(store, 10)  # committed, never enqueued: the sweep's job

            env = {
                "REDIS_URL": redis_server.url,
                "SAQ_QUEUE_NAME": queue_name,
                "SAQ_SWEEP_AFTER_SECONDS": "1",
                "SAQ_SWEEP_SECONDS": "0.2",
            }
            for _ in range(2):
                workers.append(
                    start_worker(
                        settings.database_url,
                        tmp_path,
                        "--queue",
                        "saq",
                        "--concurrency",
                        "4",
                        **env,
                    )
                )

            async def drained() -> bool:
                for worker in workers:
                    assert worker.proc.poll() is None, worker.log()
                return await pending_count(store) == 0

            await wait_for(drained, "every transfer settled through SAQ")
            await assert_settled_exactly_once(store, settings.database_url, lost)
            credits = await settlement_counts(settings.database_url)
            assert [credits[t] for t in sent] == [1] * 30
            assert await store.balance(wallet_account(target.user_id)) == 30 * AMOUNT
            for worker in workers:
                await wait_for(partial(worker.running, store), "the worker's heartbeat")
            for worker in workers:
                assert worker.terminate() == 0, worker.log()
            beats = [b for b in await store.heartbeats() if b.kind == "saq"]
            assert len(beats) == 2
            assert all(b.info["state"] == "stopped" for b in beats)
            assert sum(b.settled for b in beats) == 40
        finally:
            await container.aclose()


@pytest.mark.postgres
@pytest.mark.concurrency
async def test_a_saq_worker_killed_mid_burst_loses_nothing_and_credits_nothing_twice(
    postgres_db_url: str,
    redis_server: RedisServer,
    queue_name: str,
    tmp_path: Path,
    workers: list[WorkerProcess],
) -> None:
    await migrate(postgres_db_url)
    settings = fast_settings(postgres_db_url, redis_url=redis_server.url, saq_queue_name=queue_name)
    container = await Container.build(settings)
    try:
        store = container.store
        dispatcher = container.dispatcher
        assert isinstance(dispatcher, SaqDispatcher)
        burst = await make_burst(store, 200)
        for transfer in burst.transfers:
            await dispatcher.transfer_accepted(transfer)
        env = {
            "REDIS_URL": redis_server.url,
            "SAQ_QUEUE_NAME": queue_name,
            "SAQ_SWEEP_AFTER_SECONDS": "1",
            "SAQ_SWEEP_SECONDS": "0.2",
        }
        victim = start_worker(
            postgres_db_url, tmp_path, "--queue", "saq", "--concurrency", "4", **env
        )
        workers.append(victim)

        async def victim_started() -> bool:
            assert victim.proc.poll() is None, victim.log()
            return await success_count(store) > 0

        await wait_for(victim_started, "the victim's first settlement")
        victim.kill()
        # Jobs it was running stay "active" in Redis: only the sweep can bring them back.
        assert await dispatcher.queue.count("active") > 0
        workers.append(start_worker(postgres_db_url, tmp_path, "--queue", "saq", **env))

        async def drained() -> bool:
            return await pending_count(store) == 0

        await wait_for(drained, "every transfer settled after the kill")
        await assert_settled_exactly_once(store, postgres_db_url, burst)
    finally:
        await container.aclose()
