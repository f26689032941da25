"""The framework's ceiling: a bare FastAPI endpoint that only validates the /pay JSON body.

Served exactly like Dompet (same uvicorn command, flags and worker count) and answered with
the same orjson envelope, so the ratio Dompet/bare is the cost of Dompet's own work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response

from dompet.api.app import _tune_gc
from dompet.api.responses import wallet_ok
from dompet.api.schemas import PayRequest


def create_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _tune_gc()  # the same process tuning as Dompet's app, for a fair ceiling
        yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/pay")
    async def pay(body: PayRequest) -> Response:
        return wallet_ok({"amount": body.amount, "remarks": body.remarks})

    return app
