"""Concurrent writers: each one's transaction stands or falls alone, and all of them commit.

On SQLite the writes of a process share one connection and commit in groups (SAVEPOINT per
caller, one COMMIT per batch; storage/sql/access/group_commit.py); on PostgreSQL each writer has its
own transaction. The contract is the same on every engine.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import create_async_engine

from dompet.domain.errors import InsufficientFunds, PhoneTaken
from dompet.domain.ids import new_id
from dompet.domain.invariants import check
from dompet.domain.ledger import topup_journal, wallet_account
from dompet.storage import migrate, open_store
from dompet.storage.port import LedgerStore
from dompet.storage.sql.access.sqlite import SqliteAccess, sqlite_timestamp
from dompet.storage.sql.store import SqlStore
from dompet.storage.sql.tables import postings
from tests.contract.helpers import hold_the_turn, new_user, pay, top_up


async def test_concurrent_writers_all_commit(store: LedgerStore, database_url: str) -> None:
    users = [await new_user(store) for _ in range(8)]
    await asyncio.gather(*(top_up(store, u.id, 1000) for u in users))
    await asyncio.gather(*(pay(store, u.id, 1) for u in users for _ in range(25)))

    # Durable and visible to a fresh connection (another store, as another process would).
    other = await open_store(database_url, mongodb_allow_standalone=True)
    try:
        for user in users:
            assert await other.balance(wallet_account(user.id)) == 1000 - 25
            assert len(await other.entries(wallet_account(user.id))) == 26
        assert check(await other.snapshot()).ok
    finally:
        await other.close()


async def test_a_failing_writer_in_a_batch_leaves_the_others_alone(store: LedgerStore) -> None:
    rich, poor = await new_user(store), await new_user(store)
    await top_up(store, rich.id, 100)
    await top_up(store, poor.id, 10)

    async def attempt(user_id: str, amount: int) -> str:
        try:
            await pay(store, user_id, amount)
        except InsufficientFunds:
            return "refused"
        return "paid"

    # Interleaved so that refused and accepted payments share the same batches.
    plan = [(rich.id, 1), (poor.id, 50)] * 20 + [(poor.id, 1)] * 5
    outcomes = await asyncio.gather(*(attempt(u, a) for u, a in plan))

    assert outcomes.count("refused") == 20
    assert outcomes.count("paid") == 25
    assert await store.balance(wallet_account(rich.id)) == 80
    assert await store.balance(wallet_account(poor.id)) == 5
    # The refused payments left nothing behind: no journal, no posting, no balance change.
    assert len(await store.entries(wallet_account(poor.id))) == 6
    assert check(await store.snapshot()).ok


async def test_a_unique_key_clash_in_a_batch_is_reported_and_isolated(store: LedgerStore) -> None:
    """Two users with one phone number in the same batch: one commits, one gets PhoneTaken."""
    first = await new_user(store)
    taken = await asyncio.gather(
        *(new_user(store) for _ in range(5)),
        store.add_user(first, "hash"),
        return_exceptions=True,
    )
    assert isinstance(taken[-1], PhoneTaken)
    assert all(not isinstance(t, BaseException) for t in taken[:-1])
    assert await store.get_user(first.id) is not None


async def test_sqlite_writes_share_commits(tmp_path: Path) -> None:
    """SQLite batches concurrent writers into fewer COMMITs (the point of group commit)."""
    url = f"sqlite:///{tmp_path / 'group.db'}"
    await migrate(url)
    store = await open_store(url)
    try:
        assert isinstance(store, SqlStore)
        user = await new_user(store)
        await top_up(store, user.id, 1000)
        assert isinstance(store.access, SqliteAccess)
        writer = store.access.group
        before_commits, before_committed = writer.commits, writer.committed
        await asyncio.gather(*(pay(store, user.id, 1) for _ in range(50)))
        assert writer.committed - before_committed == 50
        assert writer.commits - before_commits < 50
        assert await store.balance(wallet_account(user.id)) == 950
    finally:
        await store.close()


async def test_sqlite_hot_path_stores_timestamps_as_sqlalchemy_does(tmp_path: Path) -> None:
    """The raw sqlite3 journal path writes created_at in SQLAlchemy's text form (microseconds
    always present), so every row sorts and parses alike whichever path wrote it."""
    url = f"sqlite:///{tmp_path / 'times.db'}"
    await migrate(url)
    store = await open_store(url)
    try:
        user = await new_user(store)
        on_the_second = datetime(2026, 11, 30, 8, 0, 0, tzinfo=UTC)
        await store.post_journal(topup_journal(new_id(), user.id, 500, on_the_second))
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "times.db") as db:
        journal_times = {row[0] for row in db.execute("SELECT created_at FROM journals")}
        posting_times = {row[0] for row in db.execute("SELECT created_at FROM postings")}
        account_time = db.execute("SELECT created_at FROM accounts WHERE kind = 'wallet'")
        sqlalchemy_written = account_time.fetchone()[0]
    assert journal_times == posting_times == {"2026-11-30 08:00:00.000000"}
    assert len(sqlalchemy_written) == len("2026-11-30 08:00:00.000000")


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1000, 1, 1), timezones=st.just(UTC))
    | st.datetimes(min_value=datetime(1000, 1, 2), timezones=st.just(timezone(timedelta(hours=7))))
)
def test_sqlite_timestamp_text_is_sqlalchemys(moment: datetime) -> None:
    dialect = create_async_engine("sqlite+aiosqlite://").dialect
    column_type = postings.c.created_at.type.dialect_impl(dialect)
    to_text = column_type.bind_processor(dialect)
    assert to_text is not None
    assert sqlite_timestamp(moment) == to_text(moment)


async def test_a_priority_writer_goes_before_waiting_writers(tmp_path: Path) -> None:
    """Settlements (close_transfer) take the next turn on SQLite's shared writer, ahead of
    requests already waiting, so a transfer's credit does not queue behind new work."""
    url = f"sqlite:///{tmp_path / 'priority.db'}"
    await migrate(url)
    store = await open_store(url)
    try:
        assert isinstance(store, SqlStore)
        assert isinstance(store.access, SqliteAccess)
        writer = store.access.group
        order: list[str] = []

        async def write(name: str, priority: bool) -> None:
            async with writer.transaction(priority):
                order.append(name)

        holder, release = await hold_the_turn(writer)
        waiting = [asyncio.create_task(write(f"request {i}", False)) for i in range(3)]
        await asyncio.sleep(0)
        waiting += [asyncio.create_task(write(f"settlement {i}", True)) for i in range(2)]
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(holder, *waiting)
        assert order == ["settlement 0", "settlement 1", "request 0", "request 1", "request 2"]
        assert writer.committed >= 6
    finally:
        await store.close()
