"""The SQL implementation of the storage port (SQLite and PostgreSQL), on SQLAlchemy Core."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

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
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dompet.domain.errors import (
    AccountNumberTaken,
    IdempotencyConflict,
    NikTaken,
    NoHpTaken,
    OperatorTaken,
    PhoneTaken,
)
from dompet.domain.history import ItemLayout
from dompet.domain.idempotency import (
    IN_FLIGHT,
    KEY_REUSED,
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
from dompet.storage.history_items import NO_ITEM, ItemRenderer, layout_fingerprint
from dompet.storage.port import RenderedItems
from dompet.storage.sql.access import ConnectionAccess, Statement
from dompet.storage.sql.access.postgresql import PostgresAccess
from dompet.storage.sql.access.sqlite import SqliteAccess
from dompet.storage.sql.account_order import account_slice
from dompet.storage.sql.batched_reads import ReadBatcher
from dompet.storage.sql.engine import (
    SqlSettings,
    create_engines,
    is_sqlite,
)
from dompet.storage.sql.journal import JournalWriter
from dompet.storage.sql.journal.postgresql import PostgresJournal
from dompet.storage.sql.journal.rows import (
    JOURNAL_COLUMNS,
    POSTING_COLUMNS,
    TRANSFER_COLUMNS,
    copied_values,
    journal_values,
    posting_values,
    transfer_values,
)
from dompet.storage.sql.journal.sqlite import SqliteJournal
from dompet.storage.sql.rendered_history import (
    entries_from,
    entry_status,
    rendered_page,
    rendered_pages,
)
from dompet.storage.sql.tables import (
    Money,
    accounts,
    customers,
    idempotency_keys,
    journals,
    login_throttle,
    operators,
    postings,
    time_columns,
    transfers,
    used_refresh_tokens,
    users,
    worker_heartbeats,
)


class SqlStore:
    """One store over SQLite or PostgreSQL. Every public method is one transaction."""

    def __init__(
        self, access: SqliteAccess | PostgresAccess, history_layout: ItemLayout | None = None
    ) -> None:
        self.access: ConnectionAccess = access
        """The connection access (``access/``): the engine's one way in."""
        self.engine_name = access.engine_name
        # wallet entries' history items, rendered as they are written (history_items.py)
        self._items = ItemRenderer(history_layout) if history_layout is not None else None
        self.journal: JournalWriter
        """The journal writer (``journal/``): the engine's way to move money."""
        if isinstance(access, SqliteAccess):
            self.journal = SqliteJournal(access, self._items)
        else:
            self.journal = PostgresJournal(access, self._items, access.writer.dialect)
        # PostgreSQL: the history pages wanted at the same time go as one statement.
        self._page_batches: _PageBatches | None = (
            ReadBatcher(self._rendered_pages, in_flight=PAGE_BATCHES, most=PAGE_BATCH_SIZE)
            if isinstance(access, PostgresAccess)
            else None
        )

    @classmethod
    async def open(
        cls,
        database_url: str,
        history_layout: ItemLayout | None = None,
        settings: SqlSettings = SqlSettings(),
    ) -> SqlStore:
        writer, reader = create_engines(database_url, settings)
        if is_sqlite(database_url):
            return cls(SqliteAccess(writer, reader), history_layout)
        return cls(PostgresAccess(writer, reader, settings.pg_pool_size), history_layout)

    async def close(self) -> None:
        if self._page_batches is not None:
            await self._page_batches.close()
        await self.access.close()

    async def ping(self) -> None:
        async with self.access.read() as conn:
            await conn.execute(select(literal(1)))

    # -- wallet users ------------------------------------------------------------------------
    async def add_user(self, user: User, pin_hash: str) -> None:
        try:
            async with self.access.write() as conn:
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
        async with self.access.read() as conn:
            row = (
                await conn.execute(
                    select(users.c.id, users.c.pin_hash).where(users.c.phone_number == phone_number)
                )
            ).first()
        return Credentials(user_id=row.id, pin_hash=row.pin_hash) if row else None

    async def get_user(self, user_id: str) -> User | None:
        row = await self.access.fetch_row(GET_USER, user_id)  # a hot read
        return _user(row) if row else None

    async def update_profile(
        self, user_id: str, changes: ProfileChanges, now: datetime
    ) -> User | None:
        async with self.access.write() as conn:
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
        async with self.access.read() as conn:
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
        async with self.access.write() as conn:
            upsert = self.access.upsert(login_throttle).values(
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
        async with self.access.write() as conn:
            await conn.execute(
                delete(login_throttle).where(login_throttle.c.phone_number == phone_number)
            )

    async def consume_refresh_token(self, jti: str, user_id: str, expires_at: datetime) -> bool:
        try:
            async with self.access.write() as conn:
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
            async with self.access.write() as conn:
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
            async with self.access.read() as conn:
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
        async with self.access.read() as conn:
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
        return await self.journal.post(journal, idem)

    async def open_transfer(
        self, transfer: Transfer, journal: Journal, idem: IdempotencyKey | None = None
    ) -> list[Entry]:
        return await self.journal.open_transfer(transfer, journal, idem)

    async def close_transfer(
        self, transfer_id: str, status: TransferStatus, journal: Journal, now: datetime
    ) -> bool:
        return await self.journal.close_transfer(transfer_id, status, journal, now)

    async def get_transfer(self, transfer_id: str) -> Transfer | None:
        # a hot read: each settlement reads its transfer first
        row = await self.access.fetch_row(GET_TRANSFER, transfer_id, urgent=True)
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
        async with self.access.write() as conn:
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
        async with self.access.write() as conn:
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
        async with self.access.write() as conn:
            result = await conn.execute(
                update(transfers)
                .where(transfers.c.id == transfer_id, transfers.c.status == TransferStatus.PENDING)
                .values(next_attempt_at=now, claimed_by=None, claimed_until=None)
            )
        return result.rowcount == 1

    async def set_account_blocked(self, account_id: str, blocked: bool) -> bool:
        async with self.access.write() as conn:
            result = await conn.execute(
                update(accounts)
                .where(accounts.c.id == account_id, accounts.c.kind != AccountKind.SYSTEM)
                .values(blocked=blocked)
            )
        return result.rowcount == 1

    async def balance(self, account_id: str) -> int | None:
        async with self.access.read() as conn:
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
        page = self.access.compiled(
            _entries_page, self.engine_name, before is not None, oldest_first, limit is not None
        )
        rows = await self.access.fetch(page, _page_params(account_id, limit, before))
        return _entries(rows, account_id, self.access.utc)

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
        query = self.access.compiled(
            rendered_page, layout, self.engine_name, before is not None, limit is not None
        )
        params = _page_params(
            account_id, limit, before, user_id=user_id, item_layout=layout_fingerprint(layout)
        )
        rows = await self.access.fetch(query, params)
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
        rows = await self.access.fetch(self.access.compiled(rendered_pages, layout), params)
        by_page = {row[0]: row for row in rows}
        return [_rendered(by_page[number]) for number in range(1, len(pages) + 1)]

    async def entry_of_journal(self, journal_id: str, account_id: str) -> Entry | None:
        query = self.access.compiled(_journal_entry_query)
        rows = await self.access.fetch(query, {"journal_id": journal_id, "account_id": account_id})
        return _entries(rows, account_id, self.access.utc)[0] if rows else None

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
        async with self.access.read(consistent=True) as conn:
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
                            chained.c.balance_before != func.coalesce(chained.c.previous_after, 0)
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
            misrendered = await self._misrendered(conn)
        return LedgerSnapshot(
            customer_balances={r.id: int(r.balance) for r in balances},
            posting_sums={r[0]: int(r[1]) for r in sums},
            pending_transfer_total=int(pending),
            broken_entries=[str(e) for e in broken_entries],
            broken_chains=list(broken_chains),
            unbalanced_journals=list(unbalanced),
            misjournaled_transfers=misjournaled,
            miscopied_entries=[str(e) for e in miscopied],
            misrendered_entries=misrendered,
        )

    async def _misrendered(self, conn: AsyncConnection) -> list[str]:
        """The postings whose stored history item (in this store's layout) is not the item
        their entry renders to now (``ItemRenderer.render``, the one definition of an item):
        whichever engine, or writer, stored it."""
        items = self._items
        if items is None:
            return []
        c = postings.c
        rows = await conn.stream(
            select(
                c.id,
                c.kind,
                c.reference,
                c.account_id,
                c.amount,
                c.remarks,
                c.balance_before,
                c.balance_after,
                c.created_at,
                c.item,
            )
            .where(c.item_layout == items.fingerprint)
            .order_by(c.id)
        )
        misrendered: list[str] = []
        async for row in rows:
            now = items.render(
                _KINDS[row.kind],
                row.reference,
                row.account_id,
                int(row.amount),
                row.remarks,
                _int_or_none(row.balance_before),
                _int_or_none(row.balance_after),
                row.created_at,
            )
            if row.item != now:
                misrendered.append(str(row.id))
        return misrendered

    # -- idempotency keys --------------------------------------------------------------------
    async def claim_idempotency(
        self, key: IdempotencyKey, now: datetime, ttl: timedelta, stale_after: timedelta
    ) -> ClaimOutcome:
        at = self.access.timestamp
        new = await self.access.write_row(
            CLAIM_NEW_KEY, key.scope, key.key, key.fingerprint, at(now), at(now + ttl)
        )
        if new is not None:
            return Claimed()
        # The key exists: expired, answered, in flight, or abandoned by its first request.
        where = and_(idempotency_keys.c.scope == key.scope, idempotency_keys.c.key == key.key)
        try:
            async with self.access.write() as conn:
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
        async with self.access.write() as conn:
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
        async with self.access.write() as conn:
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
        async with self.access.read() as conn:
            rows = (
                await conn.execute(
                    select(transfers.c.status, func.count()).group_by(transfers.c.status)
                )
            ).all()
        counts = dict.fromkeys(TransferStatus, 0)
        counts.update({TransferStatus(r[0]): int(r[1]) for r in rows})
        return counts

    async def oldest_pending_created_at(self) -> datetime | None:
        async with self.access.read() as conn:
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
        async with self.access.read() as conn:
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
        async with self.access.read() as conn:
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
        async with self.access.write() as conn:
            await conn.execute(
                self.access.upsert(worker_heartbeats)
                .values(worker_id=heartbeat.worker_id, **values)
                .on_conflict_do_update(index_elements=[worker_heartbeats.c.worker_id], set_=values)
            )

    async def heartbeats(self) -> list[WorkerHeartbeat]:
        async with self.access.read() as conn:
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
        async with self.access.write() as conn:
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
            async with self.access.write() as conn:
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
        async with self.access.read() as conn:
            row = (
                await conn.execute(select(operators).where(operators.c.username == username))
            ).first()
        if row is None:
            return None
        return Operator(row.username, row.password_hash, row.created_at)

    # -- scale-out dispatch (issue 4) ---------------------------------------------------------
    async def overdue_transfers(self, due_before: datetime, limit: int) -> list[Transfer]:
        async with self.access.read() as conn:
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
    async def _open_account(
        self, conn: AsyncConnection, account_id: str, kind: AccountKind, now: datetime
    ) -> None:
        await conn.execute(
            insert(accounts).values(
                id=account_id, kind=kind, balance=0, blocked=False, created_at=now
            )
        )

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
        async with self.access.read() as conn:
            for table in (users, customers, journals, transfers):
                if (await conn.execute(select(literal(1)).select_from(table).limit(1))).first():
                    return False
        return True

    async def export_records(self) -> AsyncIterator[DataRecord]:
        async with self.access.read(consistent=True) as conn:
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
            async with self.access.write() as conn:
                for record in records:
                    await self._import_one(conn, record)
                if any(isinstance(r, JournalRecord) for r in records):
                    await self.journal.after_import(conn)
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
            await self._import_journal(conn, record)
        else:
            row = transfer_values(record, _as_given)
            await conn.execute(insert(transfers).values(_named(TRANSFER_COLUMNS, row)))

    async def _import_journal(self, conn: AsyncConnection, record: JournalRecord) -> None:
        """The journal's row and its postings' (sequences, balances and times kept), with
        the columns and values the journal writers use (``journal/rows.py``)."""
        kind, reference, remarks = record.kind, record.reference, record.remarks
        copied = copied_values(kind.value, reference, remarks)
        journal = journal_values(record.id, *copied, record.created_at)
        await conn.execute(insert(journals).values(_named(JOURNAL_COLUMNS, journal)))
        rows = []
        for leg in record.postings:
            account, amount, at = leg.account_id, leg.amount, leg.created_at
            before, after = leg.balance_before, leg.balance_after
            item = (
                NO_ITEM
                if self._items is None
                else self._items.columns(
                    kind, reference, remarks, account, amount, before, after, at
                )
            )
            values = posting_values(record.id, account, amount, before, after, at, copied, item)
            rows.append({"id": leg.sequence, **_named(POSTING_COLUMNS, values)})
        await conn.execute(insert(postings), rows)

    # -- idempotency-key purge ---------------------------------------------------------------
    async def purge_idempotency(self, before: datetime, limit: int) -> int:
        if limit <= 0:
            return 0
        keys = idempotency_keys.c
        expired = keys.expires_at < before
        # One bounded DELETE by primary key (ix_idempotency_keys_expires_at finds the batch);
        # the outer condition is checked again on the rows actually deleted.
        batch = select(keys.scope, keys.key).where(expired).limit(limit)
        async with self.access.write() as conn:
            result = await conn.execute(
                delete(idempotency_keys).where(tuple_(keys.scope, keys.key).in_(batch), expired)
            )
        return int(result.rowcount)


CLAIM_NEW_KEY = Statement(
    "INSERT INTO idempotency_keys (scope, key, fingerprint, journal_id, response_status,"
    " response_body, created_at, expires_at) VALUES ($1::text, $2::text, $3::text, NULL, NULL,"
    " NULL, $4::timestamp, $5::timestamp) ON CONFLICT (scope, key) DO NOTHING RETURNING 1"
)
"""A key never seen before, claimed in one statement (the usual case: one round trip on
PostgreSQL, one raw statement on SQLite); it inserts nothing when the key exists."""
GET_USER = Statement(
    "SELECT id, first_name, last_name, phone_number, address, created_at, updated_at"
    " FROM users WHERE id = $1::text",
    time_columns(users),
)
GET_TRANSFER = Statement("SELECT * FROM transfers WHERE id = $1::text", time_columns(transfers))


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


def _named(columns: tuple[str, ...], values: tuple[Any, ...]) -> dict[str, Any]:
    """A row's values by column, for a Core insert."""
    return dict(zip(columns, values, strict=True))


def _as_given(moment: Any) -> Any:
    """Times as they are: SQLAlchemy's UtcDateTime stores them (an import goes through Core)."""
    return moment
