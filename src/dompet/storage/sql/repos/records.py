"""Whole-database export and import (example data, ``dompet example-data dump/load``): every
record, every id kept (``domain/records.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dompet.domain.ledger import AccountKind, JournalKind
from dompet.domain.records import (
    AccountRecord,
    DataRecord,
    JournalRecord,
    PostingRecord,
    UserRecord,
)
from dompet.domain.savings import Customer
from dompet.storage.sql.access import ConnectionAccess
from dompet.storage.sql.history.written import NO_ITEM, ItemRenderer
from dompet.storage.sql.journal.rows import (
    JOURNAL_COLUMNS,
    POSTING_COLUMNS,
    TRANSFER_COLUMNS,
    copied_values,
    journal_values,
    posting_values,
    transfer_values,
)
from dompet.storage.sql.repos.customers import customer_of, customer_row
from dompet.storage.sql.repos.transfers import transfer_of
from dompet.storage.sql.repos.users import user_of, user_row
from dompet.storage.sql.tables import accounts, customers, journals, postings, transfers, users

AfterImport = Callable[[AsyncConnection], Awaitable[None]]
"""The journal writer's ``after_import``: new postings then get sequences above every
imported one."""


class Records:
    def __init__(
        self, access: ConnectionAccess, items: ItemRenderer | None, after_import: AfterImport
    ) -> None:
        """``items``: the layout imported wallet entries' items are rendered in, as the
        journal writers render them (or None)."""
        self._access = access
        self._items = items
        self._after_import = after_import

    async def is_empty(self) -> bool:
        async with self._access.read() as conn:
            for table in (users, customers, journals, transfers):
                if (await conn.execute(select(literal(1)).select_from(table).limit(1))).first():
                    return False
        return True

    async def export_records(self) -> AsyncIterator[DataRecord]:
        async with self._access.read(consistent=True) as conn:
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
                yield UserRecord(user=user_of(row), pin_hash=row.pin_hash)
            for row in await conn.execute(select(customers).order_by(customers.c.id)):
                yield customer_of(row)
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
                yield transfer_of(row)

    async def import_records(self, records: Sequence[DataRecord]) -> None:
        try:
            async with self._access.write() as conn:
                for record in records:
                    await self._import_one(conn, record)
                if any(isinstance(r, JournalRecord) for r in records):
                    await self._after_import(conn)
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
            await conn.execute(insert(users).values(user_row(record.user, record.pin_hash)))
        elif isinstance(record, Customer):
            await conn.execute(insert(customers).values(customer_row(record)))
        elif isinstance(record, JournalRecord):
            await self._import_journal(conn, record)
        else:
            row = transfer_values(record, _as_given)
            await conn.execute(
                insert(transfers).values(dict(zip(TRANSFER_COLUMNS, row, strict=True)))
            )

    async def _import_journal(self, conn: AsyncConnection, record: JournalRecord) -> None:
        """The journal's row and its postings' (sequences, balances and times kept), with
        the columns and values the journal writers use (``journal/rows.py``)."""
        kind, reference, remarks = record.kind, record.reference, record.remarks
        copied = copied_values(kind.value, reference, remarks)
        journal = journal_values(record.id, *copied, record.created_at)
        await conn.execute(
            insert(journals).values(dict(zip(JOURNAL_COLUMNS, journal, strict=True)))
        )
        rows = []
        for leg in record.postings:
            before, after = leg.balance_before, leg.balance_after
            item = (
                NO_ITEM
                if self._items is None
                else self._items.columns(
                    kind,
                    reference,
                    remarks,
                    leg.account_id,
                    leg.amount,
                    before,
                    after,
                    leg.created_at,
                )
            )
            values = posting_values(
                record.id, leg.account_id, leg.amount, before, after, leg.created_at, copied, item
            )
            rows.append({"id": leg.sequence, **dict(zip(POSTING_COLUMNS, values, strict=True))})
        await conn.execute(insert(postings), rows)


def _named(columns: tuple[str, ...], values: tuple[Any, ...]) -> dict[str, Any]:
    """A row's values by column, for a Core insert."""
    return dict(zip(columns, values, strict=True))


def _as_given(moment: Any) -> Any:
    """Times as they are: SQLAlchemy's UtcDateTime stores them (an import goes through Core)."""
    return moment


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
