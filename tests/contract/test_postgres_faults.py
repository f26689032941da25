"""PostgreSQL under faults, with the limits a serving process runs with (storage/faults.py):
connections the server dropped are replaced at checkout, a statement past the statement
timeout is cut short, and the gate bounds how many wait and for how long."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text

from dompet.domain.errors import StoreUnavailable
from dompet.domain.ledger import wallet_account
from dompet.storage import faults, migrate, open_store
from dompet.storage.port import LedgerStore
from dompet.storage.sql.engine import SqlSettings, create_engines
from tests.contract.helpers import new_user, pay, top_up

LIMITS = faults.StoreLimits(
    connect_timeout=2.0, statement_timeout=0.5, wait_timeout=0.3, max_waiting=2, retry_after=1
)


@pytest.fixture
async def guarded_store(
    postgres_db_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[LedgerStore]:
    """A store as a serving process opens it: 4 connections, ``LIMITS`` (or the limits the
    test names with ``@pytest.mark.parametrize("limits", ..., indirect=True)``)."""
    limits = getattr(request, "param", LIMITS)
    await migrate(postgres_db_url)
    store = faults.guarded(
        await open_store(postgres_db_url, sql_settings=SqlSettings(pg_pool_size=4), limits=limits)
    )
    try:
        yield store
    finally:
        await store.close()


async def _terminate_backends(url: str) -> int:
    admin = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        killed: int = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    return killed


@pytest.mark.parametrize("guarded_store", [faults.StoreLimits(max_waiting=256)], indirect=True)
async def test_connections_the_server_dropped_are_replaced_not_failed(
    guarded_store: LedgerStore, postgres_db_url: str
) -> None:
    """After a restart every pooled connection is dead; none of them fails a request: each is
    seen closed at checkout and replaced (no round trip per checkout, unlike pre-ping)."""
    store = guarded_store
    user = await new_user(store)
    await top_up(store, user.id, 1000)
    await asyncio.gather(*(store.balance(wallet_account(user.id)) for _ in range(8)))  # warm
    assert await _terminate_backends(postgres_db_url) >= 2
    await asyncio.sleep(0.2)  # the server's goodbye reaches the client
    for _ in range(10):
        await pay(store, user.id, 1)  # not one failure
    await asyncio.gather(*(store.balance(wallet_account(user.id)) for _ in range(8)))
    assert await store.balance(wallet_account(user.id)) == 990


async def test_a_statement_past_the_timeout_is_cut_short(postgres_db_url: str) -> None:
    writer, reader = create_engines(postgres_db_url, limits=LIMITS)
    try:
        async with reader.connect() as conn:
            setting = (await conn.execute(text("SHOW statement_timeout"))).scalar_one()
        assert setting == "500ms"
        started = time.monotonic()
        with pytest.raises(Exception) as caught:  # noqa: PT011 - SQLAlchemy's wrapping of it
            async with reader.connect() as conn:
                await conn.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - started < 2.0
        fault = faults.unavailable(caught.value)
        assert fault is not None
        assert fault.message == faults.TOO_SLOW
        async with reader.connect() as conn:  # and the engine goes on
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await writer.dispose()


async def test_the_gate_refuses_beyond_max_waiting_and_times_out_the_rest(
    guarded_store: LedgerStore,
) -> None:
    store = guarded_store
    user = await new_user(store)
    gate = store.access.gate  # type: ignore[attr-defined]
    assert gate.max_waiting == LIMITS.max_waiting
    assert gate.wait_timeout == LIMITS.wait_timeout
    release = asyncio.Event()
    held = asyncio.Event()
    holding = 0

    async def hold() -> None:  # every connection busy, as under a slow network
        nonlocal holding
        async with gate.slot():
            holding += 1
            if holding == 4:
                held.set()
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(4)]
    await held.wait()
    started = time.monotonic()
    results = await asyncio.gather(
        *(store.balance(wallet_account(user.id)) for _ in range(4)), return_exceptions=True
    )
    took = time.monotonic() - started
    release.set()
    await asyncio.gather(*holders)
    messages = Counter(r.message for r in results if isinstance(r, StoreUnavailable))
    assert messages == {faults.BUSY: 2, faults.NO_CONNECTION: 2}, results
    assert took < 1.5
    assert await store.balance(wallet_account(user.id)) == 0  # all slots came back
