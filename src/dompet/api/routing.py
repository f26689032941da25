"""Routes know which API they belong to, so errors take that API's shape."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


class ErrorShape(StrEnum):
    WALLET = "wallet"
    """``{"message": ...}`` with the status that fits."""
    SAVINGS = "savings"
    """``{"remark": ...}``, always HTTP 400."""


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise json.JSONDecodeError(f"duplicate key {key!r}", "", 0)
        seen[key] = value
    return seen


class StrictJsonRequest(Request):
    """A request whose JSON body may not repeat a key.

    ``{"amount": 1, "amount": 2}`` means 1 to one parser and 2 to another (a gateway, an audit
    log ...): a payments API refuses it instead of picking one.
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), object_pairs_hook=_refuse_duplicate_keys)
        return self._json


class DompetRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive, request._send))

        return strict


class WalletRoute(DompetRoute):
    error_shape = ErrorShape.WALLET


class SavingsRoute(DompetRoute):
    error_shape = ErrorShape.SAVINGS


SAVINGS_PATHS = ("/daftar", "/tabung", "/tarik", "/saldo/", "/mutasi/")


def shape_of(request: Request) -> ErrorShape:
    route = request.scope.get("route")
    shape = getattr(route, "error_shape", None)
    if isinstance(shape, ErrorShape):
        return shape
    return shape_of_path(request.url.path)


def shape_of_path(path: str) -> ErrorShape:
    """The error shape of a path, for answers given before routing (e.g. request limits)."""
    if any(path == p or path.startswith(p) for p in SAVINGS_PATHS):
        return ErrorShape.SAVINGS
    return ErrorShape.WALLET
