"""PostgreSQL-only behaviour of the one-statement journal path (storage/sql/pg_journal.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from dompet.domain.ledger import wallet_account
from dompet.storage import migrate, open_store
from dompet.storage.port import LedgerStore
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
