"""Records <-> JSON objects (one JSON Lines line each). Times are ISO 8601 in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dompet.domain.ledger import AccountKind, JournalKind
from dompet.domain.records import (
    AccountRecord,
    DataRecord,
    JournalRecord,
    PostingRecord,
    UserRecord,
)
from dompet.domain.savings import Customer
from dompet.domain.transfers import Transfer, TransferStatus
from dompet.domain.users import User


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _maybe_time(value: datetime | None) -> str | None:
    return None if value is None else _time(value)


def _parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"time without a UTC offset: {value!r}")
    return parsed.astimezone(UTC)


def _maybe_parse(value: str | None) -> datetime | None:
    return None if value is None else _parse(value)


def encode(record: DataRecord) -> dict[str, Any]:
    """The JSON object of a record."""
    if isinstance(record, AccountRecord):
        return {
            "id": record.id,
            "kind": record.kind.value,
            "balance": record.balance,
            "blocked": record.blocked,
            "created_at": _time(record.created_at),
        }
    if isinstance(record, UserRecord):
        user = record.user
        return {
            "id": user.id,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "phone_number": user.phone_number,
            "address": user.address,
            "pin_hash": record.pin_hash,
            "created_at": _time(user.created_at),
            "updated_at": _time(user.updated_at),
        }
    if isinstance(record, Customer):
        return {
            "id": record.id,
            "nama": record.nama,
            "nik": record.nik,
            "no_hp": record.no_hp,
            "no_rekening": record.no_rekening,
            "created_at": _time(record.created_at),
        }
    if isinstance(record, JournalRecord):
        return {
            "id": record.id,
            "kind": record.kind.value,
            "reference": record.reference,
            "remarks": record.remarks,
            "created_at": _time(record.created_at),
            "postings": [
                {
                    "sequence": leg.sequence,
                    "account_id": leg.account_id,
                    "amount": leg.amount,
                    "balance_before": leg.balance_before,
                    "balance_after": leg.balance_after,
                    "created_at": _time(leg.created_at),
                }
                for leg in record.postings
            ],
        }
    return {
        "id": record.id,
        "sender_id": record.sender_id,
        "target_id": record.target_id,
        "amount": record.amount,
        "remarks": record.remarks,
        "status": record.status.value,
        "created_at": _time(record.created_at),
        "settled_at": _maybe_time(record.settled_at),
        "attempts": record.attempts,
        "last_error": record.last_error,
        "next_attempt_at": _maybe_time(record.next_attempt_at),
    }


def decode(kind: str, data: dict[str, Any]) -> DataRecord:
    """The record of a JSON object of the given kind; raises KeyError/ValueError if malformed."""
    if kind == "accounts":
        return AccountRecord(
            id=data["id"],
            kind=AccountKind(data["kind"]),
            balance=_int(data["balance"]),
            blocked=bool(data["blocked"]),
            created_at=_parse(data["created_at"]),
        )
    if kind == "users":
        return UserRecord(
            user=User(
                id=data["id"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                phone_number=data["phone_number"],
                address=data["address"],
                created_at=_parse(data["created_at"]),
                updated_at=_parse(data["updated_at"]),
            ),
            pin_hash=data["pin_hash"],
        )
    if kind == "customers":
        return Customer(
            id=data["id"],
            nama=data["nama"],
            nik=data["nik"],
            no_hp=data["no_hp"],
            no_rekening=data["no_rekening"],
            created_at=_parse(data["created_at"]),
        )
    if kind == "journals":
        return JournalRecord(
            id=data["id"],
            kind=JournalKind(data["kind"]),
            reference=data["reference"],
            remarks=data["remarks"],
            created_at=_parse(data["created_at"]),
            postings=tuple(
                PostingRecord(
                    sequence=_int(leg["sequence"]),
                    account_id=leg["account_id"],
                    amount=_int(leg["amount"]),
                    balance_before=_maybe_int(leg["balance_before"]),
                    balance_after=_maybe_int(leg["balance_after"]),
                    created_at=_parse(leg["created_at"]),
                )
                for leg in data["postings"]
            ),
        )
    if kind == "transfers":
        return Transfer(
            id=data["id"],
            sender_id=data["sender_id"],
            target_id=data["target_id"],
            amount=_int(data["amount"]),
            remarks=data["remarks"],
            status=TransferStatus(data["status"]),
            created_at=_parse(data["created_at"]),
            attempts=_int(data["attempts"]),
            last_error=data["last_error"],
            next_attempt_at=_maybe_parse(data["next_attempt_at"]),
            settled_at=_maybe_parse(data["settled_at"]),
        )
    raise ValueError(f"unknown record kind {kind!r}")


def _int(value: Any) -> int:
    if type(value) is not int:
        raise ValueError(f"expected a whole number, got {value!r}")
    return value


def _maybe_int(value: Any) -> int | None:
    return None if value is None else _int(value)
