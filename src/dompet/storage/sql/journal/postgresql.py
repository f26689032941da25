# ruff: noqa: S608 - only $n placeholders and CTE names are formatted in; values are parameters
"""PostgreSQL's journal writer (the seam: ``journal/__init__.py``): a whole journal in ONE
statement (data-modifying CTEs), one round trip.

The statement, for a journal whose customer postings are ``m1 .. mN``::

    WITH m1 AS (UPDATE accounts SET balance = balance + amount
                WHERE id = .. [AND balance >= -amount] [AND NOT blocked] [AND <gates>]
                RETURNING balance),                      -- the atomic overdraft guard
         m2 AS (... AND EXISTS (SELECT 1 FROM m1) ...),  -- each guard waits for the previous
         j  AS (INSERT INTO journals .. SELECT .. WHERE EXISTS (SELECT 1 FROM mN) RETURNING id),
         p  AS (INSERT INTO postings .. SELECT .. FROM j, (VALUES ..)  RETURNING id, account_id)
                                              -- with the journal's kind, reference, remarks
                                              -- and each wallet entry's history item
    SELECT (SELECT balance FROM m1) AS b1, (SELECT id FROM p WHERE account_id = ..) AS s1, ..

Everything after the guards reads the guards' rows, so a refused guard inserts nothing and the
answer's ``b<i>`` is NULL; the caller then explains the refusal (missing, blocked, short).
Options add, in the same statement: the transfer row (``open_transfer``), the PENDING ->
SUCCESS/FAILED flip of a transfer locked up front (``close_transfer``), and tying an
idempotency key, locked up front, to the journal. Those locks (``SELECT .. FOR UPDATE``) gate
the guards, so when one of them fails nothing at all is written.

A statement is atomic on its own, so with at most one customer posting it runs without
BEGIN/COMMIT (autocommit, on ``PostgresAccess.raw``): one round trip instead of six. A
journal with several customer postings runs inside a transaction (a later guard refusing
after an earlier one moved money must roll the earlier one back).

The rows' columns and values come from ``journal/rows.py``; the statement text is built from
them once per :class:`Shape`, its parameters cast to the column types of ``tables.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

import asyncpg
from sqlalchemy import BigInteger, Column, Integer, String, select, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dompet.domain.errors import IdempotencyConflict
from dompet.domain.idempotency import IN_FLIGHT, IdempotencyKey
from dompet.domain.ledger import Entry, Journal, Posting, is_customer_account, posted_entry
from dompet.domain.transfers import Transfer, TransferStatus
from dompet.storage.sql.access.postgresql import PostgresAccess, naive_utc
from dompet.storage.sql.history.rendered import postgresql_written_item
from dompet.storage.sql.history.written import ItemRenderer
from dompet.storage.sql.journal import refusal
from dompet.storage.sql.journal.rows import (
    JOURNAL_COLUMNS,
    POSTING_COLUMNS,
    TRANSFER_COLUMNS,
    journal_values,
    transfer_values,
)
from dompet.storage.sql.tables import UtcDateTime, accounts, journals, transfers

OPEN = "open"
"""Option: insert the transfer row (PENDING) with the journal."""
CLOSE = "close"
"""Option: flip a PENDING transfer to a final status with the journal, or do nothing."""


class PostgresJournal:
    """Writes each journal as one statement."""

    def __init__(
        self, access: PostgresAccess, items: ItemRenderer | None, dialect: Dialect
    ) -> None:
        self._access = access
        self._items = (
            (postgresql_written_item(items.layout, dialect, JOURNAL_PARAMETERS), items.fingerprint)
            if items is not None
            else None
        )

    async def post(self, journal: Journal, idem: IdempotencyKey | None = None) -> list[Entry]:
        entries = await self._write(journal, idem=idem)
        assert entries is not None
        return entries

    async def open_transfer(
        self, transfer: Transfer, journal: Journal, idem: IdempotencyKey | None = None
    ) -> list[Entry]:
        # one statement, with the transfer row
        entries = await self._write(journal, transfer=transfer, idem=idem)
        assert entries is not None
        return entries

    async def close_transfer(
        self, transfer_id: str, status: TransferStatus, journal: Journal, now: datetime
    ) -> bool:
        # one statement, the flip with the journal; settlement goes first
        closed = await self._write(journal, close=(transfer_id, status, now), urgent=True)
        return closed is not None

    async def after_import(self, conn: AsyncConnection) -> None:
        """The postings' id sequence goes on above the imported ids."""
        await conn.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('postings', 'id'), "
                "GREATEST((SELECT COALESCE(MAX(id), 0) FROM postings), 1))"
            )
        )

    async def _write(
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
        option = OPEN if transfer else CLOSE if close else None
        shape = shape_of(journal, option, idem is not None, self._items)
        args = parameters(journal, transfer=transfer, close=close, idem=idem)
        if len(shape.customers) > 1:
            async with self._access.write() as conn:
                result = await conn.exec_driver_sql(statement(shape), tuple(args))
                row = result.one()._mapping
                return await self._answer(conn, journal, shape, row)
        async with self._access.raw(urgent) as raw:
            try:
                row = await raw.fetchrow(statement(shape), *args)
            except asyncpg.IntegrityConstraintViolationError as exc:
                raise IntegrityError(statement(shape), None, exc) from exc
        return await self._answer(None, journal, shape, row)

    async def _answer(
        self, conn: AsyncConnection | None, journal: Journal, shape: Shape, row: Any
    ) -> list[Entry] | None:
        """The entries written, or why nothing was (raised; None: the transfer was closed).

        ``conn`` is the statement's transaction, or None when it ran alone (autocommit).
        """
        if shape.option == CLOSE and not row["closable"]:
            return None
        if shape.idempotent and not row["claimable"]:
            raise IdempotencyConflict(IN_FLIGHT)
        customers, _ = split(journal)
        if not row["written"]:
            refused = next((p for i, p in enumerate(customers, 1) if row[f"b{i}"] is None), None)
            if refused is None:
                raise RuntimeError(f"journal {journal.id} was not written, for no known reason")
            if conn is not None:
                await _explain_refusal(conn, refused.account_id)
            async with self._access.read() as reader:
                await _explain_refusal(reader, refused.account_id)
        return [
            posted_entry(
                journal,
                int(row[f"s{i}"]),
                posting.account_id,
                posting.amount,
                int(row[f"b{i}"]) - posting.amount,
            )
            for i, posting in enumerate(customers, 1)
        ]


async def _explain_refusal(conn: AsyncConnection, account_id: str) -> NoReturn:
    """Why the guarded change of ``account_id`` moved nothing (raised)."""
    row = (
        await conn.execute(select(accounts.c.blocked).where(accounts.c.id == account_id))
    ).first()
    raise refusal(account_id, row)


@dataclass(frozen=True, slots=True)
class Shape:
    """What the statement's text depends on (the values are parameters)."""

    customers: tuple[tuple[bool, bool], ...]
    """(debit, require_active) per customer posting, in the journal's order."""
    systems: int
    """How many system postings."""
    option: str | None
    """None, OPEN or CLOSE."""
    idempotent: bool
    """Tie an idempotency key to the journal."""
    items: tuple[str, int] | None = None
    """Render each posting's history item as it is written: the item's SQL
    (``history/rendered.postgresql_written_item``) and its layout's fingerprint."""


def split(journal: Journal) -> tuple[list[Posting], list[Posting]]:
    """(customer postings, system postings), each in the journal's order."""
    customers = [p for p in journal.postings if is_customer_account(p.account_id)]
    systems = [p for p in journal.postings if not is_customer_account(p.account_id)]
    return customers, systems


def shape_of(
    journal: Journal,
    option: str | None,
    idempotent: bool,
    items: tuple[str, int] | None = None,
) -> Shape:
    customers, systems = split(journal)
    return Shape(
        customers=tuple((p.amount < 0, p.require_active) for p in customers),
        systems=len(systems),
        option=option,
        idempotent=idempotent,
        items=items,
    )


def parameters(
    journal: Journal,
    *,
    transfer: Transfer | None = None,
    close: tuple[str, TransferStatus, datetime] | None = None,
    idem: IdempotencyKey | None = None,
) -> list[Any]:
    """The statement's parameters, in the order :func:`statement` numbers them."""
    at = naive_utc(journal.created_at)
    values = list(
        journal_values(journal.id, journal.kind.value, journal.reference, journal.remarks, at)
    )
    customers, systems = split(journal)
    for posting in (*customers, *systems):
        values += [posting.account_id, posting.amount]
    if transfer is not None:
        values += transfer_values(transfer, naive_utc)
    if close is not None:
        transfer_id, status, now = close
        values += [transfer_id, TransferStatus.PENDING.value, status.value, naive_utc(now)]
    if idem is not None:
        values += [idem.scope, idem.key, idem.fingerprint]
    return values


def cast(column: Column[Any]) -> str:
    """The PostgreSQL type a parameter for ``column`` is cast to."""
    kind = column.type
    if isinstance(kind, UtcDateTime):
        return "timestamp"
    if isinstance(kind, BigInteger):
        return "bigint"
    if isinstance(kind, Integer):
        return "integer"
    if isinstance(kind, String):
        return "text"
    raise TypeError(f"no parameter cast for {column}")


def journal_parameter(name: str) -> str:
    """The statement's parameter of the journal's column ``name`` (``$2::text`` ...)."""
    return f"${JOURNAL_COLUMNS.index(name) + 1}::{cast(journals.c[name])}"


JOURNAL_PARAMETERS = {name: journal_parameter(name) for name in JOURNAL_COLUMNS}
"""The journal's columns as the statement's parameters (each posting copies some)."""

POSTING_VALUES = {
    "journal_id": "j.id",
    "account_id": "v.account_id",
    "amount": "v.amount",
    "balance_before": "v.after - v.amount",
    "balance_after": "v.after",
    "item": "{item}",
    "item_layout": "{item_layout}",
}
"""Each posting column's value in the statement, but those copied from the journal's
parameters: ``v`` is the posting's row of the VALUES list, ``j`` the journal inserted."""


def _posting_select() -> str:
    """The postings' SELECT list, in ``POSTING_COLUMNS`` order (with {item}, {item_layout})."""
    return ", ".join(
        POSTING_VALUES.get(name) or JOURNAL_PARAMETERS[name] for name in POSTING_COLUMNS
    )


_POSTING_SELECT = _posting_select()


@functools.cache
def statement(shape: Shape) -> str:
    """The SQL for one journal shape, built once; parameters as :func:`parameters` gives them."""
    n = len(JOURNAL_COLUMNS)  # $1 journal id, $2 kind, $3 reference, $4 remarks, $5 created_at

    def param(type_: str) -> str:
        nonlocal n
        n += 1
        return f"${n}::{type_}"

    ctes: list[str] = []
    gates: list[str] = []
    legs = [(param("text"), param("bigint")) for _ in range(len(shape.customers) + shape.systems)]
    transfer_params = (
        [param(cast(transfers.c[name])) for name in TRANSFER_COLUMNS]
        if shape.option == OPEN
        else []
    )

    if shape.option == CLOSE:
        transfer_id, pending, status, now = (
            param("text"),
            param("text"),
            param("text"),
            param("timestamp"),
        )
        ctes.append(
            f"tl AS (SELECT id FROM transfers WHERE id = {transfer_id} AND status = {pending}"
            " FOR UPDATE)"
        )
        gates.append("EXISTS (SELECT 1 FROM tl)")
    if shape.idempotent:
        scope, key, fingerprint = param("text"), param("text"), param("text")
        ctes.append(
            f"kl AS (SELECT 1 FROM idempotency_keys WHERE scope = {scope} AND key = {key}"
            f" AND fingerprint = {fingerprint} AND journal_id IS NULL"
            " AND response_status IS NULL FOR UPDATE)"
        )
        gates.append("EXISTS (SELECT 1 FROM kl)")

    for i, (debit, require_active) in enumerate(shape.customers, start=1):
        account, amount = legs[i - 1]
        where = [f"id = {account}"]
        if debit:
            where.append(f"balance >= -{amount}")
        if require_active:
            where.append("NOT blocked")
        where += gates if i == 1 else [f"EXISTS (SELECT 1 FROM m{i - 1})"]
        ctes.append(
            f"m{i} AS (UPDATE accounts SET balance = balance + {amount}"
            f" WHERE {' AND '.join(where)} RETURNING balance)"
        )
    last = [f"EXISTS (SELECT 1 FROM m{len(shape.customers)})"] if shape.customers else gates
    journal_row = ", ".join(JOURNAL_PARAMETERS.values())
    ctes.append(
        f"j AS (INSERT INTO journals ({', '.join(JOURNAL_COLUMNS)}) SELECT {journal_row}"
        + (f" WHERE {' AND '.join(last)}" if last else "")
        + " RETURNING id)"
    )
    rows = [
        f"({account}, {amount}, (SELECT balance FROM m{i}))"
        for i, (account, amount) in enumerate(legs[: len(shape.customers)], start=1)
    ] + [f"({account}, {amount}, NULL::bigint)" for account, amount in legs[len(shape.customers) :]]
    item, item_layout, rendering = "NULL", "NULL", ""
    if shape.items is not None:
        item_sql, layout_print = shape.items
        item, item_layout = "r.item", f"CASE WHEN r.item IS NOT NULL THEN {layout_print:d} END"
        rendering = f" CROSS JOIN LATERAL (SELECT {item_sql} AS item) AS r"
    ctes.append(
        f"p AS (INSERT INTO postings ({', '.join(POSTING_COLUMNS)})"
        f" SELECT {_POSTING_SELECT.format(item=item, item_layout=item_layout)}"
        f" FROM j CROSS JOIN (VALUES {', '.join(rows)}) AS v (account_id, amount, after)"
        f"{rendering} RETURNING id, account_id)"
    )
    if shape.option == OPEN:
        ctes.append(
            f"t AS (INSERT INTO transfers ({', '.join(TRANSFER_COLUMNS)})"
            f" SELECT {', '.join(transfer_params)} FROM j RETURNING 1)"
        )
    if shape.option == CLOSE:
        ctes.append(
            f"f AS (UPDATE transfers SET status = {status}, settled_at = {now},"
            " claimed_by = NULL, claimed_until = NULL"
            " WHERE id IN (SELECT id FROM tl) AND EXISTS (SELECT 1 FROM j) RETURNING 1)"
        )
    if shape.idempotent:
        ctes.append(
            f"k AS (UPDATE idempotency_keys SET journal_id = $1::text WHERE scope = {scope}"
            f" AND key = {key} AND EXISTS (SELECT 1 FROM j) RETURNING 1)"
        )
    answer = [
        f"(SELECT balance FROM m{i}) AS b{i},"
        f" (SELECT id FROM p WHERE account_id = {legs[i - 1][0]}) AS s{i}"
        for i in range(1, len(shape.customers) + 1)
    ]
    answer.append("(SELECT count(*) FROM j) AS written")
    if shape.option == CLOSE:
        answer.append("(SELECT count(*) FROM tl) AS closable")
    if shape.idempotent:
        answer.append("(SELECT count(*) FROM kl) AS claimable")
    return f"WITH {', '.join(ctes)} SELECT {', '.join(answer)}"
