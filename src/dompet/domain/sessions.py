"""Sessions and attempt throttles: what the store keeps to end a login and to count attempts.

A **session** starts at a login (a wallet user's, or a dashboard operator's) and lives until it
is ended (logout, refresh-token reuse, an operator's removal) or its last token expires. Every
access token names its session, and a token of an ended session is refused from then on.

A **throttle** counts attempts under a key (a phone number, an operator, a client address)
and says, in the same atomic step, whether this attempt is still within the limit: callers
take their attempt *before* the expensive check, so no number of parallel requests can have
more than ``limit`` checks made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

OPERATOR_PREFIX = "operator:"


def operator_subject(username: str) -> str:
    """The session subject of a dashboard operator (a wallet session's is the user id)."""
    return OPERATOR_PREFIX + username


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    subject: str
    """A wallet user id, or ``operator:<username>`` (see :func:`operator_subject`)."""
    refresh_jti: str | None
    """The one refresh token of the session that may still be used (None: no refresh)."""
    created_at: datetime
    expires_at: datetime
    """When the last token issued for it expires: after that it may be purged."""


@dataclass(frozen=True, slots=True)
class ThrottleRule:
    """At most ``limit`` attempts per ``period``.

    ``sliding=False``: a fixed window, opened by the first attempt, ``period`` long.
    ``sliding=True``: attempts in a row, each within ``period`` of the one before; once
    ``limit`` are taken, the key is refused for ``period`` after the last one taken (a lock).
    """

    limit: int
    period: timedelta
    sliding: bool = False

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period <= timedelta(0):
            raise ValueError("a throttle needs a limit of at least 1 and a positive period")


@dataclass(frozen=True, slots=True)
class ThrottleHit:
    """One attempt, counted: whether it is within the limit, and until when the count holds."""

    granted: bool
    until: datetime

    def retry_after(self, now: datetime) -> int:
        """Whole seconds until the key takes attempts again (at least 1)."""
        return max(1, math.ceil((self.until - now).total_seconds()))
