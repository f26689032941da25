"""SQLite's journal writer (the seam: ``journal/__init__.py``): a job on the shared writer.

A journal is one job of the group-commit writer (``access/group_commit.py``): a plain
function of the sqlite3 connection, run on the event loop between other callers' jobs, its
caller answered once the COMMIT that holds it is durable. Its statements are raw sqlite3
(microseconds each, on this thread anyway), without SQLAlchemy's per-statement execution
machinery -- most of a payment's CPU time.

Every check that may refuse a job comes before its first change: the idempotency key, then
the guarded balance changes, then the rows, which only a broken database would refuse. So a
journal with one customer posting needs no SAVEPOINT (a tenth of a payment's CPU time;
``needs_savepoint``).
"""

from __future__ import annotations

import functools
import sqlite3
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dompet.domain.errors import IdempotencyConflict
from dompet.domain.idempotency import IN_FLIGHT, IdempotencyKey
from dompet.domain.ledger import Entry, Journal, Posting, is_customer_account, posted_entry
from dompet.domain.transfers import Transfer, TransferStatus
from dompet.storage.sql.access.sqlite import SqliteAccess, sqlite_timestamp
from dompet.storage.sql.history.written import NO_ITEM, ItemRenderer
from dompet.storage.sql.journal import refusal
from dompet.storage.sql.journal.rows import (
    JOURNAL_COLUMNS,
    POSTING_COLUMNS,
    TRANSFER_COLUMNS,
    copied_values,
    insert_statement,
    journal_values,
    posting_values,
    transfer_values,
)

INSERT_JOURNAL = insert_statement("journals", JOURNAL_COLUMNS)
INSERT_POSTING = insert_statement("postings", POSTING_COLUMNS)
"""postings.id is the rowid (INTEGER PRIMARY KEY): the cursor's lastrowid is the sequence."""
INSERT_TRANSFER = insert_statement("transfers", TRANSFER_COLUMNS)
CLOSE_TRANSFER = (
    "UPDATE transfers SET status = ?, settled_at = ?, claimed_by = NULL, claimed_until = NULL "
    "WHERE id = ? AND status = ?"
)
KEY_UNANSWERED = (
    "SELECT 1 FROM idempotency_keys WHERE scope = ? AND key = ? AND fingerprint = ? "
    "AND journal_id IS NULL AND response_status IS NULL"
)
ANSWER_WITH_JOURNAL = (
    "UPDATE idempotency_keys SET journal_id = ? WHERE scope = ? AND key = ? AND fingerprint = ? "
    "AND journal_id IS NULL AND response_status IS NULL"
)
_MOVE = "UPDATE accounts SET balance = balance + ? WHERE id = ?"
MOVE_BALANCE = {
    (False, False): _MOVE + " RETURNING balance",
    (False, True): _MOVE + " AND blocked = 0 RETURNING balance",
    (True, False): _MOVE + " AND balance >= ? RETURNING balance",
    (True, True): _MOVE + " AND balance >= ? AND blocked = 0 RETURNING balance",
}
"""The guarded balance change, by (debit, require_active)."""


class SqliteJournal:
    """Writes journals as jobs on SQLite's shared writer."""

    def __init__(self, access: SqliteAccess, items: ItemRenderer | None) -> None:
        self._run = access.group.run
        self._items = items

    async def post(self, journal: Journal, idem: IdempotencyKey | None = None) -> list[Entry]:
        return await self._run(
            functools.partial(self._post, journal, idem, None),
            savepoint=needs_savepoint(journal),
        )

    async def open_transfer(
        self, transfer: Transfer, journal: Journal, idem: IdempotencyKey | None = None
    ) -> list[Entry]:
        return await self._run(
            functools.partial(self._post, journal, idem, transfer),
            savepoint=needs_savepoint(journal),
        )

    async def close_transfer(
        self, transfer_id: str, status: TransferStatus, journal: Journal, now: datetime
    ) -> bool:
        # settlement goes first
        return await self._run(
            functools.partial(self._close, transfer_id, status, journal, now), priority=True
        )

    async def after_import(self, conn: AsyncConnection) -> None:
        """Nothing to do: a new posting's id (the rowid) is one above the largest."""

    def _post(
        self,
        journal: Journal,
        idem: IdempotencyKey | None,
        transfer: Transfer | None,
        raw: sqlite3.Connection,
    ) -> list[Entry]:
        """The job of ``post`` / ``open_transfer``: every check that may refuse it comes
        before its first change (see ``_apply``)."""
        if idem is not None:
            _check_unanswered(raw, idem)
        entries = self._apply(raw, journal)
        if transfer is not None:
            raw.execute(INSERT_TRANSFER, transfer_values(transfer, sqlite_timestamp))
        if idem is not None:
            _answer_with_journal(raw, idem, journal.id)
        return entries

    def _close(
        self,
        transfer_id: str,
        status: TransferStatus,
        journal: Journal,
        now: datetime,
        raw: sqlite3.Connection,
    ) -> bool:
        """The job of ``close_transfer``: the flip, then (if it flipped) the journal."""
        flip = (status.value, sqlite_timestamp(now), transfer_id, TransferStatus.PENDING.value)
        if raw.execute(CLOSE_TRANSFER, flip).rowcount != 1:
            return False
        self._apply(raw, journal)
        return True

    def _apply(self, raw: sqlite3.Connection, journal: Journal) -> list[Entry]:
        """Write the journal, guarding and changing each customer balance in one statement.

        The guarded balance changes come first, so that a refusal of a journal with one
        customer posting changes nothing (its job needs no SAVEPOINT: ``needs_savepoint``);
        then the journal and its postings, which only a broken database would refuse.
        """
        at = sqlite_timestamp(journal.created_at)
        kind, reference, remarks = journal.kind, journal.reference, journal.remarks
        copied = copied_values(kind.value, reference, remarks)  # onto each posting
        try:
            moved: list[tuple[Posting, int]] = []
            system_rows: list[tuple[Any, ...]] = []
            for posting in journal.postings:
                account, amount = posting.account_id, posting.amount
                if not is_customer_account(account):  # no balance kept, no history item
                    system_rows.append(
                        posting_values(journal.id, account, amount, None, None, at, copied, NO_ITEM)
                    )
                    continue
                sql = MOVE_BALANCE[(amount < 0, posting.require_active)]
                params: tuple[Any, ...] = (amount, account)
                if amount < 0:
                    params += (-amount,)
                rows = raw.execute(sql, params).fetchall()
                if not rows:
                    _explain_refusal(raw, account)
                moved.append((posting, int(rows[0][0])))
            raw.execute(INSERT_JOURNAL, journal_values(journal.id, *copied, at))
            entries: list[Entry] = []
            items = self._items
            for posting, after in moved:
                account, amount = posting.account_id, posting.amount
                before = after - amount
                item = (
                    NO_ITEM
                    if items is None
                    else items.columns(
                        kind, reference, remarks, account, amount, before, after, journal.created_at
                    )
                )
                row = posting_values(journal.id, account, amount, before, after, at, copied, item)
                sequence = raw.execute(INSERT_POSTING, row).lastrowid
                assert sequence is not None
                entries.append(posted_entry(journal, sequence, account, amount, before))
            if system_rows:
                raw.executemany(INSERT_POSTING, system_rows)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(INSERT_JOURNAL, None, exc) from exc
        return entries


def needs_savepoint(journal: Journal) -> bool:
    """Whether the job writing ``journal`` needs a SAVEPOINT: only when a second customer
    balance could refuse after the first has changed (``SqliteJournal._apply``)."""
    customers = 0
    for posting in journal.postings:
        customers += is_customer_account(posting.account_id)
    return customers > 1


def _check_unanswered(raw: sqlite3.Connection, key: IdempotencyKey) -> None:
    """Refuse (before any change) a job whose idempotency key is no longer this request's to
    answer; the UPDATE that answers it later in the job then changes exactly one row."""
    row = raw.execute(KEY_UNANSWERED, (key.scope, key.key, key.fingerprint)).fetchone()
    if row is None:
        raise IdempotencyConflict(IN_FLIGHT)


def _answer_with_journal(raw: sqlite3.Connection, key: IdempotencyKey, journal_id: str) -> None:
    """Tie the key to the journal in the journal's own transaction: at most one per key.
    After ``_check_unanswered`` in the same job it changes exactly one row."""
    cursor = raw.execute(ANSWER_WITH_JOURNAL, (journal_id, key.scope, key.key, key.fingerprint))
    if cursor.rowcount != 1:
        raise IdempotencyConflict(IN_FLIGHT)


def _explain_refusal(raw: sqlite3.Connection, account_id: str) -> NoReturn:
    """Why the guarded change of ``account_id`` moved nothing (raised)."""
    row = raw.execute("SELECT blocked FROM accounts WHERE id = ?", (account_id,)).fetchone()
    raise refusal(account_id, row)
