"""Private (or undocumented) internals of our dependencies that Dompet leans on, each checked
for the shape Dompet uses.

Each such dependency is pinned in pyproject.toml to the minor version these checks passed on
(``>=X.Y,<X.Y+1``). An upgrade that removes or reshapes one of them fails here, naming the
internal and the module of ours that uses it, instead of somewhere deep inside a request: read
that module, adapt it to the new version, then move the pin.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import sqlite3
from contextvars import ContextVar
from typing import Any

import pytest


def need(ok: bool, internal: str, user: str, shape: str) -> None:
    """Fail with a message that names ``internal``, its user and the shape expected."""
    if not ok:
        pytest.fail(
            f"{internal} (used by {user}) is gone or no longer {shape}: an upgrade changed a "
            f"private internal; adapt {user} to it, then move the pin in pyproject.toml",
            pytrace=False,
        )


def attribute(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name, None)


def parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters) if callable(function) else []


# -- FastAPI (api/routing.py: the direct route handler, include_flat) -----------------------------
def test_fastapi_internals() -> None:
    user = "dompet/api/routing.py"
    model_field = attribute("fastapi._compat", "ModelField")
    need(model_field is not None, "fastapi._compat.ModelField", user, "importable")
    need(
        parameters(getattr(model_field, "validate", None))[:3] == ["self", "value", "values"]
        and "loc" in parameters(getattr(model_field, "validate", None)),
        "fastapi._compat.ModelField.validate(value, values, *, loc)",
        user,
        "taking (value, values, loc=)",
    )
    effective = attribute("fastapi.routing", "_effective_route_context_var")
    need(
        isinstance(effective, ContextVar),
        "fastapi.routing._effective_route_context_var",
        user,
        "a ContextVar (of the effective route, with .original_route)",
    )
    need(
        "_effective_route_context_var"
        in inspect.getsource(attribute("fastapi.routing", "APIRoute")),
        "fastapi.routing._effective_route_context_var",
        user,
        "what APIRoute.get_route_handler reads",
    )
    reader = attribute("fastapi.dependencies.utils", "request_params_to_args")
    need(
        parameters(reader) == ["fields", "received_params"],
        "fastapi.dependencies.utils.request_params_to_args(fields, received_params)",
        user,
        "taking (fields, received_params)",
    )
    dependant = attribute("fastapi.dependencies.models", "Dependant")
    fields = {f.name for f in dataclasses.fields(dependant)} if dependant else set()
    used = {
        "body_params",
        "path_params",
        "query_params",
        "header_params",
        "cookie_params",
        "dependencies",
        "call",
        "name",
        "request_param_name",
        "response_param_name",
        "background_tasks_param_name",
        "http_connection_param_name",
        "security_scopes_param_name",
    }
    need(
        used <= fields,
        f"fastapi.dependencies.models.Dependant fields {sorted(used - fields)}",
        user,
        "dataclass fields",
    )
    placeholder = attribute("fastapi.datastructures", "DefaultPlaceholder")
    need(
        placeholder is not None and placeholder(True).value is True,
        "fastapi.datastructures.DefaultPlaceholder.value",
        user,
        "the default it holds",
    )


def test_fastapi_route_attributes() -> None:
    from fastapi import FastAPI
    from fastapi.routing import APIRoute
    from pydantic import BaseModel

    class Body(BaseModel):
        amount: int

    app = FastAPI()

    @app.post("/pay")
    async def pay(body: Body) -> dict[str, int]:  # pragma: no cover - never called
        return {}

    route = next(r for r in app.router.routes if isinstance(r, APIRoute))
    for name in ("dependant", "body_field", "dependency_overrides_provider", "strict_content_type"):
        need(
            hasattr(route, name),
            f"fastapi.routing.APIRoute.{name}",
            "dompet/api/routing.py",
            "an attribute of a route",
        )


# -- Starlette (api/routing.py: StrictJsonRequest) ------------------------------------------------
def test_starlette_request_send() -> None:
    from starlette.requests import Request

    async def send(message: Any) -> None:  # pragma: no cover - never called
        return None

    request = Request({"type": "http", "headers": []}, send=send)
    need(
        getattr(request, "_send", None) is send,
        "starlette.requests.Request._send",
        "dompet/api/routing.py",
        "the send callable given to Request()",
    )


# -- uvicorn (serving_http.py: one socket write per response) -------------------------------------
def test_uvicorn_httptools_protocol() -> None:
    protocol = attribute("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol")
    user = "dompet/serving_http.py"
    need(
        protocol is not None,
        "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol",
        user,
        "importable",
    )
    need(
        parameters(protocol.__init__)[:3] == ["self", "config", "server_state"]
        and "self.loop = " in inspect.getsource(protocol.__init__),
        "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol.loop",
        user,
        "set by __init__(config, server_state, ...)",
    )
    need(
        parameters(protocol.connection_made) == ["self", "transport"],
        "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol.connection_made(transport)",
        user,
        "taking the transport",
    )


# -- aiosqlite (storage/sql/engine.py: statements inline; group_commit.py: the sqlite3 under it) ---
async def test_aiosqlite_connection_internals() -> None:
    import aiosqlite

    user = "dompet/storage/sql/engine.py and group_commit.py"
    need(
        inspect.iscoroutinefunction(getattr(aiosqlite.Connection, "_execute", None))
        and parameters(aiosqlite.Connection._execute) == ["self", "fn", "args", "kwargs"],
        "aiosqlite.Connection._execute(fn, *args, **kwargs)",
        user,
        "a coroutine running fn on the connection's thread",
    )
    need(
        parameters(aiosqlite.Connection.__init__)[:3] == ["self", "connector", "iter_chunk_size"],
        "aiosqlite.Connection(connector, iter_chunk_size)",
        user,
        "constructed from a connector",
    )
    connection = aiosqlite.Connection(lambda: sqlite3.connect(":memory:"), iter_chunk_size=64)
    thread = getattr(connection, "_thread", None)
    need(
        thread is not None and hasattr(thread, "daemon"),
        "aiosqlite.Connection._thread",
        user,
        "the connection's thread",
    )
    connection._thread.daemon = True
    await connection
    try:
        need(
            isinstance(getattr(connection, "_connection", None), sqlite3.Connection),
            "aiosqlite.Connection._connection",
            user,
            "the sqlite3 connection",
        )
        need(
            getattr(connection, "_conn", None) is connection._connection,
            "aiosqlite.Connection._conn",
            user,
            "the sqlite3 connection",
        )
        need(
            getattr(connection, "_running", None) is True,
            "aiosqlite.Connection._running",
            user,
            "True while open",
        )
    finally:
        await connection.close()
    need(
        connection._connection is None, "aiosqlite.Connection._connection", user, "None once closed"
    )


# -- SQLAlchemy (storage/sql/access: the PostgreSQL raw driver helper) ----------------------------
async def test_sqlalchemy_greenlet_spawn() -> None:
    spawn = attribute("sqlalchemy.util", "greenlet_spawn")
    need(
        inspect.iscoroutinefunction(spawn),
        "sqlalchemy.util.greenlet_spawn",
        "dompet/storage/sql (the PostgreSQL connection access)",
        "a coroutine running a sync function that may await",
    )
    assert await spawn(lambda: 7) == 7


def test_the_internals_are_pinned_to_a_minor_version() -> None:
    """Each dependency checked above is pinned ``>=X.Y,<X.Y+1`` in pyproject.toml, and the
    installed version is inside the pin."""
    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    from packaging.requirements import Requirement

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    requirements = {
        Requirement(line).name: Requirement(line)
        for line in tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    }
    for name in ("fastapi", "starlette", "uvicorn", "aiosqlite", "sqlalchemy"):
        requirement = requirements.get(name)
        assert requirement is not None, f"{name} is not a direct, pinned dependency"
        bounds = {spec.operator: spec.version for spec in requirement.specifier}
        assert set(bounds) == {">=", "<"}, f"{name}: pin it as >=X.Y,<X.Y+1, not {requirement}"
        low, high = (tuple(int(n) for n in bounds[op].split(".")[:2]) for op in (">=", "<"))
        assert high == (low[0], low[1] + 1), f"{name}: one minor version, not {requirement}"
        assert version(name) in requirement.specifier, f"{name} {version(name)} outside its pin"
