"""The operator dashboard over HTTP: login, session cookie, CSRF, the summary, retry."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from dompet.config import Settings
from dompet.container import Container
from dompet.domain.ledger import wallet_account
from dompet.services.monitoring import OperatorService
from tests.api.wallet_client import register, wait_for_status
from tests.conftest import AsyncClientContext, fast_settings
from tests.support.servers import RedisServer

OPERATOR, PASSWORD = "ops", "a-long-dashboard-password"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class App:
    http: httpx.AsyncClient
    container: Container

    @property
    def operators(self) -> OperatorService:
        return app_operators(self.container)


def app_operators(container: Container) -> OperatorService:
    return OperatorService(container.store, container.pins, container.clock, container.attempts)


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[App]:
    settings: Settings = fast_settings(
        database_url,
        worker_heartbeat_seconds=0.1,
        # A failed settlement waits an hour unless an operator retries it.
        settle_retry_base_seconds=3600,
        settle_retry_max_seconds=3600,
    )
    context = AsyncClientContext(settings)
    async with context as http:
        assert context.container is not None
        running = App(http, context.container)
        await running.operators.create(OPERATOR, PASSWORD)  # as `dompet create-operator` does
        yield running


async def login(http: httpx.AsyncClient, user: str = OPERATOR, pw: str = PASSWORD) -> str:
    """Log in; return the page's CSRF token."""
    response = await http.post(
        "/dashboard/login",
        content=f"username={user}&password={pw}&next=/dashboard",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/dashboard"
    page = await http.get("/dashboard")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None
    assert f'<script nonce="{nonce.group(1)}">' in page.text
    assert "frame-ancestors 'none'" in policy
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert match is not None
    return match.group(1)


async def summary(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/dashboard/api/summary")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_anonymous_users_are_sent_to_login_or_refused(app: App) -> None:
    page = await app.http.get("/dashboard")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/dashboard/login")
    form = await app.http.get("/dashboard/login")
    assert form.status_code == 200
    assert 'name="password"' in form.text
    api = await app.http.get("/dashboard/api/summary")
    assert api.status_code == 401
    assert api.json() == {"message": "Unauthenticated"}
    retry = await app.http.post("/dashboard/api/transfers/x/retry")
    assert retry.status_code == 401
    app.http.cookies.set("dompet_dashboard", "eyJ1Ijoib3BzIn0.forged", path="/dashboard")
    assert (await app.http.get("/dashboard/api/summary")).status_code == 401


async def test_wrong_password_is_refused(app: App) -> None:
    response = await app.http.post(
        "/dashboard/login",
        content=f"username={OPERATOR}&password=wrong",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401
    assert "Wrong username or password" in response.text
    assert "dompet_dashboard" not in response.cookies


async def test_absurd_usernames_are_a_401_not_a_500(app: App) -> None:
    for user in ("x" * 3000, "\u0000ops", "ops%00", "' OR 1=1 --"):
        response = await app.http.post(
            "/dashboard/login", content=f"username={user}&password=whatever", headers=FORM
        )
        assert response.status_code == 401, (user[:20], response.text[:200])


async def test_repeated_wrong_passwords_lock_the_username(app: App) -> None:
    async def attempt(password: str) -> httpx.Response:
        return await app.http.post(
            "/dashboard/login",
            content=f"username={OPERATOR}&password={password}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    limit = app.container.settings.login_max_failures
    for _ in range(limit):
        assert (await attempt("wrong")).status_code == 401
    locked = await attempt(PASSWORD)  # even the right password, while locked
    assert locked.status_code == 429
    assert "Too many failed login attempts" in locked.text


async def test_login_sets_a_strict_httponly_cookie_and_logout_needs_csrf(app: App) -> None:
    response = await app.http.post(
        "/dashboard/login",
        content=f"username={OPERATOR}&password={PASSWORD}&next=https://evil.example/",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"  # no open redirect
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/dashboard" in cookie
    csrf = await login(app.http)
    refused = await app.http.post(
        "/dashboard/logout",
        content="csrf_token=nope",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert refused.status_code == 403
    assert refused.json() == {"message": "Missing or wrong CSRF token"}
    out = await app.http.post(
        "/dashboard/logout",
        content=f"csrf_token={csrf}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert out.status_code == 303
    app.http.cookies.clear()
    assert (await app.http.get("/dashboard/api/summary")).status_code == 401


async def test_operators_from_the_database_can_log_in(app: App) -> None:
    await app.operators.create("Siti.Ops", "correct horse battery")
    await login(app.http, "siti.ops", "correct horse battery")
    assert (await summary(app.http))["counts"]["PENDING"] == 0


async def test_there_is_no_default_operator(database_url: str) -> None:
    """A fresh server has no one to log in as (no default password): every guess is a 401."""
    async with AsyncClientContext(fast_settings(database_url)) as http:
        for user, password in (("operator", "dompet-dev"), ("admin", "admin"), ("ops", "")):
            response = await http.post(
                "/dashboard/login", content=f"username={user}&password={password}", headers=FORM
            )
            assert response.status_code == 401, (user, password)


async def test_logout_ends_the_session_on_the_server(app: App) -> None:
    csrf = await login(app.http)
    cookie = app.http.cookies.get("dompet_dashboard")
    assert cookie
    out = await app.http.post("/dashboard/logout", content=f"csrf_token={csrf}", headers=FORM)
    assert out.status_code == 303
    app.http.cookies.set("dompet_dashboard", cookie, path="/dashboard")  # a copy kept
    assert (await app.http.get("/dashboard/api/summary")).status_code == 401
    assert (await app.http.get("/dashboard")).status_code == 303


async def test_removing_an_operator_ends_their_sessions_at_once(app: App) -> None:
    await app.operators.create("temp.ops", "temporary password")
    await login(app.http, "temp.ops", "temporary password")
    assert (await app.http.get("/dashboard/api/summary")).status_code == 200
    assert await app.operators.remove("temp.ops")
    assert (await app.http.get("/dashboard/api/summary")).status_code == 401
    assert not await app.operators.remove("temp.ops")
    again = await app.http.post(
        "/dashboard/login", content="username=temp.ops&password=temporary password", headers=FORM
    )
    assert again.status_code == 401


async def test_a_burst_of_wrong_passwords_gets_at_most_the_lock_limit_checked(app: App) -> None:
    """40 wrong passwords at once: at most LOGIN_MAX_FAILURES are checked (401), the rest are
    refused before any hashing (429), and the right password is then refused too."""

    async def attempt(password: str) -> httpx.Response:
        return await app.http.post(
            "/dashboard/login", content=f"username={OPERATOR}&password={password}", headers=FORM
        )

    burst = await asyncio.gather(*(attempt(f"wrong-{n}") for n in range(40)))
    statuses = [r.status_code for r in burst]
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) <= app.container.settings.login_max_failures
    locked = await attempt(PASSWORD)
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0


async def test_the_cookie_is_secure_in_production(database_url: str) -> None:
    settings = fast_settings(database_url, env="production", jwt_secret="p" * 40)
    context = AsyncClientContext(settings)
    async with context as http:
        assert context.container is not None
        await app_operators(context.container).create(OPERATOR, PASSWORD)
        response = await http.post(
            "/dashboard/login", content=f"username={OPERATOR}&password={PASSWORD}", headers=FORM
        )
        assert response.status_code == 303
        assert "secure" in response.headers["set-cookie"].lower()


async def test_summary_shows_flow_latency_workers_and_invariants(app: App) -> None:
    sender = await register(app.http, "Sender")
    target = await register(app.http, "Target")
    assert (await sender.topup(50_000)).status_code == 200
    sent = await sender.transfer(target.user_id, 20_000, "Hadiah")
    transfer_id = sent.json()["result"]["transfer_id"]
    await wait_for_status(sender, transfer_id, "SUCCESS")
    await login(app.http)
    body = await summary(app.http)
    assert body["counts"] == {"PENDING": 0, "SUCCESS": 1, "FAILED": 0}
    assert body["pending"] == 0
    assert body["oldest_pending_age_seconds"] is None
    assert body["latency_ms"]["p50"] is not None
    assert body["latency_ms"]["p50"] <= body["latency_ms"]["p95"] <= body["latency_ms"]["p99"]
    assert sum(m["settled"] for m in body["minutes"]) == 1
    assert body["throughput_per_minute"] > 0
    (worker,) = body["workers"]
    assert worker["kind"] == "inprocess"
    assert worker["alive"] is True
    assert worker["settled"] >= 0
    assert body["invariants_ok"] is True
    assert body["failures"] == []


async def test_a_failed_settlement_is_listed_and_retried_with_csrf(app: App) -> None:
    sender = await register(app.http, "Sender")
    target = await register(app.http, "Target")
    assert (await sender.topup(50_000)).status_code == 200
    store = app.container.store
    assert await store.set_account_blocked(wallet_account(target.user_id), True)
    sent = await sender.transfer(target.user_id, 10_000, "Blocked target")
    transfer_id = sent.json()["result"]["transfer_id"]
    csrf = await login(app.http)

    async def listed() -> dict[str, Any]:
        for _ in range(400):
            failures = (await summary(app.http))["failures"]
            if failures:
                return dict(failures[0])
            await asyncio.sleep(0.02)
        raise AssertionError("the failed attempt never showed up")

    failure = await listed()
    assert failure["transfer_id"] == transfer_id
    assert failure["status"] == "PENDING"
    assert failure["attempts"] == 1
    assert "blocked" in failure["last_error"]
    assert failure["retryable"] is True
    assert (await summary(app.http))["counts"]["PENDING"] == 1

    path = f"/dashboard/api/transfers/{transfer_id}/retry"
    assert (await app.http.post(path)).status_code == 403
    assert (await app.http.post(path, headers={"X-CSRF-Token": "bad"})).status_code == 403
    await store.set_account_blocked(wallet_account(target.user_id), False)
    retried = await app.http.post(path, headers={"X-CSRF-Token": csrf})
    assert retried.status_code == 200, retried.text
    await wait_for_status(sender, transfer_id, "SUCCESS")
    again = await app.http.post(path, headers={"X-CSRF-Token": csrf})
    assert again.status_code == 409
    assert (await summary(app.http))["invariants_ok"] is True


@pytest.mark.redis
async def test_saq_monitor_is_mounted_behind_the_login(
    database_url: str, redis_server: RedisServer
) -> None:
    settings = fast_settings(
        database_url, redis_url=redis_server.url, saq_queue_name="dompet-dashboard-test"
    )
    context = AsyncClientContext(settings)
    async with context as http:
        assert context.container is not None
        await app_operators(context.container).create(OPERATOR, PASSWORD)
        anonymous = await http.get("/dashboard/saq/")
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/dashboard/login")
        assert (await http.get("/dashboard/saq/api/queues")).status_code == 303
        await login(http)
        page = await http.get("/dashboard")
        assert 'href="/dashboard/saq/"' in page.text
        monitor = await http.get("/dashboard/saq/")
        assert monitor.status_code == 200
        queues = await http.get("/dashboard/saq/api/queues")
        assert queues.status_code == 200, queues.text
        assert "dompet-dashboard-test" in queues.text
        body = await summary(http)
        assert body["queue"] == {"pending": 0, "queued": 0, "active": 0, "incomplete": 0}
