"""The embedded dispatcher: an asyncio worker that claims due transfers from the store.

It is woken at once when the API accepts a transfer, and sweeps periodically for anything
missed (a crash, a retry whose back-off ran out, a transfer accepted by another process).
The outbox (the PENDING transfer rows) is the queue of record; this loop only drains it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from dompet.domain.errors import StoreUnavailable
from dompet.domain.transfers import Transfer
from dompet.services.idempotency_purge import PeriodicPurge
from dompet.services.ports import Clock
from dompet.services.settlement import SettlementResult, SettlementService
from dompet.storage.port import LedgerStore
from dompet.worker.heartbeat import Heartbeat, SettlementCounters

log = logging.getLogger(__name__)

SETTLE_CONCURRENCY = 100
"""How many transfers of one claimed batch are settled at the same time."""


def worker_name(prefix: str = "worker") -> str:
    return f"{prefix}-{socket.gethostname()}-{os.getpid()}"


class WakeDispatcher:
    """TransferDispatcher for the in-process worker: hands it each accepted transfer at once
    (``on_accepted``, set when this process runs a worker), else wakes its claim loop."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.on_accepted: Callable[[Transfer], None] | None = None

    async def transfer_accepted(self, transfer: Transfer) -> None:
        if self.on_accepted is not None:
            self.on_accepted(transfer)
        else:
            self.wake.set()

    async def transfer_retried(self, transfer_id: str, attempt: int) -> None:
        self.wake.set()


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    worker_id: str
    sweep_interval: float = 1.0
    lease: timedelta = timedelta(seconds=30)
    batch: int = 100
    kind: str = "inprocess"
    """Shown on the dashboard: 'inprocess' (inside the API) or 'standalone' (dompet worker)."""
    heartbeat_interval: float = 5.0
    idempotency_purge_interval: float | None = None
    """Delete expired idempotency keys at most this often (seconds); None: never."""


class SettlementWorker:
    """Claims due transfers in batches and settles each one; never two workers per transfer.

    ``stop()`` is graceful: the settlement in flight finishes, the rest of the claimed batch
    is released (``release_claims``) so other workers take it at once.
    """

    def __init__(
        self,
        store: LedgerStore,
        settlement: SettlementService,
        clock: Clock,
        config: WorkerConfig,
        wake: asyncio.Event | None = None,
    ) -> None:
        self._store = store
        self._settlement = settlement
        self._now = clock
        self._config = config
        self._wake = wake or asyncio.Event()
        self._stopping = asyncio.Event()
        self._first_attempts: set[asyncio.Task[None]] = set()
        self.counters = SettlementCounters()
        self.heartbeat = Heartbeat(
            store, clock, config.worker_id, config.kind, self.counters, config.heartbeat_interval
        )
        self.purge: PeriodicPurge | None = None
        if config.idempotency_purge_interval is not None:
            self.purge = PeriodicPurge(store, clock, config.idempotency_purge_interval)
        self._purging: asyncio.Task[int] | None = None

    @property
    def worker_id(self) -> str:
        return self._config.worker_id

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def settle_soon(self, transfer: Transfer) -> None:
        """Try a just-accepted transfer at once, beside the claim loop (no claim, no batch:
        the lowest settlement lag). A failure goes to the claim loop, which records it."""
        if self._stopping.is_set():
            self._wake.set()
            return
        task = asyncio.create_task(self._first_attempt(transfer))
        self._first_attempts.add(task)
        task.add_done_callback(self._first_attempts.discard)

    async def _first_attempt(self, transfer: Transfer) -> None:
        try:
            result = await self._settlement.try_settle_now(transfer)
        except Exception:
            log.exception("first settlement attempt of %s failed", transfer.id)
            result = None
        if result is None:
            self._wake.set()
        else:
            self.counters.count(result.outcome)

    async def run_once(self) -> list[SettlementResult]:
        """Claim one batch of due transfers and settle them (stopping early if asked to)."""
        claimed = await self._store.claim_due_transfers(
            self._config.worker_id, self._now(), self._config.lease, self._config.batch
        )
        # Settle the batch concurrently (bounded): on SQLite their writes then share group
        # commits instead of paying one durable COMMIT each, one after the other. A stop stops
        # new settlements; what was not started is released by run()'s release_claims.
        limit = asyncio.Semaphore(SETTLE_CONCURRENCY)

        async def settle(transfer: Transfer) -> SettlementResult | None:
            async with limit:
                if self._stopping.is_set():
                    return None
                result = await self._settlement.settle_transfer(transfer)
            self.counters.count(result.outcome)
            return result

        outcomes = await asyncio.gather(*(settle(t) for t in claimed))
        return [result for result in outcomes if result is not None]

    async def run(self) -> None:
        log.info("settlement worker %s started", self._config.worker_id)
        await self.heartbeat.beat(force=True)
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    results = await self.run_once()
                except StoreUnavailable:  # logged by the store's guard; retried next sweep
                    results = []
                except Exception:
                    log.exception("settlement sweep failed; retrying after the sweep interval")
                    results = []
                await self.heartbeat.beat()
                self._purge_if_due()
                if len(results) >= self._config.batch:
                    continue  # more may be due: don't sleep
                if self._stopping.is_set():
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._config.sweep_interval)
        finally:
            await self._shutdown()

    def _purge_if_due(self) -> None:
        """Start the idempotency-key purge beside the claim loop when its period is up (it
        never delays a settlement; a failure is logged by the purge and retried next period)."""
        if self.purge is None or not self.purge.due():
            return
        if self._purging is not None and not self._purging.done():
            return
        self._purging = asyncio.create_task(self.purge.run(lambda: not self.stopping))

    async def finish_first_attempts(self) -> None:
        """Wait until every first attempt handed over so far has finished."""
        while self._first_attempts:
            await asyncio.gather(*self._first_attempts, return_exceptions=True)

    async def _shutdown(self) -> None:
        await self.finish_first_attempts()
        if self._purging is not None:
            await self._purging  # stops after its current batch (never raises)
        try:
            released = await self._store.release_claims(self._config.worker_id)
        except Exception:
            log.exception("could not release the claims of %s", self._config.worker_id)
            released = 0
        await self.heartbeat.beat(force=True, state="stopped")
        log.info(
            "settlement worker %s stopped (settled %d, released %d)",
            self._config.worker_id,
            self.counters.settled,
            released,
        )
