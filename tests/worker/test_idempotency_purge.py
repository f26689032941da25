"""The background workers delete expired idempotency keys every IDEMPOTENCY_PURGE_SECONDS."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dompet.container import Container, worker_config
from dompet.domain.idempotency import Claimed, IdempotencyKey, ReplayResponse
from dompet.services.idempotency_purge import PeriodicPurge
from dompet.storage import migrate, open_store
from dompet.storage.port import LedgerStore
from dompet.storage.sql.tables import idempotency_keys
from dompet.worker.inprocess import SettlementWorker
from tests.conftest import fast_settings
from tests.support.servers import RedisServer
from tests.support.sql import sql_connection
from tests.worker.helpers import start_worker, wait_for

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TTL, STALE = timedelta(hours=1), timedelta(seconds=60)
ANSWER = b'{"message":"no"}'


async def _expired_keys(store: LedgerStore, prefix: str, count: int) -> None:
    for i in range(count):
        key = IdempotencyKey(scope="worker-test", key=f"{prefix}{i}", fingerprint="fp")
        assert isinstance(await store.claim_idempotency(key, T0 - 2 * TTL, TTL, STALE), Claimed)


async def _until(condition: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Poll until ``condition()`` is true; fail (never pass) if it is not within ``limit``."""

    async def check() -> bool:
        return condition()

    await wait_for(check, what, limit)


async def test_the_in_process_worker_purges_expired_keys_every_period(database_url: str) -> None:
    settings = fast_settings(database_url, worker_enabled=False, idempotency_purge_seconds=0.05)
    container = await Container.build(settings, clock=lambda: T0)
    try:
        store = container.store
        live = IdempotencyKey(scope="worker-test", key="live", fingerprint="fp")
        await store.claim_idempotency(live, T0 - timedelta(minutes=1), TTL, STALE)
        await store.answer_idempotency(live, 409, ANSWER)
        await _expired_keys(store, "first-", 3)
        worker = SettlementWorker(
            store, container.settlement, container.clock, worker_config(settings, "purge-test")
        )
        assert worker.purge is not None
        purge = worker.purge
        running = asyncio.create_task(worker.run())
        try:
            await _until(lambda: purge.purged >= 3, "the first purge")
            await _expired_keys(store, "second-", 2)  # the next period takes these
            await _until(lambda: purge.purged >= 5, "a later purge")
        finally:
            worker.stop()
            await asyncio.wait_for(running, 30)
        assert purge.purged == 5
        assert await store.purge_idempotency(T0, 100) == 0  # nothing expired is left
        assert await store.claim_idempotency(live, T0, TTL, STALE) == ReplayResponse(409, ANSWER)
    finally:
        await container.aclose()


async def test_a_failed_purge_is_logged_and_retried_next_period(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real failure (the database is not migrated yet), then a real success."""
    url = f"sqlite:///{tmp_path / 'late.db'}"
    store = await open_store(url)
    try:
        purge = PeriodicPurge(store, lambda: T0, interval=0)
        with caplog.at_level(logging.ERROR):
            assert await purge.run_if_due() == 0
        assert "idempotency-key purge failed" in caplog.text
        assert purge.runs == 0
        await migrate(url)
        await _expired_keys(store, "k", 2)
        assert await purge.run_if_due() == 2
        assert (purge.runs, purge.purged) == (1, 2)
    finally:
        await store.close()


async def test_the_purge_deletes_expired_throttles_and_sessions_too(database_url: str) -> None:
    """Issue 19's tables are purged with the keys: windows that are over and sessions whose
    every token expired go; a live lock and a live session stay."""
    from dompet.domain.ids import new_id
    from dompet.domain.sessions import SessionRecord, ThrottleRule

    store = await open_store(database_url, mongodb_allow_standalone=True)
    try:
        rule = ThrottleRule(2, timedelta(minutes=5), sliding=True)
        for n in range(3):
            await store.take_throttle(f"old-{n}", T0 - timedelta(hours=1), rule)
        for _ in range(3):
            await store.take_throttle("locked", T0, rule)
        old = SessionRecord(new_id(), new_id(), None, T0 - TTL, T0 - timedelta(seconds=1))
        live = SessionRecord(new_id(), new_id(), None, T0, T0 + TTL)
        for session in (old, live):
            await store.open_session(session)
        purge = PeriodicPurge(store, lambda: T0, interval=0)
        await purge.run()
        assert purge.purged_others == 4
        assert not (await store.take_throttle("locked", T0, rule)).granted
        assert await store.session_live(live.id, live.subject)
        assert await store.purge_throttles(T0, 100) == 0
        assert await store.purge_sessions(T0, 100) == 0
    finally:
        await store.close()


async def test_a_purge_runs_at_most_once_per_interval(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'period.db'}"
    await migrate(url)
    store = await open_store(url)
    ticks = [100.0]
    try:
        purge = PeriodicPurge(store, lambda: T0, interval=60, monotonic=lambda: ticks[0])
        await _expired_keys(store, "a", 1)
        assert await purge.run_if_due() == 1  # never run yet: due at once
        await _expired_keys(store, "b", 1)
        ticks[0] += 59.9
        assert not purge.due()
        assert await purge.run_if_due() == 0
        assert purge.runs == 1
        ticks[0] += 0.1
        assert await purge.run_if_due() == 1
        assert (purge.runs, purge.purged) == (2, 2)
    finally:
        await store.close()


async def _sql_key_count(url: str) -> int:
    async with sql_connection(url) as conn:
        count: int = (
            await conn.execute(select(func.count()).select_from(idempotency_keys))
        ).scalar_one()
    return count


@pytest.mark.redis
async def test_the_saq_worker_purges_expired_keys(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """A real `dompet worker --queue saq` process purges in its upkeep loop."""
    url = f"sqlite:///{tmp_path / 'saq.db'}"
    await migrate(url)
    store = await open_store(url)
    try:
        now = datetime.now(UTC)
        for i in range(3):
            key = IdempotencyKey(scope="saq-test", key=f"old-{i}", fingerprint="fp")
            await store.claim_idempotency(key, now - 2 * TTL, TTL, STALE)
        live = IdempotencyKey(scope="saq-test", key="live", fingerprint="fp")
        await store.claim_idempotency(live, now - timedelta(minutes=1), TTL, STALE)
        await store.answer_idempotency(live, 409, ANSWER)
        assert await _sql_key_count(url) == 4

        worker = start_worker(
            url,
            tmp_path,
            "--queue",
            "saq",
            REDIS_URL=redis_server.url,
            SAQ_QUEUE_NAME=f"dompet-purge-{tmp_path.name}",
        )
        try:

            async def purged() -> bool:
                assert worker.proc.poll() is None, worker.log()
                return await _sql_key_count(url) == 1

            await wait_for(purged, "the SAQ worker's purge", limit=60)
        finally:
            assert worker.terminate() == 0, worker.log()
        assert await store.claim_idempotency(live, now, TTL, STALE) == ReplayResponse(409, ANSWER)
    finally:
        await store.close()
