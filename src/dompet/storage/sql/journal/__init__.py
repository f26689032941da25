"""The journal writer, the second of the SQL store's two engine seams (docs/storage.md).

Money moves only here: a journal applied atomically, every customer balance guarded and
changed in one statement (``UPDATE .. SET balance = balance + :a WHERE .. AND balance >=
-:a``), with its postings, and optionally a new transfer row, the flip of a transfer to its
final status, or the idempotency key it answers. One module per engine, each its engine's
fastest honest way:

- ``journal/sqlite.py``: a job on the shared writer (group commit), raw sqlite3 statements;
- ``journal/postgresql.py``: the whole journal in one statement (data-modifying CTEs).

Both take their rows' columns and values from ``journal/rows.py`` and render the history
items they store with ``history/written.py``. What is shared by both writers is here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from dompet.domain.errors import AccountBlocked, AccountNotFound, DomainError, InsufficientFunds
from dompet.domain.idempotency import IdempotencyKey
from dompet.domain.ledger import Entry, Journal
from dompet.domain.transfers import Transfer, TransferStatus


class JournalWriter(Protocol):
    """The port's three money-moving methods (``storage/port.py`` says what each promises)."""

    async def post(self, journal: Journal, idem: IdempotencyKey | None = None) -> list[Entry]: ...

    async def open_transfer(
        self, transfer: Transfer, journal: Journal, idem: IdempotencyKey | None = None
    ) -> list[Entry]: ...

    async def close_transfer(
        self, transfer_id: str, status: TransferStatus, journal: Journal, now: datetime
    ) -> bool: ...

    async def after_import(self, conn: AsyncConnection) -> None:
        """In an import's transaction, after its postings: new postings get sequences above
        every imported one (``repos/records.py``)."""


def refusal(account_id: str, row: Sequence[Any] | None) -> DomainError:
    """Why a guarded balance change moved nothing, from the account's ``(blocked,)`` row
    (None: there is no such account)."""
    if row is None:
        return AccountNotFound(account_id)
    if row[0]:
        return AccountBlocked(account_id)
    return InsufficientFunds()
