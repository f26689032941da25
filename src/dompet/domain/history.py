"""History items: an entry as the wallet's history shows it, one JSON object each.

:class:`HistoryItems` is the one definition of an item: the API presents entries with it
(``api/presenters.py``), the SQL store renders the item it stores with a new entry with it
(``storage/sql/history/written.py``), and ``dompet reconcile`` checks every stored item
against it. Where Python does not run -- a page's items that were not stored, PostgreSQL's
one-statement journal -- the database builds the same text from the same
:class:`ItemLayout` (``storage/sql/history/rendered.py``), held to this definition byte for
byte by tests/contract/test_rendered_history.py and, on every stored item, by reconcile.

An item holds the entry's reference under the key its journal kind is given
(``ItemLayout.references``), then the layout's fields, in their order. Which keys: the API's
to say (``api/presenters.py``); stores only follow the layout they are given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from dompet.domain.ledger import JournalKind


class ItemField(StrEnum):
    """What a value of a history item is (see :class:`ItemLayout`)."""

    STATUS = "status"
    USER_ID = "user_id"
    ENTRY_TYPE = "entry_type"
    AMOUNT = "amount"
    REMARKS = "remarks"
    BALANCE_BEFORE = "balance_before"
    BALANCE_AFTER = "balance_after"
    DISPLAY_TIME = "display_time"
    """``YYYY-MM-DD HH:MM:SS`` of the entry's time in the display zone."""


VALUE_ORDER = (
    ItemField.STATUS,
    ItemField.USER_ID,
    ItemField.ENTRY_TYPE,
    ItemField.AMOUNT,
    ItemField.REMARKS,
    ItemField.BALANCE_BEFORE,
    ItemField.BALANCE_AFTER,
    ItemField.DISPLAY_TIME,
)
"""The order of the values :meth:`HistoryItems.render` takes (whatever the layout's order)."""

DISPLAY_RANGE = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
"""The instants a fixed display offset is checked over (``api/presenters.py``): a store
renders no item for an entry dated outside them."""


@dataclass(frozen=True, slots=True)
class ItemLayout:
    """History items as JSON objects a store can build itself (``render_entries``).

    Each object holds the entry's reference under ``references[kind]``, then ``fields`` in
    their order; the display time is the entry's UTC time plus ``utc_offset_seconds``. Keys
    are plain names (``[a-z_]+``), so they need no escaping.
    """

    references: tuple[tuple[JournalKind, str], ...]
    fields: tuple[tuple[ItemField, str], ...]
    utc_offset_seconds: int

    def __post_init__(self) -> None:
        for _, key in (*self.references, *self.fields):
            if re.fullmatch("[a-z_]+", key) is None:
                raise ValueError(f"item key {key!r} is not a plain name")


class HistoryItems:
    """Renders the history items of one set of keys (about a microsecond an item)."""

    __slots__ = ("_order", "references")

    def __init__(
        self,
        references: Sequence[tuple[JournalKind, str]],
        fields: Sequence[tuple[ItemField, str]],
    ) -> None:
        self.references = dict(references)
        """The key of the reference, by journal kind (a kind without one has no item)."""
        self._order = [(key, VALUE_ORDER.index(field)) for field, key in fields]

    def render(
        self, kind: JournalKind, reference: str, values: tuple[object, ...]
    ) -> dict[str, object]:
        """The item of an entry: its ``reference`` under ``kind``'s key, then the layout's
        fields, taken from ``values`` (in ``VALUE_ORDER``: status, user id, entry type,
        amount, remarks, balance before, balance after, display time)."""
        item: dict[str, object] = {self.references[kind]: reference}
        for key, index in self._order:
            item[key] = values[index]
        return item
