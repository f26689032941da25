"""Every route and every error of SPEC.md section 1, on every engine."""

from __future__ import annotations

import re
import uuid
from itertools import pairwise

import httpx
import pytest

from tests.api.wallet_client import fresh_phone, register, wait_for_status

DATE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def message(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"message"}, body
    text: str = body["message"]
    return text


# -- /register --------------------------------------------------------------------------------
async def test_register_returns_the_user(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/register",
        json={
            "first_name": "Guntur",
            "last_name": "Saputro",
            "phone_number": "+62811255501",
            "address": "Jl. Kebon Sirih No. 1",
            "pin": "123456",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "SUCCESS"
    result = body["result"]
    assert set(result) == {
        "user_id",
        "first_name",
        "last_name",
        "phone_number",
        "address",
        "created_date",
    }
    assert UUID.match(result["user_id"])
    assert result["phone_number"] == "0811255501"  # stored in the local form
    assert DATE.match(result["created_date"])
    assert "123456" not in response.text


async def test_register_optional_fields_default_to_empty(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/register", json={"first_name": "Tom", "phone_number": fresh_phone(), "pin": "654321"}
    )
    assert response.status_code == 200
    assert response.json()["result"]["last_name"] == ""
    assert response.json()["result"]["address"] == ""


@pytest.mark.parametrize("other_form", ["0811255501", "62811255501", "+62811255501"])
async def test_register_duplicate_phone_in_any_form(
    client: httpx.AsyncClient, other_form: str
) -> None:
    await register(client, phone_number="0811255501")
    response = await client.post(
        "/register", json={"first_name": "X", "phone_number": other_form, "pin": "111111"}
    )
    assert response.status_code == 409
    assert message(response) == "Phone Number already registered"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pin": "12345"}, "pin"),
        ({"pin": "1234567"}, "pin"),
        ({"pin": "12a456"}, "pin"),
        ({"pin": 123456}, "pin"),
        ({"phone_number": "12345"}, "phone_number"),
        ({"phone_number": "0711255501"}, "phone_number"),
        ({"first_name": ""}, "first_name"),
        ({"first_name": "   "}, "first_name"),
        ({"first_name": "x" * 101}, "first_name"),
        ({"first_name": None}, "first_name"),
        ({"balance": 100}, "balance"),
    ],
)
async def test_register_rejects_bad_input(
    client: httpx.AsyncClient, change: dict[str, object], field: str
) -> None:
    body = {"first_name": "Guntur", "phone_number": fresh_phone(), "pin": "123456", **change}
    response = await client.post("/register", json=body)
    assert response.status_code == 400
    assert field in message(response)


async def test_register_missing_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/register", json={"first_name": "G", "pin": "123456"})
    assert response.status_code == 400
    assert "phone_number" in message(response)


# -- /login and /refresh ----------------------------------------------------------------------
async def test_login_with_any_phone_form(client: httpx.AsyncClient) -> None:
    await register(client, phone_number="0811255501")
    response = await client.post("/login", json={"phone_number": "+62811255501", "pin": "123456"})
    assert response.status_code == 200
    assert set(response.json()["result"]) == {"access_token", "refresh_token"}


@pytest.mark.parametrize(
    "credentials",
    [
        {"phone_number": "0811255501", "pin": "000000"},
        {"phone_number": "0899999999", "pin": "123456"},
        {"phone_number": "not-a-phone", "pin": "123456"},
    ],
)
async def test_login_mismatch(client: httpx.AsyncClient, credentials: dict[str, str]) -> None:
    await register(client, phone_number="0811255501")
    response = await client.post("/login", json=credentials)
    assert response.status_code == 401
    assert message(response) == "Phone number and pin doesn't match."


async def test_login_is_throttled_per_phone(client: httpx.AsyncClient) -> None:
    wallet = await register(client)
    for _ in range(5):
        bad = await client.post("/login", json={"phone_number": wallet.phone, "pin": "000000"})
        assert bad.status_code == 401
    locked = await client.post("/login", json={"phone_number": wallet.phone, "pin": "123456"})
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert message(locked)
    other = await register(client)
    assert (
        await client.post("/login", json={"phone_number": other.phone, "pin": "123456"})
    ).status_code == 200


async def test_refresh_rotates_once(client: httpx.AsyncClient) -> None:
    wallet = await register(client)
    first = await client.post("/refresh", json={"refresh_token": wallet.refresh_token})
    assert first.status_code == 200
    pair = first.json()["result"]
    assert set(pair) == {"access_token", "refresh_token"}
    again = await client.post("/refresh", json={"refresh_token": wallet.refresh_token})
    assert again.status_code == 401
    assert message(again) == "Unauthenticated"
    as_access = await client.get(
        "/transactions", headers={"Authorization": f"Bearer {pair['refresh_token']}"}
    )
    assert as_access.status_code == 401
    with_access = await client.post("/refresh", json={"refresh_token": wallet.access_token})
    assert with_access.status_code == 401


# -- authentication on protected routes --------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/topup"),
        ("POST", "/pay"),
        ("POST", "/transfer"),
        ("GET", "/transactions"),
        ("PUT", "/profile"),
    ],
)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwdw==", "Bearer a.b.c"]
)
async def test_protected_routes_need_a_valid_token(
    client: httpx.AsyncClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.request(method, path, json={"amount": 1}, headers=headers)
    assert response.status_code == 401
    assert message(response) == "Unauthenticated"


# -- /topup -----------------------------------------------------------------------------------
async def test_topup(client: httpx.AsyncClient) -> None:
    wallet = await register(client)
    response = await wallet.topup(500000)
    assert response.status_code == 200
    result = response.json()["result"]
    assert set(result) == {
        "top_up_id",
        "amount_top_up",
        "balance_before",
        "balance_after",
        "created_date",
    }
    assert (result["amount_top_up"], result["balance_before"], result["balance_after"]) == (
        500000,
        0,
        500000,
    )
    assert UUID.match(result["top_up_id"])


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 0},
        {"amount": -5},
        {"amount": 100.5},
        {"amount": "100"},
        {"amount": True},
        {"amount": 10**12 + 1},
        {"amount": None},
        {},
        {"amount": 5, "currency": "IDR"},
        [],
        "x",
    ],
)
async def test_topup_rejects_bad_amounts(client: httpx.AsyncClient, body: object) -> None:
    wallet = await register(client)
    response = await wallet.post("/topup", body)
    assert response.status_code == 400
    assert message(response)
    assert await wallet.transactions() == []


async def test_topup_maximum_amount(client: httpx.AsyncClient) -> None:
    wallet = await register(client)
    assert (await wallet.topup(10**12)).status_code == 200


async def test_malformed_json_is_a_clean_400(client: httpx.AsyncClient) -> None:
    wallet = await register(client)
    response = await client.post(
        "/topup",
        content=b'{"amount": 5',
        headers={**wallet.auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "JSON" in message(response)


# -- /pay -------------------------------------------------------------------------------------
async def test_pay(client: httpx.AsyncClient) -> None:
    wallet = await register(client)
    await wallet.topup(500000)
    response = await wallet.pay(100000, "Pulsa Telkomsel 100k")
    assert response.status_code == 200
    result = response.json()["result"]
    assert set(result) == {
        "payment_id",
        "amount",
        "remarks",
        "balance_before",
        "balance_after",
        "created_date",
    }
    assert (
        result["amount"],
        result["remarks"],
        result["balance_before"],
        result["balance_after"],
    ) == (100000, "Pulsa Telkomsel 100k", 500000, 400000)


async def test_pay_without_enough_balance_changes_nothing(client: httpx.AsyncClient) -> None:
    wallet = await register(client)
    await wallet.topup(1000)
    response = await wallet.pay(1001)
    assert response.status_code == 400
    assert message(response) == "Balance is not enough"
    history = await wallet.transactions()
    assert len(history) == 1
    assert history[0]["balance_after"] == 1000


async def test_pay_remarks_too_long(client: httpx.AsyncClient) -> None:
    wallet = await register(client)
    await wallet.topup(1000)
    response = await wallet.pay(10, "x" * 501)
    assert response.status_code == 400
    assert "remarks" in message(response)


# -- /transfer --------------------------------------------------------------------------------
async def test_transfer_is_debited_now_and_credited_in_the_background(
    client: httpx.AsyncClient,
) -> None:
    sender, target = await register(client), await register(client, "Tom")
    await sender.topup(400000)
    response = await sender.transfer(target.user_id, 30000, "Hadiah Ultah")
    assert response.status_code == 200
    result = response.json()["result"]
    assert set(result) == {
        "transfer_id",
        "amount",
        "remarks",
        "balance_before",
        "balance_after",
        "created_date",
    }
    assert (result["balance_before"], result["balance_after"]) == (400000, 370000)
    debit = await wait_for_status(sender, result["transfer_id"], "SUCCESS")
    assert debit["amount"] == 30000
    (credit,) = await target.transactions()
    assert credit == {
        "transfer_id": result["transfer_id"],
        "status": "SUCCESS",
        "user_id": target.user_id,
        "transaction_type": "CREDIT",
        "amount": 30000,
        "remarks": "Hadiah Ultah",
        "balance_before": 0,
        "balance_after": 30000,
        "created_date": credit["created_date"],
    }


async def test_transfer_errors(client: httpx.AsyncClient) -> None:
    sender, target = await register(client), await register(client, "Tom")
    await sender.topup(1000)
    short = await sender.transfer(target.user_id, 1001)
    assert short.status_code == 400
    assert message(short) == "Balance is not enough"
    missing = await sender.transfer(str(uuid.uuid4()), 10)
    assert missing.status_code == 404
    assert message(missing) == "Target user not found"
    yourself = await sender.transfer(sender.user_id, 10)
    assert yourself.status_code == 400
    assert "yourself" in message(yourself)
    not_uuid = await sender.transfer("bob", 10)
    assert not_uuid.status_code == 400
    assert "target_user" in message(not_uuid)
    no_target = await sender.post("/transfer", {"amount": 10})
    assert no_target.status_code == 400
    assert "target_user" in message(no_target)
    history = await sender.transactions()
    assert len(history) == 1  # only the top-up: nothing moved


async def test_transfer_target_id_is_case_insensitive(client: httpx.AsyncClient) -> None:
    sender, target = await register(client), await register(client, "Tom")
    await sender.topup(10)
    response = await sender.transfer(target.user_id.upper(), 10)
    assert response.status_code == 200


# -- /transactions ----------------------------------------------------------------------------
async def test_transactions_newest_first_and_chained(client: httpx.AsyncClient) -> None:
    guntur, tom = await register(client), await register(client, "Tom")
    top = (await guntur.topup(500000)).json()["result"]
    paid = (await guntur.pay(100000, "Pulsa Telkomsel 100k")).json()["result"]
    sent = (await guntur.transfer(tom.user_id, 30000, "Hadiah Ultah")).json()["result"]
    await wait_for_status(guntur, sent["transfer_id"], "SUCCESS")
    history = await guntur.transactions()
    assert [next(iter(item)) for item in history] == ["transfer_id", "payment_id", "top_up_id"]
    assert [h.get("transfer_id") or h.get("payment_id") or h.get("top_up_id") for h in history] == [
        sent["transfer_id"],
        paid["payment_id"],
        top["top_up_id"],
    ]
    assert [h["transaction_type"] for h in history] == ["DEBIT", "DEBIT", "CREDIT"]
    assert history[2]["remarks"] == ""
    for newer, older in pairwise(history):
        assert newer["balance_before"] == older["balance_after"]
    assert all(h["user_id"] == guntur.user_id and h["status"] == "SUCCESS" for h in history)
    assert all(DATE.match(h["created_date"]) for h in history)


async def test_transactions_paging(client: httpx.AsyncClient) -> None:
    wallet = await register(client)
    for amount in range(1, 6):
        await wallet.topup(amount)
    first = await client.get("/transactions", params={"limit": 2}, headers=wallet.auth)
    assert [t["amount"] for t in first.json()["result"]] == [5, 4]
    cursor = first.headers["X-Next-Cursor"]
    second = await client.get(
        "/transactions", params={"limit": 2, "cursor": cursor}, headers=wallet.auth
    )
    assert [t["amount"] for t in second.json()["result"]] == [3, 2]
    bad = await client.get("/transactions", params={"limit": 0}, headers=wallet.auth)
    assert bad.status_code == 400
    assert "limit" in message(bad)


async def test_users_only_see_their_own_entries(client: httpx.AsyncClient) -> None:
    alice, bob = await register(client, "Alice"), await register(client, "Bob")
    await alice.topup(700)
    assert await bob.transactions() == []


# -- /profile ---------------------------------------------------------------------------------
async def test_profile_update(client: httpx.AsyncClient) -> None:
    wallet = await register(client)
    response = await client.put(
        "/profile",
        headers=wallet.auth,
        json={
            "first_name": "Tom",
            "last_name": "Araya",
            "address": "Jl. Diponegoro No. 215",
        },
    )
    assert response.status_code == 200
    result = response.json()["result"]
    assert result == {
        "user_id": wallet.user_id,
        "first_name": "Tom",
        "last_name": "Araya",
        "address": "Jl. Diponegoro No. 215",
        "updated_date": result["updated_date"],
    }
    assert DATE.match(result["updated_date"])
    partial = await client.put("/profile", headers=wallet.auth, json={"address": "Jl. Baru"})
    assert partial.json()["result"]["first_name"] == "Tom"


@pytest.mark.parametrize("field", ["phone_number", "pin", "balance", "user_id", "id"])
async def test_profile_refuses_other_fields(client: httpx.AsyncClient, field: str) -> None:
    wallet = await register(client)
    response = await client.put(
        "/profile", headers=wallet.auth, json={"first_name": "Tom", field: "0899999999"}
    )
    assert response.status_code == 400
    assert field in message(response)
    login = await client.post("/login", json={"phone_number": wallet.phone, "pin": "123456"})
    assert login.status_code == 200  # phone and pin unchanged


@pytest.mark.parametrize("body", [{}, {"first_name": ""}, {"first_name": 5}, []])
async def test_profile_rejects_empty_or_bad(client: httpx.AsyncClient, body: object) -> None:
    wallet = await register(client)
    response = await client.put("/profile", headers=wallet.auth, json=body)
    assert response.status_code == 400
    assert message(response)


# -- operations -------------------------------------------------------------------------------
async def test_healthz_and_docs(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    schema = (await client.get("/openapi.json")).json()
    for path in (
        "/register",
        "/login",
        "/topup",
        "/pay",
        "/transfer",
        "/transactions",
        "/profile",
        "/healthz",
    ):
        assert path in schema["paths"]
    assert (await client.get("/docs")).status_code == 200
