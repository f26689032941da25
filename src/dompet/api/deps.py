"""Request-scoped access to the container, and the bearer-token dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dompet.container import Container
from dompet.domain.errors import Unauthenticated

bearer = HTTPBearer(auto_error=False, description="The access_token from POST /login")


async def container(request: Request) -> Container:
    """Async, as every dependency here: a plain def would run in the thread pool."""
    built: Container = request.app.state.container
    return built


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The user id of the caller's valid access token; 401 Unauthenticated otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated()
    built: Container = request.app.state.container
    return built.wallet.authenticate(credentials.credentials)


ContainerDep = Annotated[Container, Depends(container)]
UserId = Annotated[str, Depends(current_user)]
