"""Idempotency keys: a retried money-moving request replays its first answer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

IN_FLIGHT = "A request with this Idempotency-Key is still being processed; retry later."
"""Why a key was refused while its first request is still being answered."""
KEY_REUSED = "This Idempotency-Key was already used with a different request."
"""Why a key was refused for a request other than its first one."""


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A client's key, scoped to the caller (a user id, or a no_rekening)."""

    scope: str
    key: str
    fingerprint: str
    """A digest of the operation and its request body."""


def fingerprint(operation: str, canonical_body: bytes) -> str:
    return hashlib.sha256(operation.encode() + b"\0" + canonical_body).hexdigest()


@dataclass(frozen=True, slots=True)
class Claimed:
    """The key is ours: go ahead, and record the outcome."""


@dataclass(frozen=True, slots=True)
class ReplayJournal:
    """The first request moved money in this journal: answer as it did."""

    journal_id: str


@dataclass(frozen=True, slots=True)
class ReplayResponse:
    """The first request was answered with this (a rejection): answer the same."""

    status: int
    body: bytes


ClaimOutcome = Claimed | ReplayJournal | ReplayResponse
