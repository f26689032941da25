"""PostgreSQL-only behaviour of the one-statement journal (storage/sql/journal/postgresql.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text

from dompet.domain.ledger import wallet_account
from dompet.storage import migrate, open_store
from dompet.storage.port import LedgerStore
from dompet.storage.sql.engine import create_engines
from tests.contract.helpers import new_user, pay, top_up


@pytest.fixture
async def pg_store(postgres_db_url: str) -> AsyncIterator[tuple[LedgerStore, str]]:
    await migrate(postgres_db_url)
    store = await open_store(postgres_db_url)
    try:
        yield store, postgres_db_url
    finally:
        await store.close()


async def test_a_connection_killed_under_the_pool_is_not_reused(
    pg_store: tuple[LedgerStore, str],
) -> None:
    store, url = pg_store
    user = await new_user(store)
    await top_up(store, user.id, 1000)
    admin = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    assert killed >= 1
    failures = 0
    for _ in range(5):  # at most the dead connections fail, once each; then it works again
        try:
            await pay(store, user.id, 1)
        except Exception:
            failures += 1
    assert failures <= killed
    await pay(store, user.id, 1)
    assert await store.balance(wallet_account(user.id)) == 1000 - (5 - failures) - 1


async def test_the_pool_hands_out_the_connection_returned_last(postgres_db_url: str) -> None:
    """LIFO: a light load keeps reusing the few warm server processes instead of rotating
    through the whole pool (with FIFO, twenty backends took turns on two cores and a history
    batch's fetch took 20-40 ms at p99; BENCHMARKS.md, stop 18)."""
    _, reader = create_engines(postgres_db_url)
    try:
        held = [await reader.connect() for _ in range(4)]  # the pool now has four connections
        for conn in held:
            await conn.close()
        pids = set()
        for _ in range(4):
            async with reader.connect() as conn:
                pids.add((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        assert len(pids) == 1
    finally:
        await reader.dispose()
