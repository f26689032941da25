"""Dashboard routes: /dashboard (page), /dashboard/login, /logout, /api/summary, retry."""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from dompet.api.client import client_address
from dompet.api.responses import json_response
from dompet.container import Container
from dompet.dashboard.page import content_security_policy, dashboard_page, login_page
from dompet.dashboard.session import COOKIE_NAME, Session, SessionSigner, session_key
from dompet.domain.errors import CsrfRejected, Unauthenticated
from dompet.services.monitoring import MonitoringService, OperatorService

router = APIRouter(prefix="/dashboard", include_in_schema=False)
LOGIN_PATH = "/dashboard/login"
MAX_FORM_BYTES = 4096


@dataclass
class Dashboard:
    """Everything the dashboard routes need; built once when the app starts."""

    container: Container
    monitoring: MonitoringService
    operators: OperatorService
    signer: SessionSigner
    secure_cookie: bool
    refresh_seconds: float
    saq_mounted: bool = False

    @classmethod
    def build(cls, container: Container) -> Dashboard:
        settings = container.settings
        queue_depth = getattr(container.dispatcher, "queue_depth", None)
        return cls(
            container=container,
            monitoring=MonitoringService(
                container.store,
                container.clock,
                heartbeat_interval=settings.worker_heartbeat_seconds,
                queue_depth=queue_depth,
            ),
            operators=OperatorService(
                container.store,
                container.pins,
                container.clock,
                container.attempts,
                timedelta(seconds=settings.dashboard_session_seconds),
            ),
            signer=SessionSigner(
                session_key(container.secrets.dashboard_session, container.secrets.jwt),
                timedelta(seconds=settings.dashboard_session_seconds),
            ),
            secure_cookie=settings.dashboard_cookie_secure,
            refresh_seconds=settings.dashboard_refresh_seconds,
        )

    async def session(self, request: Request) -> Session | None:
        """The request's session: a well-signed, unexpired cookie naming a live session."""
        session = self.signer.read(request.cookies.get(COOKIE_NAME), self.container.clock())
        if session is None:
            return None
        if not await self.operators.session_live(session.session_id, session.username):
            return None
        return session


def _dashboard(request: Request) -> Dashboard:
    built: Dashboard = request.app.state.dashboard
    return built


async def _require_session(request: Request) -> tuple[Dashboard, Session]:
    dash = _dashboard(request)
    session = await dash.session(request)
    if session is None:
        raise Unauthenticated()
    return dash, session


def _check_csrf(dash: Dashboard, session: Session, token: str | None) -> None:
    if not dash.signer.csrf_ok(session, token):
        raise CsrfRejected()


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items() if v}


def _safe_next(target: str | None) -> str:
    """Only same-site dashboard paths (no open redirect)."""
    if target and target.startswith("/dashboard") and not target.startswith("//"):
        return target
    return "/dashboard"


def _html(body: str, status_code: int = 200, nonce: str | None = None) -> HTMLResponse:
    return HTMLResponse(
        body,
        status_code=status_code,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": content_security_policy(nonce),
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return _html(login_page(_safe_next(next), error=None))


@router.post("/login")
async def login(request: Request) -> Response:
    dash = _dashboard(request)
    form = await _form(request)
    target = _safe_next(form.get("next"))
    username = await dash.operators.authenticate(
        form.get("username", ""), form.get("password", ""), client_address(request)
    )
    if username is None:
        return _html(login_page(target, error="Wrong username or password."), 401)
    session = await dash.operators.open_session(username)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        dash.signer.issue(username, session.id, dash.container.clock()),
        max_age=dash.signer.max_age,
        path="/dashboard",
        httponly=True,
        samesite="strict",
        secure=dash.secure_cookie,
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    dash, session = await _require_session(request)
    _check_csrf(dash, session, (await _form(request)).get("csrf_token"))
    await dash.operators.end_session(session.session_id, session.username)
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/dashboard")
    return response


@router.get("")
@router.get("/")
async def page(request: Request) -> Response:
    dash = _dashboard(request)
    session = await dash.session(request)
    if session is None:
        return RedirectResponse(f"{LOGIN_PATH}?next=/dashboard", status_code=303)
    summary = await dash.monitoring.summary()
    nonce = secrets.token_urlsafe(16)
    return _html(
        dashboard_page(
            username=session.username,
            csrf_token=dash.signer.csrf_token(session),
            summary_json=json.dumps(to_json(summary)),
            refresh_ms=int(dash.refresh_seconds * 1000),
            saq_mounted=dash.saq_mounted,
            nonce=nonce,
        ),
        nonce=nonce,
    )


@router.get("/api/summary")
async def summary(request: Request) -> Response:
    dash, _ = await _require_session(request)
    return json_response(to_json(await dash.monitoring.summary()), 200)


@router.post("/api/transfers/{transfer_id}/retry")
async def retry(request: Request, transfer_id: str) -> Response:
    dash, session = await _require_session(request)
    _check_csrf(dash, session, request.headers.get("x-csrf-token"))
    await dash.monitoring.retry(transfer_id)
    transfer = await dash.container.store.get_transfer(transfer_id)
    await dash.container.dispatcher.transfer_retried(
        transfer_id, transfer.attempts if transfer else 0
    )
    return json_response({"transfer_id": transfer_id, "retried": True}, 200)


def to_json(value: Any) -> Any:
    """Dataclasses, datetimes and dicts as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def mount_saq_monitor(app: Any, container: Container) -> None:
    """Mount SAQ's web monitor at /dashboard/saq/ behind the dashboard login (if SAQ is used)."""
    queue = getattr(container.dispatcher, "queue", None)
    if queue is None:
        return
    from dompet.dashboard.saq_monitor import guarded_saq_app

    app.mount("/dashboard/saq", guarded_saq_app(queue, app.state.dashboard))
    app.state.dashboard.saq_mounted = True
