"""What the services need from the outside world besides the store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

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


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    user_id: str
    jti: str
    expires_at: datetime


class TokenCodec(Protocol):
    def issue(self, user_id: str, now: datetime) -> TokenPair: ...

    def access_subject(self, token: str, now: datetime) -> str:
        """The user id of a valid access token; raises Unauthenticated otherwise."""

    def refresh_claims(self, token: str, now: datetime) -> RefreshClaims:
        """The claims of a valid refresh token; raises Unauthenticated otherwise."""


class TransferDispatcher(Protocol):
    """Tells the background workers a transfer is waiting (after its commit)."""

    async def transfer_accepted(self, transfer_id: str) -> None: ...
