"""History items rendered once, when their entry is written (``postings.item``).

A history page's items are JSON objects (``domain/history.py``). Built by the database on
every read, fifty of them cost SQLite about 60 us of the page's 80 us of SQL
(``docs/read-path.md``). Most entries never change once written, so a store opened with a
layout renders their item as it writes the posting, and a page reads the text back. An item
is stored with its layout's fingerprint; a read in another layout (another display zone,
say) renders the entry again, as do entries the store cannot render once:

- a transfer's debit, whose status moves from PENDING to SUCCESS or FAILED;
- an entry dated outside ``DISPLAY_RANGE`` (the store declines it; the presenter shows it);
- an entry of an account that is not a wallet, or written without a layout.

The text is ``domain.history.HistoryItems``' item as orjson writes it: the presenter's, byte
for byte. The SQLite journal writer and the import (both engines) render here; PostgreSQL's
journal statement renders the same text in SQL (``rendered.postgresql_written_item``), and
``dompet reconcile`` holds every stored item to :meth:`ItemRenderer.render`.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import datetime, timedelta

import orjson

from dompet.domain.history import DISPLAY_RANGE, HistoryItems, ItemLayout
from dompet.domain.ledger import WALLET_PREFIX, EntryStatus, EntryType, JournalKind

NO_ITEM: tuple[None, None] = (None, None)
"""A posting's ``(item, item_layout)`` when it is rendered when read."""


@functools.cache
def layout_fingerprint(layout: ItemLayout) -> int:
    """A stable signed 64-bit number for ``layout`` (a BIGINT on PostgreSQL)."""
    described = repr(
        (
            [(kind.value, key) for kind, key in layout.references],
            [(field.value, key) for field, key in layout.fields],
            layout.utc_offset_seconds,
        )
    )
    digest = hashlib.blake2b(described.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class ItemRenderer:
    """Renders the items of one layout as entries are written (about 2 us an item)."""

    def __init__(self, layout: ItemLayout) -> None:
        self.layout = layout
        self.fingerprint = layout_fingerprint(layout)
        self._items = HistoryItems(layout.references, layout.fields)
        self._offset = timedelta(seconds=layout.utc_offset_seconds)

    def render(
        self,
        kind: JournalKind,
        reference: str,
        account_id: str,
        amount: int,
        remarks: str,
        balance_before: int | None,
        balance_after: int | None,
        created_at: datetime,
    ) -> str | None:
        """The item of a new posting, or None when it must be rendered when read."""
        if (
            balance_before is None
            or balance_after is None
            or kind is JournalKind.TRANSFER_OUT
            or kind not in self._items.references
            or not account_id.startswith(WALLET_PREFIX)
            or not DISPLAY_RANGE[0] <= created_at < DISPLAY_RANGE[1]
        ):
            return None
        shown = created_at + self._offset  # a whole number of seconds: same second as SQL's cut
        values = (
            EntryStatus.SUCCESS.value,
            account_id[len(WALLET_PREFIX) :],
            (EntryType.CREDIT if amount > 0 else EntryType.DEBIT).value,
            abs(amount),
            remarks,
            balance_before,
            balance_after,
            "%04d-%02d-%02d %02d:%02d:%02d"  # noqa: UP031 -- the fastest exact form
            % (shown.year, shown.month, shown.day, shown.hour, shown.minute, shown.second),
        )
        return orjson.dumps(self._items.render(kind, reference, values)).decode()

    def columns(
        self,
        kind: JournalKind,
        reference: str,
        remarks: str,
        account_id: str,
        amount: int,
        balance_before: int | None,
        balance_after: int | None,
        created_at: datetime,
    ) -> tuple[str, int] | tuple[None, None]:
        """A new posting's ``(item, item_layout)`` columns: its item and this layout's
        fingerprint, or ``NO_ITEM``."""
        item = self.render(
            kind, reference, account_id, amount, remarks, balance_before, balance_after, created_at
        )
        return NO_ITEM if item is None else (item, self.fingerprint)
