"""Security: tokens, BOLA, mass assignment, PIN secrecy, login throttling (every engine).

Sessions and logout: test_sessions.py; the lock under a real burst: test_login_lock_live.py;
the throttles at the store: tests/contract/test_sessions_and_throttles.py."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select

from dompet.domain.ids import new_id
from dompet.storage import engine_of
from dompet.storage.sql.tables import users
from tests.api.wallet_client import Wallet, fresh_phone, register
from tests.conftest import fast_settings
from tests.reliability.helpers import App, AppContext, SettableClock
from tests.support.sql import sql_connection


def secret_of(app: App) -> str:
    """The server's JWT secret (generated and kept: no JWT_SECRET is configured here)."""
    return app.container.secrets.jwt


def claims_for(user_id: str, typ: str = "access", **overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "sub": user_id,
        "sid": new_id(),
        "typ": typ,
        "iss": "dompet",
        "jti": new_id(),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any], alg: str) -> str:
    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}."


async def status_with(app: App, token: str) -> list[int]:
    """Status of every protected route called with ``token``."""
    auth = {"Authorization": f"Bearer {token}"}
    calls = [
        app.http.post("/topup", json={"amount": 1}, headers=auth),
        app.http.post("/pay", json={"amount": 1}, headers=auth),
        app.http.post(
            "/transfer", json={"target_user": str(uuid.uuid4()), "amount": 1}, headers=auth
        ),
        app.http.get("/transactions", headers=auth),
        app.http.put("/profile", json={"first_name": "Mallory"}, headers=auth),
    ]
    responses = [await call for call in calls]
    for response in responses:
        if response.status_code == 401:
            assert response.json() == {"message": "Unauthenticated"}
    return [r.status_code for r in responses]


# -- tokens ------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_forged_and_misused_tokens_are_401_everywhere(app: App) -> None:
    victim = await register(app.http)
    await victim.topup(50_000)
    secret = secret_of(app)
    header, payload, signature = victim.access_token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    other_payload = b64(claims_for(str(uuid.uuid4())))
    forged = {
        "tampered signature": f"{header}.{payload}.{flipped}",
        "tampered payload": f"{header}.{other_payload}.{signature}",
        "alg none": unsigned(claims_for(victim.user_id), "none"),
        "alg None": unsigned(claims_for(victim.user_id), "None"),
        "alg none, signature kept": unsigned(claims_for(victim.user_id), "none") + signature,
        "wrong secret": jwt.encode(claims_for(victim.user_id), "x" * 48, algorithm="HS256"),
        "HS512 with the right secret": jwt.encode(
            claims_for(victim.user_id), secret, algorithm="HS512"
        ),
        "refresh token as access token": victim.refresh_token,
        "expired": jwt.encode(
            claims_for(victim.user_id, exp=int(datetime.now(UTC).timestamp()) - 1),
            secret,
            algorithm="HS256",
        ),
        "not yet valid": jwt.encode(
            claims_for(victim.user_id, nbf=int(datetime.now(UTC).timestamp()) + 3600),
            secret,
            algorithm="HS256",
        ),
        "no exp": jwt.encode(claims_for(victim.user_id, exp=None), secret, algorithm="HS256"),
        "other issuer": jwt.encode(
            claims_for(victim.user_id, iss="evil"), secret, algorithm="HS256"
        ),
        "sub not a user id": jwt.encode(claims_for("admin"), secret, algorithm="HS256"),
        "garbage": "not.a.token",
        "empty": "",
    }
    for name, token in forged.items():
        statuses = await status_with(app, token)
        assert statuses == [401] * 5, (name, statuses)
    # the victim's money and name are untouched
    assert [t["amount"] for t in await victim.transactions()] == [50_000]
    for scheme in ("Basic", "Token", ""):
        response = await app.http.get(
            "/transactions", headers={"Authorization": f"{scheme} {victim.access_token}".strip()}
        )
        assert response.status_code == 401, scheme


async def test_a_token_for_a_user_that_does_not_exist_moves_nothing(app: App) -> None:
    ghost = jwt.encode(claims_for(str(uuid.uuid4())), secret_of(app), algorithm="HS256")
    auth = {"Authorization": f"Bearer {ghost}"}
    assert (await app.http.post("/topup", json={"amount": 5}, headers=auth)).status_code == 401
    assert (await app.http.put("/profile", json={"address": "x"}, headers=auth)).status_code == 401
    report = await app.reconcile()
    assert report.ok
    assert report.total_customer_balance == 0


async def test_access_tokens_expire_and_refresh_tokens_are_not_access_tokens(
    app: App, clock: SettableClock
) -> None:
    wallet = await register(app.http)
    assert (await wallet.topup(10)).status_code == 200
    as_refresh = await app.http.post("/refresh", json={"refresh_token": wallet.access_token})
    assert as_refresh.status_code == 401
    clock.advance(app.container.settings.access_token_ttl_seconds + 1)
    assert (await wallet.topup(10)).status_code == 401
    refreshed = await app.http.post("/refresh", json={"refresh_token": wallet.refresh_token})
    assert refreshed.status_code == 200
    wallet.access_token = refreshed.json()["result"]["access_token"]
    assert (await wallet.topup(10)).status_code == 200
    again = await app.http.post("/refresh", json={"refresh_token": wallet.refresh_token})
    assert again.status_code == 401  # a refresh token works once


# -- BOLA: one user can never read or move another's money -------------------------------------
async def test_no_request_of_one_user_reads_or_moves_anothers_money(app: App) -> None:
    alice = await register(app.http, first_name="Alice")
    bob = await register(app.http, first_name="Bob")
    await alice.topup(100_000)
    await bob.topup(70_000)
    await bob.pay(1_000, "Bob's secret purchase")
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/topup", {"amount": 5, "user_id": bob.user_id}),
        ("POST", "/pay", {"amount": 5, "user_id": bob.user_id}),
        ("POST", "/pay", {"amount": 5, "account_id": f"wallet:{bob.user_id}"}),
        ("POST", "/transfer", {"target_user": alice.user_id, "amount": 5, "from": bob.user_id}),
        (
            "POST",
            "/transfer",
            {"target_user": alice.user_id, "amount": 5, "sender_id": bob.user_id},
        ),
        ("PUT", "/profile", {"first_name": "Mallory", "user_id": bob.user_id}),
    ]
    for method, path, body in attempts:
        response = await app.http.request(method, path, json=body, headers=alice.auth)
        assert response.status_code == 400, (path, body, response.text)
        assert "is not allowed" in response.json()["message"]
    # query parameters cannot select another user's history
    for params in ({"user_id": bob.user_id}, {"account": bob.user_id}):
        response = await app.http.get("/transactions", params=params, headers=alice.auth)
        assert response.status_code == 200
        assert {t["user_id"] for t in response.json()["result"]} == {alice.user_id}
    # a transfer moves the caller's money, never the target's
    await alice.transfer(bob.user_id, 30_000)
    assert (await alice.transfer(alice.user_id, 1)).status_code == 400
    bob_history = await bob.transactions()
    assert all(t["user_id"] == bob.user_id for t in bob_history)
    assert not any("Bob's secret" in t["remarks"] for t in await alice.transactions())
    assert sum(1 for t in bob_history if t["transaction_type"] == "DEBIT") == 1
    assert (await bob.post("/pay", {"amount": 69_000})).status_code == 200  # Bob's own money


# -- mass assignment through /profile ----------------------------------------------------------
MASS_ASSIGNMENT = [
    "phone_number",
    "pin",
    "balance",
    "user_id",
    "id",
    "created_date",
    "updated_date",
    "status",
]


async def test_profile_refuses_every_field_but_the_three(app: App) -> None:
    wallet = await register(app.http)
    for field in MASS_ASSIGNMENT:
        value: Any = (
            10**9 if field == "balance" else "0811999999" if field == "phone_number" else "1"
        )
        response = await app.http.put(
            "/profile", json={"first_name": "Mallory", field: value}, headers=wallet.auth
        )
        assert response.status_code == 400, field
        assert response.json() == {"message": f"Field '{field}' is not allowed"}
    user = await app.container.store.get_user(wallet.user_id)
    assert user is not None
    assert (user.first_name, user.phone_number) == ("Guntur", wallet.phone)
    login = await app.http.post("/login", json={"phone_number": wallet.phone, "pin": "123456"})
    assert login.status_code == 200
    assert await wallet.transactions() == []


# -- PINs are never returned, logged or stored in clear ----------------------------------------
async def test_pins_never_appear_in_responses_logs_or_the_database(
    app: App, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pin, wrong = "739146", "739147"
    caplog.set_level(logging.DEBUG)  # everything, SQLAlchemy's statements and parameters too
    phone = fresh_phone()
    responses: list[httpx.Response] = []
    body = {"first_name": "Sari", "phone_number": phone, "pin": pin}
    responses.append(await app.http.post("/register", json=body))
    responses.append(await app.http.post("/register", json=body))  # 409, same pin
    responses.append(await app.http.post("/register", json={**body, "pin": pin[:5]}))
    responses.append(await app.http.post("/register", json={**body, "pin": int(pin)}))
    responses.append(await app.http.post("/register", json={**body, "pin": pin, "x": pin}))
    responses.append(await app.http.post("/login", json={"phone_number": phone, "pin": wrong}))
    responses.append(await app.http.post("/login", json={"phone_number": phone, "pin": pin}))
    tokens = responses[-1].json()["result"]
    responses.append(
        await app.http.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
    )
    responses.append(await app.http.post("/login", json={"phone_number": pin, "pin": pin}))
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    responses.append(await app.http.put("/profile", json={"pin": pin}, headers=auth))
    assert [r.status_code for r in responses] == [200, 409, 400, 400, 400, 401, 200, 200, 401, 400]
    for response in responses:
        assert pin not in response.text, response.text
        assert wrong not in response.text, response.text
        assert pin not in str(response.headers)
    logged = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        for record in caplog.records
    )
    assert caplog.records, "expected the app (at least SQLAlchemy) to log something"
    assert pin not in logged
    assert wrong not in logged
    stored = await stored_pin_hash(database_url, phone)
    assert stored.startswith("$argon2id$")
    assert pin not in stored


async def stored_pin_hash(database_url: str, phone: str) -> str:
    """The pin_hash column (or field) as the database holds it, read raw."""
    if engine_of(database_url) == "mongodb":
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(database_url)
        try:
            doc = await client.get_default_database().users.find_one({"phone_number": phone})
        finally:
            await client.close()
        assert doc is not None
        return str(doc["pin_hash"])
    async with sql_connection(database_url) as conn:
        (stored,) = (
            await conn.execute(select(users.c.pin_hash).where(users.c.phone_number == phone))
        ).one()
    return str(stored)


# -- login throttling --------------------------------------------------------------------------
async def failed_login(http: httpx.AsyncClient, phone: str) -> httpx.Response:
    return await http.post("/login", json={"phone_number": phone, "pin": "000000"})


async def test_login_locks_after_max_failures_even_with_the_right_pin(
    app: App, clock: SettableClock
) -> None:
    wallet = await register(app.http)
    lock_seconds = app.container.settings.login_lock_seconds
    for _ in range(app.container.settings.login_max_failures):
        assert (await failed_login(app.http, wallet.phone)).status_code == 401
    locked = await app.http.post("/login", json={"phone_number": wallet.phone, "pin": "123456"})
    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= lock_seconds
    assert "Too many failed login attempts" in locked.json()["message"]
    # the same number in another form is the same number
    other_form = "+62" + wallet.phone[1:]
    assert (await failed_login(app.http, other_form)).status_code == 429
    # unregistered numbers are throttled alike (no registration oracle)
    stranger = fresh_phone()
    for _ in range(5):
        assert (await failed_login(app.http, stranger)).status_code == 401
    assert (await failed_login(app.http, stranger)).status_code == 429
    # a legitimate user on another number is never slowed down
    other = await register(app.http)
    assert (
        await app.http.post("/login", json={"phone_number": other.phone, "pin": "123456"})
    ).status_code == 200
    clock.advance(lock_seconds + 1)
    ok = await app.http.post("/login", json={"phone_number": wallet.phone, "pin": "123456"})
    assert ok.status_code == 200


async def test_failures_racing_a_lock_neither_extend_it_nor_count_towards_the_next(
    app: App, clock: SettableClock
) -> None:
    wallet = await register(app.http)
    settings = app.container.settings
    pins, checks = app.container.pins, 0
    verify = pins.verify

    async def counted(pin_hash: str, pin: str) -> bool:
        nonlocal checks
        checks += 1
        return await verify(pin_hash, pin)

    pins.verify = counted  # type: ignore[method-assign]
    storm = await asyncio.gather(*(failed_login(app.http, wallet.phone) for _ in range(22)))
    assert {r.status_code for r in storm} <= {401, 429}
    # the attempts are taken before the PIN is checked: exactly max_failures get a check
    assert sum(r.status_code == 401 for r in storm) == settings.login_max_failures
    assert checks == settings.login_max_failures
    clock.advance(settings.login_lock_seconds + 1)
    # the lock is over, and the count starts from zero: max_failures more are needed
    for _ in range(settings.login_max_failures):
        assert (await failed_login(app.http, wallet.phone)).status_code == 401
    assert (await failed_login(app.http, wallet.phone)).status_code == 429


async def test_throttle_is_configurable(sqlite_url: str) -> None:
    settings = fast_settings(sqlite_url, login_max_failures=2, login_lock_seconds=60)
    async with AppContext(settings) as app:
        wallet: Wallet = await register(app.http)
        for _ in range(2):
            assert (await failed_login(app.http, wallet.phone)).status_code == 401
        locked = await failed_login(app.http, wallet.phone)
        assert locked.status_code == 429
        assert 0 < int(locked.headers["Retry-After"]) <= 60
