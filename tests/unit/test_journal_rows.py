"""journal/rows.py names every column the journal writers and the import write, in the order
their values come: a column added to tables.py and not here fails these tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dompet.domain.transfers import Transfer, TransferStatus
from dompet.storage.sql.journal.postgresql import JOURNAL_PARAMETERS, POSTING_VALUES
from dompet.storage.sql.journal.rows import (
    COPIED_COLUMNS,
    JOURNAL_COLUMNS,
    POSTING_COLUMNS,
    TRANSFER_COLUMNS,
    copied_values,
    journal_values,
    posting_values,
    transfer_values,
)
from dompet.storage.sql.tables import journals, postings, transfers


def test_the_rows_name_every_column_of_their_tables() -> None:
    assert set(JOURNAL_COLUMNS) == {column.name for column in journals.columns}
    assert set(POSTING_COLUMNS) == {column.name for column in postings.columns} - {"id"}
    assert set(TRANSFER_COLUMNS) == {column.name for column in transfers.columns}
    assert set(COPIED_COLUMNS) <= set(JOURNAL_COLUMNS)


def test_postgresql_has_a_value_for_every_posting_column() -> None:
    """Each is either computed in the statement or one of the journal's parameters."""
    assert set(POSTING_COLUMNS) <= set(POSTING_VALUES) | set(JOURNAL_PARAMETERS)


def test_the_values_come_in_column_order() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    copied = copied_values("PAYMENT", "ref", "kopi")
    assert dict(zip(COPIED_COLUMNS, copied, strict=True)) == {
        "kind": "PAYMENT",
        "reference": "ref",
        "remarks": "kopi",
    }
    journal = dict(zip(JOURNAL_COLUMNS, journal_values("j1", *copied, at), strict=True))
    expected = {"id": "j1", "kind": "PAYMENT", "reference": "ref", "remarks": "kopi"}
    assert journal == {**expected, "created_at": at}
    posting = posting_values("j1", "wallet:u", -5, 10, 5, at, copied, ("{}", 7))
    assert dict(zip(POSTING_COLUMNS, posting, strict=True)) == {
        "journal_id": "j1",
        "account_id": "wallet:u",
        "amount": -5,
        "balance_before": 10,
        "balance_after": 5,
        "created_at": at,
        "kind": "PAYMENT",
        "reference": "ref",
        "remarks": "kopi",
        "item": "{}",
        "item_layout": 7,
    }
    transfer = Transfer("t1", "a", "b", 9, "hi", TransferStatus.FAILED, at, 2, "boom")
    row = dict(zip(TRANSFER_COLUMNS, transfer_values(transfer, str), strict=True))
    assert row == {
        "id": "t1",
        "sender_id": "a",
        "target_id": "b",
        "amount": 9,
        "remarks": "hi",
        "status": "FAILED",
        "created_at": str(at),
        "settled_at": None,
        "attempts": 2,
        "last_error": "boom",
        "next_attempt_at": str(at),  # due at once when none was set
        "claimed_by": None,
        "claimed_until": None,
    }
    later = at + timedelta(minutes=1)
    settled = Transfer("t1", "a", "b", 9, "hi", TransferStatus.SUCCESS, at, 1, "", later, later)
    row = dict(zip(TRANSFER_COLUMNS, transfer_values(settled, str), strict=True))
    assert (row["settled_at"], row["next_attempt_at"]) == (str(later), str(later))
