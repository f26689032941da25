"""What the operator dashboard shows, built from the store: flow, latency, workers, failures."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dompet.domain.errors import TooManyAttempts, TransferNotRetryable
from dompet.domain.ids import new_id
from dompet.domain.invariants import InvariantReport, check
from dompet.domain.monitoring import WorkerHeartbeat
from dompet.domain.operators import Operator, check_password, is_username, normalise_username
from dompet.domain.sessions import SessionRecord, operator_subject
from dompet.domain.transfers import TransferStatus
from dompet.services.attempts import AttemptLimits, AttemptPolicy, throttle_key
from dompet.services.ports import Clock, PinHasher
from dompet.storage.port import LedgerStore

STOPPED_WORKERS_SHOWN_FOR = timedelta(hours=1)
SILENT_WORKERS_SHOWN_FOR = timedelta(days=1)

QueueDepth = Callable[[], Awaitable[dict[str, int]]]
"""Extra queue figures from the dispatch adapter (e.g. SAQ's queued/active counts)."""


@dataclass(frozen=True, slots=True)
class MinuteBucket:
    minute: datetime
    settled: int
    failed: int
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True, slots=True)
class WorkerRow:
    worker_id: str
    kind: str
    state: str
    started_at: datetime
    last_seen_at: datetime
    seconds_since_seen: float
    alive: bool
    settled: int
    failed: int


@dataclass(frozen=True, slots=True)
class FailureRow:
    transfer_id: str
    status: str
    amount: int
    sender_id: str
    target_id: str
    attempts: int
    last_error: str
    created_at: datetime
    next_attempt_at: datetime | None
    retryable: bool


@dataclass(frozen=True, slots=True)
class Summary:
    generated_at: datetime
    counts: dict[str, int]
    pending: int
    oldest_pending_age_seconds: float | None
    queue: dict[str, int]
    window_minutes: int
    latency_ms: dict[str, float | None]
    """p50/p95/p99 of accepted -> SUCCESS over the window."""
    throughput_per_minute: float
    minutes: list[MinuteBucket]
    workers: list[WorkerRow]
    failures: list[FailureRow]
    invariants_ok: bool
    invariant_violations: list[str] = field(default_factory=list)
    invariants_checked_at: datetime | None = None


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when empty)."""
    if not sorted_values:
        return None
    rank = max(math.ceil(pct / 100 * len(sorted_values)), 1)
    return sorted_values[rank - 1]


class MonitoringService:
    """Builds the dashboard summary; the ledger check is cached for ``invariants_every``."""

    def __init__(
        self,
        store: LedgerStore,
        clock: Clock,
        *,
        heartbeat_interval: float = 5.0,
        window: timedelta = timedelta(minutes=15),
        invariants_every: timedelta = timedelta(seconds=10),
        queue_depth: QueueDepth | None = None,
    ) -> None:
        self._store = store
        self._now = clock
        self._heartbeat_interval = heartbeat_interval
        self._window = window
        self._invariants_every = invariants_every
        self._queue_depth = queue_depth
        self._invariants: tuple[datetime, InvariantReport] | None = None

    async def summary(self) -> Summary:
        now = self._now()
        counts = await self._store.transfer_counts()
        oldest = await self._store.oldest_pending_created_at()
        since = (now - self._window).replace(second=0, microsecond=0)
        samples = await self._store.settled_since(since)
        minutes: dict[datetime, tuple[list[float], int]] = {}
        cursor = since
        while cursor <= now:
            minutes[cursor] = ([], 0)
            cursor += timedelta(minutes=1)
        latencies: list[float] = []
        for sample in samples:
            bucket = sample.settled_at.replace(second=0, microsecond=0)
            ms = (sample.settled_at - sample.created_at).total_seconds() * 1000
            good, bad = minutes.get(bucket, ([], 0))
            if sample.status == TransferStatus.SUCCESS:
                good.append(ms)
                latencies.append(ms)
            else:
                bad += 1
            minutes[bucket] = (good, bad)
        latencies.sort()
        buckets = []
        for minute in sorted(minutes):
            good, bad = minutes[minute]
            good.sort()
            buckets.append(
                MinuteBucket(minute, len(good), bad, percentile(good, 50), percentile(good, 95))
            )
        window_minutes = max(len(buckets), 1)
        queue = {"pending": counts[TransferStatus.PENDING]}
        if self._queue_depth is not None:
            try:
                queue.update(await self._queue_depth())
            except Exception:  # the queue being down must not take the dashboard with it
                queue["unavailable"] = 1
        report_at, report = await self._invariant_report(now)
        return Summary(
            generated_at=now,
            counts={status.value: n for status, n in counts.items()},
            pending=counts[TransferStatus.PENDING],
            oldest_pending_age_seconds=(now - oldest).total_seconds() if oldest else None,
            queue=queue,
            window_minutes=window_minutes,
            latency_ms={
                "p50": percentile(latencies, 50),
                "p95": percentile(latencies, 95),
                "p99": percentile(latencies, 99),
            },
            throughput_per_minute=round(len(latencies) / window_minutes, 2),
            minutes=buckets,
            workers=[
                self._worker_row(b, now)
                for b in await self._store.heartbeats()
                if self._worth_showing(b, now)
            ],
            failures=[
                FailureRow(
                    transfer_id=t.id,
                    status=t.status.value,
                    amount=t.amount,
                    sender_id=t.sender_id,
                    target_id=t.target_id,
                    attempts=t.attempts,
                    last_error=t.last_error,
                    created_at=t.created_at,
                    next_attempt_at=t.next_attempt_at,
                    retryable=t.status is TransferStatus.PENDING,
                )
                for t in await self._store.troubled_transfers()
            ],
            invariants_ok=report.ok,
            invariant_violations=report.violations[:20],
            invariants_checked_at=report_at,
        )

    async def retry(self, transfer_id: str) -> None:
        """Operator retry: make a PENDING transfer due now. Raises TransferNotRetryable."""
        if not await self._store.retry_transfer_now(transfer_id, self._now()):
            raise TransferNotRetryable(transfer_id)

    @staticmethod
    def _worth_showing(beat: WorkerHeartbeat, now: datetime) -> bool:
        """Hide workers stopped over an hour ago and any silent for a day (old processes)."""
        age = now - beat.last_seen_at
        if beat.info.get("state") == "stopped":
            return age <= STOPPED_WORKERS_SHOWN_FOR
        return age <= SILENT_WORKERS_SHOWN_FOR

    def _worker_row(self, beat: WorkerHeartbeat, now: datetime) -> WorkerRow:
        state = beat.info.get("state", "running")
        age = (now - beat.last_seen_at).total_seconds()
        return WorkerRow(
            worker_id=beat.worker_id,
            kind=beat.kind,
            state=state,
            started_at=beat.started_at,
            last_seen_at=beat.last_seen_at,
            seconds_since_seen=round(age, 1),
            alive=state != "stopped" and age <= 3 * self._heartbeat_interval,
            settled=beat.settled,
            failed=beat.failed,
        )

    async def _invariant_report(self, now: datetime) -> tuple[datetime, InvariantReport]:
        if self._invariants is None or now - self._invariants[0] >= self._invariants_every:
            self._invariants = (now, check(await self._store.snapshot()))
        return self._invariants


class OperatorService:
    """Dashboard operators (from the store, made by ``dompet create-operator``) and their
    logins, which are throttled like wallet logins and start server-side sessions: a session
    ends at logout, when the operator is removed, or when it expires."""

    def __init__(
        self,
        store: LedgerStore,
        hasher: PinHasher,
        clock: Clock,
        attempts: AttemptLimits | None = None,
        session_ttl: timedelta = timedelta(hours=8),
    ) -> None:
        self._store = store
        self._hasher = hasher
        self._now = clock
        self._attempts = attempts or AttemptLimits(store, clock, AttemptPolicy())
        self._session_ttl = session_ttl

    async def create(self, username: str, password: str) -> Operator:
        """Add an operator (Argon2id hash). Raises InvalidInput, OperatorTaken."""
        name = normalise_username(username)
        check_password(password)
        operator = Operator(name, await self._hasher.hash(password), self._now())
        await self._store.add_operator(operator)
        return operator

    async def remove(self, username: str) -> bool:
        """Delete the operator and end their sessions at once; False if there was none."""
        return await self._store.remove_operator(username.strip().lower(), self._now())

    async def authenticate(
        self, username: str, password: str, client: str | None = None
    ) -> str | None:
        """The operator's username if the credentials are right, else None.

        The attempt is taken before the password is checked (LOGIN_MAX_FAILURES per username,
        then locked for LOGIN_LOCK_SECONDS; the per-client limit too): raises TooManyAttempts
        when either is used up.
        """
        name = username.strip().lower()
        attempt = await self._attempts.login(throttle_key("operator", name), client, _locked)
        operator = await self._store.find_operator(name) if is_username(name) else None
        if operator is None:
            await self._hasher.waste_time(password)
            return None
        if not await self._hasher.verify(operator.password_hash, password):
            return None
        await self._attempts.succeeded(attempt)
        return operator.username

    async def open_session(self, username: str) -> SessionRecord:
        now = self._now()
        session = SessionRecord(
            new_id(), operator_subject(username), None, now, now + self._session_ttl
        )
        await self._store.open_session(session)
        return session

    async def session_live(self, session_id: str, username: str) -> bool:
        """Live: not ended, and its operator still exists (a login racing the operator's
        removal may have opened a session after the removal ended the others)."""
        if not await self._store.session_live(session_id, operator_subject(username)):
            return False
        return await self._store.find_operator(username) is not None

    async def end_session(self, session_id: str, username: str) -> None:
        await self._store.end_sessions(operator_subject(username), self._now(), session_id)


def _locked(retry_after_seconds: int) -> TooManyAttempts:
    return TooManyAttempts(
        "Too many failed login attempts for this username. "
        f"Try again in {retry_after_seconds} seconds.",
        retry_after_seconds,
    )
