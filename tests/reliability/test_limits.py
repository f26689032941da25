"""Request limits and hostile input: body size, control characters, huge cursors, settings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from dompet.config import Settings
from dompet.domain.ids import new_id
from dompet.domain.ledger import (
    Journal,
    JournalKind,
    Posting,
    SystemAccount,
    savings_account,
    wallet_account,
)
from dompet.domain.money import BALANCE_CAP, MAX_AMOUNT
from tests.api.wallet_client import Wallet, fresh_phone, register
from tests.conftest import fast_settings
from tests.reliability.helpers import App, AppContext

JSON = {"Content-Type": "application/json"}


def raw_json(body: dict[str, Any]) -> bytes:
    """JSON with \\u escapes, so even a lone surrogate can be sent."""
    return json.dumps(body).encode()


async def chunks(payload: bytes, size: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, len(payload), size):
        yield payload[start : start + size]


# -- body size ---------------------------------------------------------------------------------
@pytest.fixture
async def small_app(sqlite_url: str) -> AsyncIterator[App]:
    async with AppContext(fast_settings(sqlite_url, max_body_bytes=512)) as running:
        yield running


def padded(body: dict[str, Any], size: int) -> bytes:
    """``body`` as JSON, padded with whitespace to exactly ``size`` bytes."""
    encoded = json.dumps(body).encode()
    assert len(encoded) <= size
    return encoded + b" " * (size - len(encoded))


async def test_a_body_at_the_limit_is_accepted(small_app: App) -> None:
    body = {"first_name": "Guntur", "phone_number": fresh_phone(), "pin": "123456"}
    response = await small_app.http.post("/register", content=padded(body, 512), headers=JSON)
    assert response.status_code == 200, response.text


async def test_a_declared_oversized_body_is_413_in_the_wallet_shape(small_app: App) -> None:
    body = {"first_name": "Guntur", "phone_number": fresh_phone(), "pin": "123456"}
    response = await small_app.http.post("/register", content=padded(body, 513), headers=JSON)
    assert response.status_code == 413
    assert response.json() == {"message": "Request body is too large (at most 512 bytes)"}


async def test_a_streamed_oversized_body_is_413_and_moves_no_money(small_app: App) -> None:
    wallet = await register(small_app.http)
    payload = padded({"amount": 1000}, 2048)
    response = await small_app.http.post(
        "/topup", content=chunks(payload), headers={**JSON, **wallet.auth}
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 413
    assert response.json() == {"message": "Request body is too large (at most 512 bytes)"}
    assert (await wallet.transactions()) == []


async def test_a_streamed_body_within_the_limit_is_accepted(small_app: App) -> None:
    wallet = await register(small_app.http)
    payload = padded({"amount": 1000}, 500)
    response = await small_app.http.post(
        "/topup", content=chunks(payload, 7), headers={**JSON, **wallet.auth}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_oversized_savings_body_is_400_remark(small_app: App, streamed: bool) -> None:
    payload = padded({"nama": "Siti", "nik": "3171234567890001", "no_hp": fresh_phone()}, 600)
    content: bytes | AsyncIterator[bytes] = chunks(payload) if streamed else payload
    response = await small_app.http.post("/daftar", content=content, headers=JSON)
    assert response.status_code == 400
    assert response.json() == {"remark": "Request body is too large (at most 512 bytes)"}


def test_the_default_limit_fits_every_legitimate_request() -> None:
    """The longest legal register body (every field at its maximum) fits the default limit."""
    settings = Settings()
    longest = {
        "first_name": "\U0001f600" * 100,  # 4 bytes each in UTF-8, 12 as a JSON escape pair
        "last_name": "\U0001f600" * 100,
        "phone_number": "+628123456789012",
        "address": "\U0001f600" * 500,
        "pin": "123456",
    }
    assert len(json.dumps(longest).encode()) < settings.max_body_bytes


# -- control characters ------------------------------------------------------------------------
HOSTILE = ["\x00", "\x1b[2J", "\x7f", "\ud800", "\x85"]

_WALLET_FIELDS: list[tuple[str, str, dict[str, Any]]] = [
    ("/register", "first_name", {"first_name": "A", "phone_number": "PHONE", "pin": "123456"}),
    ("/register", "last_name", {"first_name": "A", "phone_number": "PHONE", "pin": "123456"}),
    ("/register", "address", {"first_name": "A", "phone_number": "PHONE", "pin": "123456"}),
    ("/register", "pin", {"first_name": "A", "phone_number": "PHONE", "pin": "123456"}),
    ("/register", "phone_number", {"first_name": "A", "phone_number": "PHONE", "pin": "123456"}),
    ("/login", "phone_number", {"phone_number": "PHONE", "pin": "123456"}),
    ("/login", "pin", {"phone_number": "PHONE", "pin": "123456"}),
    ("/pay", "remarks", {"amount": 1, "remarks": "ok"}),
    ("/transfer", "remarks", {"target_user": "TARGET", "amount": 1, "remarks": "ok"}),
    ("/transfer", "target_user", {"target_user": "TARGET", "amount": 1}),
    ("/profile", "first_name", {}),
    ("/profile", "last_name", {}),
    ("/profile", "address", {}),
]
_SAVINGS_FIELDS: list[tuple[str, str, dict[str, Any]]] = [
    ("/daftar", "nama", {"nama": "Siti", "nik": "NIK", "no_hp": "PHONE"}),
    ("/daftar", "nik", {"nama": "Siti", "nik": "NIK", "no_hp": "PHONE"}),
    ("/daftar", "no_hp", {"nama": "Siti", "nik": "NIK", "no_hp": "PHONE"}),
]


async def test_control_characters_are_refused_in_every_text_field(app: App) -> None:
    """NUL and friends never reach the database (PostgreSQL would answer NUL with a 500)."""
    sender = await register(app.http)
    target = await register(app.http)
    await sender.topup(1000)
    nik = iter(range(3171000000000000, 3172000000000000))
    for hostile in HOSTILE:
        for path, field, template in _WALLET_FIELDS:
            body = {
                k: fresh_phone() if v == "PHONE" else target.user_id if v == "TARGET" else v
                for k, v in template.items()
            }
            body[field] = f"Bad{hostile}value"
            method = "PUT" if path == "/profile" else "POST"
            response = await app.http.request(
                method, path, content=raw_json(body), headers={**JSON, **sender.auth}
            )
            assert response.status_code == 400, (path, field, hostile, response.text)
            assert field in response.json()["message"], response.text
        for path, field, template in _SAVINGS_FIELDS:
            body = {
                k: fresh_phone() if v == "PHONE" else str(next(nik)) if v == "NIK" else v
                for k, v in template.items()
            }
            body[field] = f"Bad{hostile}value"
            response = await app.http.post(path, content=raw_json(body), headers=JSON)
            assert response.status_code == 400, (path, field, hostile, response.text)
            assert field in response.json()["remark"], response.text
    for bad in ("5410990314\x00", "\x00"):
        for path in ("/tabung", "/tarik"):
            response = await app.http.post(
                path, content=raw_json({"no_rekening": bad, "nominal": 1}), headers=JSON
            )
            assert response.status_code == 400
            assert "no_rekening" in response.json()["remark"]
        for path in ("/saldo/", "/mutasi/"):
            response = await app.http.get(path + bad.replace("\x00", "%00"))
            assert response.status_code == 400, response.text
    assert (await sender.transactions())[0]["amount"] == 1000
    report = await app.reconcile()
    assert report.ok, report.violations


# -- text that lies about itself: bidirectional overrides and zero-width characters ------------
INVISIBLE = ["\u202e", "\u202d", "\u2066", "\u200f", "\u200b", "\u200d", "\u2060", "\ufeff"]
_SHOWN_WALLET_FIELDS = [
    (path, field, template)
    for path, field, template in _WALLET_FIELDS
    if field in ("first_name", "last_name", "address", "remarks")
]


async def test_names_and_remarks_refuse_bidi_overrides_and_zero_width_characters(
    app: App,
) -> None:
    """``Refund\u202e0001`` shows as something else to the person who reads it; a zero-width
    space makes two names look alike. Every field people read refuses them, naming the field,
    and nothing is written."""
    sender = await register(app.http)
    target = await register(app.http)
    await sender.topup(1000)
    nik = iter(range(3173000000000000, 3174000000000000))
    for hidden in INVISIBLE:
        for path, field, template in _SHOWN_WALLET_FIELDS:
            body = {
                k: fresh_phone() if v == "PHONE" else target.user_id if v == "TARGET" else v
                for k, v in template.items()
            }
            body[field] = f"Siti{hidden}Rahma"
            method = "PUT" if path == "/profile" else "POST"
            response = await app.http.request(
                method, path, content=raw_json(body), headers={**JSON, **sender.auth}
            )
            assert response.status_code == 400, (path, field, hidden, response.text)
            message = response.json()["message"]
            assert f"Field '{field}' is invalid" in message
            assert "bidirectional-override or zero-width" in message
        body = {"nama": f"Siti{hidden}", "nik": str(next(nik)), "no_hp": fresh_phone()}
        response = await app.http.post("/daftar", content=raw_json(body), headers=JSON)
        assert response.status_code == 400
        assert "nama" in response.json()["remark"]
    assert [t["amount"] for t in await sender.transactions()] == [1000]
    user = await app.container.store.get_user(sender.user_id)
    assert user is not None
    assert user.first_name == "Guntur"


async def test_ordinary_unicode_text_is_kept(app: App) -> None:
    wallet = await register(app.http, first_name="Dewi Ayu 🌺", address="Jl. Ñandú, Café")
    response = await wallet.http.put(
        "/profile", json={"last_name": "Sukarno-Putri"}, headers=wallet.auth
    )
    assert response.status_code == 200
    await wallet.topup(10)
    assert (await wallet.pay(5, "Kopi ☕ susu")).status_code == 200
    assert (await wallet.transactions())[0]["remarks"] == "Kopi ☕ susu"


# -- paging cursor -----------------------------------------------------------------------------
HUGE_CURSORS: list[tuple[dict[str, str], int]] = [
    ({"cursor": str(2**63 - 1)}, 200),
    ({"cursor": str(2**63)}, 400),
    ({"cursor": "9" * 40}, 400),
    ({"cursor": "0"}, 400),
    ({"limit": "1", "cursor": str(2**64)}, 400),
    ({"limit": str(2**63)}, 400),
]


async def test_huge_cursors_are_400_not_500(app: App) -> None:
    wallet: Wallet = await register(app.http)
    await wallet.topup(10)
    for params, status in HUGE_CURSORS:
        response = await app.http.get("/transactions", params=params, headers=wallet.auth)
        assert response.status_code == status, (params, response.text)
        if status == 400:
            assert set(response.json()) == {"message"}


# -- settings ----------------------------------------------------------------------------------
def test_settings_accept_field_names_as_well_as_their_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(env="test", worker_enabled=False)
    assert settings.env == "test"
    assert settings.worker_enabled is False
    assert fast_settings("sqlite://", worker_enabled=False).worker_enabled is False
    monkeypatch.setenv("DOMPET_WORKER", "0")
    monkeypatch.setenv("DOMPET_ENV", "test")
    assert Settings().worker_enabled is False
    assert Settings().env == "test"
    assert Settings(worker_enabled=True).worker_enabled is True  # code beats the environment
    monkeypatch.delenv("DOMPET_ENV")
    monkeypatch.setenv("ENV", "production")  # a generic variable never switches modes
    assert Settings().env == "development"


async def test_phone_numbers_are_ascii_digits_only(app: App) -> None:
    """``\\d`` would let Arabic-Indic digits through as a "different" phone number."""
    response = await app.http.post(
        "/register",
        json={
            "first_name": "A",
            "phone_number": "08\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",
            "pin": "123456",
        },
    )
    assert response.status_code == 400
    assert "phone_number" in response.json()["message"]


WEIRD_BODIES = [
    b"[" * 8000 + b"]" * 8000,  # deep nesting, within the size limit
    b'{"amount": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"amount": 1e999}',
    b'{"amount": NaN}',
    b'{"amount": 100000000000000000000000000000000000000000}',
    b'{"amount": -0}',
    b'{"amount": 1, "amount": 2}',
    b"\xff\xfe\x00{",
    b'{"amount": "\xff"}',
    b"",
    b"null",
    b'"just a string"',
    b"{" + b'"a": 1, ' * 1500 + b'"amount": 1}',
]


async def test_weird_bodies_are_clean_400s_in_both_shapes(app: App) -> None:
    wallet = await register(app.http)
    no_rekening = (
        await app.http.post(
            "/daftar", json={"nama": "Siti", "nik": "3171999999990001", "no_hp": fresh_phone()}
        )
    ).json()["no_rekening"]
    for body in WEIRD_BODIES:
        response = await app.http.post("/topup", content=body, headers={**JSON, **wallet.auth})
        assert response.status_code in (400, 413), (body[:40], response.text)
        assert set(response.json()) == {"message"}
        savings_body = body.replace(b'"amount"', b'"nominal"')
        response = await app.http.post("/tabung", content=savings_body, headers=JSON)
        assert response.status_code == 400, (body[:40], response.text)
        assert set(response.json()) == {"remark"}
    duplicate = await app.http.post(
        "/pay", content=b'{"amount": 1, "amount": 2}', headers={**JSON, **wallet.auth}
    )
    assert duplicate.json() == {"message": "Request body is not valid JSON: duplicate key 'amount'"}
    assert await wallet.transactions() == []
    assert (await app.http.get(f"/saldo/{no_rekening}")).json() == {"saldo": 0}


# -- the balance cap ---------------------------------------------------------------------------
def credit_beyond_a_request(account_id: str, amount: int) -> Journal:
    """A credit larger than any request may ask for, to bring an account near the cap."""
    journal_id = new_id()
    return Journal(
        id=journal_id,
        kind=JournalKind.TOPUP,
        reference=journal_id,
        remarks="",
        created_at=datetime.now(UTC),
        postings=(Posting(SystemAccount.TOPUP, -amount), Posting(account_id, amount)),
    )


async def test_a_credit_past_the_balance_cap_is_a_clean_400(app: App) -> None:
    """No balance may pass BALANCE_CAP (far below the integer limit): a top-up or deposit
    that would is refused in the API's shape, and nothing changes."""
    wallet = await register(app.http)
    store = app.container.store
    await store.post_journal(
        credit_beyond_a_request(wallet_account(wallet.user_id), BALANCE_CAP - 5)
    )
    refused = await wallet.topup(MAX_AMOUNT)
    assert refused.status_code == 400
    assert refused.json() == {"message": "Balance limit exceeded"}
    assert (await wallet.topup(6)).json() == {"message": "Balance limit exceeded"}
    assert (await wallet.topup(5)).status_code == 200
    assert len(await wallet.transactions()) == 2
    opened = await app.http.post(
        "/daftar", json={"nama": "Siti", "nik": "3175000000000001", "no_hp": fresh_phone()}
    )
    no_rekening = opened.json()["no_rekening"]
    await store.post_journal(credit_beyond_a_request(savings_account(no_rekening), BALANCE_CAP))
    deposit = await app.http.post("/tabung", json={"no_rekening": no_rekening, "nominal": 1})
    assert deposit.status_code == 400
    assert deposit.json() == {"remark": "Balance limit exceeded"}
    assert (await app.http.get(f"/saldo/{no_rekening}")).json() == {"saldo": BALANCE_CAP}
    report = await app.reconcile()
    assert report.ok, report.violations
