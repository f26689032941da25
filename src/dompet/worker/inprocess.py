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
from dataclasses import dataclass
from datetime import timedelta

from dompet.domain.transfers import Transfer
from dompet.services.ports import Clock
from dompet.services.settlement import SettlementResult, SettlementService
from dompet.storage.port import LedgerStore

log = logging.getLogger(__name__)

SETTLE_CONCURRENCY = 100
"""How many transfers of one claimed batch are settled at the same time."""


def worker_name(prefix: str = "worker") -> str:
    return f"{prefix}-{socket.gethostname()}-{os.getpid()}"


class WakeDispatcher:
    """TransferDispatcher that wakes the in-process worker."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()

    async def transfer_accepted(self, transfer_id: str) -> None:
        self.wake.set()


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    worker_id: str
    sweep_interval: float = 1.0
    lease: timedelta = timedelta(seconds=30)
    batch: int = 100


class SettlementWorker:
    """Claims due transfers in batches and settles each one; never two workers per transfer."""

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
        self.settled = 0

    @property
    def worker_id(self) -> str:
        return self._config.worker_id

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run_once(self) -> list[SettlementResult]:
        """Claim one batch of due transfers and settle them."""
        claimed = await self._store.claim_due_transfers(
            self._config.worker_id, self._now(), self._config.lease, self._config.batch
        )
        # Settle the batch concurrently (bounded): on SQLite their writes then share group
        # commits instead of paying one durable COMMIT each, one after the other.
        limit = asyncio.Semaphore(SETTLE_CONCURRENCY)

        async def settle(transfer: Transfer) -> SettlementResult:
            async with limit:
                return await self._settlement.settle_transfer(transfer)

        results = list(await asyncio.gather(*(settle(t) for t in claimed)))
        self.settled += len(results)
        return results

    async def run(self) -> None:
        log.info("settlement worker %s started", self._config.worker_id)
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                results = await self.run_once()
            except Exception:
                log.exception("settlement sweep failed; retrying after the sweep interval")
                results = []
            if len(results) >= self._config.batch:
                continue  # more may be due: don't sleep
            if self._stopping.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._config.sweep_interval)
        log.info("settlement worker %s stopped", self._config.worker_id)
