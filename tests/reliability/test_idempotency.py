"""Idempotency-Key on every money-moving POST of both APIs, over HTTP, on every engine."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest

from dompet.api import savings_schemas
from dompet.api import schemas as wallet_schemas
from dompet.api.idempotency import request_fingerprint
from dompet.domain.idempotency import IdempotencyKey
from dompet.domain.ledger import wallet_account
from tests.api.wallet_client import Wallet, register, wait_for_status
from tests.conftest import fast_settings
from tests.reliability.helpers import App, AppContext, SettableClock

KEY = "Idempotency-Key"
REUSED = "This Idempotency-Key was already used with a different request."
IN_FLIGHT = "A request with this Idempotency-Key is still being processed; retry later."
_nik = itertools.count(3174000000000001)
_hp = itertools.count(1)


async def daftar(http: httpx.AsyncClient) -> str:
    body = {"nama": "Siti", "nik": str(next(_nik)), "no_hp": f"08571{next(_hp):07d}"}
    response = await http.post("/daftar", json=body)
    assert response.status_code == 200, response.text
    no_rekening: str = response.json()["no_rekening"]
    return no_rekening


async def balance(app: App, wallet: Wallet) -> int:
    value = await app.container.store.balance(wallet_account(wallet.user_id))
    assert value is not None
    return value


def same_json_reordered(body: dict[str, Any]) -> bytes:
    """The same request, written differently: keys reversed, extra whitespace."""
    return json.dumps(dict(reversed(list(body.items()))), indent=2).encode()


# -- e-wallet ----------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["/topup", "/pay", "/transfer"])
async def test_wallet_replay_returns_the_first_answer_and_moves_money_once(
    app: App, route: str
) -> None:
    alice = await register(app.http)
    bob = await register(app.http)
    await alice.topup(100_000)
    body: dict[str, Any] = {"amount": 25_000}
    if route != "/topup":
        body["remarks"] = "sekali saja"
    if route == "/transfer":
        body["target_user"] = bob.user_id
    first = await alice.post(route, body, **{KEY: f"{route}-1"})
    assert first.status_code == 200, first.text
    if route == "/transfer":
        transfer_id = first.json()["result"]["transfer_id"]
        await wait_for_status(alice, transfer_id, "SUCCESS")
    after_first = await balance(app, alice)
    history = await alice.transactions()
    for _ in range(3):
        again = await app.http.post(
            route,
            content=same_json_reordered(body),
            headers={**alice.auth, KEY: f"{route}-1", "Content-Type": "application/json"},
        )
        assert again.status_code == 200
        assert again.json() == first.json()
    assert await balance(app, alice) == after_first
    assert await alice.transactions() == history
    if route == "/transfer":
        credits = [t for t in await bob.transactions() if t["transaction_type"] == "CREDIT"]
        assert [t["amount"] for t in credits] == [25_000]
    report = await app.reconcile()
    assert report.ok, report.violations


async def test_wallet_key_reused_with_another_body_or_route_is_409(app: App) -> None:
    alice = await register(app.http)
    await alice.topup(1_000)
    key = {KEY: "k-1"}
    assert (await alice.post("/pay", {"amount": 100}, **key)).status_code == 200
    for route, body in [
        ("/pay", {"amount": 101}),
        ("/pay", {"amount": 100, "remarks": "different"}),
        ("/topup", {"amount": 100}),
    ]:
        refused = await alice.post(route, body, **key)
        assert refused.status_code == 409, refused.text
        assert refused.json() == {"message": REUSED}
    assert await balance(app, alice) == 900


async def test_wallet_a_refusal_is_replayed_too(app: App) -> None:
    alice = await register(app.http)
    short = await alice.post("/pay", {"amount": 500}, **{KEY: "pay-1"})
    assert short.status_code == 400
    assert short.json() == {"message": "Balance is not enough"}
    await alice.topup(1_000)
    replay = await alice.post("/pay", {"amount": 500}, **{KEY: "pay-1"})
    assert (replay.status_code, replay.json()) == (400, short.json())
    assert (await alice.post("/pay", {"amount": 500}, **{KEY: "pay-2"})).status_code == 200
    assert await balance(app, alice) == 500


async def test_wallet_invalid_requests_do_not_use_up_the_key(app: App) -> None:
    alice = await register(app.http)
    bad = await alice.post("/topup", {"amount": "100"}, **{KEY: "t-1"})
    assert bad.status_code == 400
    assert (await alice.post("/topup", {"amount": 100}, **{KEY: "t-1"})).status_code == 200


@pytest.mark.parametrize(("value", "status"), [("", 400), ("k" * 256, 400), ("k" * 255, 200)])
async def test_wallet_key_length_is_checked(app: App, value: str, status: int) -> None:
    alice = await register(app.http)
    response = await alice.post("/topup", {"amount": 100}, **{KEY: value})
    assert response.status_code == status, response.text
    if status == 400:
        assert KEY in response.json()["message"]


async def test_wallet_request_in_flight_is_409(app: App, clock: SettableClock) -> None:
    """Another request holds the key (claimed, not answered): refused until it goes stale."""
    alice = await register(app.http)
    body = wallet_schemas.TopUpRequest(amount=700)
    key = IdempotencyKey(
        scope=alice.user_id, key="busy", fingerprint=request_fingerprint("POST", "/topup", body)
    )
    settings = app.container.settings
    await app.container.store.claim_idempotency(
        key,
        clock(),
        timedelta(seconds=settings.idempotency_ttl_seconds),
        timedelta(seconds=settings.idempotency_in_flight_seconds),
    )
    busy = await alice.post("/topup", {"amount": 700}, **{KEY: "busy"})
    assert busy.status_code == 409
    assert busy.json() == {"message": IN_FLIGHT}
    assert await balance(app, alice) == 0
    # the holder died without an answer: once stale, the key is taken over and money moves once
    clock.advance(settings.idempotency_in_flight_seconds + 1)
    taken_over = await alice.post("/topup", {"amount": 700}, **{KEY: "busy"})
    assert taken_over.status_code == 200
    replay = await alice.post("/topup", {"amount": 700}, **{KEY: "busy"})
    assert replay.json() == taken_over.json()
    assert await balance(app, alice) == 700


async def test_wallet_concurrent_requests_with_one_key_move_money_once(app: App) -> None:
    alice = await register(app.http)
    bob = await register(app.http)
    await alice.topup(10_000)
    body = {"target_user": bob.user_id, "amount": 1_000, "remarks": "once"}
    responses = await asyncio.gather(
        *(alice.post("/transfer", body, **{KEY: "storm"}) for _ in range(12))
    )
    winners = [r for r in responses if r.status_code == 200]
    assert winners
    assert all(r.json() == winners[0].json() for r in winners)
    for refused in (r for r in responses if r.status_code != 200):
        assert (refused.status_code, refused.json()) == (409, {"message": IN_FLIGHT})
    assert await balance(app, alice) == 9_000
    await wait_for_status(alice, winners[0].json()["result"]["transfer_id"], "SUCCESS")
    assert [t["amount"] for t in await bob.transactions()] == [1_000]


async def test_wallet_keys_belong_to_the_caller(app: App) -> None:
    alice = await register(app.http)
    bob = await register(app.http)
    await bob.topup(5)
    a = await alice.post("/topup", {"amount": 300}, **{KEY: "shared"})
    b = await bob.post("/topup", {"amount": 300}, **{KEY: "shared"})
    assert (a.status_code, b.status_code) == (200, 200)
    assert a.json()["result"]["top_up_id"] != b.json()["result"]["top_up_id"]
    assert b.json()["result"]["balance_after"] == 305  # Bob's own receipt, not Alice's replay
    assert (await balance(app, alice), await balance(app, bob)) == (300, 305)


async def test_wallet_keys_expire_after_the_configured_time(database_url: str) -> None:
    clock = SettableClock()
    settings = fast_settings(database_url, idempotency_ttl_seconds=60)
    async with AppContext(settings, clock) as app:
        alice = await register(app.http)
        first = await alice.post("/topup", {"amount": 100}, **{KEY: "daily"})
        clock.advance(59)
        assert (await alice.post("/topup", {"amount": 100}, **{KEY: "daily"})).json() == (
            first.json()
        )
        assert await balance(app, alice) == 100
        clock.advance(2)
        fresh = await alice.post("/topup", {"amount": 100}, **{KEY: "daily"})
        assert fresh.status_code == 200
        assert fresh.json()["result"]["top_up_id"] != first.json()["result"]["top_up_id"]
        assert await balance(app, alice) == 200


# -- savings -----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/tabung", "/tarik"])
async def test_savings_replay_moves_money_once(app: App, route: str) -> None:
    no_rekening = await daftar(app.http)
    await app.http.post("/tabung", json={"no_rekening": no_rekening, "nominal": 10_000})
    first = await app.http.post(
        route, json={"no_rekening": no_rekening, "nominal": 4_000}, headers={KEY: "s-1"}
    )
    assert first.status_code == 200
    # the same request, the account number as a JSON integer this time
    again = await app.http.post(
        route, json={"nominal": 4_000, "no_rekening": int(no_rekening)}, headers={KEY: "s-1"}
    )
    assert (again.status_code, again.json()) == (200, first.json())
    saldo = (await app.http.get(f"/saldo/{no_rekening}")).json()["saldo"]
    assert saldo == (14_000 if route == "/tabung" else 6_000)
    other = await app.http.post(
        route, json={"no_rekening": no_rekening, "nominal": 1}, headers={KEY: "s-1"}
    )
    assert (other.status_code, other.json()) == (400, {"remark": REUSED})


async def test_savings_request_in_flight_is_400(app: App, clock: SettableClock) -> None:
    no_rekening = await daftar(app.http)
    body = savings_schemas.MoneyRequest(no_rekening=no_rekening, nominal=50)
    key = IdempotencyKey(
        scope=f"savings:{no_rekening}",
        key="busy",
        fingerprint=request_fingerprint("POST", "/tabung", body),
    )
    await app.container.store.claim_idempotency(
        key, clock(), timedelta(hours=1), timedelta(seconds=60)
    )
    busy = await app.http.post(
        "/tabung", json={"no_rekening": no_rekening, "nominal": 50}, headers={KEY: "busy"}
    )
    assert (busy.status_code, busy.json()) == (400, {"remark": IN_FLIGHT})
    assert (await app.http.get(f"/saldo/{no_rekening}")).json() == {"saldo": 0}


async def test_savings_keys_expire_after_the_configured_time(database_url: str) -> None:
    clock = SettableClock()
    async with AppContext(fast_settings(database_url, idempotency_ttl_seconds=30), clock) as app:
        no_rekening = await daftar(app.http)
        body = {"no_rekening": no_rekening, "nominal": 10}
        for _ in range(2):
            assert (await app.http.post("/tabung", json=body, headers={KEY: "k"})).json() == {
                "saldo": 10
            }
        clock.advance(31)
        assert (await app.http.post("/tabung", json=body, headers={KEY: "k"})).json() == {
            "saldo": 20
        }


async def test_one_key_in_both_apis_never_crosses_over(app: App) -> None:
    """A wallet user and a savings account using the same key are different callers."""
    alice = await register(app.http)
    no_rekening = await daftar(app.http)
    assert (await alice.post("/topup", {"amount": 10}, **{KEY: "same"})).status_code == 200
    tabung = await app.http.post(
        "/tabung", json={"no_rekening": no_rekening, "nominal": 10}, headers={KEY: "same"}
    )
    assert tabung.json() == {"saldo": 10}
