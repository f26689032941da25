"""Per-client limits (failed logins, registrations) and the bound on PIN hashing at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from dompet.domain.errors import ServerBusy
from dompet.security.pins import Argon2PinHasher
from tests.api.wallet_client import fresh_phone, register
from tests.conftest import fast_settings
from tests.reliability.helpers import App, AppContext, SettableClock
from tests.reliability.live import ApiServer, process_env


def new_user(phone: str) -> dict[str, str]:
    return {"first_name": "Sari", "phone_number": phone, "pin": "123456"}


async def from_address(app: App, address: str, path: str, body: object) -> int:
    """POST from ``address`` (the ASGI scope's client: the socket peer)."""
    async with app.client_from(address) as http:
        return (await http.post(path, json=body)).status_code


async def test_registrations_per_client_address_are_limited(sqlite_url: str) -> None:
    clock = SettableClock()
    settings = fast_settings(
        sqlite_url, registrations_per_client=3, client_limit_window_seconds=600
    )
    async with AppContext(settings, clock) as app:
        for _ in range(3):
            body = new_user(fresh_phone())
            assert await from_address(app, "10.1.1.1", "/register", body) == 200
        async with app.client_from("10.1.1.1") as http:
            refused = await http.post("/register", json=new_user(fresh_phone()))
        assert refused.status_code == 429
        assert refused.json() == {
            "message": "Too many registrations from this address. Try again in 600 seconds."
        }
        assert refused.headers["Retry-After"] == "600"
        # another address is another allowance
        assert await from_address(app, "10.1.1.2", "/register", new_user(fresh_phone())) == 200
        clock.advance(600)
        assert await from_address(app, "10.1.1.1", "/register", new_user(fresh_phone())) == 200


async def test_failed_logins_per_client_address_are_limited_across_numbers(
    sqlite_url: str,
) -> None:
    """PIN spraying: one wrong PIN each on many numbers still runs into the client's limit,
    while successful logins from the same address do not count."""
    settings = fast_settings(sqlite_url, login_failures_per_client=4)
    async with AppContext(settings) as app:
        wallet = await register(app.http)
        for _ in range(3):
            ok = await app.http.post("/login", json={"phone_number": wallet.phone, "pin": "123456"})
            assert ok.status_code == 200
        statuses = [
            (
                await app.http.post("/login", json={"phone_number": fresh_phone(), "pin": "999999"})
            ).status_code
            for _ in range(6)
        ]
        assert statuses == [401, 401, 401, 401, 429, 429]
        refused = await app.http.post(
            "/login", json={"phone_number": wallet.phone, "pin": "123456"}
        )
        assert refused.status_code == 429
        assert "from this address" in refused.json()["message"]
        assert int(refused.headers["Retry-After"]) > 0
        login = {"phone_number": wallet.phone, "pin": "123456"}
        assert await from_address(app, "10.2.2.2", "/login", login) == 200


async def test_pin_hashing_beyond_its_bound_is_a_fast_503_not_a_queue(sqlite_url: str) -> None:
    """One hash at a time (and slow ones): of logins arriving together, those that find the
    hashing slot taken are answered 503 with Retry-After at once, in the API's error shape."""
    settings = fast_settings(
        sqlite_url, pin_hash_concurrency=1, pin_hash_time_cost=3, pin_hash_memory_kib=32768
    )
    async with AppContext(settings) as app:
        phones = [fresh_phone() for _ in range(6)]
        answers = await asyncio.gather(
            *(app.http.post("/login", json={"phone_number": p, "pin": "000000"}) for p in phones)
        )
        statuses = sorted(r.status_code for r in answers)
        assert 401 in statuses
        assert 503 in statuses, statuses
        busy = next(r for r in answers if r.status_code == 503)
        assert busy.headers["Retry-After"] == "1"
        assert busy.json() == {"message": "The server is busy. Try again in 1 seconds."}
        assert app.container.pins.free_slots == 1  # every slot given back


async def test_a_hashing_slot_is_held_until_its_thread_finishes() -> None:
    hasher = Argon2PinHasher(time_cost=3, memory_kib=32768, parallelism=1, max_concurrent=1)
    stored = await hasher.hash("123456")
    first = asyncio.create_task(hasher.verify(stored, "123456"))
    await asyncio.sleep(0)  # it took the slot and its thread is hashing
    with pytest.raises(ServerBusy):
        await hasher.verify(stored, "123456")
    first.cancel()  # the caller went away; the thread still runs, and still holds the slot
    with pytest.raises(ServerBusy):
        await hasher.hash("654321")
    for _ in range(500):
        if hasher.free_slots == 1:
            break
        await asyncio.sleep(0.01)
    assert hasher.free_slots == 1
    assert await hasher.verify(stored, "123456")


@pytest.mark.parametrize("trusted", [False, True], ids=["socket-peer", "behind-a-proxy"])
async def test_the_client_is_the_socket_peer_unless_a_proxy_is_trusted(
    sqlite_url: str, tmp_path: Path, trusted: bool
) -> None:
    """A client cannot pick its own address with X-Forwarded-For: the header counts only when
    it comes from a proxy listed in FORWARDED_ALLOW_IPS (over a real socket, dompet serve)."""
    extra = {"REGISTRATIONS_PER_CLIENT": "2"}
    if trusted:
        extra["FORWARDED_ALLOW_IPS"] = "127.0.0.1"
    api = ApiServer(process_env(sqlite_url, **extra), tmp_path / "api.log")
    await api.start_and_wait()
    try:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:

            async def register_as(address: str) -> int:
                body = new_user(fresh_phone())
                headers = {"X-Forwarded-For": address}
                return (await http.post("/register", json=body, headers=headers)).status_code

            statuses = [await register_as(a) for a in ("1.1.1.1", "1.1.1.1", "1.1.1.1")]
            statuses.append(await register_as("2.2.2.2"))
    finally:
        api.stop()
    if trusted:  # the proxy names the client: 1.1.1.1 used its two, 2.2.2.2 has its own
        assert statuses == [200, 200, 429, 200]
    else:  # every request is 127.0.0.1's, whatever the header says
        assert statuses == [200, 200, 429, 429]
