"""Scale-out dispatch on SAQ (Redis): the API enqueues, `dompet worker --queue saq` settles.

The outbox (PENDING transfer rows) stays the queue of record; Redis only carries deliveries:

* after its commit the API enqueues ``settle_transfer`` with job key ``<transfer_id>:<attempt>``,
  so enqueueing the same settlement twice is one job;
* a failed attempt (SettlementService + RetryPolicy) is re-enqueued as ``<id>:<attempts>``,
  scheduled at the back-off's ``next_attempt_at``; after the last attempt the transfer is FAILED
  and refunded by a reversing journal;
* every worker sweeps: PENDING transfers due more than SAQ_SWEEP_AFTER_SECONDS ago (a lost
  enqueue, Redis flushed, a killed worker) are enqueued again, keyed by attempt and sweep round;
* settlement is idempotent (``close_transfer`` only flips PENDING), so a repeated delivery
  never credits twice.

Nothing here connects at import time: the queue is made in the composition root.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from saq import Job, Queue, Worker

from dompet.domain.errors import StoreUnavailable
from dompet.domain.transfers import Transfer
from dompet.services.idempotency_purge import PeriodicPurge
from dompet.services.ports import Clock
from dompet.services.settlement import Outcome, SettlementResult, SettlementService
from dompet.storage.port import LedgerStore
from dompet.worker.heartbeat import Heartbeat, SettlementCounters

log = logging.getLogger(__name__)

SETTLE = "settle_transfer"
JOB_TIMEOUT_SECONDS = 60
JOB_TTL_SECONDS = 24 * 3600


def job_key(transfer_id: str, attempt: int, round_: str = "") -> str:
    key = f"{transfer_id}:{attempt}"
    return f"{key}:{round_}" if round_ else key


DEQUEUE_TIMEOUT_SECONDS = 1.0
"""How long an idle worker loop blocks on Redis for a job (it notices a stop within that)."""


def settlement_queue(redis_url: str, name: str, timeout: float = 1.0) -> Queue:
    """A SAQ queue on Redis (the client connects lazily) whose waits are bounded.

    redis-py's default retries a failed command three times with up to 2, 4 and 8 s of
    back-off: an API enqueueing into a dead Redis waited seconds per transfer. Here a connect
    gives up after ``timeout`` seconds, a reply is awaited at most ``timeout`` plus the
    worker's blocking dequeue, and a command is retried twice, 0.2 and 0.4 s apart (which
    also paces a worker's dequeue loop while Redis is down: SAQ retries it at once).
    """
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from saq.queue.redis import RedisQueue

    client: Redis = Redis.from_url(
        redis_url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout + DEQUEUE_TIMEOUT_SECONDS + 1.0,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), retries=2),
    )
    return RedisQueue(client, name=name)


async def enqueue_settlement(
    queue: Queue, transfer_id: str, attempt: int, *, at: float = 0.0, round_: str = ""
) -> bool:
    """Enqueue one delivery; False if a job with the same key is still queued or running."""
    job = Job(
        function=SETTLE,
        kwargs={"transfer_id": transfer_id},
        key=job_key(transfer_id, attempt, round_),
        scheduled=int(at),
        timeout=JOB_TIMEOUT_SECONDS,
        retries=1,  # retries are the RetryPolicy's, recorded in the database
        ttl=JOB_TTL_SECONDS,
    )
    return await queue.enqueue(job) is not None


class GracefulWorker(Worker[Any]):
    """SAQ's Worker, stopping without waiting out its upkeep loops' sleeps.

    On stop, no new job is taken; the jobs in flight get ``grace`` seconds to finish, while
    the upkeep loops (which may sleep for a minute) are cancelled at once.
    """

    def __init__(self, *args: Any, grace: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, shutdown_grace_period_s=int(grace), **kwargs)
        self._grace = grace

    async def stop(self) -> None:
        self.event.set()
        processing = [t for t in self.tasks if t.get_name() == "process"]
        for task in self.tasks:
            if task.get_name() != "process":
                task.cancel()
        if processing:
            await asyncio.wait(processing, timeout=self._grace)
        await super().stop()


class SaqDispatcher:
    """TransferDispatcher of the API process when REDIS_URL is set.

    An enqueue happens after the transfer's commit: the transfer is accepted whatever Redis
    does. So it waits for Redis at most ``timeout`` seconds, a failure is logged and left to
    the sweep, and after a failure enqueues are skipped for ``timeout`` seconds (the sweep
    takes those too), so that while Redis is down a transfer is answered as fast as ever.
    """

    def __init__(self, queue: Queue, timeout: float = 1.0) -> None:
        self.queue = queue
        self.timeout = timeout
        self._skip_until = 0.0
        self.skipped = 0
        """Enqueues skipped because Redis failed just before (left to the sweep)."""

    async def transfer_accepted(self, transfer: Transfer) -> None:
        await self._enqueue(transfer.id, 0)

    async def transfer_retried(self, transfer_id: str, attempt: int) -> None:
        """An operator made a failed transfer due again."""
        await self._enqueue(transfer_id, attempt)

    async def _enqueue(self, transfer_id: str, attempt: int) -> None:
        clock = asyncio.get_running_loop().time
        if clock() < self._skip_until:
            self.skipped += 1
            return
        try:
            async with asyncio.timeout(self.timeout):
                await enqueue_settlement(self.queue, transfer_id, attempt)
        except Exception as exc:  # the transfer is committed: the sweep will enqueue it
            self._skip_until = clock() + self.timeout
            log.warning(
                "could not enqueue the settlement of %s (%s: %s); the SAQ sweep will, and "
                "enqueues are skipped for %g s",
                transfer_id,
                type(exc).__name__,
                exc,
                self.timeout,
            )

    async def queue_depth(self) -> dict[str, int]:
        return {
            "queued": await self.queue.count("queued"),
            "active": await self.queue.count("active"),
            "incomplete": await self.queue.count("incomplete"),
        }


class SaqSettlement:
    """What a SAQ worker does: settle one transfer per job, schedule retries, sweep."""

    def __init__(
        self,
        store: LedgerStore,
        settlement: SettlementService,
        clock: Clock,
        queue: Queue,
        *,
        sweep_after: timedelta = timedelta(seconds=30),
        sweep_batch: int = 500,
    ) -> None:
        self._store = store
        self._settlement = settlement
        self._now = clock
        self.queue = queue
        self._sweep_after = sweep_after
        self._sweep_batch = sweep_batch
        self.counters = SettlementCounters()

    async def settle(self, transfer_id: str) -> SettlementResult:
        result = await self._settlement.settle(transfer_id)
        self.counters.count(result.outcome)
        if result.outcome is Outcome.RETRY_LATER:
            transfer = await self._store.get_transfer(transfer_id)
            if transfer is not None and transfer.next_attempt_at is not None:
                await enqueue_settlement(
                    self.queue,
                    transfer_id,
                    transfer.attempts,
                    at=transfer.next_attempt_at.timestamp(),
                )
        return result

    async def sweep(self) -> int:
        """Re-enqueue PENDING transfers that waited too long; returns how many were enqueued."""
        now = self._now()
        overdue = await self._store.overdue_transfers(now - self._sweep_after, self._sweep_batch)
        # One key per sweep round: workers sweeping together enqueue each transfer once, and
        # a job stuck in Redis (its worker killed) cannot block the next round.
        round_ = f"sweep{int(now.timestamp() // max(self._sweep_after.total_seconds(), 1))}"
        enqueued = 0
        for transfer in overdue:
            if await enqueue_settlement(self.queue, transfer.id, transfer.attempts, round_=round_):
                enqueued += 1
        if enqueued:
            log.warning("sweep re-enqueued %d overdue transfers", enqueued)
        return enqueued


async def run_saq_worker(
    container: Any, concurrency: int, loop: asyncio.AbstractEventLoop | None = None
) -> None:
    """`dompet worker --queue saq`: SAQ's worker, plus our heartbeat and sweep, until a signal.

    SIGTERM/SIGINT: SAQ stops taking jobs and waits (grace period) for the ones in flight.
    """
    from dompet.worker.inprocess import worker_name

    settings = container.settings
    queue = container.saq_queue
    if queue is None:
        queue = settlement_queue(
            settings.redis_url, settings.saq_queue_name, settings.redis_timeout_seconds
        )
        await queue.connect()
        container.saq_queue = queue  # disconnected by container.aclose()
    runner = SaqSettlement(
        container.store,
        container.settlement,
        container.clock,
        queue,
        sweep_after=timedelta(seconds=settings.saq_sweep_after_seconds),
    )
    worker_id = worker_name("saq")
    heartbeat = Heartbeat(
        container.store,
        container.clock,
        worker_id,
        "saq",
        runner.counters,
        settings.worker_heartbeat_seconds,
        {"queue": settings.saq_queue_name, "concurrency": str(concurrency)},
    )

    async def settle_transfer(ctx: Any, *, transfer_id: str) -> str:
        return (await runner.settle(transfer_id)).outcome.value

    async def started(ctx: Any) -> None:  # SAQ has installed its signal handlers by now
        await heartbeat.beat(force=True)

    worker = GracefulWorker(
        queue,
        functions=[(SETTLE, settle_transfer)],
        startup=started,
        id=worker_id,
        concurrency=concurrency,
        grace=30.0,  # for the jobs in flight when asked to stop
        dequeue_timeout=DEQUEUE_TIMEOUT_SECONDS,  # idle loops notice a stop within it
    )
    stopping = asyncio.Event()
    purge = PeriodicPurge(container.store, container.clock, settings.idempotency_purge_seconds)

    async def upkeep() -> None:
        last_sweep = 0.0
        clock = asyncio.get_running_loop().time
        while not stopping.is_set():
            if heartbeat.has_beaten:
                await heartbeat.beat()
            if clock() - last_sweep >= settings.saq_sweep_seconds:
                last_sweep = clock()
                try:
                    await runner.sweep()
                except StoreUnavailable as exc:
                    log.warning("SAQ sweep failed: %s", exc.message)
                except Exception:
                    log.exception("SAQ sweep failed")
            await purge.run_if_due(lambda: not stopping.is_set())  # logs its own failures
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), min(settings.worker_heartbeat_seconds, 1))

    task = asyncio.create_task(upkeep(), name="saq-upkeep")
    try:
        await worker.start()  # returns after SIGTERM/SIGINT, once in-flight jobs are done
    finally:
        stopping.set()
        await task
        await heartbeat.beat(force=True, state="stopped")
