"""Rendering domain objects as the e-wallet API's JSON."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from dompet.domain.history import DISPLAY_RANGE, HistoryItems, ItemField, ItemLayout
from dompet.domain.ledger import Entry, EntryStatus, EntryType, JournalKind
from dompet.domain.users import User

DISPLAY_FORMAT = "%Y-%m-%d %H:%M:%S"

_ID_FIELD = {
    JournalKind.TOPUP: "top_up_id",
    JournalKind.PAYMENT: "payment_id",
    JournalKind.TRANSFER_OUT: "transfer_id",
    JournalKind.TRANSFER_SETTLE: "transfer_id",
    JournalKind.TRANSFER_REFUND: "transfer_id",
}

_ITEM_FIELDS = (
    (ItemField.STATUS, "status"),
    (ItemField.USER_ID, "user_id"),
    (ItemField.ENTRY_TYPE, "transaction_type"),
    (ItemField.AMOUNT, "amount"),
    (ItemField.REMARKS, "remarks"),
    (ItemField.BALANCE_BEFORE, "balance_before"),
    (ItemField.BALANCE_AFTER, "balance_after"),
    (ItemField.DISPLAY_TIME, "created_date"),
)
"""A history item's keys after its reference (GET /transactions, SPEC.md)."""

_TEXT: dict[StrEnum, str] = {member: member.value for member in (*EntryStatus, *EntryType)}
"""An enum's plain text, looked up faster than ``.value``."""


def history_layout(tz: ZoneInfo) -> ItemLayout | None:
    """History items as a store may render them itself: only for a display zone of one offset
    (Asia/Jakarta, UTC...); a zone with daylight saving time is presented by the API."""
    offset = fixed_utc_offset(tz)
    if offset is None:
        return None
    return ItemLayout(tuple(_ID_FIELD.items()), _ITEM_FIELDS, utc_offset_seconds=offset)


class WalletPresenter:
    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        self.item_layout = history_layout(tz)
        """History items as a store may render them itself (``history_layout``)."""
        self._items = HistoryItems(tuple(_ID_FIELD.items()), _ITEM_FIELDS)

    def when(self, moment: datetime) -> str:
        """``moment`` in the display time zone as ``DISPLAY_FORMAT``; cheaper than strftime."""
        local = moment.astimezone(self._tz)
        if local.year < 1000:  # strftime does not pad %Y; keep its output exactly
            return local.strftime(DISPLAY_FORMAT)
        return "%04d-%02d-%02d %02d:%02d:%02d" % (  # noqa: UP031 -- the fastest exact form
            local.year,
            local.month,
            local.day,
            local.hour,
            local.minute,
            local.second,
        )

    def user(self, user: User) -> dict[str, Any]:
        return {
            "user_id": user.id,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "phone_number": user.phone_number,
            "address": user.address,
            "created_date": self.when(user.created_at),
        }

    def profile(self, user: User) -> dict[str, Any]:
        return {
            "user_id": user.id,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "address": user.address,
            "updated_date": self.when(user.updated_at),
        }

    def receipt(self, entry: Entry) -> dict[str, Any]:
        """The result of /topup, /pay or /transfer: the caller's own entry."""
        if entry.kind is JournalKind.TOPUP:
            return {
                "top_up_id": entry.reference,
                "amount_top_up": entry.amount,
                "balance_before": entry.balance_before,
                "balance_after": entry.balance_after,
                "created_date": self.when(entry.created_at),
            }
        return {
            _ID_FIELD[entry.kind]: entry.reference,
            "amount": entry.amount,
            "remarks": entry.remarks,
            "balance_before": entry.balance_before,
            "balance_after": entry.balance_after,
            "created_date": self.when(entry.created_at),
        }

    def transactions(self, entries: Sequence[Entry], user_id: str) -> list[dict[str, object]]:
        """The caller's history items (GET /transactions), in the order given: each the one
        item ``domain.history.HistoryItems`` renders (as the stores render theirs)."""
        render, when = self._items.render, self.when
        return [
            render(
                entry.kind,
                entry.reference,
                (
                    _TEXT[entry.status],
                    user_id,
                    _TEXT[entry.entry_type],
                    entry.amount,
                    entry.remarks,
                    entry.balance_before,
                    entry.balance_after,
                    when(entry.created_at),
                ),
            )
            for entry in entries
        ]


@functools.cache
def fixed_utc_offset(tz: ZoneInfo) -> int | None:
    """The zone's UTC offset in seconds if it has one offset over ``DISPLAY_RANGE``, else None.

    Checked every six hours (about 70 ms, once per zone): daylight saving time or any change of
    offset since 1970 shows.
    """
    start, end = (int(moment.timestamp()) for moment in DISPLAY_RANGE)
    offsets = {datetime.fromtimestamp(start, tz).utcoffset()}
    for instant in range(start, end, _SIX_HOURS):
        offsets.add(datetime.fromtimestamp(instant, tz).utcoffset())
        if len(offsets) > 1:
            return None
    (offset,) = offsets
    return None if offset is None else int(offset.total_seconds())


_SIX_HOURS = 6 * 3600


class SavingsPresenter:
    """Rendering for the savings ("Tabungan") API."""

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz

    def waktu(self, moment: datetime) -> str:
        """ISO 8601 in the display time zone with its offset: ``2021-04-01T22:23:20+07:00``."""
        return moment.astimezone(self._tz).isoformat(timespec="seconds")

    def mutasi_item(self, entry: Entry) -> dict[str, Any]:
        return {
            "waktu": self.waktu(entry.created_at),
            "kode_transaksi": "C" if entry.entry_type is EntryType.CREDIT else "D",
            "nominal": entry.amount,
        }
