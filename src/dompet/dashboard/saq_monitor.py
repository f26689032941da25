"""SAQ's own web monitor, served under the dashboard's login."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from dompet.dashboard.routes import Dashboard


def guarded_saq_app(queue: Any, dashboard: Dashboard) -> ASGIApp:
    from saq.web.starlette import saq_web

    inner: ASGIApp = saq_web("/dashboard/saq", queues=[queue])

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and await dashboard.session(Request(scope)) is None:
            response = RedirectResponse("/dashboard/login?next=/dashboard/saq/", status_code=303)
            await response(scope, receive, send)
            return
        await inner(scope, receive, send)

    return guarded
