"""The rows a journal writes, column by column: one list for every writer of them.

A journal, its postings and a transfer are written three ways: SQLite's raw statements
(``journal/sqlite.py``), PostgreSQL's one statement (``journal/postgresql.py``) and the
import of whole databases (``repos/records.py``). All three take their columns and values
from here, so a new column is a small, local change (docs/storage.md counts the places):
the table (``tables.py``) and a migration; its name in the list below and its value in the
function after it; the domain object that carries it; and the MongoDB store. Only a posting
column that is neither the journal's nor a parameter needs a line in PostgreSQL's statement
(``POSTING_VALUES`` there): its value is computed inside the statement.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from dompet.domain.transfers import Transfer

JOURNAL_COLUMNS = ("id", "kind", "reference", "remarks", "created_at")
COPIED_COLUMNS = ("kind", "reference", "remarks")
"""A journal's columns that each of its postings carries (a page reads postings alone)."""
POSTING_COLUMNS = (
    "journal_id",
    "account_id",
    "amount",
    "balance_before",
    "balance_after",
    "created_at",
    *COPIED_COLUMNS,
    "item",
    "item_layout",
)
"""Every column of a posting but its id (the sequence, given by the database)."""
TRANSFER_COLUMNS = (
    "id",
    "sender_id",
    "target_id",
    "amount",
    "remarks",
    "status",
    "created_at",
    "settled_at",
    "attempts",
    "last_error",
    "next_attempt_at",
    "claimed_by",
    "claimed_until",
)

Time = Callable[[datetime], Any]
"""An aware datetime as the writer's driver stores it (SQLite text, PostgreSQL naive UTC...)."""


def journal_values(
    journal_id: str, kind: str, reference: str, remarks: str, at: Any
) -> tuple[Any, ...]:
    """A journal's row, in ``JOURNAL_COLUMNS`` order (``at``: its time as stored)."""
    return (journal_id, kind, reference, remarks, at)


def copied_values(kind: str, reference: str, remarks: str) -> tuple[str, str, str]:
    """What each posting copies of its journal, in ``COPIED_COLUMNS`` order."""
    return (kind, reference, remarks)


def posting_values(
    journal_id: str,
    account_id: str,
    amount: int,
    before: int | None,
    after: int | None,
    at: Any,
    copied: tuple[str, str, str],
    item: tuple[str, int] | tuple[None, None],
) -> tuple[Any, ...]:
    """A posting's row, in ``POSTING_COLUMNS`` order: ``copied`` from ``copied_values``,
    ``item`` its history item and the item's layout (``history/written.py``)."""
    return (journal_id, account_id, amount, before, after, at, *copied, *item)


def transfer_values(transfer: Transfer, time: Time) -> tuple[Any, ...]:
    """A transfer's row, in ``TRANSFER_COLUMNS`` order, unleased (a new transfer is PENDING,
    due at once; an imported one keeps its attempts, error and due time)."""
    settled_at = transfer.settled_at
    return (
        transfer.id,
        transfer.sender_id,
        transfer.target_id,
        transfer.amount,
        transfer.remarks,
        transfer.status.value,
        time(transfer.created_at),
        None if settled_at is None else time(settled_at),
        transfer.attempts,
        transfer.last_error,
        time(transfer.next_attempt_at or transfer.created_at),
        None,
        None,
    )


def insert_statement(table: str, columns: tuple[str, ...]) -> str:
    """``INSERT INTO table (columns) VALUES (?, ...)``: SQLite's raw statement."""
    placeholders = ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608 - our names
