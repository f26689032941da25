"""Rendering domain objects as the e-wallet API's JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from dompet.domain.ledger import Entry, EntryType, JournalKind
from dompet.domain.users import User

DISPLAY_FORMAT = "%Y-%m-%d %H:%M:%S"

_ID_FIELD = {
    JournalKind.TOPUP: "top_up_id",
    JournalKind.PAYMENT: "payment_id",
    JournalKind.TRANSFER_OUT: "transfer_id",
    JournalKind.TRANSFER_SETTLE: "transfer_id",
    JournalKind.TRANSFER_REFUND: "transfer_id",
}


class WalletPresenter:
    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz

    def when(self, moment: datetime) -> str:
        return moment.astimezone(self._tz).strftime(DISPLAY_FORMAT)

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

    def transaction(self, entry: Entry, user_id: str) -> dict[str, Any]:
        return {
            _ID_FIELD[entry.kind]: entry.reference,
            "status": entry.status.value,
            "user_id": user_id,
            "transaction_type": entry.entry_type.value,
            "amount": entry.amount,
            "remarks": entry.remarks,
            "balance_before": entry.balance_before,
            "balance_after": entry.balance_after,
            "created_date": self.when(entry.created_at),
        }


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
