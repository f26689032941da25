"""The SQL implementation of the storage port (SQLite and PostgreSQL), on SQLAlchemy Core."""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from enum import Enum
from types import SimpleNamespace
from typing import Any, NoReturn

import asyncpg
from sqlalchemy import (
    Integer,
    Row,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from dompet.domain.errors import (
    AccountBlocked,
    AccountNotFound,
    AccountNumberTaken,
    DomainError,
    IdempotencyConflict,
    InsufficientFunds,
    NikTaken,
    NoHpTaken,
    OperatorTaken,
    PhoneTaken,
)
from dompet.domain.idempotency import (
    Claimed,
    ClaimOutcome,
    IdempotencyKey,
    ReplayJournal,
    ReplayResponse,
)
from dompet.domain.invariants import LedgerSnapshot
from dompet.domain.ledger import (
    AccountKind,
    Entry,
    EntryStatus,
    EntryType,
    Journal,
    JournalKind,
    Posting,
    is_customer_account,
    savings_account,
    wallet_account,
)
from dompet.domain.monitoring import SettledSample, WorkerHeartbeat
from dompet.domain.operators import Operator
from dompet.domain.records import (
    AccountRecord,
    DataRecord,
    JournalRecord,
    PostingRecord,
    UserRecord,
)
from dompet.domain.savings import Customer
from dompet.domain.transfers import Transfer, TransferStatus
from dompet.domain.users import Credentials, ProfileChanges, User
from dompet.storage.faults import StoreLimits
from dompet.storage.history_items import ItemRenderer, layout_fingerprint
from dompet.storage.port import ItemLayout, RenderedItems
from dompet.storage.sql import pg_journal
from dompet.storage.sql.account_order import account_slice
from dompet.storage.sql.batched_reads import ReadBatcher
from dompet.storage.sql.engine import (
    SQLITE_READERS,
    create_engines,
    is_sqlite,
    open_sqlite_reader,
    postgres_pool_size,
)
from dompet.storage.sql.group_commit import GroupCommitWriter
from dompet.storage.sql.priority import PriorityGate
from dompet.storage.sql.rendered_history import (
    entries_from,
    entry_status,
    misrendered_postings,
    postgresql_written_item,
    rendered_page,
    rendered_pages,
)
from dompet.storage.sql.tables import (
    Money,
    UtcDateTime,
    accounts,
    customers,
    idempotency_keys,
    journals,
    login_throttle,
    operators,
    postings,
    transfers,
    used_refresh_tokens,
    users,
    worker_heartbeats,
)

IN_FLIGHT = "A request with this Idempotency-Key is still being processed; retry later."
KEY_REUSED = "This Idempotency-Key was already used with a different request."


class SqlStore:
    """One store over SQLite or PostgreSQL. Every public method is one transaction."""

    def __init__(
        self,
        writer: AsyncEngine,
        reader: AsyncEngine,
        engine_name: str,
        history_layout: ItemLayout | None = None,
        limits: StoreLimits | None = None,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self.engine_name = engine_name
        # SQLite: one shared writer connection whose callers' transactions commit in groups.
        self._group = GroupCommitWriter(writer) if engine_name == "sqlite" else None
        # SQLite: reads in flight at once (FIFO). PostgreSQL: every checkout, read or write,
        # passes one pool-sized gate (FIFO, settlement first), so none waits in the pool.
        self._read_slots = asyncio.Semaphore(SQLITE_READERS) if engine_name == "sqlite" else None
        self._pg_gate = (
            PriorityGate(
                postgres_pool_size(),
                max_waiting=limits.max_waiting if limits else None,
                wait_timeout=limits.wait_timeout if limits else None,
            )
            if engine_name != "sqlite"
            else None
        )
        self._driver_selects: dict[tuple[Any, ...], _DriverSelect] = {}
        self._driver_time = _sqlite_utc if engine_name == "sqlite" else _naive_utc
        # SQLite: the hot reads' own connection (engine.open_sqlite_reader), opened on first use.
        self._hot_reader: sqlite3.Connection | None = None
        # wallet entries' history items, rendered as they are written (history_items.py)
        self._items = ItemRenderer(history_layout) if history_layout is not None else None
        self._pg_items = (
            (postgresql_written_item(history_layout, writer.dialect), self._items.fingerprint)
            if self._items is not None and engine_name == "postgresql"
            else None
        )
        # PostgreSQL: the history pages wanted at the same time go as one statement.
        self._page_batches: _PageBatches | None = (
            ReadBatcher(self._rendered_pages, in_flight=PAGE_BATCHES, most=PAGE_BATCH_SIZE)
            if engine_name == "postgresql"
            else None
        )

    @classmethod
    async def open(
        cls,
        database_url: str,
        history_layout: ItemLayout | None = None,
        limits: StoreLimits | None = None,
    ) -> SqlStore:
        writer, reader = create_engines(database_url, limits)
        engine_name = "sqlite" if is_sqlite(database_url) else "postgresql"
        return cls(writer, reader, engine_name, history_layout, limits)

    async def close(self) -> None:
        if self._page_batches is not None:
            await self._page_batches.close()
        if self._hot_reader is not None:
            self._hot_reader.close()
            self._hot_reader = None
        if self._group is not None:
            await self._group.close()
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()

    async def ping(self) -> None:
        if self._group is not None:
            self._group.raise_if_broken()  # writes refused until a restart: not healthy
        async with self._reader.connect() as conn:
            await conn.execute(select(literal(1)))

    def _write(self, priority: bool = False) -> AbstractAsyncContextManager[AsyncConnection]:
        """One write transaction; it has committed (durably) when the block has exited.

        ``priority`` (SQLite): take the shared writer's next turn before waiting requests --
        for settlements, so the credit of an accepted transfer does not queue behind new work.
        """
        if self._group is not None:
            return self._group.transaction(priority)
        return self._pg_write(priority)

    @asynccontextmanager
    async def _pg_write(self, priority: bool) -> AsyncIterator[AsyncConnection]:
        """PostgreSQL: a write transaction, through the gate (``priority``: served first)."""
        assert self._pg_gate is not None
        async with self._pg_gate.slot(priority), self._writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self._read_slot(), self._reader.connect() as conn:  # FIFO: no starvation
            yield conn

    def _read_slot(self) -> AbstractAsyncContextManager[Any]:
        """The right to check a reader connection out (see ``__init__``)."""
        if self._pg_gate is not None:
            return self._pg_gate.slot()
        assert self._read_slots is not None
        return self._read_slots

    def _sqlite_reader(self) -> sqlite3.Connection:
        """SQLite: the hot reads' connection (statements run inline on the loop thread)."""
        if self._hot_reader is None:
            self._hot_reader = open_sqlite_reader(self._reader.url)
        return self._hot_reader

    @asynccontextmanager
    async def _read_driver(self) -> AsyncIterator[Any]:
        """PostgreSQL: a read slot and a pooled connection's driver connection (asyncpg).

        For the hot reads that skip SQLAlchemy's execution layer (see ``_driver_rows``): half
        the cost of ``_read`` per call. Back to the pool (reset) after; dropped on an error.
        """
        async with self._read_slot():
            pooled = await self._reader.raw_connection()
            try:
                yield pooled.driver_connection
            except BaseException:
                await greenlet_spawn(pooled.invalidate)
                raise
            finally:
                await greenlet_spawn(pooled.close)

    # -- wallet users ------------------------------------------------------------------------
    async def add_user(self, user: User, pin_hash: str) -> None:
        try:
            async with self._write() as conn:
                await conn.execute(
                    insert(users).values(
                        id=user.id,
                        first_name=user.first_name,
                        last_name=user.last_name,
                        phone_number=user.phone_number,
                        address=user.address,
                        pin_hash=pin_hash,
                        created_at=user.created_at,
                        updated_at=user.updated_at,
                    )
                )
                await self._open_account(
                    conn, wallet_account(user.id), AccountKind.WALLET, user.created_at
                )
        except IntegrityError as exc:
            raise PhoneTaken() from exc

    async def find_credentials(self, phone_number: str) -> Credentials | None:
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(users.c.id, users.c.pin_hash).where(users.c.phone_number == phone_number)
                )
            ).first()
        return Credentials(user_id=row.id, pin_hash=row.pin_hash) if row else None

    async def get_user(self, user_id: str) -> User | None:
        if self._group is None:  # PostgreSQL: straight to the driver (a hot read)
            async with self._pg_raw() as raw:
                record = await raw.fetchrow(_PG_GET_USER, user_id)
            return _user(_pg_row(record)) if record else None
        row = self._sqlite_row(_SQLITE_GET_USER, user_id)
        return _user(row) if row else None

    async def update_profile(
        self, user_id: str, changes: ProfileChanges, now: datetime
    ) -> User | None:
        async with self._write() as conn:
            row = (
                await conn.execute(
                    update(users)
                    .where(users.c.id == user_id)
                    .values(**changes.as_dict(), updated_at=now)
                    .returning(*users.c)
                )
            ).first()
        return _user(row) if row else None

    # -- login throttling and refresh tokens -------------------------------------------------
    async def login_locked_until(self, phone_number: str) -> datetime | None:
        async with self._read() as conn:
            value: datetime | None = (
                await conn.execute(
                    select(login_throttle.c.locked_until).where(
                        login_throttle.c.phone_number == phone_number
                    )
                )
            ).scalar_one_or_none()
        return value

    async def record_login_failure(
        self, phone_number: str, now: datetime, max_failures: int, lock_for: timedelta
    ) -> datetime | None:
        # While a lock is active nothing is counted: failures racing with the one that set the
        # lock neither extend it nor count towards the next one.
        locked = and_(
            login_throttle.c.locked_until.is_not(None), login_throttle.c.locked_until > now
        )
        async with self._write() as conn:
            upsert = self._insert(login_throttle).values(
                phone_number=phone_number, failures=1, locked_until=None
            )
            row = (
                await conn.execute(
                    upsert.on_conflict_do_update(
                        index_elements=[login_throttle.c.phone_number],
                        set_={
                            "failures": case(
                                (locked, login_throttle.c.failures),
                                else_=login_throttle.c.failures + 1,
                            )
                        },
                    ).returning(login_throttle.c.failures, login_throttle.c.locked_until)
                )
            ).one()
            if row.locked_until is not None and row.locked_until > now:
                return None
            if row.failures < max_failures:
                return None
            locked_until = now + lock_for
            await conn.execute(
                update(login_throttle)
                .where(login_throttle.c.phone_number == phone_number)
                .values(failures=0, locked_until=locked_until)
            )
            return locked_until

    async def clear_login_failures(self, phone_number: str) -> None:
        async with self._write() as conn:
            await conn.execute(
                delete(login_throttle).where(login_throttle.c.phone_number == phone_number)
            )

    async def consume_refresh_token(self, jti: str, user_id: str, expires_at: datetime) -> bool:
        try:
            async with self._write() as conn:
                await conn.execute(
                    insert(used_refresh_tokens).values(
                        jti=jti, user_id=user_id, expires_at=expires_at
                    )
                )
        except IntegrityError:
            return False
        return True

    # -- savings customers -------------------------------------------------------------------
    async def add_customer(self, customer: Customer) -> None:
        try:
            async with self._write() as conn:
                await conn.execute(
                    insert(customers).values(
                        id=customer.id,
                        nama=customer.nama,
                        nik=customer.nik,
                        no_hp=customer.no_hp,
                        no_rekening=customer.no_rekening,
                        created_at=customer.created_at,
                    )
                )
                await self._open_account(
                    conn,
                    savings_account(customer.no_rekening),
                    AccountKind.SAVINGS,
                    customer.created_at,
                )
        except IntegrityError as exc:
            async with self._read() as conn:
                taken = (
                    await conn.execute(
                        select(customers.c.nik, customers.c.no_hp).where(
                            or_(
                                customers.c.nik == customer.nik, customers.c.no_hp == customer.no_hp
                            )
                        )
                    )
                ).all()
            if any(row.nik == customer.nik for row in taken):
                raise NikTaken() from exc
            if taken:
                raise NoHpTaken() from exc
            raise AccountNumberTaken() from exc

    async def get_customer(self, no_rekening: str) -> Customer | None:
        async with self._read() as conn:
            row = (
                await conn.execute(select(customers).where(customers.c.no_rekening == no_rekening))
            ).first()
        if row is None:
            return None
        return Customer(
            id=row.id,
            nama=row.nama,
            nik=row.nik,
            no_hp=row.no_hp,
            no_rekening=row.no_rekening,
            created_at=row.created_at,
        )

    # -- the ledger --------------------------------------------------------------------------
    async def post_journal(
        self, journal: Journal, idem: IdempotencyKey | None = None
    ) -> list[Entry]:
        if self._group is None:  # PostgreSQL: one statement
            entries = await self._pg_journal(journal, idem=idem)
            assert entries is not None
            return entries
        # SQLite: a job on the shared writer (group_commit.py)
        return await self._group.run(
            functools.partial(self._post_sqlite, journal, idem, None),
            savepoint=_needs_savepoint(journal),
        )

    async def open_transfer(
        self, transfer: Transfer, journal: Journal, idem: IdempotencyKey | None = None
    ) -> list[Entry]:
        if self._group is None:  # PostgreSQL: one statement, with the transfer row
            entries = await self._pg_journal(journal, transfer=transfer, idem=idem)
            assert entries is not None
            return entries
        return await self._group.run(
            functools.partial(self._post_sqlite, journal, idem, transfer),
            savepoint=_needs_savepoint(journal),
        )

    async def close_transfer(
        self, transfer_id: str, status: TransferStatus, journal: Journal, now: datetime
    ) -> bool:
        if self._group is None:  # PostgreSQL: one statement, the flip with the journal
            closed = await self._pg_journal(journal, close=(transfer_id, status, now), urgent=True)
            return closed is not None
        # SQLite: settlement goes first
        return await self._group.run(
            functools.partial(self._close_sqlite, transfer_id, status, journal, now), priority=True
        )

    def _post_sqlite(
        self,
        journal: Journal,
        idem: IdempotencyKey | None,
        transfer: Transfer | None,
        raw: sqlite3.Connection,
    ) -> list[Entry]:
        """The job of ``post_journal`` / ``open_transfer`` on SQLite's shared writer: every
        check that may refuse it comes before its first change (see ``_apply_sqlite``)."""
        if idem is not None:
            _check_unanswered(raw, idem)
        entries = self._apply_sqlite(raw, journal)
        if transfer is not None:
            self._insert_transfer_sqlite(raw, transfer)
        if idem is not None:
            _answer_with_journal(raw, idem, journal.id)
        return entries

    def _close_sqlite(
        self,
        transfer_id: str,
        status: TransferStatus,
        journal: Journal,
        now: datetime,
        raw: sqlite3.Connection,
    ) -> bool:
        """The job of ``close_transfer`` on SQLite: the flip, then (if it flipped) the journal."""
        if self._close_transfer_sqlite(raw, transfer_id, status, now) != 1:
            return False
        self._apply_sqlite(raw, journal)
        return True

    def _sqlite_row(self, sql: str, *args: Any) -> Any:
        """SQLite: the one row of a single-statement read, as attributes (timestamps aware
        UTC, as tables.UtcDateTime gives them), on the hot reads' connection."""
        cursor = self._sqlite_reader().execute(sql, args)
        row = cursor.fetchone()
        names = [column[0] for column in cursor.description]
        cursor.close()
        if row is None:
            return None
        return SimpleNamespace(
            **{
                name: _sqlite_utc(value) if name in _TIME_COLUMNS and value is not None else value
                for name, value in zip(names, row, strict=True)
            }
        )

    def _insert_transfer_sqlite(self, raw: sqlite3.Connection, transfer: Transfer) -> None:
        """The transfer row, on SQLite's shared writer (see ``_apply_sqlite``)."""
        at = self._timestamp(transfer.created_at)
        raw.execute(
            _SQLITE_INSERT_TRANSFER,
            (
                transfer.id,
                transfer.sender_id,
                transfer.target_id,
                transfer.amount,
                transfer.remarks,
                TransferStatus.PENDING.value,
                at,
                at,
            ),
        )

    def _close_transfer_sqlite(
        self, raw: sqlite3.Connection, transfer_id: str, status: TransferStatus, now: datetime
    ) -> int:
        """Flip a PENDING transfer to ``status``; how many rows changed (0 or 1)."""
        cursor = raw.execute(
            _SQLITE_CLOSE_TRANSFER,
            (status.value, self._timestamp(now), transfer_id, TransferStatus.PENDING.value),
        )
        return cursor.rowcount

    async def get_transfer(self, transfer_id: str) -> Transfer | None:
        if self._group is None:  # PostgreSQL: straight to the driver (each settlement reads)
            async with self._pg_raw(urgent=True) as raw:
                record = await raw.fetchrow(_PG_GET_TRANSFER, transfer_id)
            return _transfer(_pg_row(record)) if record else None
        row = self._sqlite_row(_SQLITE_GET_TRANSFER, transfer_id)
        return _transfer(row) if row else None

    async def claim_due_transfers(
        self, worker_id: str, now: datetime, lease: timedelta, limit: int
    ) -> list[Transfer]:
        due = (
            select(transfers.c.id)
            .where(
                transfers.c.status == TransferStatus.PENDING,
                transfers.c.next_attempt_at <= now,
                or_(transfers.c.claimed_until.is_(None), transfers.c.claimed_until < now),
            )
            .order_by(transfers.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._write() as conn:
            rows = (
                await conn.execute(
                    update(transfers)
                    .where(transfers.c.id.in_(due.scalar_subquery()))
                    .values(claimed_by=worker_id, claimed_until=now + lease)
                    .returning(*transfers.c)
                )
            ).all()
        return sorted((_transfer(r) for r in rows), key=lambda t: t.created_at)

    async def record_settlement_failure(
        self, transfer_id: str, error: str, next_attempt_at: datetime
    ) -> Transfer | None:
        async with self._write() as conn:
            row = (
                await conn.execute(
                    update(transfers)
                    .where(
                        transfers.c.id == transfer_id, transfers.c.status == TransferStatus.PENDING
                    )
                    .values(
                        attempts=transfers.c.attempts + 1,
                        last_error=error[:2000],
                        next_attempt_at=next_attempt_at,
                        claimed_by=None,
                        claimed_until=None,
                    )
                    .returning(*transfers.c)
                )
            ).first()
        return _transfer(row) if row else None

    async def retry_transfer_now(self, transfer_id: str, now: datetime) -> bool:
        async with self._write() as conn:
            result = await conn.execute(
                update(transfers)
                .where(transfers.c.id == transfer_id, transfers.c.status == TransferStatus.PENDING)
                .values(next_attempt_at=now, claimed_by=None, claimed_until=None)
            )
        return result.rowcount == 1

    async def set_account_blocked(self, account_id: str, blocked: bool) -> bool:
        async with self._write() as conn:
            result = await conn.execute(
                update(accounts)
                .where(accounts.c.id == account_id, accounts.c.kind != AccountKind.SYSTEM)
                .values(blocked=blocked)
            )
        return result.rowcount == 1

    async def balance(self, account_id: str) -> int | None:
        async with self._read() as conn:
            value: int | None = (
                await conn.execute(select(accounts.c.balance).where(accounts.c.id == account_id))
            ).scalar_one_or_none()
        return value

    async def entries(
        self,
        account_id: str,
        *,
        limit: int | None = None,
        before: int | None = None,
        oldest_first: bool = False,
    ) -> list[Entry]:
        page = self._driver_select(
            _entries_page, self.engine_name, before is not None, oldest_first, limit is not None
        )
        rows = await self._driver_rows(page, _page_params(account_id, limit, before))
        return _entries(rows, account_id, self._driver_time)

    async def render_entries(
        self,
        account_id: str,
        user_id: str,
        layout: ItemLayout,
        *,
        limit: int | None = None,
        before: int | None = None,
    ) -> RenderedItems | None:
        if self._page_batches is not None and limit is not None:
            return await self._page_batches.read((layout, limit), (account_id, user_id, before))
        return await self._rendered_page(layout, limit, (account_id, user_id, before))

    async def _rendered_page(
        self, layout: ItemLayout, limit: int | None, page: _PageWanted
    ) -> RenderedItems | None:
        """One history page (or all of it), one statement."""
        account_id, user_id, before = page
        query = self._driver_select(
            rendered_page, layout, self.engine_name, before is not None, limit is not None
        )
        params = _page_params(
            account_id, limit, before, user_id=user_id, item_layout=layout_fingerprint(layout)
        )
        rows = await self._driver_rows(query, params)
        items = [row[1] for row in rows]
        if None in items:  # an entry dated outside DISPLAY_RANGE
            return None
        body = ("[" + ",".join(items) + "]").encode()
        return RenderedItems(body, len(rows), rows[-1][0] if rows else None)

    async def _rendered_pages(
        self, shape: tuple[ItemLayout, int], pages: list[_PageWanted]
    ) -> list[RenderedItems | None]:
        """PostgreSQL: the pages of one layout and size that ``render_entries`` was asked for
        at the same time, in one statement (``batched_reads.py``); a page alone as above."""
        layout, limit = shape
        if len(pages) == 1:
            return [await self._rendered_page(layout, limit, pages[0])]
        account_ids, user_ids, befores = zip(*pages, strict=True)
        params = {
            "account_ids": list(account_ids),
            "user_ids": list(user_ids),
            "befores": list(befores),
            "limit": limit,
            "item_layout": layout_fingerprint(layout),
        }
        rows = await self._driver_rows(self._driver_select(rendered_pages, layout), params)
        by_page = {row[0]: row for row in rows}
        return [_rendered(by_page[number]) for number in range(1, len(pages) + 1)]

    async def entry_of_journal(self, journal_id: str, account_id: str) -> Entry | None:
        query = self._driver_select(_journal_entry_query)
        rows = await self._driver_rows(query, {"journal_id": journal_id, "account_id": account_id})
        return _entries(rows, account_id, self._driver_time)[0] if rows else None

    def _driver_select(self, build: Callable[..., Any], *shape: Hashable) -> _DriverSelect:
        """``build(*shape)``'s select, compiled once for this store's dialect."""
        key = (build, *shape)
        found = self._driver_selects.get(key)
        if found is None:
            found = self._driver_selects[key] = _DriverSelect(build(*shape), self._reader.dialect)
        return found

    async def _driver_rows(
        self, query: _DriverSelect, params: dict[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """Run ``query`` on a driver connection: bare rows, no SQLAlchemy result layer.

        For the hot reads (a history page or all of it) SQLAlchemy's per-row processing cost
        more than the query itself. One statement, so it needs no transaction of its own.
        """
        args = query.arguments(params)
        if self.engine_name == "sqlite":  # inline on the loop thread: it never waits (WAL)
            return self._sqlite_reader().execute(query.sql, args).fetchall()
        async with self._read_driver() as driver:
            records: Sequence[Sequence[Any]] = await driver.fetch(query.sql, *args)  # asyncpg
        return records

    async def snapshot(self) -> LedgerSnapshot:
        previous_after = (
            func.lag(postings.c.balance_after)
            .over(partition_by=postings.c.account_id, order_by=postings.c.id)
            .label("previous_after")
        )
        chained = (
            select(postings.c.account_id, postings.c.balance_before, previous_after)
            .where(postings.c.balance_before.is_not(None))
            .subquery()
        )
        async with self._reader.connect() as conn:
            if self.engine_name == "postgresql":
                await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                balances = (
                    await conn.execute(
                        select(accounts.c.id, accounts.c.balance).where(
                            accounts.c.kind != AccountKind.SYSTEM
                        )
                    )
                ).all()
                sums = (
                    await conn.execute(
                        select(postings.c.account_id, func.sum(postings.c.amount)).group_by(
                            postings.c.account_id
                        )
                    )
                ).all()
                pending = (
                    await conn.execute(
                        select(func.coalesce(func.sum(transfers.c.amount), 0)).where(
                            transfers.c.status == TransferStatus.PENDING
                        )
                    )
                ).scalar_one()
                broken_entries = (
                    (
                        await conn.execute(
                            select(postings.c.id).where(
                                postings.c.balance_before.is_not(None),
                                postings.c.balance_after
                                != postings.c.balance_before + postings.c.amount,
                            )
                        )
                    )
                    .scalars()
                    .all()
                )
                broken_chains = (
                    (
                        await conn.execute(
                            select(chained.c.account_id)
                            .where(
                                chained.c.balance_before
                                != func.coalesce(chained.c.previous_after, 0)
                            )
                            .distinct()
                        )
                    )
                    .scalars()
                    .all()
                )
                unbalanced = (
                    (
                        await conn.execute(
                            select(postings.c.journal_id)
                            .group_by(postings.c.journal_id)
                            .having(func.sum(postings.c.amount) != 0)
                        )
                    )
                    .scalars()
                    .all()
                )
                misjournaled = await self._misjournaled_transfers(conn)
                miscopied = (
                    (
                        await conn.execute(
                            select(postings.c.id)
                            .join(journals, journals.c.id == postings.c.journal_id)
                            .where(
                                or_(
                                    postings.c.kind != journals.c.kind,
                                    postings.c.reference != journals.c.reference,
                                    postings.c.remarks != journals.c.remarks,
                                )
                            )
                            .order_by(postings.c.id)
                        )
                    )
                    .scalars()
                    .all()
                )
                misrendered: Sequence[int] = []
                if self._items is not None:
                    query = misrendered_postings(self._items.layout, self.engine_name)
                    misrendered = (await conn.execute(query)).scalars().all()
        return LedgerSnapshot(
            customer_balances={r.id: int(r.balance) for r in balances},
            posting_sums={r[0]: int(r[1]) for r in sums},
            pending_transfer_total=int(pending),
            broken_entries=[str(e) for e in broken_entries],
            broken_chains=list(broken_chains),
            unbalanced_journals=list(unbalanced),
            misjournaled_transfers=misjournaled,
            miscopied_entries=[str(e) for e in miscopied],
            misrendered_entries=[str(e) for e in misrendered],
        )

    # -- idempotency keys --------------------------------------------------------------------
    async def claim_idempotency(
        self, key: IdempotencyKey, now: datetime, ttl: timedelta, stale_after: timedelta
    ) -> ClaimOutcome:
        if self._group is None and await self._pg_claim_new_key(key, now, ttl):
            return Claimed()
        where = and_(idempotency_keys.c.scope == key.scope, idempotency_keys.c.key == key.key)
        try:
            async with self._write() as conn:
                row = (
                    await conn.execute(select(idempotency_keys).where(where).with_for_update())
                ).first()
                if row is not None and row.expires_at <= now:
                    await conn.execute(delete(idempotency_keys).where(where))
                    row = None
                if row is None:
                    await conn.execute(
                        insert(idempotency_keys).values(
                            scope=key.scope,
                            key=key.key,
                            fingerprint=key.fingerprint,
                            journal_id=None,
                            response_status=None,
                            response_body=None,
                            created_at=now,
                            expires_at=now + ttl,
                        )
                    )
                    return Claimed()
                if row.fingerprint != key.fingerprint:
                    raise IdempotencyConflict(KEY_REUSED)
                if row.journal_id is not None:
                    return ReplayJournal(journal_id=row.journal_id)
                if row.response_status is not None:
                    return ReplayResponse(status=row.response_status, body=row.response_body)
                if row.created_at > now - stale_after:
                    raise IdempotencyConflict(IN_FLIGHT)
                # The first request died without moving money: the key is free again.
                await conn.execute(update(idempotency_keys).where(where).values(created_at=now))
                return Claimed()
        except IntegrityError as exc:  # a concurrent first use won the insert
            raise IdempotencyConflict(IN_FLIGHT) from exc

    async def answer_idempotency(self, key: IdempotencyKey, status: int, body: bytes) -> None:
        async with self._write() as conn:
            await conn.execute(
                update(idempotency_keys)
                .where(
                    idempotency_keys.c.scope == key.scope,
                    idempotency_keys.c.key == key.key,
                    idempotency_keys.c.journal_id.is_(None),
                )
                .values(response_status=status, response_body=body)
            )

    async def release_idempotency(self, key: IdempotencyKey) -> None:
        async with self._write() as conn:
            await conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.scope == key.scope,
                    idempotency_keys.c.key == key.key,
                    idempotency_keys.c.journal_id.is_(None),
                    idempotency_keys.c.response_status.is_(None),
                )
            )

    # -- monitoring ---------------------------------------------------------------------------
    async def transfer_counts(self) -> dict[TransferStatus, int]:
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(transfers.c.status, func.count()).group_by(transfers.c.status)
                )
            ).all()
        counts = dict.fromkeys(TransferStatus, 0)
        counts.update({TransferStatus(r[0]): int(r[1]) for r in rows})
        return counts

    async def oldest_pending_created_at(self) -> datetime | None:
        async with self._read() as conn:
            value: datetime | None = (
                await conn.execute(
                    select(transfers.c.created_at)
                    .where(transfers.c.status == TransferStatus.PENDING)
                    .order_by(transfers.c.created_at)
                    .limit(1)
                )
            ).scalar_one_or_none()
        return value

    async def settled_since(self, since: datetime, limit: int = 10000) -> list[SettledSample]:
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(
                        transfers.c.id,
                        transfers.c.status,
                        transfers.c.created_at,
                        transfers.c.settled_at,
                    )
                    .where(transfers.c.settled_at >= since)
                    .order_by(transfers.c.settled_at.desc())
                    .limit(limit)
                )
            ).all()
        return [SettledSample(r.id, r.status, r.created_at, r.settled_at) for r in rows]

    async def troubled_transfers(self, limit: int = 50) -> list[Transfer]:
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(transfers)
                    .where(
                        or_(
                            transfers.c.status == TransferStatus.FAILED,
                            and_(
                                transfers.c.status == TransferStatus.PENDING,
                                transfers.c.attempts > 0,
                            ),
                        )
                    )
                    .order_by(transfers.c.created_at.desc())
                    .limit(limit)
                )
            ).all()
        return [_transfer(r) for r in rows]

    async def record_heartbeat(self, heartbeat: WorkerHeartbeat) -> None:
        values = {
            "kind": heartbeat.kind,
            "started_at": heartbeat.started_at,
            "last_seen_at": heartbeat.last_seen_at,
            "settled": heartbeat.settled,
            "failed": heartbeat.failed,
            "info": json.dumps(heartbeat.info),
        }
        async with self._write() as conn:
            await conn.execute(
                self._insert(worker_heartbeats)
                .values(worker_id=heartbeat.worker_id, **values)
                .on_conflict_do_update(index_elements=[worker_heartbeats.c.worker_id], set_=values)
            )

    async def heartbeats(self) -> list[WorkerHeartbeat]:
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(worker_heartbeats).order_by(worker_heartbeats.c.last_seen_at.desc())
                )
            ).all()
        return [
            WorkerHeartbeat(
                worker_id=r.worker_id,
                kind=r.kind,
                started_at=r.started_at,
                last_seen_at=r.last_seen_at,
                settled=r.settled,
                failed=r.failed,
                info=json.loads(r.info),
            )
            for r in rows
        ]

    async def release_claims(self, worker_id: str) -> int:
        async with self._write() as conn:
            result = await conn.execute(
                update(transfers)
                .where(
                    transfers.c.claimed_by == worker_id,
                    transfers.c.status == TransferStatus.PENDING,
                )
                .values(claimed_by=None, claimed_until=None)
            )
        return int(result.rowcount)

    # -- dashboard operators (issue 4) --------------------------------------------------------
    async def add_operator(self, operator: Operator) -> None:
        try:
            async with self._write() as conn:
                await conn.execute(
                    insert(operators).values(
                        username=operator.username,
                        password_hash=operator.password_hash,
                        created_at=operator.created_at,
                    )
                )
        except IntegrityError as exc:
            raise OperatorTaken(operator.username) from exc

    async def find_operator(self, username: str) -> Operator | None:
        async with self._read() as conn:
            row = (
                await conn.execute(select(operators).where(operators.c.username == username))
            ).first()
        if row is None:
            return None
        return Operator(row.username, row.password_hash, row.created_at)

    # -- scale-out dispatch (issue 4) ---------------------------------------------------------
    async def overdue_transfers(self, due_before: datetime, limit: int) -> list[Transfer]:
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(transfers)
                    .where(
                        transfers.c.status == TransferStatus.PENDING,
                        transfers.c.next_attempt_at <= due_before,
                    )
                    .order_by(transfers.c.next_attempt_at)
                    .limit(limit)
                )
            ).all()
        return [_transfer(r) for r in rows]

    # -- internals ---------------------------------------------------------------------------
    def _insert(self, table: Any) -> Any:
        if self.engine_name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    async def _open_account(
        self, conn: AsyncConnection, account_id: str, kind: AccountKind, now: datetime
    ) -> None:
        await conn.execute(
            insert(accounts).values(
                id=account_id, kind=kind, balance=0, blocked=False, created_at=now
            )
        )

    @staticmethod
    def _timestamp(moment: datetime) -> str:
        """A UtcDateTime as SQLAlchemy stores it on SQLite, for the raw sqlite3 hot path:
        naive UTC text with microseconds always, 'YYYY-MM-DD HH:MM:SS.ffffff' (the same text,
        not sqlite3's own datetime adapter)."""
        if moment.tzinfo is not UTC:
            moment = moment.astimezone(UTC)
        return moment.replace(tzinfo=None).isoformat(" ", "microseconds")

    def _apply_sqlite(self, raw: sqlite3.Connection, journal: Journal) -> list[Entry]:
        """Write the journal on SQLite's shared writer, guarding and changing each customer
        balance in one statement: raw sqlite3 statements (they run on this thread anyway,
        microseconds each), without SQLAlchemy's per-statement execution machinery -- most of
        a payment's CPU time. (PostgreSQL writes a journal in one statement: pg_journal.py.)

        The guarded balance changes come first, so that a refusal of a journal with one
        customer posting changes nothing (its job needs no SAVEPOINT: ``_needs_savepoint``);
        then the journal and its postings, which only a broken database would refuse.
        """
        at = self._timestamp(journal.created_at)
        copied = (journal.kind.value, journal.reference, journal.remarks)  # onto each posting
        try:
            moved: list[tuple[Posting, int]] = []
            system_rows: list[tuple[Any, ...]] = []
            for posting in journal.postings:
                if not is_customer_account(posting.account_id):
                    no_balance = (journal.id, posting.account_id, posting.amount, None, None, at)
                    system_rows.append((*no_balance, *copied, None, None))  # no history item
                    continue
                sql = _SQLITE_MOVE_BALANCE[(posting.amount < 0, posting.require_active)]
                params: tuple[Any, ...] = (posting.amount, posting.account_id)
                if posting.amount < 0:
                    params += (-posting.amount,)
                rows = raw.execute(sql, params).fetchall()
                if not rows:
                    _explain_sqlite_refusal(raw, posting.account_id)
                moved.append((posting, int(rows[0][0])))
            raw.execute(_SQLITE_INSERT_JOURNAL, (journal.id, *copied, at))
            entries: list[Entry] = []
            for posting, after in moved:
                before = after - posting.amount
                item = self._item(
                    journal.kind,
                    journal.reference,
                    journal.remarks,
                    posting.account_id,
                    posting.amount,
                    before,
                    after,
                    journal.created_at,
                )
                row = (journal.id, posting.account_id, posting.amount, before, after, at)
                sequence = raw.execute(_SQLITE_INSERT_POSTING, (*row, *copied, *item)).lastrowid
                assert sequence is not None
                entries.append(
                    _new_entry(journal, sequence, posting.account_id, posting.amount, before)
                )
            if system_rows:
                raw.executemany(_SQLITE_INSERT_POSTING, system_rows)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(_SQLITE_INSERT_JOURNAL, None, exc) from exc
        return entries

    def _item(
        self,
        kind: JournalKind,
        reference: str,
        remarks: str,
        account_id: str,
        amount: int,
        before: int | None,
        after: int | None,
        created_at: datetime,
    ) -> tuple[str, int] | tuple[None, None]:
        """A posting's ``(item, item_layout)``: its history item and the layout's fingerprint
        when the store renders it as it is written (``history_items.ItemRenderer``)."""
        if self._items is None or before is None or after is None:
            return None, None
        item = self._items.render(
            kind, reference, account_id, amount, remarks, before, after, created_at
        )
        return (item, self._items.fingerprint) if item is not None else (None, None)

    async def _pg_journal(
        self,
        journal: Journal,
        *,
        transfer: Transfer | None = None,
        close: tuple[str, TransferStatus, datetime] | None = None,
        idem: IdempotencyKey | None = None,
        urgent: bool = False,
    ) -> list[Entry] | None:
        """Write ``journal`` (+ the transfer row / the transfer's flip / the idempotency
        answer) in one statement; None when ``close`` found the transfer no longer PENDING.

        With at most one customer posting the statement runs alone (autocommit: atomic by
        itself, one round trip); otherwise in a transaction that a refusal rolls back.
        """
        option = pg_journal.OPEN if transfer else pg_journal.CLOSE if close else None
        shape = pg_journal.shape_of(journal, option, idem is not None, self._pg_items)
        args = pg_journal.parameters(journal, transfer=transfer, close=close, idem=idem)
        if len(shape.customers) > 1:
            async with self._write() as conn:
                row = await self._pg_execute(conn, shape, args)
                return await self._pg_answer(conn, journal, shape, row)
        async with self._pg_raw(urgent) as raw:
            try:
                row = await raw.fetchrow(pg_journal.statement(shape), *args)
            except asyncpg.IntegrityConstraintViolationError as exc:
                raise IntegrityError(pg_journal.statement(shape), None, exc) from exc
        return await self._pg_answer(None, journal, shape, row)

    @asynccontextmanager
    async def _pg_raw(self, urgent: bool = False) -> AsyncIterator[Any]:
        """PostgreSQL: a pooled asyncpg connection with no transaction open (autocommit), for
        single statements on hot paths, without SQLAlchemy's per-statement machinery.
        ``urgent``: settlement, served before other callers waiting for a connection."""
        assert self._pg_gate is not None
        async with self._pg_gate.slot(urgent), self._writer.connect() as conn:
            fairy = await conn.get_raw_connection()
            raw: Any = fairy.driver_connection
            try:
                yield raw
            except BaseException as exc:
                if raw.is_closed() or not isinstance(exc, Exception) or isinstance(exc, _BROKEN):
                    await conn.invalidate()  # cancelled or broken mid-statement: do not reuse
                raise

    async def _pg_claim_new_key(self, key: IdempotencyKey, now: datetime, ttl: timedelta) -> bool:
        """PostgreSQL: claim a key never seen before in one statement (autocommit). False
        when the key exists: ``claim_idempotency``'s transaction then decides."""
        async with self._pg_raw() as raw:
            inserted = await raw.fetchval(
                _PG_CLAIM_NEW_KEY,
                key.scope,
                key.key,
                key.fingerprint,
                pg_journal.naive_utc(now),
                pg_journal.naive_utc(now + ttl),
            )
        return inserted is not None

    async def _pg_execute(
        self, conn: AsyncConnection, shape: pg_journal.Shape, args: list[Any]
    ) -> Any:
        result = await conn.exec_driver_sql(pg_journal.statement(shape), tuple(args))
        return result.one()._mapping

    async def _pg_answer(
        self, conn: AsyncConnection | None, journal: Journal, shape: pg_journal.Shape, row: Any
    ) -> list[Entry] | None:
        """The entries written, or why nothing was (raised; None: the transfer was closed).

        ``conn`` is the statement's transaction, or None when it ran alone (autocommit).
        """
        if shape.option == pg_journal.CLOSE and not row["closable"]:
            return None
        if shape.idempotent and not row["claimable"]:
            raise IdempotencyConflict(IN_FLIGHT)
        customers, _ = pg_journal.split(journal)
        if not row["written"]:
            refused = next((p for i, p in enumerate(customers, 1) if row[f"b{i}"] is None), None)
            if refused is None:
                raise RuntimeError(f"journal {journal.id} was not written, for no known reason")
            if conn is not None:
                await self._explain_refusal(conn, refused.account_id)
            async with self._read() as reader:
                await self._explain_refusal(reader, refused.account_id)
        return [
            _new_entry(
                journal,
                int(row[f"s{i}"]),
                posting.account_id,
                posting.amount,
                int(row[f"b{i}"]) - posting.amount,
            )
            for i, posting in enumerate(customers, 1)
        ]

    async def _explain_refusal(self, conn: AsyncConnection, account_id: str) -> NoReturn:
        row = (
            await conn.execute(select(accounts.c.blocked).where(accounts.c.id == account_id))
        ).first()
        raise _refusal(account_id, row)

    async def _misjournaled_transfers(self, conn: AsyncConnection) -> list[str]:
        """Transfers whose journals do not match their status (see LedgerSnapshot)."""

        def count(kind: JournalKind) -> Any:
            return func.sum(case((journals.c.kind == kind, 1), else_=0))

        def expected(status: TransferStatus) -> Any:
            return case((transfers.c.status == status, 1), else_=0)

        query = (
            select(transfers.c.id)
            .select_from(transfers.outerjoin(journals, journals.c.reference == transfers.c.id))
            .group_by(transfers.c.id, transfers.c.status)
            .having(
                or_(
                    count(JournalKind.TRANSFER_OUT) != 1,
                    count(JournalKind.TRANSFER_SETTLE) != expected(TransferStatus.SUCCESS),
                    count(JournalKind.TRANSFER_REFUND) != expected(TransferStatus.FAILED),
                )
            )
        )
        return [str(r) for r in (await conn.execute(query)).scalars().all()]

    # -- whole-database export and import (example data, dump/load) ------------------------
    async def is_empty(self) -> bool:
        async with self._read() as conn:
            for table in (users, customers, journals, transfers):
                if (await conn.execute(select(literal(1)).select_from(table).limit(1))).first():
                    return False
        return True

    async def export_records(self) -> AsyncIterator[DataRecord]:
        async with self._reader.connect() as conn:
            if self.engine_name == "postgresql":
                await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                for row in await conn.execute(
                    select(accounts)
                    .where(accounts.c.kind != AccountKind.SYSTEM)
                    .order_by(accounts.c.id)
                ):
                    yield AccountRecord(
                        id=row.id,
                        kind=AccountKind(row.kind),
                        balance=int(row.balance),
                        blocked=bool(row.blocked),
                        created_at=row.created_at,
                    )
                for row in await conn.execute(select(users).order_by(users.c.id)):
                    yield UserRecord(user=_user(row), pin_hash=row.pin_hash)
                for row in await conn.execute(select(customers).order_by(customers.c.id)):
                    yield Customer(
                        id=row.id,
                        nama=row.nama,
                        nik=row.nik,
                        no_hp=row.no_hp,
                        no_rekening=row.no_rekening,
                        created_at=row.created_at,
                    )
                rows = await conn.stream(
                    select(
                        journals,
                        postings.c.id.label("sequence"),
                        postings.c.account_id,
                        postings.c.amount,
                        postings.c.balance_before,
                        postings.c.balance_after,
                        postings.c.created_at.label("posted_at"),
                    )
                    .join(postings, postings.c.journal_id == journals.c.id)
                    .order_by(journals.c.id, postings.c.id)
                )
                head: Any = None
                legs: list[PostingRecord] = []
                async for row in rows:
                    if head is not None and head.id != row.id:
                        yield _journal_record(head, legs)
                        legs = []
                    head = row
                    legs.append(
                        PostingRecord(
                            sequence=int(row.sequence),
                            account_id=row.account_id,
                            amount=int(row.amount),
                            balance_before=_int_or_none(row.balance_before),
                            balance_after=_int_or_none(row.balance_after),
                            created_at=row.posted_at,
                        )
                    )
                if head is not None:
                    yield _journal_record(head, legs)
                for row in await conn.execute(select(transfers).order_by(transfers.c.id)):
                    yield _transfer(row)

    async def import_records(self, records: Sequence[DataRecord]) -> None:
        try:
            async with self._write() as conn:
                for record in records:
                    await self._import_one(conn, record)
                if self.engine_name == "postgresql" and any(
                    isinstance(r, JournalRecord) for r in records
                ):
                    await conn.execute(
                        text(
                            "SELECT setval(pg_get_serial_sequence('postings', 'id'), "
                            "GREATEST((SELECT COALESCE(MAX(id), 0) FROM postings), 1))"
                        )
                    )
        except IntegrityError as exc:
            raise ValueError(f"a record already exists in the database: {exc.orig}") from exc

    async def _import_one(self, conn: AsyncConnection, record: DataRecord) -> None:
        if isinstance(record, AccountRecord):
            if record.kind == AccountKind.SYSTEM:
                exists = (
                    await conn.execute(select(accounts.c.id).where(accounts.c.id == record.id))
                ).first()
                if exists:
                    return
            await conn.execute(
                insert(accounts).values(
                    id=record.id,
                    kind=record.kind.value,
                    balance=record.balance,
                    blocked=record.blocked,
                    created_at=record.created_at,
                )
            )
        elif isinstance(record, UserRecord):
            user = record.user
            await conn.execute(
                insert(users).values(
                    id=user.id,
                    first_name=user.first_name,
                    last_name=user.last_name,
                    phone_number=user.phone_number,
                    address=user.address,
                    pin_hash=record.pin_hash,
                    created_at=user.created_at,
                    updated_at=user.updated_at,
                )
            )
        elif isinstance(record, Customer):
            await conn.execute(
                insert(customers).values(
                    id=record.id,
                    nama=record.nama,
                    nik=record.nik,
                    no_hp=record.no_hp,
                    no_rekening=record.no_rekening,
                    created_at=record.created_at,
                )
            )
        elif isinstance(record, JournalRecord):
            await conn.execute(
                insert(journals).values(
                    id=record.id,
                    kind=record.kind.value,
                    reference=record.reference,
                    remarks=record.remarks,
                    created_at=record.created_at,
                )
            )
            rows = []
            for leg in record.postings:
                item, item_layout = self._item(
                    record.kind,
                    record.reference,
                    record.remarks,
                    leg.account_id,
                    leg.amount,
                    leg.balance_before,
                    leg.balance_after,
                    leg.created_at,
                )
                rows.append(
                    {
                        "id": leg.sequence,
                        "journal_id": record.id,
                        "account_id": leg.account_id,
                        "amount": leg.amount,
                        "balance_before": leg.balance_before,
                        "balance_after": leg.balance_after,
                        "created_at": leg.created_at,
                        "kind": record.kind.value,
                        "reference": record.reference,
                        "remarks": record.remarks,
                        "item": item,
                        "item_layout": item_layout,
                    }
                )
            await conn.execute(insert(postings), rows)
        else:
            await conn.execute(
                insert(transfers).values(
                    id=record.id,
                    sender_id=record.sender_id,
                    target_id=record.target_id,
                    amount=record.amount,
                    remarks=record.remarks,
                    status=record.status.value,
                    created_at=record.created_at,
                    settled_at=record.settled_at,
                    attempts=record.attempts,
                    last_error=record.last_error,
                    next_attempt_at=record.next_attempt_at or record.created_at,
                    claimed_by=None,
                    claimed_until=None,
                )
            )

    # -- idempotency-key purge ---------------------------------------------------------------
    async def purge_idempotency(self, before: datetime, limit: int) -> int:
        if limit <= 0:
            return 0
        keys = idempotency_keys.c
        expired = keys.expires_at < before
        # One bounded DELETE by primary key (ix_idempotency_keys_expires_at finds the batch);
        # the outer condition is checked again on the rows actually deleted.
        batch = select(keys.scope, keys.key).where(expired).limit(limit)
        async with self._write() as conn:
            result = await conn.execute(
                delete(idempotency_keys).where(tuple_(keys.scope, keys.key).in_(batch), expired)
            )
        return int(result.rowcount)


_PG_CLAIM_NEW_KEY = (
    "INSERT INTO idempotency_keys (scope, key, fingerprint, journal_id, response_status,"
    " response_body, created_at, expires_at) VALUES ($1::text, $2::text, $3::text, NULL, NULL,"
    " NULL, $4::timestamp, $5::timestamp) ON CONFLICT (scope, key) DO NOTHING RETURNING 1"
)

_BROKEN = (
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.InternalClientError,  # its protocol is out of step (the server died under it)
    OSError,
    TimeoutError,
)
"""Errors after which a raw PostgreSQL connection is not given back to the pool."""

_PG_GET_USER = (
    "SELECT id, first_name, last_name, phone_number, address, created_at, updated_at"
    " FROM users WHERE id = $1::text"
)
_PG_GET_TRANSFER = "SELECT * FROM transfers WHERE id = $1::text"


def _pg_row(record: Any) -> Any:
    """An asyncpg record as attributes, its timestamps aware UTC (as tables.UtcDateTime)."""
    return SimpleNamespace(
        **{
            name: value.replace(tzinfo=UTC) if isinstance(value, datetime) else value
            for name, value in record.items()
        }
    )


_SQLITE_GET_USER = _PG_GET_USER.replace("$1::text", "?")
_SQLITE_GET_TRANSFER = _PG_GET_TRANSFER.replace("$1::text", "?")
_TIME_COLUMNS = frozenset(
    column.name
    for table in (users, transfers)
    for column in table.columns
    if isinstance(column.type, UtcDateTime)
)

_SQLITE_INSERT_JOURNAL = (
    "INSERT INTO journals (id, kind, reference, remarks, created_at) VALUES (?, ?, ?, ?, ?)"
)
_SQLITE_INSERT_POSTING = (
    "INSERT INTO postings (journal_id, account_id, amount, balance_before, balance_after, "
    "created_at, kind, reference, remarks, item, item_layout) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)  # postings.id is the rowid (INTEGER PRIMARY KEY): the cursor's lastrowid is the sequence
_SQLITE_INSERT_TRANSFER = (
    "INSERT INTO transfers (id, sender_id, target_id, amount, remarks, status, created_at, "
    "settled_at, attempts, last_error, next_attempt_at, claimed_by, claimed_until) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 0, '', ?, NULL, NULL)"
)
_SQLITE_CLOSE_TRANSFER = (
    "UPDATE transfers SET status = ?, settled_at = ?, claimed_by = NULL, claimed_until = NULL "
    "WHERE id = ? AND status = ?"
)
_SQLITE_KEY_UNANSWERED = (
    "SELECT 1 FROM idempotency_keys WHERE scope = ? AND key = ? AND fingerprint = ? "
    "AND journal_id IS NULL AND response_status IS NULL"
)
_SQLITE_ANSWER_WITH_JOURNAL = (
    "UPDATE idempotency_keys SET journal_id = ? WHERE scope = ? AND key = ? AND fingerprint = ? "
    "AND journal_id IS NULL AND response_status IS NULL"
)
_SQLITE_MOVE = "UPDATE accounts SET balance = balance + ? WHERE id = ?"
_SQLITE_MOVE_BALANCE = {
    (False, False): _SQLITE_MOVE + " RETURNING balance",
    (False, True): _SQLITE_MOVE + " AND blocked = 0 RETURNING balance",
    (True, False): _SQLITE_MOVE + " AND balance >= ? RETURNING balance",
    (True, True): _SQLITE_MOVE + " AND balance >= ? AND blocked = 0 RETURNING balance",
}


def _needs_savepoint(journal: Journal) -> bool:
    """Whether the job writing ``journal`` on SQLite needs a SAVEPOINT: only when a second
    customer balance could refuse after the first has changed (``_apply_sqlite``)."""
    customers = 0
    for posting in journal.postings:
        customers += is_customer_account(posting.account_id)
    return customers > 1


def _check_unanswered(raw: sqlite3.Connection, key: IdempotencyKey) -> None:
    """Refuse (before any change) a job whose idempotency key is no longer this request's to
    answer; the UPDATE that answers it later in the job then changes exactly one row."""
    row = raw.execute(_SQLITE_KEY_UNANSWERED, (key.scope, key.key, key.fingerprint)).fetchone()
    if row is None:
        raise IdempotencyConflict(IN_FLIGHT)


def _answer_with_journal(raw: sqlite3.Connection, key: IdempotencyKey, journal_id: str) -> None:
    """Tie the key to the journal in the journal's own transaction: at most one per key
    (SQLite; on PostgreSQL the journal's statement does it, pg_journal.py). After
    ``_check_unanswered`` in the same job it changes exactly one row."""
    cursor = raw.execute(
        _SQLITE_ANSWER_WITH_JOURNAL, (journal_id, key.scope, key.key, key.fingerprint)
    )
    if cursor.rowcount != 1:
        raise IdempotencyConflict(IN_FLIGHT)


def _explain_sqlite_refusal(raw: sqlite3.Connection, account_id: str) -> NoReturn:
    """``_explain_refusal`` on SQLite's raw writer."""
    row = raw.execute("SELECT blocked FROM accounts WHERE id = ?", (account_id,)).fetchone()
    raise _refusal(account_id, row)


def _refusal(account_id: str, row: Sequence[Any] | None) -> DomainError:
    """Why a guarded balance change moved nothing, from the account's ``(blocked,)`` row
    (None: there is no such account)."""
    if row is None:
        return AccountNotFound(account_id)
    if row[0]:
        return AccountBlocked(account_id)
    return InsufficientFunds()


def _new_entry(journal: Journal, sequence: int, account_id: str, amount: int, before: int) -> Entry:
    return Entry(
        sequence=sequence,
        account_id=account_id,
        journal_id=journal.id,
        kind=journal.kind,
        reference=journal.reference,
        amount=abs(amount),
        entry_type=EntryType.CREDIT if amount > 0 else EntryType.DEBIT,
        balance_before=before,
        balance_after=before + amount,
        remarks=journal.remarks,
        created_at=journal.created_at,
        status=(
            EntryStatus.PENDING if journal.kind is JournalKind.TRANSFER_OUT else EntryStatus.SUCCESS
        ),
    )


def _entries_query() -> Any:
    status = entry_status().label("status")
    return select(  # not the account: the caller names it
        postings.c.id,
        postings.c.journal_id,
        postings.c.kind,
        postings.c.reference,
        postings.c.amount,
        postings.c.balance_before,
        postings.c.balance_after,
        postings.c.remarks,
        postings.c.created_at,
        status,
    ).select_from(entries_from())


@functools.cache
def _entries_page(engine_name: str, before: bool, oldest_first: bool, limited: bool) -> Any:
    """An account's entries query, built once per engine and shape (bound :account_id,
    :before, :limit)."""
    cursor = bindparam("before", type_=Money) if before else None
    where, order = account_slice(
        engine_name, bindparam("account_id"), cursor, oldest_first=oldest_first, limited=limited
    )
    query = _entries_query().where(where).order_by(*order)
    if limited:
        query = query.limit(bindparam("limit", type_=Integer))
    return query


def _page_params(
    account_id: str, limit: int | None, before: int | None, **more: Any
) -> dict[str, Any]:
    """The bound values of a page query (``_entries_page``, ``rendered_page``)."""
    params: dict[str, Any] = {"account_id": account_id, **more}
    if before is not None:
        params["before"] = before
    if limit is not None:
        params["limit"] = limit
    return params


def _journal_entry_query() -> Any:
    return _entries_query().where(
        postings.c.journal_id == bindparam("journal_id"),
        postings.c.account_id == bindparam("account_id"),
    )


PAGE_BATCHES = 2
"""PostgreSQL: history page batches in flight at once (each on its own connection). Two: one
runs in the database while the API answers the other. Eight (stop 17) had up to eight server
processes taking turns on the same cores, and every caller of a preempted batch waited with
it: 9,300-9,600 pages/s at p99 10-12 ms against 11,600-12,100 at 8 ms with two (64
connections; BENCHMARKS.md, stop 18)."""
PAGE_BATCH_SIZE = 12
"""PostgreSQL: history pages in one batch at most. Two batches of 8-16 served about the same;
of 32 or 64 one statement ran for milliseconds and stretched the p99 (BENCHMARKS.md)."""

_PageWanted = tuple[str, str, int | None]
"""A history page ``render_entries`` was asked for: account, user, and cursor (before)."""
_PageBatches = ReadBatcher[tuple[ItemLayout, int], _PageWanted, RenderedItems | None]


def _rendered(row: Sequence[Any]) -> RenderedItems | None:
    """A row of ``rendered_pages`` as the page; None if an entry has no item (its date)."""
    _, body, rendered, size, last = row
    if rendered < size:
        return None
    return RenderedItems(("[" + (body or "") + "]").encode(), size, last)


class _DriverSelect:
    """A Core select compiled once for one dialect, to run on the driver connection itself.

    The SQL is SQLAlchemy's own compilation of the one query definition; only the rows skip
    SQLAlchemy's result layer. Its parameters are plain ints and strings (no bind processing).
    """

    __slots__ = ("_fixed", "_order", "sql")

    def __init__(self, query: Any, dialect: Any) -> None:
        compiled = query.compile(dialect=dialect)
        self.sql: str = compiled.string
        self._order: tuple[str, ...] = tuple(compiled.positiontup or ())
        self._fixed = {
            name: value.value if isinstance(value, Enum) else value
            for name, value in compiled.params.items()
        }

    def arguments(self, params: dict[str, Any]) -> tuple[Any, ...]:
        """The positional arguments: ``params`` by name, the query's own constants otherwise."""
        fixed = self._fixed
        return tuple(params[n] if n in params else fixed[n] for n in self._order)


def _sqlite_utc(stored: str) -> datetime:
    """SQLite's stored ``YYYY-MM-DD HH:MM:SS.ffffff`` (naive UTC) as an aware datetime."""
    return datetime.fromisoformat(stored + "+00:00")


def _naive_utc(stored: datetime) -> datetime:
    return stored.replace(tzinfo=UTC)


_KINDS = {kind.value: kind for kind in JournalKind}
_STATUSES = {status.value: status for status in EntryStatus}


def _entries(
    rows: Sequence[Sequence[Any]], account_id: str, utc: Callable[[Any], datetime]
) -> list[Entry]:
    """Rows of :func:`_entries_query` as entries; a comprehension, the history's hot loop."""
    kinds, statuses, success = _KINDS, _STATUSES, EntryStatus.SUCCESS
    credit, debit = EntryType.CREDIT, EntryType.DEBIT
    return [
        Entry(
            row[0],  # sequence
            account_id,
            row[1],  # journal_id
            kinds[row[2]],
            row[3],  # reference
            row[4] if row[4] > 0 else -row[4],
            credit if row[4] > 0 else debit,
            row[5],  # balance_before
            row[6],  # balance_after
            row[7],  # remarks
            utc(row[8]),
            statuses[row[9]] if row[9] else success,
        )
        for row in rows
    ]


def _user(row: Row[Any]) -> User:
    return User(
        id=row.id,
        first_name=row.first_name,
        last_name=row.last_name,
        phone_number=row.phone_number,
        address=row.address,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _transfer(row: Row[Any]) -> Transfer:
    return Transfer(
        id=row.id,
        sender_id=row.sender_id,
        target_id=row.target_id,
        amount=int(row.amount),
        remarks=row.remarks,
        status=TransferStatus(row.status),
        created_at=row.created_at,
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        settled_at=row.settled_at,
    )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _journal_record(head: Any, legs: list[PostingRecord]) -> JournalRecord:
    return JournalRecord(
        id=head.id,
        kind=JournalKind(head.kind),
        reference=head.reference,
        remarks=head.remarks,
        created_at=head.created_at,
        postings=tuple(legs),
    )
