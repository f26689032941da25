"""Make the generated OpenAPI document say what the API really does.

FastAPI documents a 422 ``HTTPValidationError`` for every operation with input, but Dompet
answers validation errors with 400 in the API's own shape (api/errors.py). This customiser:

* replaces the 422 with a 400 in the API's error shape (``Failure`` for the e-wallet,
  ``Remark`` for the savings API);
* documents 413 on every e-wallet operation with a request body (api/limits.py; savings
  routes answer an oversized body with their usual 400 ``{"remark"}``);
* documents the ``Idempotency-Key`` header of every money-moving POST;
* documents 503 on /healthz, and on every route of both APIs: the database is unavailable
  (storage/faults.py), in the API's error shape with ``Retry-After``;
* lists the paths in the specification's order (SPEC.md), whatever order routing tries them
  in (api/wallet.py puts the money routes first);
* declares the bearer security scheme of the routes that take a caller (api/deps.py reads the
  header itself, so FastAPI does not know of it): pass ``openapi_extra=BEARER`` on the route.

Schemathesis (tests/reliability/test_schemathesis.py) holds the document to it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

UNAVAILABLE = (
    "The database is unavailable (down, unreachable, too slow or too busy, or its disk full): "
    "not the request's fault. Retry after the `Retry-After` seconds; a money-moving request "
    "with the same `Idempotency-Key` (its outcome is unknown: the retry replays it if it was "
    "made, and makes it once if not)."
)

BEARER_SCHEME = "HTTPBearer"
BEARER: dict[str, Any] = {"security": [{BEARER_SCHEME: []}]}
"""``openapi_extra`` of a route that needs ``Authorization: Bearer <access_token>``."""

DOCUMENTED_ORDER = (
    "/register",
    "/login",
    "/refresh",
    "/topup",
    "/pay",
    "/transfer",
    "/transactions",
    "/profile",
    "/logout",
    "/daftar",
    "/tabung",
    "/tarik",
    "/saldo/{no_rekening}",
    "/mutasi/{no_rekening}",
)

MONEY_ROUTES = frozenset({"/topup", "/pay", "/transfer", "/tabung", "/tarik"})
IDEMPOTENCY_HEADER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Makes a retry safe: the same key with the same body replays the first answer and "
        "moves no money; another body, or a request still in flight, is refused. Keys belong "
        "to the caller and expire after IDEMPOTENCY_TTL_SECONDS (default 24 h)."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


def _error(description: str, savings: bool) -> dict[str, Any]:
    name = "Remark" if savings else "Failure"
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
    }


def _ensure_error_schemas(schema: dict[str, Any]) -> None:
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, field in (("Failure", "message"), ("Remark", "remark")):
        schemas.setdefault(
            name,
            {
                "title": name,
                "type": "object",
                "properties": {field: {"title": field.title(), "type": "string"}},
                "required": [field],
            },
        )
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schema["components"].setdefault("securitySchemes", {})[BEARER_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The access_token from POST /login",
    }


def _in_documented_order(paths: dict[str, Any]) -> dict[str, Any]:
    rank = {path: i for i, path in enumerate(DOCUMENTED_ORDER)}
    order = sorted(paths, key=lambda path: rank.get(path, len(rank)))  # stable: others after
    return {path: paths[path] for path in order}


def make_honest(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a FastAPI-generated document in place (see the module docstring)."""
    _ensure_error_schemas(schema)
    if "paths" in schema:
        schema["paths"] = _in_documented_order(schema["paths"])
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            savings = "Tabungan" in operation.get("tags", ())
            responses: dict[str, Any] = operation.setdefault("responses", {})
            had_validation = responses.pop("422", None) is not None
            if had_validation and "400" not in responses:
                responses["400"] = _error("Invalid input", savings)
            if "requestBody" in operation and not savings:
                responses.setdefault("413", _error("Request body too large", savings))
            if method == "post" and path in MONEY_ROUTES:
                parameters = operation.setdefault("parameters", [])
                if not any(p.get("name") == IDEMPOTENCY_HEADER["name"] for p in parameters):
                    parameters.append(dict(IDEMPOTENCY_HEADER))
            if path == "/healthz":
                responses.setdefault("503", {"description": "The database does not answer"})
            elif {"E-wallet", "Tabungan"} & set(operation.get("tags", ())):
                responses.setdefault("503", _error(UNAVAILABLE, savings))
    return schema


def install_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = make_honest(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
