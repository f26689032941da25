"""The composition root: builds the store, services and workers from Settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from dompet.api.presenters import history_layout
from dompet.config import Settings
from dompet.domain.errors import StoreUnavailable
from dompet.domain.transfers import RetryPolicy
from dompet.security.kept_secrets import ServerSecrets, server_secrets
from dompet.security.pins import Argon2PinHasher
from dompet.security.tokens import JwtTokens
from dompet.services.attempts import AttemptLimits, AttemptPolicy
from dompet.services.ports import Clock, MoneyObservers, TransferDispatcher, utc_now
from dompet.services.savings import SavingsService
from dompet.services.settlement import SettlementService
from dompet.services.wallet import WalletService
from dompet.storage import open_store
from dompet.storage.faults import StoreLimits, guarded
from dompet.storage.port import LedgerStore
from dompet.storage.sql.engine import SqlSettings
from dompet.worker.inprocess import SettlementWorker, WakeDispatcher, WorkerConfig, worker_name

log = logging.getLogger(__name__)

T = TypeVar("T")

START_PATIENCE_SECONDS = 60.0
"""How long a process starting while its database is unavailable (a restart, a failover, a
compose stack coming up in any order) keeps trying before it gives up and exits."""


async def _patiently(start: Callable[[], Awaitable[T]], what: str) -> T:
    """``start()``, tried again while the database is unavailable, for up to
    START_PATIENCE_SECONDS: a worker started during an outage waits for the database instead
    of dying (tests/reliability/test_fault_postgres.py)."""
    deadline = time.monotonic() + START_PATIENCE_SECONDS
    while True:
        try:
            return await start()
        except StoreUnavailable as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("waiting for the database to read %s: %s", what, exc.message)
            await asyncio.sleep(exc.retry_after_seconds)


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.settle_max_attempts,
        base_delay=timedelta(seconds=settings.settle_retry_base_seconds),
        max_delay=timedelta(seconds=settings.settle_retry_max_seconds),
    )


def worker_config(
    settings: Settings, prefix: str, kind: str = "inprocess", suffix: str = ""
) -> WorkerConfig:
    return WorkerConfig(
        worker_id=worker_name(prefix) + suffix,
        sweep_interval=settings.worker_sweep_seconds,
        lease=timedelta(seconds=settings.worker_lease_seconds),
        batch=settings.worker_batch,
        kind=kind,
        heartbeat_interval=settings.worker_heartbeat_seconds,
        idempotency_purge_interval=settings.idempotency_purge_seconds,
    )


def pin_hasher(settings: Settings) -> Argon2PinHasher:
    """The Argon2id hasher for PINs and operator passwords (PIN_HASH_* settings, PIN_PEPPER)."""
    pepper = settings.pin_pepper.get_secret_value().encode() if settings.pin_pepper else None
    return Argon2PinHasher(
        time_cost=settings.pin_hash_time_cost,
        memory_kib=settings.pin_hash_memory_kib,
        parallelism=settings.pin_hash_parallelism,
        pepper=pepper,
        max_concurrent=settings.pin_hash_concurrency,
    )


def attempt_policy(settings: Settings) -> AttemptPolicy:
    return AttemptPolicy(
        login_max_failures=settings.login_max_failures,
        login_lock_seconds=settings.login_lock_seconds,
        login_failures_per_client=settings.login_failures_per_client,
        registrations_per_client=settings.registrations_per_client,
        client_window_seconds=settings.client_limit_window_seconds,
    )


def sql_settings(settings: Settings) -> SqlSettings:
    """The SQL engines' settings (SQLITE_SYNCHRONOUS, SQLITE_WRITER_LOCK, PG_POOL_SIZE)."""
    return SqlSettings(
        sqlite_synchronous=settings.sqlite_synchronous,
        sqlite_writer_lock=settings.sqlite_writer_lock,
        pg_pool_size=settings.pg_pool_size,
    )


def store_limits(settings: Settings) -> StoreLimits:
    """The DB_* settings: how long a request may wait for the database (storage/faults.py)."""
    return StoreLimits(
        connect_timeout=settings.db_connect_timeout_seconds,
        statement_timeout=settings.db_statement_timeout_seconds,
        wait_timeout=settings.db_wait_timeout_seconds,
        max_waiting=settings.db_max_waiting,
        retry_after=settings.db_retry_after_seconds,
    )


async def open_settings_store(settings: Settings, *, serving: bool = False) -> LedgerStore:
    """The store of ``settings.database_url``, rendering history items in the display zone's
    layout as it writes them, on the engine settings given; the caller closes it.

    ``serving`` (the API and the workers): the DB_* limits apply, and a database fault is
    raised as StoreUnavailable. Without (the operator's commands: reconcile, export ...) no
    statement may be cut short by a timeout meant for requests."""
    limits = store_limits(settings)
    store = await open_store(
        settings.database_url,
        history_layout=history_layout(settings.tz),
        mongodb_allow_standalone=settings.mongodb_allow_standalone,
        sql_settings=sql_settings(settings),
        limits=limits if serving else None,
    )
    return guarded(store, limits.retry_after) if serving else store


@dataclass
class Container:
    settings: Settings
    store: LedgerStore
    clock: Clock
    wallet: WalletService
    savings: SavingsService
    settlement: SettlementService
    dispatcher: TransferDispatcher
    secrets: ServerSecrets
    pins: Argon2PinHasher
    """The one PIN/password hasher of this process (its bound counts every Argon2 run)."""
    attempts: AttemptLimits
    worker: SettlementWorker | None = None
    money: MoneyObservers = field(default_factory=MoneyObservers)
    """Subscribe here to hear of every money movement (the /metrics counters do)."""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    saq_queue: Any = None
    """The SAQ queue (REDIS_URL set) the API enqueues settlements on; None without Redis."""

    @classmethod
    async def build(
        cls, settings: Settings, store: LedgerStore | None = None, clock: Clock = utc_now
    ) -> Container:
        opened = store is None
        store = guarded(
            store or await open_settings_store(settings, serving=True),
            settings.db_retry_after_seconds,
        )
        try:
            secrets = await _patiently(lambda: server_secrets(settings, store), "its secrets")
        except BaseException:
            if opened:
                await store.close()
            raise
        pins = pin_hasher(settings)
        attempts = AttemptLimits(store, clock, attempt_policy(settings))
        tokens = JwtTokens(secrets.jwt, settings.access_token_ttl, settings.refresh_token_ttl)
        wake = WakeDispatcher()
        money = MoneyObservers()
        settlement = SettlementService(store, clock, retry_policy(settings))
        dispatcher: TransferDispatcher = wake
        saq_queue: Any = None
        if settings.redis_url:  # scale-out: `dompet worker --queue saq` processes settle
            from dompet.worker.saq import SaqDispatcher, settlement_queue

            saq_queue = settlement_queue(
                settings.redis_url, settings.saq_queue_name, settings.redis_timeout_seconds
            )
            await saq_queue.connect()
            dispatcher = SaqDispatcher(saq_queue, settings.redis_timeout_seconds)
        wallet = WalletService(
            store,
            pins,
            tokens,
            dispatcher,
            clock,
            attempts,
            money,
        )
        worker = None
        if settings.worker_enabled and saq_queue is None:
            worker = SettlementWorker(
                store, settlement, clock, worker_config(settings, "api"), wake.wake
            )
            wake.on_accepted = worker.settle_soon
        return cls(
            settings=settings,
            store=store,
            clock=clock,
            wallet=wallet,
            savings=SavingsService(store, clock, money),
            settlement=settlement,
            dispatcher=dispatcher,
            secrets=secrets,
            pins=pins,
            attempts=attempts,
            worker=worker,
            money=money,
            saq_queue=saq_queue,
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
        if self.saq_queue is not None:
            try:
                async with asyncio.timeout(self.settings.redis_timeout_seconds + 1):
                    await self.saq_queue.disconnect()
            except Exception as exc:  # Redis gone: nothing of ours is lost with the connection
                log.warning("could not disconnect from Redis: %s: %s", type(exc).__name__, exc)
        await self.store.close()
