"""Deleting expired idempotency keys, throttles and sessions, in short batches, now and then.

A key past its ``expires_at`` is one ``claim_idempotency`` would reclaim anyway; the purge only
removes such rows so the table stops growing. A key within its TTL (answered or in flight) is
never touched, so no client sees a different answer for a live key. Likewise a throttle whose
window is over counts nothing any more, and a session whose every token has expired can never
be used again (a missing session is an ended one): both are deleted by the same periodic purge.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from dompet.services.ports import Clock
from dompet.storage.port import LedgerStore

log = logging.getLogger(__name__)

PURGE_BATCH = 1000
"""Keys deleted per write transaction (each one short; other writers go in between)."""


async def purge_expired_idempotency_keys(
    store: LedgerStore,
    now: datetime,
    batch: int = PURGE_BATCH,
    keep_going: Callable[[], bool] = lambda: True,
) -> int:
    """Delete every key that expired before ``now``, ``batch`` at a time; return how many.

    Stops after a batch that deleted fewer than ``batch`` keys, or when ``keep_going()`` says
    so (a worker shutting down).
    """
    total = 0
    while True:
        deleted = await store.purge_idempotency(now, batch)
        total += deleted
        if deleted < batch or not keep_going():
            return total


async def purge_expired_sessions_and_throttles(
    store: LedgerStore,
    now: datetime,
    batch: int = PURGE_BATCH,
    keep_going: Callable[[], bool] = lambda: True,
) -> int:
    """Delete every throttle whose window ended and every session whose tokens expired before
    ``now``, ``batch`` rows at a time; return how many."""
    total = 0
    for purge in (store.purge_throttles, store.purge_sessions):
        while True:
            deleted = await purge(now, batch)
            total += deleted
            if deleted < batch or not keep_going():
                break
    return total


class PeriodicPurge:
    """Runs the purge at most once every ``interval`` seconds; a failure is logged and
    retried in the next period, never raised (a worker loop calls this)."""

    def __init__(
        self,
        store: LedgerStore,
        clock: Clock,
        interval: float,
        batch: int = PURGE_BATCH,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._now = clock
        self._interval = interval
        self._batch = batch
        self._monotonic = monotonic
        self._last: float | None = None
        self.purged = 0
        """Keys deleted by this purger so far."""
        self.purged_others = 0
        """Throttles and sessions deleted by this purger so far."""
        self.runs = 0
        """Purges finished (successfully) so far."""

    def due(self) -> bool:
        return self._last is None or self._monotonic() - self._last >= self._interval

    async def run(self, keep_going: Callable[[], bool] = lambda: True) -> int:
        """Purge now (whether due or not); 0 when it failed (logged)."""
        self._last = self._monotonic()
        now = self._now()
        try:
            deleted = await purge_expired_idempotency_keys(
                self._store, now, self._batch, keep_going
            )
            others = await purge_expired_sessions_and_throttles(
                self._store, now, self._batch, keep_going
            )
        except Exception:
            log.exception("idempotency-key purge failed; retrying in %.0f s", self._interval)
            return 0
        self.purged += deleted
        self.purged_others += others
        self.runs += 1
        if deleted or others:
            log.info(
                "purged %d expired idempotency keys, %d expired throttles and sessions",
                deleted,
                others,
            )
        return deleted

    async def run_if_due(self, keep_going: Callable[[], bool] = lambda: True) -> int:
        return await self.run(keep_going) if self.due() else 0
