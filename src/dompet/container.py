"""The composition root: builds the store, services and workers from Settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from dompet.config import Settings
from dompet.domain.transfers import RetryPolicy
from dompet.security.pins import Argon2PinHasher
from dompet.security.tokens import JwtTokens
from dompet.services.ports import Clock, MoneyObservers, TransferDispatcher, utc_now
from dompet.services.savings import SavingsService
from dompet.services.settlement import SettlementService
from dompet.services.wallet import LoginPolicy, WalletService
from dompet.storage import open_store
from dompet.storage.port import LedgerStore
from dompet.worker.inprocess import SettlementWorker, WakeDispatcher, WorkerConfig, worker_name

log = logging.getLogger(__name__)


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.settle_max_attempts,
        base_delay=timedelta(seconds=settings.settle_retry_base_seconds),
        max_delay=timedelta(seconds=settings.settle_retry_max_seconds),
    )


def worker_config(settings: Settings, prefix: str) -> WorkerConfig:
    return WorkerConfig(
        worker_id=worker_name(prefix),
        sweep_interval=settings.worker_sweep_seconds,
        lease=timedelta(seconds=settings.worker_lease_seconds),
        batch=settings.worker_batch,
    )


@dataclass
class Container:
    settings: Settings
    store: LedgerStore
    clock: Clock
    wallet: WalletService
    savings: SavingsService
    settlement: SettlementService
    dispatcher: TransferDispatcher
    worker: SettlementWorker | None = None
    money: MoneyObservers = field(default_factory=MoneyObservers)
    """Subscribe here to hear of every money movement (the /metrics counters do)."""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def build(
        cls, settings: Settings, store: LedgerStore | None = None, clock: Clock = utc_now
    ) -> Container:
        store = store or await open_store(
            settings.database_url, mongodb_allow_standalone=settings.mongodb_allow_standalone
        )
        pepper = settings.pin_pepper.get_secret_value().encode() if settings.pin_pepper else None
        pins = Argon2PinHasher(
            time_cost=settings.pin_hash_time_cost,
            memory_kib=settings.pin_hash_memory_kib,
            parallelism=settings.pin_hash_parallelism,
            pepper=pepper,
        )
        tokens = JwtTokens(
            settings.jwt_secret.get_secret_value(),
            settings.access_token_ttl,
            settings.refresh_token_ttl,
        )
        wake = WakeDispatcher()
        money = MoneyObservers()
        settlement = SettlementService(store, clock, retry_policy(settings))
        wallet = WalletService(
            store,
            pins,
            tokens,
            wake,
            clock,
            LoginPolicy(settings.login_max_failures, settings.login_lock_seconds),
            money,
        )
        worker = None
        if settings.worker_enabled:
            worker = SettlementWorker(
                store, settlement, clock, worker_config(settings, "api"), wake.wake
            )
        return cls(
            settings=settings,
            store=store,
            clock=clock,
            wallet=wallet,
            savings=SavingsService(store, clock, money),
            settlement=settlement,
            dispatcher=wake,
            worker=worker,
            money=money,
        )

    def start(self) -> None:
        """Start the background workers of this process (the in-process settlement worker)."""
        if self.worker is not None:
            self._tasks.append(asyncio.create_task(self.worker.run(), name="settlement-worker"))

    async def aclose(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        for task in self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout=10)
            task.cancel()
        await self.store.close()
