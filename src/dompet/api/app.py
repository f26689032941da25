"""The FastAPI application factory. Nothing is connected until the app starts."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Response

from dompet import __version__
from dompet.api import savings, wallet
from dompet.api.errors import install_error_handlers
from dompet.api.idempotency import Idempotency
from dompet.api.limits import BodySizeLimit
from dompet.api.openapi import install_openapi
from dompet.api.presenters import SavingsPresenter, WalletPresenter
from dompet.api.responses import json_response
from dompet.api.routing import include_flat
from dompet.config import Settings
from dompet.container import Container
from dompet.dashboard import routes as dashboard
from dompet.domain.errors import StoreUnavailable
from dompet.observability.edge import RequestObserver
from dompet.observability.logging import configure_logging, flush_logs
from dompet.observability.metrics import Metrics

DESCRIPTION = """
Dompet serves two APIs over one double-entry ledger:

* **E-wallet** — register, login (JWT), top up, pay, transfer (credited in the background),
  transaction report and profile. Errors: `{"message": ...}`.
* **Tabungan** — savings accounts by account number (no_rekening). Errors: HTTP 400
  `{"remark": ...}`.

Money is a whole number of Rupiah (a JSON integer). Money-moving POSTs accept an
`Idempotency-Key` header. When the database is unavailable, both APIs answer 503 in their own
error shape with `Retry-After`: retry then, with the same key.
"""


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    """Build the app; the store and workers are created when it starts (lifespan)."""
    settings = settings or (container.settings if container is not None else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        built = container or await Container.build(settings)
        app.state.container = built
        app.state.wallet_presenter = WalletPresenter(built.settings.tz)
        app.state.savings_presenter = SavingsPresenter(built.settings.tz)
        app.state.idempotency = Idempotency(
            built.store,
            built.clock,
            timedelta(seconds=built.settings.idempotency_ttl_seconds),
            timedelta(seconds=built.settings.idempotency_in_flight_seconds),
        )
        configure_logging(built.settings.log_level, built.settings.log_json, built.settings.tz)
        built.money.subscribe(metrics.money_moved)
        app.state.dashboard = dashboard.Dashboard.build(built)
        dashboard.mount_saq_monitor(app, built)
        built.start()
        _tune_gc()
        try:
            yield
        finally:
            await built.aclose()
            flush_logs()

    app = FastAPI(
        title="Dompet",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "E-wallet", "description": "SPEC.md section 1"},
            {
                "name": "Tabungan",
                "description": (
                    "Savings accounts by no_rekening (SPEC.md section 2). Success: the bare "
                    'object; every error, validation included: HTTP 400 `{"remark": ...}`, '
                    "except an unavailable database: 503 (retry it)."
                ),
            },
            {"name": "Operations", "description": "Health and metrics"},
        ],
        # Dompet observes itself with Prometheus metrics and its own logs (observability/);
        # FastAPI's OpenTelemetry bridge would otherwise look up three global providers on
        # every request to find them unconfigured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    metrics = Metrics(settings.prometheus_multiproc_dir)
    app.state.metrics = metrics
    app.add_middleware(RequestObserver, metrics=metrics)  # outermost: every answer is seen
    install_openapi(app)
    include_flat(app, wallet.router)  # the hot routes: no included-router layer per request
    include_flat(app, savings.router)
    app.include_router(dashboard.router)

    @app.get("/healthz", tags=["Operations"], summary="Up, and the database answers")
    async def healthz() -> Response:
        """503 ``{"database": "unreachable"}`` when the database does not answer within
        DB_CONNECT_TIMEOUT_SECONDS: a probe never hangs on it."""
        built: Container = app.state.container
        limit = built.settings.db_connect_timeout_seconds
        try:
            async with asyncio.timeout(limit):
                await built.store.ping()
        except Exception as exc:
            reason = (
                exc.message
                if isinstance(exc, StoreUnavailable)
                else f"The database did not answer within {limit:g} s."
                if isinstance(exc, TimeoutError)
                else f"The database did not answer ({type(exc).__name__})."
            )
            body = {"status": "unavailable", "database": "unreachable", "reason": reason}
            return json_response(
                body, 503, {"Retry-After": str(built.settings.db_retry_after_seconds)}
            )
        return json_response({"status": "ok", "database": built.store.engine_name})

    @app.get(
        "/metrics",
        tags=["Operations"],
        summary="Prometheus metrics (dompet_ prefix)",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    async def prometheus_metrics() -> Response:
        built: Container = app.state.container
        try:
            await metrics.refresh(built.store, built.clock)
        except Exception:
            metrics.scrape_errors.inc()
            logging.getLogger(__name__).exception("could not read metrics from the database")
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return app


def _tune_gc() -> None:
    """Freeze what start-up allocated (modules, app, routes) out of the collector's view and
    collect the young generation less often: a request allocates many short-lived objects,
    and full collections over the whole heap were visible as pauses in request handling."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 50, 100)


GC_GEN0_THRESHOLD = 20_000
