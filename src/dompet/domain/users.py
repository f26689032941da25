"""Wallet users and their profiles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class User:
    id: str
    first_name: str
    last_name: str
    phone_number: str
    address: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Credentials:
    user_id: str
    pin_hash: str


@dataclass(frozen=True, slots=True)
class ProfileChanges:
    """Only these fields of a profile may ever change."""

    first_name: str | None = None
    last_name: str | None = None
    address: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (
                ("first_name", self.first_name),
                ("last_name", self.last_name),
                ("address", self.address),
            )
            if v is not None
        }
