"""Routes know which API they belong to, so errors take that API's shape."""

from __future__ import annotations

from enum import StrEnum

from fastapi.routing import APIRoute
from starlette.requests import Request


class ErrorShape(StrEnum):
    WALLET = "wallet"
    """``{"message": ...}`` with the status that fits."""
    SAVINGS = "savings"
    """``{"remark": ...}``, always HTTP 400."""


class WalletRoute(APIRoute):
    error_shape = ErrorShape.WALLET


class SavingsRoute(APIRoute):
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
