"""What the services need from the outside world besides the store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from dompet.domain.ledger import JournalKind
from dompet.domain.transfers import Transfer

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware, in UTC."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class PinHasher(Protocol):
    async def hash(self, pin: str) -> str: ...

    async def verify(self, pin_hash: str, pin: str) -> bool: ...

    async def waste_time(self, pin: str) -> None:
        """Spend as long as a verify, for unknown phone numbers (no timing oracle)."""


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    session_id: str
    refresh_jti: str
    """The refresh token's id: the one its session will take next (rotation)."""
    expires_at: datetime
    """When the later of the two tokens expires."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    session_id: str


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    user_id: str
    session_id: str
    jti: str
    expires_at: datetime


class TokenCodec(Protocol):
    def issue(self, user_id: str, session_id: str, now: datetime) -> TokenPair: ...

    def access_claims(self, token: str, now: datetime) -> AccessClaims:
        """The user and session of a valid access token; raises Unauthenticated otherwise
        (whether the session is still live is the store's to say)."""

    def refresh_claims(self, token: str, now: datetime) -> RefreshClaims:
        """The claims of a valid refresh token; raises Unauthenticated otherwise."""


class TransferDispatcher(Protocol):
    """Tells the background workers a transfer is waiting (after its commit)."""

    async def transfer_accepted(self, transfer: Transfer) -> None:
        """``transfer`` was committed as accepted (PENDING, no attempt yet)."""

    async def transfer_retried(self, transfer_id: str, attempt: int) -> None:
        """An operator made a transfer with ``attempt`` failed attempts due again (issue 4)."""


MoneyListener = Callable[[str, int], None]
"""Told ``(kind, amount)`` after money moved: kind is topup, pay, transfer, tabung or tarik."""


class MoneyObservers:
    """Fan-out of money-moved events to subscribers (the metrics). Never fails a request."""

    def __init__(self) -> None:
        self._listeners: list[MoneyListener] = []

    def subscribe(self, listener: MoneyListener) -> None:
        self._listeners.append(listener)

    def money_moved(self, kind: str, amount: int) -> None:
        for listener in self._listeners:
            try:
                listener(kind, amount)
            except Exception:  # an observer's bug must not fail a committed payment
                logging.getLogger(__name__).exception("money observer failed")


MONEY_KINDS: dict[JournalKind, str] = {
    JournalKind.TOPUP: "topup",
    JournalKind.PAYMENT: "pay",
    JournalKind.TRANSFER_OUT: "transfer",
    JournalKind.DEPOSIT: "tabung",
    JournalKind.WITHDRAWAL: "tarik",
    JournalKind.TRANSFER_SETTLE: "transfer_settle",
    JournalKind.TRANSFER_REFUND: "transfer_refund",
}
"""The money-moved kind of a customer-initiated journal."""
