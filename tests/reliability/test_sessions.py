"""Sessions (SPEC.md section 4): logout, logout everywhere, refresh-token reuse, no-store, and
an ended session refused by every process (every engine)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.api.wallet_client import Wallet, register
from tests.conftest import fast_settings
from tests.reliability.helpers import App, AppContext
from tests.reliability.test_security import status_with


async def log_in(wallet: Wallet) -> Wallet:
    """Another session of the same user (another device)."""
    login = await wallet.http.post("/login", json={"phone_number": wallet.phone, "pin": "123456"})
    assert login.status_code == 200, login.text
    tokens = login.json()["result"]
    return Wallet(
        wallet.http, wallet.user_id, wallet.phone, tokens["access_token"], tokens["refresh_token"]
    )


async def refresh(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/refresh", json={"refresh_token": token})


async def test_logout_ends_this_session_and_no_other(app: App) -> None:
    phone = await register(app.http)
    laptop = await log_in(phone)
    out = await app.http.post("/logout", json={}, headers=phone.auth)
    assert out.status_code == 200, out.text
    assert out.json() == {"status": "SUCCESS", "result": {"sessions_ended": 1}}
    assert await status_with(app, phone.access_token) == [401] * 5
    assert (await refresh(app.http, phone.refresh_token)).status_code == 401
    assert (await app.http.post("/logout", headers=phone.auth)).status_code == 401
    assert (await laptop.topup(10)).status_code == 200  # the other device is still in
    assert (await refresh(app.http, laptop.refresh_token)).status_code == 200


async def test_logout_takes_no_body_or_an_empty_one_and_nothing_else(app: App) -> None:
    wallet = await register(app.http)
    refused = await app.http.post("/logout", json={"everything": True}, headers=wallet.auth)
    assert refused.status_code == 400
    assert refused.json() == {"message": "Field 'everything' is not allowed"}
    bad_flag = await app.http.post("/logout?all=maybe", headers=wallet.auth)
    assert bad_flag.status_code == 400
    assert (await wallet.topup(1)).status_code == 200  # neither ended anything
    out = await app.http.post("/logout", headers=wallet.auth)  # no body at all
    assert out.json()["result"] == {"sessions_ended": 1}


async def test_logout_everywhere_ends_every_session_of_the_caller_only(app: App) -> None:
    first = await register(app.http)
    devices = [first, await log_in(first), await log_in(first)]
    stranger = await register(app.http, "Tom")
    out = await app.http.post("/logout?all=true", json={}, headers=devices[1].auth)
    assert out.json() == {"status": "SUCCESS", "result": {"sessions_ended": 3}}
    for device in devices:
        assert (await device.topup(1)).status_code == 401
        assert (await refresh(app.http, device.refresh_token)).status_code == 401
    assert (await stranger.topup(1)).status_code == 200
    again = await log_in(first)  # a new login starts a new session
    assert (await again.topup(1)).status_code == 200


async def test_a_reused_refresh_token_ends_the_whole_session(app: App) -> None:
    wallet = await register(app.http)
    other_device = await log_in(wallet)
    rotated = await refresh(app.http, wallet.refresh_token)
    assert rotated.status_code == 200
    new = rotated.json()["result"]
    assert (await app.http.get("/transactions", headers=bearer(new))).status_code == 200
    # the stolen (already used) refresh token shows up again: the session ends ...
    assert (await refresh(app.http, wallet.refresh_token)).status_code == 401
    # ... and every token of it is refused: the thief's and the rightful owner's
    assert (await app.http.get("/transactions", headers=bearer(new))).status_code == 401
    assert (await refresh(app.http, new["refresh_token"])).status_code == 401
    assert await status_with(app, wallet.access_token) == [401] * 5
    assert (await other_device.topup(1)).status_code == 200  # another session is another


async def test_token_answers_are_never_cached(app: App) -> None:
    wallet = await register(app.http)
    login = await app.http.post("/login", json={"phone_number": wallet.phone, "pin": "123456"})
    assert login.headers["cache-control"] == "no-store"
    refreshed = await refresh(app.http, wallet.refresh_token)
    assert refreshed.status_code == 200
    assert refreshed.headers["cache-control"] == "no-store"


@pytest.fixture
async def second_process(database_url: str) -> AsyncIterator[App]:
    """Another app on the same database: its own store, connections and token cache, as
    another worker process of the server has."""
    async with AppContext(fast_settings(database_url, worker_enabled=False)) as running:
        yield running


async def test_an_ended_session_is_refused_by_every_process_at_once(
    app: App, second_process: App
) -> None:
    wallet = await register(app.http)
    other = Wallet(
        second_process.http,
        wallet.user_id,
        wallet.phone,
        wallet.access_token,
        wallet.refresh_token,
    )
    assert (await other.topup(5)).status_code == 200  # the same secret, the same session
    assert (await wallet.topup(5)).status_code == 200  # both processes have cached the token
    out = await second_process.http.post("/logout", headers=other.auth)
    assert out.json()["result"] == {"sessions_ended": 1}
    assert (await wallet.topup(5)).status_code == 401  # refused in the first process too
    assert await status_with(app, wallet.access_token) == [401] * 5


def bearer(tokens: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}
