"""What operators see of background processing: workers, transfer flow, failures."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class WorkerHeartbeat:
    worker_id: str
    kind: str
    """'inprocess', 'standalone' or 'saq'."""
    started_at: datetime
    last_seen_at: datetime
    settled: int = 0
    failed: int = 0
    info: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SettledSample:
    """One settled (or refunded) transfer: when it was accepted and when it became final."""

    transfer_id: str
    status: str
    created_at: datetime
    settled_at: datetime
