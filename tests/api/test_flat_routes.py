"""``include_flat`` (api/routing.py) is ``app.include_router`` without the per-request layer.

The wallet and savings routers are put on the app's own route list; these tests pin that
nothing else changes: the same OpenAPI operations as under include_router, routes of the app's
own (not shared between apps), and ``app.dependency_overrides`` still applies to them.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response

from dompet.api import savings, wallet
from dompet.api.routing import WalletRoute, include_flat


@pytest.mark.parametrize("router", [wallet.router, savings.router], ids=["wallet", "savings"])
def test_the_openapi_document_is_the_one_include_router_gives(router: APIRouter) -> None:
    included, flat = FastAPI(), FastAPI()
    included.include_router(router)
    include_flat(flat, router)
    assert flat.openapi() == included.openapi()
    assert len(flat.openapi()["paths"]) >= 4


def test_each_app_gets_routes_of_its_own() -> None:
    one, other = FastAPI(), FastAPI()
    include_flat(one, wallet.router)
    include_flat(other, wallet.router)
    ours = [r for r in one.routes if isinstance(r, WalletRoute)]
    theirs = [r for r in other.routes if isinstance(r, WalletRoute)]
    assert [r.path for r in ours] == [r.path for r in wallet.router.routes]  # type: ignore[attr-defined]
    assert not {id(r) for r in ours} & {id(r) for r in theirs}
    assert not {id(r) for r in ours} & {id(r) for r in wallet.router.routes}
    assert all(r.dependency_overrides_provider is one for r in ours)


async def test_dependency_overrides_apply_to_flat_routes() -> None:
    async def real(request: Request) -> str:
        return "real"

    async def fake(request: Request) -> str:
        return "fake"

    router = APIRouter(route_class=WalletRoute)

    @router.get("/who")
    async def who(request: Request, name: str = Depends(real)) -> Response:
        return Response(name)

    app = FastAPI()
    include_flat(app, router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/who")).text == "real"
        app.dependency_overrides[real] = fake
        assert (await client.get("/who")).text == "fake"


def test_a_router_with_a_prefix_is_refused() -> None:
    prefixed: Any = APIRouter(prefix="/x")
    with pytest.raises(ValueError, match="prefix"):
        include_flat(FastAPI(), prefixed)
