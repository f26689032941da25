"""Request-scoped access to the container, and the caller behind a bearer token.

Each dependency reads what it needs straight from the request: FastAPI's per-dependency
machinery (sub-dependencies, caching, scopes) was a measurable share of a payment's CPU time,
so the money routes take one dependency, :class:`Caller`. The bearer security scheme is
still documented (api/openapi.py adds it to every route that takes a Caller).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from dompet.container import Container
from dompet.domain.errors import Unauthenticated
from dompet.services.ports import AccessClaims


async def container(request: Request) -> Container:
    """Async, as every dependency here: a plain def would run in the thread pool."""
    built: Container = request.app.state.container
    return built


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated user of a request, with the services to act for them."""

    user_id: str
    session_id: str
    container: Container

    @property
    def claims(self) -> AccessClaims:
        return AccessClaims(self.user_id, self.session_id)


async def caller(request: Request) -> Caller:
    """The caller of a valid ``Authorization: Bearer <access_token>`` whose session is live
    (asked of the store on every request); 401 otherwise."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated()
    built: Container = request.app.state.container
    claims = await built.wallet.authenticate(token)
    return Caller(claims.user_id, claims.session_id, built)


ContainerDep = Annotated[Container, Depends(container)]
CallerDep = Annotated[Caller, Depends(caller)]
