"""The one place where errors become HTTP responses, in the shape of the API they hit."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from dompet.api.responses import json_response
from dompet.api.routing import ErrorShape, shape_of
from dompet.domain import errors as e

log = logging.getLogger(__name__)

_WALLET_STATUS: dict[type[e.DomainError], int] = {
    e.Unauthenticated: 401,
    e.InvalidCredentials: 401,
    e.TargetNotFound: 404,
    e.PhoneTaken: 409,
    e.IdempotencyConflict: 409,
    e.TooManyAttempts: 429,
    e.ServerBusy: 503,
    e.StoreUnavailable: 503,
    # operators and the dashboard (issue 4)
    e.CsrfRejected: 403,
    e.OperatorTaken: 409,
    e.TransferNotRetryable: 409,
}


class BadRequest(e.DomainError):
    """A request the HTTP layer itself refuses (bad header, malformed body ...)."""


UNAVAILABLE = 503
"""The database is unavailable (StoreUnavailable): the one status both APIs share, see below."""


def error_response(
    shape: ErrorShape, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """The API's error shape. The savings API answers every error 400 ``{"remark"}`` (SPEC),
    except a 503: an unavailable database is not the client's error, and a client that reads
    400 as "this request is wrong, do not send it again" would drop a deposit it should retry
    (docs/savings.md)."""
    if shape is ErrorShape.SAVINGS:
        return json_response(
            {"remark": message}, UNAVAILABLE if status == UNAVAILABLE else 400, headers
        )
    return json_response({"message": message}, status, headers)


def domain_error_response(shape: ErrorShape, exc: e.DomainError) -> Response:
    status = next((code for kind, code in _WALLET_STATUS.items() if isinstance(exc, kind)), 400)
    headers = None
    if isinstance(exc, e.TooManyAttempts | e.ServerBusy | e.StoreUnavailable):
        headers = {"Retry-After": str(exc.retry_after_seconds)}
    return error_response(shape, status, exc.message, headers)


def describe_validation_error(error: dict[str, Any]) -> str:
    """One clear sentence naming the field, from one pydantic error."""
    loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
    field = ".".join(loc)
    kind = error.get("type", "")
    if kind == "json_invalid":
        detail = str(error.get("ctx", {}).get("error", ""))
        if detail.startswith("duplicate key"):
            return f"Request body is not valid JSON: {detail}"
        return "Request body is not valid JSON"
    if kind == "missing" and not field:
        return "Request body is required (a JSON object)"
    if kind == "missing":
        return f"Field '{field}' is required"
    if kind == "extra_forbidden":
        return f"Field '{field}' is not allowed"
    if not field and kind in ("dict_type", "model_attributes_type"):
        return "Request body must be a JSON object (Content-Type: application/json)"
    if not field:
        return f"Request body is invalid: {error.get('msg', 'bad value')}"
    return f"Field '{field}' is invalid: {error.get('msg', 'bad value')}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(e.DomainError)
    async def _domain(request: Request, exc: e.DomainError) -> Response:
        return domain_error_response(shape_of(request), exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        message = describe_validation_error(errors[0]) if errors else "Invalid request"
        return error_response(shape_of(request), 400, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed"
        shape = shape_of(request)
        if exc.status_code == 401:
            message = "Unauthenticated"
        headers = dict(exc.headers) if exc.headers else None
        if shape is ErrorShape.SAVINGS and exc.status_code in (404, 405):
            # Unknown routes are not the savings API's business errors: keep their status.
            return json_response({"remark": message}, exc.status_code, headers)
        return error_response(shape, exc.status_code, message, headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(shape_of(request), 500, "Internal server error")
