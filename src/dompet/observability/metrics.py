"""Prometheus metrics, one registry per app (no global state): ``GET /metrics``.

Request counts and latency per route template come from
:class:`~dompet.observability.edge.RequestObserver`; money
moved from the services' MoneyObservers; transfers by status, queue depth and settlement lag
are read from the store at scrape time.

With ``dompet serve --workers N`` the launcher gives the workers one fresh directory
(``PROMETHEUS_MULTIPROC_DIR``, docs/observability.md): prometheus-client then keeps every
worker's values in files there, and a scrape of any worker reports the sum over all of them
(counters and histograms; a worker that died keeps its counts). The database-derived gauges
are the same whoever reads them: the scraped worker sets them just before it answers, and
``livemostrecent`` reports that latest value. One process keeps its values in memory, as
before.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from dompet.services.ports import Clock
from dompet.storage.port import LedgerStore

LAG_WINDOW = timedelta(minutes=5)
"""Settlement lag is reported over transfers settled in this window."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every dompet_ metric of one app, in its own registry."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        """``multiprocess_dir``: PROMETHEUS_MULTIPROC_DIR, when this process is one of several
        workers (prometheus-client then writes every value there)."""
        self.registry = CollectorRegistry(auto_describe=True)
        self._multiprocess_dir = multiprocess_dir
        r = self.registry
        database: Final = "livemostrecent"  # set at scrape time: the scraped worker's wins
        self.requests = Counter(
            "dompet_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "dompet_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.money = Counter(
            "dompet_money_moved_rupiah",
            "Rupiah moved through the API, by kind (topup, pay, transfer, tabung, tarik).",
            ["kind"],
            registry=r,
        )
        self.movements = Counter(
            "dompet_money_movements",
            "Money movements made through the API, by kind.",
            ["kind"],
            registry=r,
        )
        self.transfers = Gauge(
            "dompet_transfers",
            "Transfers in the database, by status.",
            ["status"],
            registry=r,
            multiprocess_mode=database,
        )
        self.queue_depth = Gauge(
            "dompet_settlement_queue_depth",
            "Transfers waiting to be credited (PENDING).",
            registry=r,
            multiprocess_mode=database,
        )
        self.oldest_pending = Gauge(
            "dompet_settlement_oldest_pending_seconds",
            "Age of the oldest PENDING transfer (0 when none).",
            registry=r,
            multiprocess_mode=database,
        )
        self.lag = Gauge(
            "dompet_settlement_lag_seconds",
            "Time from acceptance to settlement of transfers settled in the last 5 minutes "
            "(quantile 0.5, 0.95 and 1 = max).",
            ["quantile"],
            registry=r,
            multiprocess_mode=database,
        )
        self.settled_recently = Gauge(
            "dompet_settled_last_5m",
            "Transfers that became SUCCESS or FAILED in the last 5 minutes.",
            registry=r,
            multiprocess_mode=database,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._money_children: dict[str, tuple[Counter, Counter]] = {}
        self.scrape_errors = Counter(
            "dompet_metrics_scrape_errors",
            "Scrapes whose database-derived metrics could not be read.",
            registry=r,
        )

    def money_moved(self, kind: str, amount: int) -> None:
        children = self._money_children.get(kind)
        if children is None:
            children = (self.money.labels(kind), self.movements.labels(kind))
            self._money_children[kind] = children
        children[0].inc(amount)
        children[1].inc()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        children = self._request_children.get((method, route, status))
        if children is None:  # labels() takes a lock and builds keys: once per combination
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._request_children[(method, route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    async def refresh(self, store: LedgerStore, clock: Clock) -> None:
        """Read the database-derived gauges (called on every scrape)."""
        now = clock()
        counts = await store.transfer_counts()
        for status, count in counts.items():
            self.transfers.labels(status.value).set(count)
        self.queue_depth.set(sum(c for s, c in counts.items() if s.value == "PENDING"))
        oldest = await store.oldest_pending_created_at()
        self.oldest_pending.set(max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
        samples = await store.settled_since(now - LAG_WINDOW)
        lags = sorted((s.settled_at - s.created_at).total_seconds() for s in samples)
        self.settled_recently.set(len(lags))
        for label, q in (("0.5", 0.5), ("0.95", 0.95), ("1", 1.0)):
            self.lag.labels(label).set(_quantile(lags, q))

    def render(self) -> tuple[bytes, str]:
        """The text format: this app's registry, or every worker's values summed."""
        if self._multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(every_worker), CONTENT_TYPE_LATEST


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(int(q * (len(sorted_values) - 1) + 0.5), len(sorted_values) - 1)
    return sorted_values[index]
