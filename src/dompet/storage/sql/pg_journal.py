# ruff: noqa: S608 - only $n placeholders and CTE names are formatted in; values are parameters
"""PostgreSQL: a whole journal in ONE statement (data-modifying CTEs), one round trip.

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
BEGIN/COMMIT (autocommit): one round trip instead of six. A journal with several customer
postings runs inside a transaction (a later guard refusing after an earlier one moved money
must roll the earlier one back).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dompet.domain.idempotency import IdempotencyKey
from dompet.domain.ledger import Journal, Posting, is_customer_account
from dompet.domain.transfers import Transfer, TransferStatus

OPEN = "open"
"""Option: insert the transfer row (PENDING) with the journal."""
CLOSE = "close"
"""Option: flip a PENDING transfer to a final status with the journal, or do nothing."""


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
    (``rendered_history.postgresql_written_item``) and its layout's fingerprint."""


def naive_utc(moment: datetime) -> datetime:
    """The ``timestamp without time zone`` the schema stores (see tables.UtcDateTime)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return moment.astimezone(UTC).replace(tzinfo=None)


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
    values: list[Any] = [journal.id, journal.kind.value, journal.reference, journal.remarks, at]
    customers, systems = split(journal)
    for posting in (*customers, *systems):
        values += [posting.account_id, posting.amount]
    if transfer is not None:
        values += [
            transfer.id,
            transfer.sender_id,
            transfer.target_id,
            transfer.amount,
            transfer.remarks,
            TransferStatus.PENDING.value,
            naive_utc(transfer.created_at),
        ]
    if close is not None:
        transfer_id, status, now = close
        values += [transfer_id, TransferStatus.PENDING.value, status.value, naive_utc(now)]
    if idem is not None:
        values += [idem.scope, idem.key, idem.fingerprint]
    return values


@functools.cache
def statement(shape: Shape) -> str:
    """The SQL for one journal shape, built once; parameters as :func:`parameters` gives them."""
    n = 5  # $1 journal id, $2 kind, $3 reference, $4 remarks, $5 created_at

    def param(cast: str) -> str:
        nonlocal n
        n += 1
        return f"${n}::{cast}"

    ctes: list[str] = []
    gates: list[str] = []
    legs = [(param("text"), param("bigint")) for _ in range(len(shape.customers) + shape.systems)]
    transfer_params = (
        [param(c) for c in ("text", "text", "text", "bigint", "text", "text", "timestamp")]
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
    ctes.append(
        "j AS (INSERT INTO journals (id, kind, reference, remarks, created_at)"
        " SELECT $1::text, $2::text, $3::text, $4::text, $5::timestamp"
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
        "p AS (INSERT INTO postings"
        " (journal_id, account_id, amount, balance_before, balance_after, created_at, kind,"
        " reference, remarks, item, item_layout)"
        " SELECT j.id, v.account_id, v.amount, v.after - v.amount, v.after,"
        f" $5::timestamp, $2::text, $3::text, $4::text, {item}, {item_layout}"
        f" FROM j CROSS JOIN (VALUES {', '.join(rows)}) AS v (account_id, amount, after)"
        f"{rendering} RETURNING id, account_id)"
    )
    if shape.option == OPEN:
        t_id, sender, target, t_amount, t_remarks, t_status, t_at = transfer_params
        ctes.append(
            "t AS (INSERT INTO transfers (id, sender_id, target_id, amount, remarks, status,"
            " created_at, settled_at, attempts, last_error, next_attempt_at, claimed_by,"
            f" claimed_until) SELECT {t_id}, {sender}, {target}, {t_amount}, {t_remarks},"
            f" {t_status}, {t_at}, NULL, 0, '', {t_at}, NULL, NULL FROM j RETURNING 1)"
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
