"""Shared pieces of the reliability and security tests: a settable clock and an app client."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from dompet.api.app import create_app
from dompet.config import Settings
from dompet.container import Container
from dompet.domain.invariants import InvariantReport, check


class SettableClock:
    """A real clock that a test can move forward (token expiry, key expiry, lock expiry)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class App:
    """The real app in-process (lifespan included) and the container behind it."""

    http: httpx.AsyncClient
    container: Container
    asgi: Any = None
    """The ASGI app itself (for a client of its own, e.g. from another address)."""

    def client_from(self, address: str) -> httpx.AsyncClient:
        """A client whose requests come from ``address`` (the socket peer the app sees)."""
        transport = httpx.ASGITransport(app=self.asgi, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://dompet.test")

    async def reconcile(self) -> InvariantReport:
        return check(await self.container.store.snapshot())


class AppContext:
    """``async with AppContext(settings, clock) as app:`` -- an ASGI client on the real app."""

    def __init__(self, settings: Settings, clock: SettableClock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SettableClock()
        self._lifespan: AbstractAsyncContextManager[object] | None = None
        self._app: App | None = None

    async def __aenter__(self) -> App:
        container = await Container.build(self.settings, clock=self.clock)
        app = create_app(container=container)
        self._lifespan = app.router.lifespan_context(app)
        await self._lifespan.__aenter__()
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://dompet.test"
        )
        self._app = App(http, container, app)
        return self._app

    async def __aexit__(self, *exc: object) -> None:
        assert self._app is not None
        assert self._lifespan is not None
        await self._app.http.aclose()
        await self._lifespan.__aexit__(None, None, None)
