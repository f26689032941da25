"""Routes know which API they belong to, so errors take that API's shape; and the common
route shapes (a JSON body and/or query parameters, the request, request-only dependencies)
take a direct path.
"""

from __future__ import annotations

import copy
import email.message
import inspect
import json
import types
import typing
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from enum import StrEnum
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi import routing as _fastapi_routing
from fastapi._compat import ModelField
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, APIRouter
from pydantic import Json
from starlette.exceptions import HTTPException
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
            self._json = strict_json(await self.body())
        return self._json


def strict_json(body: bytes) -> Any:
    """``json.loads`` that refuses a repeated key (see :class:`StrictJsonRequest`).

    Fast path: orjson parses, and its result is taken when the text itself shows no key can
    be repeated -- no backslash (so every key is written literally) and every key's quoted
    text occurs once -- and it holds no float (orjson reads an integer beyond 64 bits as one,
    where ``json.loads`` keeps it exact; no field of this API takes a float anyway). Anything
    else (a key text seen twice, an escape, a float, or a text orjson refuses) is decided by
    ``json.loads`` with the duplicate check, whose answers and errors are the API's.
    """
    if b"\\" not in body:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
        else:
            if _plainly_parsed(data, body):
                return data
    return json.loads(body, object_pairs_hook=_refuse_duplicate_keys)


def _plainly_parsed(value: Any, text: bytes) -> bool:
    if isinstance(value, dict):
        return all(
            text.count(b'"' + key.encode() + b'"') == 1 and _plainly_parsed(item, text)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return all(_plainly_parsed(item, text) for item in value)
    return not isinstance(value, float)


def is_json_content_type(value: str | None) -> bool:
    """FastAPI's test: ``application/json`` or ``application/*+json``, parameters allowed."""
    if value == "application/json":
        return True
    if not value:
        return False
    message = email.message.Message()
    message["content-type"] = value
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


Handler = Callable[[Request], Coroutine[Any, Any, Response]]
_NO_BODY = object()


class DompetRoute(APIRoute):
    """A route whose JSON body may not repeat a key.

    Routes of the shapes the wallet's routes have -- at most one required JSON body model,
    query parameters, the ``Request``, and dependencies that take only the request (the
    caller, the container) -- are served by :meth:`_direct_handler`: the same steps and the
    same errors as FastAPI's generic handler (body read and parsed first, then the
    dependencies, then the query parameters and the body validated by FastAPI's own fields),
    without its per-request dependency solving, which profiling showed as a tenth of a
    payment's CPU time and a sixth of a history page's. Every other shape uses FastAPI's.
    """

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive, request._send))

        return self._direct_handler(strict) or strict

    def _direct_handler(self, generic: Handler) -> Handler | None:
        # Under app.include_router(), FastAPI builds the handler of an "effective" copy of the
        # route (router-level dependencies added) and says so through a context variable, as
        # APIRoute.get_route_handler reads it.
        route: Any = self
        effective = getattr(_fastapi_routing, "_effective_route_context_var", None)
        context = effective.get() if effective is not None else None
        if context is not None and getattr(context, "original_route", None) is self:
            route = context
        dependant: Dependant | None = route.dependant
        body_field: ModelField | None = route.body_field
        if dependant is None or not _is_direct_shape(dependant) or not _returns_response(dependant):
            return None
        if body_field is not None and (
            not body_field.field_info.is_required() or not _strict_content_type(route)
        ):
            return None
        overrides_provider = route.dependency_overrides_provider
        endpoint: Callable[..., Awaitable[Response]] = dependant.call  # type: ignore[assignment]
        body_name = dependant.body_params[0].name if body_field is not None else ""
        query_fields = dependant.query_params
        read_query = (
            _scalar_query_values if _all_plain_scalars(query_fields) else request_params_to_args
        )
        request_name = dependant.request_param_name
        dependencies: list[tuple[str, Callable[[Request], Awaitable[Any]]]] = [
            (d.name, d.call) for d in dependant.dependencies if d.name and d.call
        ]
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}

        async def direct(request: Request) -> Response:
            if getattr(overrides_provider, "dependency_overrides", None):
                return await generic(request)  # tests may override dependencies
            data: Any = _NO_BODY
            if body_field is not None:
                data = await _read_json_body(request)
            values: dict[str, Any] = {}
            for name, call in dependencies:
                values[name] = await call(request)
            if request_name is not None:
                values[request_name] = request
            errors: list[Any] = []
            if query_fields:
                query_values, query_errors = read_query(query_fields, request.query_params)
                values.update(query_values)
                errors.extend(query_errors)
            if body_field is not None:
                if data is _NO_BODY:
                    errors.append(missing)
                else:
                    body, body_errors = body_field.validate(data, values, loc=("body",))
                    if body_errors:
                        errors.extend(body_errors)
                    values[body_name] = body
            if errors:
                raise RequestValidationError(errors, body=None if data is _NO_BODY else data)
            return await endpoint(**values)

        return direct


async def _read_json_body(request: Request) -> Any:
    """The parsed JSON body, the raw bytes of a non-JSON one, or ``_NO_BODY``; FastAPI's errors."""
    try:
        raw = await request.body()
        if not raw:
            return _NO_BODY
        if is_json_content_type(request.headers.get("content-type")):
            return strict_json(raw)
        return raw  # not JSON: the model refuses it, as FastAPI's does
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ],
            body=exc.doc,
        ) from exc
    except HTTPException:
        raise  # the body limit (api/limits.py)
    except Exception as exc:  # nesting too deep, undecodable bytes ...
        raise HTTPException(400, "There was an error parsing the body") from exc


_SCALARS = (int, str, bool)


def _all_plain_scalars(fields: list[ModelField]) -> bool:
    """Whether every query field is an optional plain ``int``/``str``/``bool`` with a default,
    named as in the URL: FastAPI's reading of such a field is then
    :func:`_scalar_query_values`."""
    for field in fields:
        info = field.field_info
        annotation = info.annotation
        arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            if len(arguments) != 1:
                return False
            annotation = arguments[0]
        if (
            annotation not in _SCALARS
            or field.alias != field.name
            or info.alias not in (None, field.name)
            or info.validation_alias is not None
            or info.is_required()
            or info.validate_default
            or any(type(item) is Json for item in info.metadata)
        ):
            return False
    return True


def _scalar_query_values(
    fields: list[ModelField], query: Mapping[str, Any]
) -> tuple[dict[str, Any], list[Any]]:
    """``request_params_to_args`` for the fields of :func:`_all_plain_scalars`, without its
    per-call analysis of each field's annotation (18 us for two fields): the last value
    given, validated by the field itself, or the default when absent."""
    values: dict[str, Any] = {}
    errors: list[Any] = []
    for field in fields:
        name = field.name
        value = query.get(name)
        if value is None:
            values[name] = copy.deepcopy(field.default)
            continue
        validated, problems = field.validate(value, values, loc=("query", name))
        if problems:
            errors.extend(problems)
        else:
            values[name] = validated
    return values, errors


def _strict_content_type(route: Any) -> bool:
    """Whether a body without a JSON Content-Type is refused (FastAPI's default)."""
    value = route.strict_content_type
    return bool(value.value if isinstance(value, DefaultPlaceholder) else value)


def _is_direct_shape(dependant: Dependant) -> bool:
    """At most one body model, query parameters, maybe the request, and async dependencies
    of the request alone."""
    if (
        len(dependant.body_params) > 1
        or dependant.path_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.http_connection_param_name
        or dependant.security_scopes_param_name
        or not inspect.iscoroutinefunction(dependant.call)
    ):
        return False
    return all(_takes_only_the_request(d) for d in dependant.dependencies)


def _returns_response(dependant: Dependant) -> bool:
    """Whether the endpoint promises a ``Response`` (nothing for FastAPI to serialize)."""
    try:
        returned = typing.get_type_hints(dependant.call).get("return")
    except Exception:  # an annotation that does not resolve: leave it to FastAPI
        return False
    return isinstance(returned, type) and issubclass(returned, Response)


def _takes_only_the_request(dependant: Dependant) -> bool:
    return (
        inspect.iscoroutinefunction(dependant.call)
        and dependant.name is not None
        and dependant.request_param_name is not None
        and not dependant.dependencies
        and not dependant.body_params
        and not dependant.path_params
        and not dependant.query_params
        and not dependant.header_params
        and not dependant.cookie_params
        and not dependant.security_scopes_param_name
        and len(inspect.signature(dependant.call).parameters) == 1
    )


def include_flat(app: FastAPI, router: APIRouter) -> None:
    """What ``app.include_router(router)`` does for a router without prefix or dependencies,
    with the routes on the app's own list: each route is built anew for this app (so
    ``app.dependency_overrides`` applies, as under include_router), from the route's own
    settings. FastAPI 0.16x reaches an included router's routes through a second matching
    layer per request, measured at 14 us -- a tenth of a payment's CPU time.
    """
    if router.prefix or router.dependencies:
        raise ValueError("include_flat is for routers without prefix or dependencies")
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"include_flat takes API routes only, not {route!r}")
        settings = {name: getattr(route, name) for name in _ROUTE_SETTINGS}
        app.router.routes.append(
            type(route)(route.path, route.endpoint, dependency_overrides_provider=app, **settings)
        )


_ROUTE_SETTINGS = tuple(
    name
    for name in inspect.signature(APIRoute.__init__).parameters
    if name not in ("self", "path", "endpoint", "dependency_overrides_provider")
)
"""APIRoute's settings, each kept on the route under its own name."""


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
