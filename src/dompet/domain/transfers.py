"""Transfers between wallets: debited at once, credited later by a worker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class TransferStatus(StrEnum):
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class Transfer:
    id: str
    sender_id: str
    target_id: str
    amount: int
    remarks: str
    status: TransferStatus
    created_at: datetime
    attempts: int = 0
    last_error: str = ""
    next_attempt_at: datetime | None = None
    settled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off between settlement attempts, then give up (and refund)."""

    max_attempts: int = 5
    base_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(minutes=5)

    def delay_after(self, attempts: int) -> timedelta:
        """How long to wait after the ``attempts``-th failed attempt."""
        delay: timedelta = self.base_delay * (2 ** max(attempts - 1, 0))
        return min(delay, self.max_delay)

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts
