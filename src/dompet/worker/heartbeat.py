"""Worker heartbeats: each worker upserts its liveness and counters for the dashboard.

The counters say what this worker did to the ledger, so that the dashboard's Workers table adds
up to it: ``settled`` transfers it credited (they are SUCCESS), ``refunded`` transfers it gave
up on and refunded (FAILED; the heartbeat's ``failed`` column), and ``failed_attempts``, every
failed attempt it recorded (each adds one to a transfer's ``attempts``; the last one of a
refunded transfer included). A heartbeat is written at once when a counter changed since the
last one (at the worker's next turn of its loop, within a sweep interval), else every
``interval`` seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from dompet.domain.errors import StoreUnavailable
from dompet.domain.monitoring import WorkerHeartbeat
from dompet.services.ports import Clock
from dompet.services.settlement import Outcome
from dompet.storage.port import LedgerStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SettlementCounters:
    """What one worker process did so far (see the module docstring)."""

    settled: int = 0
    refunded: int = 0
    failed_attempts: int = 0

    def count(self, outcome: Outcome) -> None:
        """Count one settlement outcome (ALREADY_FINAL and NOT_FOUND changed nothing)."""
        if outcome is Outcome.SETTLED:
            self.settled += 1
        elif outcome is Outcome.RETRY_LATER:
            self.failed_attempts += 1
        elif outcome is Outcome.REFUNDED:
            self.failed_attempts += 1
            self.refunded += 1

    def as_tuple(self) -> tuple[int, int, int]:
        return self.settled, self.refunded, self.failed_attempts


class Heartbeat:
    """Records a worker's heartbeat when its counters changed, or at least every ``interval``
    seconds while it runs (never raises)."""

    def __init__(
        self,
        store: LedgerStore,
        clock: Clock,
        worker_id: str,
        kind: str,
        counters: SettlementCounters,
        interval: float = 5.0,
        info: dict[str, str] | None = None,
    ) -> None:
        self._store = store
        self._now = clock
        self.worker_id = worker_id
        self._kind = kind
        self._counters = counters
        self._interval = interval
        self._info = dict(info or {})
        self._started_at = clock()
        self._last: datetime | None = None
        self._recorded: tuple[int, int, int] | None = None
        self._unrecorded_since: datetime | None = None
        """When recording began to fail (the database unavailable): one warning per outage."""

    @property
    def has_beaten(self) -> bool:
        return self._last is not None

    async def beat(self, *, force: bool = False, state: str = "running") -> None:
        now = self._now()
        counts = self._counters.as_tuple()
        if (
            not force
            and self._last is not None
            and counts == self._recorded
            and (now - self._last).total_seconds() < self._interval
        ):
            return
        settled, refunded, failed_attempts = counts
        try:
            await self._store.record_heartbeat(
                WorkerHeartbeat(
                    worker_id=self.worker_id,
                    kind=self._kind,
                    started_at=self._started_at,
                    last_seen_at=now,
                    settled=settled,
                    failed=refunded,
                    info={
                        **self._info,
                        "state": state,
                        "failed_attempts": str(failed_attempts),
                    },
                )
            )
            self._last = now
            self._recorded = counts
            if self._unrecorded_since is not None:
                log.warning(
                    "recorded the heartbeat of %s again (none recorded for %.1f s)",
                    self.worker_id,
                    (now - self._unrecorded_since).total_seconds(),
                )
                self._unrecorded_since = None
        except StoreUnavailable as exc:
            # Tried again at every sweep; said once, not at every sweep of the outage.
            if self._unrecorded_since is None:
                self._unrecorded_since = now
                log.warning("could not record the heartbeat of %s: %s", self.worker_id, exc.message)
        except Exception:
            log.exception("could not record the heartbeat of %s", self.worker_id)
