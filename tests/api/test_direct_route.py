"""The direct handler of the common route shape (api/routing.py) answers exactly as FastAPI's.

Two apps over one SQLite database: one as shipped (money routes on the direct path), one with
the direct path switched off (FastAPI's generic handler on every route). A battery of refused
requests -- bad bodies, content types and credentials, in combination -- must get the same
status and the same body from both, and a good request must succeed on both. The engine does
not matter here (nothing reaches the store), so this runs on SQLite only.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Query, Response

from dompet.api import routing
from dompet.api.app import create_app
from dompet.container import Container
from dompet.storage import migrate
from tests.api.wallet_client import Wallet, register
from tests.conftest import fast_settings
from tests.reliability.test_limits import WEIRD_BODIES

BODIES = [
    *WEIRD_BODIES,
    b'{"amount": 0}',
    b'{"amount": "1"}',
    b'{"amount": 1, "extra": true}',
    b'{"remarks": "no amount"}',
    b"{}",
    b"[1, 2]",
    b'{"amount": 1',
    b'{"nominal": 1000, "no_rekening": "12"}',
    b'{"first_name": ""}',
    b'{"first_name": "A\\u0000B"}',
]
CONTENT_TYPES = [
    None,
    "application/json",
    "application/json; charset=utf-8",
    "application/merge-patch+json",
    "text/plain",
    "multipart/form-data; boundary=x",
]
ROUTES = [("POST", "/pay"), ("POST", "/topup"), ("POST", "/tabung"), ("PUT", "/profile")]
QUERIES = [
    "",
    "limit=1",
    "limit=0",
    "limit=1001",
    "limit=abc",
    "limit=",
    "limit=1.5",
    "limit=1&limit=x",
    "limit=x&limit=2",
    "cursor=0",
    "cursor=1",
    "cursor=-5",
    "cursor=99999999999999999999999",
    "limit=0&cursor=0",
    "limit=%00",
    "limit=1&unknown=2",
    "LIMIT=0",
]


@pytest.fixture
async def two_apps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    url = f"sqlite:///{tmp_path}/direct.db"
    await migrate(url)
    async with AsyncExitStack() as stack:
        clients = []
        for direct in (True, False):
            if not direct:
                monkeypatch.setattr(routing.DompetRoute, "_direct_handler", lambda *_: None)
            container = await Container.build(fast_settings(url))
            app = create_app(container=container)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://dompet.test"
            )
            await stack.enter_async_context(client)
            # Handlers are built on the first request: build them under this patch.
            assert (await client.get("/healthz")).status_code == 200
            clients.append(client)
        yield clients[0], clients[1]


def _auth_variants(wallet: Wallet) -> list[dict[str, str]]:
    return [
        wallet.auth,
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer not-a-token"},
    ]


async def test_refused_requests_get_the_same_answer_on_both_paths(
    two_apps: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    direct, generic = two_apps
    wallet = await register(direct)
    compared = 0
    for (method, path), body, content_type, auth in itertools.product(
        ROUTES, BODIES, CONTENT_TYPES, _auth_variants(wallet)
    ):
        headers = dict(auth)
        if content_type is not None:
            headers["Content-Type"] = content_type
        one = await direct.request(method, path, content=body, headers=headers)
        other = await generic.request(method, path, content=body, headers=headers)
        where = (method, path, body[:40], content_type, auth.get("Authorization", "")[:12])
        assert one.status_code == other.status_code, (where, one.text, other.text)
        if one.status_code != 200:
            assert one.json() == other.json(), where
            compared += 1
    assert compared > 1000
    # None of it moved money: the wallet has no history on either app.
    for client in (direct, generic):
        history = await client.get("/transactions", headers=wallet.auth)
        assert history.json()["result"] == [], history.text


async def test_history_queries_get_the_same_answer_on_both_paths(
    two_apps: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    """GET /transactions takes the direct path with its query parameters: same answers."""
    direct, generic = two_apps
    wallet = await register(direct)
    for client in (direct, generic):
        assert (await client.post("/topup", json={"amount": 7}, headers=wallet.auth)).is_success
    first = await direct.get("/transactions", headers=wallet.auth)
    assert [t["amount"] for t in first.json()["result"]] == [7, 7]
    refused = 0
    for query, auth in itertools.product(QUERIES, _auth_variants(wallet)):
        one = await direct.get(f"/transactions?{query}", headers=auth)
        other = await generic.get(f"/transactions?{query}", headers=auth)
        where = (query, auth.get("Authorization", "")[:12])
        assert one.status_code == other.status_code, (where, one.text, other.text)
        assert one.json() == other.json(), where  # one database: the same history
        assert one.headers.get("x-next-cursor") == other.headers.get("x-next-cursor"), where
        refused += one.status_code != 200
    assert refused >= 60


async def test_good_requests_succeed_on_both_paths(
    two_apps: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    direct, generic = two_apps
    wallet = await register(direct)
    for client in (direct, generic):
        topup = await client.post("/topup", json={"amount": 1000}, headers=wallet.auth)
        assert topup.status_code == 200, topup.text
        pay = await client.post(
            "/pay",
            content=b'{"amount": 10, "remarks": "kopi"}',
            headers={**wallet.auth, "Content-Type": "application/json; charset=utf-8"},
        )
        assert pay.status_code == 200, pay.text
        assert pay.json()["result"]["remarks"] == "kopi"
    history = await direct.get("/transactions", headers=wallet.auth)
    assert [t["amount"] for t in history.json()["result"]] == [10, 1000, 10, 1000]


def test_history_query_parameters_take_the_scalar_reading() -> None:
    """GET /transactions's limit and cursor are read by ``_scalar_query_values`` (so the
    battery above compares that reading with FastAPI's); a list parameter is not."""
    app = create_app()
    route = next(
        r
        for r in routing_table(app.router.routes)
        if getattr(r, "path", "") == "/transactions" and hasattr(r, "dependant")
    )
    assert [f.name for f in route.dependant.query_params] == ["limit", "cursor"]
    assert routing._all_plain_scalars(route.dependant.query_params)

    listing = FastAPI()

    @listing.get("/x")
    async def x(tags: Annotated[list[str] | None, Query()] = None) -> Response:
        return Response()

    (found,) = [r for r in listing.routes if getattr(r, "path", "") == "/x"]
    assert not routing._all_plain_scalars(found.dependant.query_params)  # type: ignore[attr-defined]


def routing_table(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route, included routers' too."""
    for route in routes:
        yield route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from routing_table(inner.routes)
