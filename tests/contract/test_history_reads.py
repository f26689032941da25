"""The SQL history read path: the page queries' plans (SQLite, PostgreSQL), and reads' hold on
connections.

The history reads run the compiled Core select on the driver connection (no SQLAlchemy result
layer); these tests pin what makes a page cheap: the keyset index, primary-key joins, and at
most a bounded number of reads holding a pooled connection at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from sqlalchemy import event

from dompet.api.presenters import WalletPresenter
from dompet.domain.ledger import wallet_account
from dompet.storage import migrate, open_store
from dompet.storage.port import LedgerStore
from dompet.storage.sql.access.postgresql import PostgresAccess
from dompet.storage.sql.access.sqlite import SqliteAccess
from dompet.storage.sql.engine import SQLITE_READERS, SqlSettings
from dompet.storage.sql.history.reads import entries_page
from dompet.storage.sql.history.rendered import rendered_page, rendered_pages
from dompet.storage.sql.history.written import layout_fingerprint
from dompet.storage.sql.store import SqlStore
from tests.contract.helpers import new_user, top_up


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_name(request: pytest.FixtureRequest) -> str:
    """The SQL engines only (overrides conftest's, which includes MongoDB)."""
    name: str = request.param
    return name


async def test_sqlite_history_pages_use_the_account_index(tmp_path: Path) -> None:
    """Both page queries: the presenter path's (``entries_page``) and the rendered one."""
    url = f"sqlite:///{tmp_path / 'plan.db'}"
    await migrate(url)
    store = await open_store(url)
    try:
        assert isinstance(store, SqlStore)
        user = await new_user(store)
        await top_up(store, user.id, 10)
        layout = WalletPresenter(ZoneInfo("Asia/Jakarta")).item_layout
        params = {
            "account_id": wallet_account(user.id),
            "user_id": user.id,
            "before": 10**9,
            "limit": 50,
        }
        joined = "SEARCH transfers USING INDEX sqlite_autoindex_transfers_1 (id=?) LEFT-JOIN"
        # a rendered page looks a transfer up only for an entry it renders (a transfer's debit)
        looked_up = [
            "CORRELATED SCALAR SUBQUERY 1",
            "SEARCH transfers USING INDEX sqlite_autoindex_transfers_1 (id=?)",
        ]
        shapes: list[tuple[Callable[..., Any], tuple[Hashable, ...], str, list[str]]] = [
            (entries_page, ("sqlite", True, False, True), "(account_id=? AND id<?)", [joined]),
            (entries_page, ("sqlite", True, True, True), "(account_id=? AND id>?)", [joined]),
            (entries_page, ("sqlite", False, False, False), "(account_id=?)", [joined]),
            (rendered_page, (layout, "sqlite", True, True), "(account_id=? AND id<?)", looked_up),
            (rendered_page, (layout, "sqlite", False, False), "(account_id=?)", looked_up),
        ]
        with sqlite3.connect(tmp_path / "plan.db") as db:
            for build, shape, keyset, transfer in shapes:
                query = store.access.compiled(build, *shape)
                plan = [
                    str(row[3])
                    for row in db.execute(
                        "EXPLAIN QUERY PLAN " + query.sql, query.arguments(params)
                    )
                ]
                assert plan == [
                    f"SEARCH postings USING INDEX ix_postings_account_id_id {keyset}",
                    *transfer,
                ], plan
    finally:
        await store.close()


async def test_postgresql_pages_far_below_other_accounts_use_the_account_index(
    postgres_db_url: str,
) -> None:
    """A page whose entries lie below many other accounts' postings: every page query (the
    presenter path's, the rendered page and a batch of them) reads it off the account index.

    Planned as ``account_id = :a AND id < :c ORDER BY id DESC``, PostgreSQL chose a backward
    scan of the primary key filtered on the account here: some 20 ms a page, reading every
    later posting (storage/sql/account_order.py)."""
    await migrate(postgres_db_url)
    layout = WalletPresenter(ZoneInfo("Asia/Jakarta")).item_layout
    assert layout is not None
    store = await open_store(postgres_db_url, history_layout=layout)
    db = await asyncpg.connect(postgres_db_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert isinstance(store, SqlStore)
        old, busy = await new_user(store, "Old"), await new_user(store, "Busy")
        first = await top_up(store, old.id, 10)  # the old account's first entry, then others'
        for user, count in ((busy, 60_000), (old, 10_000)):
            # bare rows, far quicker than journals; this test reads plans, not balances
            await db.execute(
                "INSERT INTO postings (journal_id, account_id, amount, created_at, kind,"
                " reference, remarks) SELECT $1, $2, 1, now(), 'topup', $1, ''"
                " FROM generate_series(1, $3)",
                first.journal_id,
                wallet_account(user.id),
                count,
            )
        await db.execute("ANALYZE postings")
        account = wallet_account(old.id)
        page = {"account_id": account, "user_id": old.id, "before": first.sequence + 1}
        pages = {
            "account_ids": [account] * 12,
            "user_ids": [old.id] * 12,
            "befores": [first.sequence + 1] * 6 + [None] * 6,
        }
        shapes: list[tuple[Callable[..., Any], tuple[Hashable, ...], dict[str, Any]]] = [
            (entries_page, ("postgresql", True, False, True), page),
            (rendered_page, (layout, "postgresql", True, True), page),
            (rendered_pages, (layout,), pages),
        ]
        fingerprint = layout_fingerprint(layout)
        for build, shape, params in shapes:
            query = store.access.compiled(build, *shape)
            arguments = query.arguments({**params, "limit": 50, "item_layout": fingerprint})
            plan = "\n".join(row[0] for row in await db.fetch("EXPLAIN " + query.sql, *arguments))
            assert "ix_postings_account_id_id" in plan, plan
            assert "postings_pkey" not in plan, plan
    finally:
        await db.close()
        await store.close()


async def test_concurrent_reads_hold_a_bounded_number_of_connections(
    store: LedgerStore,
) -> None:
    """64 history reads at once: no more than the read slots hold a pooled connection.

    On PostgreSQL more would open overflow connections (a new backend each, closed again).
    On SQLite the hot reads take no pooled connection at all: they share one read-only
    connection of their own (engine.open_sqlite_reader).
    """
    assert isinstance(store, SqlStore)
    user = await new_user(store)
    for amount in (1, 2, 3):
        await top_up(store, user.id, amount)
    held = {"now": 0, "most": 0}

    def checkout(*_: Any) -> None:
        held["now"] += 1
        held["most"] = max(held["most"], held["now"])

    def checkin(*_: Any) -> None:
        held["now"] -= 1

    access = store.access
    assert isinstance(access, SqliteAccess | PostgresAccess)
    engine = access.reader.sync_engine
    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", checkin)
    try:
        pages = await asyncio.gather(
            *(store.entries(wallet_account(user.id), limit=2) for _ in range(64))
        )
    finally:
        event.remove(engine, "checkout", checkout)
        event.remove(engine, "checkin", checkin)
    assert all([e.amount for e in page] == [3, 2] for page in pages)
    if isinstance(access, SqliteAccess):
        assert held["most"] == 0
        assert access._hot is not None  # the hot reads' own connection
    else:
        assert 1 <= held["most"] <= SqlSettings().pg_pool_size


async def test_the_sqlite_hot_reader_refuses_writes(tmp_path: Path) -> None:
    """The hot reads' own SQLite connection is read-only (``PRAGMA query_only``)."""
    url = f"sqlite:///{tmp_path}/hot.db"
    await migrate(url)
    store = await open_store(url)
    try:
        assert isinstance(store, SqlStore)
        access = store.access
        assert isinstance(access, SqliteAccess)
        user = await new_user(store)
        account = wallet_account(user.id)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            access.hot_reader().execute("UPDATE accounts SET balance = 10 WHERE id = ?", (account,))
        assert await store.balance(account) == 0
    finally:
        await store.close()
    assert access._hot is None  # closed with the store


async def test_a_failed_read_gives_its_connection_back(store: LedgerStore) -> None:
    """A read whose block fails gives its slot and connection back; none is leaked."""
    assert isinstance(store, SqlStore)
    user = await new_user(store)
    await top_up(store, user.id, 7)
    for _ in range(max(SQLITE_READERS, SqlSettings().pg_pool_size) + 1):
        with pytest.raises(RuntimeError):
            async with store.access.read():
                raise RuntimeError("the read failed")
        if isinstance(store.access, PostgresAccess):
            with pytest.raises(RuntimeError):
                async with store.access.raw():
                    raise RuntimeError("the read failed")
    assert [e.amount for e in await store.entries(wallet_account(user.id))] == [7]


@pytest.mark.parametrize("engine_name", ["postgresql"], indirect=True)
async def test_a_broken_raw_connection_is_dropped(store: LedgerStore) -> None:
    """PostgreSQL: a raw connection that broke (or whose statement was cancelled midway) is
    not given back to the pool; one whose statement merely failed is."""
    assert isinstance(store, SqlStore)
    access = store.access
    assert isinstance(access, PostgresAccess)
    dropped: list[object] = []

    def invalidated(*_: Any) -> None:
        dropped.append(None)

    engine = access.writer.sync_engine
    event.listen(engine, "invalidate", invalidated)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            async with access.raw() as driver:
                await driver.fetch("SELECT * FROM no_such_table")
        assert dropped == []
        with pytest.raises(asyncpg.InterfaceError):
            async with access.raw():
                raise asyncpg.InterfaceError("the connection broke")
        assert len(dropped) == 1
        with pytest.raises(asyncio.CancelledError):
            async with access.raw():
                raise asyncio.CancelledError
        assert len(dropped) == 2
    finally:
        event.remove(engine, "invalidate", invalidated)
    user = await new_user(store)
    assert await store.get_user(user.id) == user
