"""Worker heartbeats: each worker upserts its liveness and counters for the dashboard."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from dompet.domain.errors import StoreUnavailable
from dompet.domain.monitoring import WorkerHeartbeat
from dompet.services.ports import Clock
from dompet.storage.port import LedgerStore

log = logging.getLogger(__name__)

Counters = Callable[[], tuple[int, int]]
"""Returns (settled, failed) so far."""


class Heartbeat:
    """Records a worker's heartbeat at most once per ``interval`` seconds (never raises)."""

    def __init__(
        self,
        store: LedgerStore,
        clock: Clock,
        worker_id: str,
        kind: str,
        counters: Counters,
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

    @property
    def has_beaten(self) -> bool:
        return self._last is not None

    async def beat(self, *, force: bool = False, state: str = "running") -> None:
        now = self._now()
        if (
            not force
            and self._last is not None
            and (now - self._last).total_seconds() < self._interval
        ):
            return
        settled, failed = self._counters()
        try:
            await self._store.record_heartbeat(
                WorkerHeartbeat(
                    worker_id=self.worker_id,
                    kind=self._kind,
                    started_at=self._started_at,
                    last_seen_at=now,
                    settled=settled,
                    failed=failed,
                    info={**self._info, "state": state},
                )
            )
            self._last = now
        except StoreUnavailable as exc:
            log.warning("could not record the heartbeat of %s: %s", self.worker_id, exc.message)
        except Exception:
            log.exception("could not record the heartbeat of %s", self.worker_id)
