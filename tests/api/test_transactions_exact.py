"""GET /transactions byte for byte: a page, the next pages and the full list (SPEC.md section 1).

The clock is fixed so every field is known in advance; the expected bodies are written out here,
independently of the presenter, so any change to the read path that alters one byte fails.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from dompet.api.app import create_app
from dompet.config import Settings
from dompet.container import Container
from dompet.domain.ids import new_id
from dompet.domain.ledger import topup_journal, wallet_account
from tests.api.wallet_client import Wallet, register
from tests.conftest import fast_settings


class FixedClock:
    """A clock the test sets by hand."""

    def __init__(self) -> None:
        self.now = datetime(2021, 4, 1, 15, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
async def still_client(database_url: str, clock: FixedClock) -> AsyncIterator[Any]:
    """The app without a settlement worker: transfers settle only when the test says so."""
    async with _client(database_url, clock) as client:
        yield client


@asynccontextmanager
async def _client(database_url: str, clock: FixedClock, **overrides: Any) -> AsyncIterator[Any]:
    settings: Settings = fast_settings(database_url, worker_enabled=False, **overrides)
    container = await Container.build(settings, clock=clock)
    app = create_app(container=container)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dompet.test") as http:
            yield http, container


async def at(clock: FixedClock, moment: datetime, *wallets: Wallet) -> None:
    """Move the clock, then log ``wallets`` in again (their tokens may have expired)."""
    clock.now = moment
    for wallet in wallets:
        login = await wallet.http.post(
            "/login", json={"phone_number": wallet.phone, "pin": "123456"}
        )
        wallet.access_token = login.json()["result"]["access_token"]


def body(items: list[dict[str, Any]]) -> bytes:
    """The envelope exactly as the API writes it: compact, UTF-8, keys in the given order."""
    envelope = {"status": "SUCCESS", "result": items}
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def item(
    id_field: str,
    reference: str,
    user: Wallet,
    kind: tuple[str, str],
    amount: int,
    remarks: str,
    balances: tuple[int, int],
    created: str,
) -> dict[str, Any]:
    status, transaction_type = kind
    return {
        id_field: reference,
        "status": status,
        "user_id": user.user_id,
        "transaction_type": transaction_type,
        "amount": amount,
        "remarks": remarks,
        "balance_before": balances[0],
        "balance_after": balances[1],
        "created_date": created,
    }


async def test_pages_and_full_list_are_exact(still_client: Any, clock: FixedClock) -> None:
    http, container = still_client
    guntur, tom = await register(http), await register(http, "Tom")

    # Display times are Asia/Jakarta (UTC+7), to the second, never rounded up.
    await at(clock, datetime(2021, 4, 1, 15, 23, 20, 999999, tzinfo=UTC), guntur, tom)
    top = (await guntur.topup(500000)).json()["result"]["top_up_id"]
    await at(clock, datetime(2021, 4, 1, 16, 59, 59, 500000, tzinfo=UTC), guntur, tom)
    remarks = 'Pulsa "Telkomsel" 100k — ✓ \\ é'
    paid = (await guntur.pay(100000, remarks)).json()["result"]["payment_id"]
    await at(clock, datetime(2021, 4, 1, 17, 0, tzinfo=UTC), guntur, tom)  # local midnight
    sent = (await guntur.transfer(tom.user_id, 30000, "Hadiah Ultah")).json()["result"]
    await at(clock, datetime(2021, 4, 1, 17, 0, 1, 1, tzinfo=UTC), guntur, tom)
    await container.settlement.settle(sent["transfer_id"])
    await at(clock, datetime(2021, 12, 31, 16, 59, 59, 999999, tzinfo=UTC), guntur, tom)
    pending = (await guntur.transfer(tom.user_id, 1000)).json()["result"]["transfer_id"]

    newest_first = [
        item(
            "transfer_id",
            pending,
            guntur,
            ("PENDING", "DEBIT"),
            1000,
            "",
            (370000, 369000),
            "2021-12-31 23:59:59",
        ),
        item(
            "transfer_id",
            sent["transfer_id"],
            guntur,
            ("SUCCESS", "DEBIT"),
            30000,
            "Hadiah Ultah",
            (400000, 370000),
            "2021-04-02 00:00:00",
        ),
        item(
            "payment_id",
            paid,
            guntur,
            ("SUCCESS", "DEBIT"),
            100000,
            remarks,
            (500000, 400000),
            "2021-04-01 23:59:59",
        ),
        item(
            "top_up_id",
            top,
            guntur,
            ("SUCCESS", "CREDIT"),
            500000,
            "",
            (0, 500000),
            "2021-04-01 22:23:20",
        ),
    ]

    full = await http.get("/transactions", headers=guntur.auth)
    assert full.status_code == 200
    assert full.headers["content-type"] == "application/json"
    assert "x-next-cursor" not in full.headers
    assert full.content == body(newest_first)

    first = await http.get("/transactions", params={"limit": 2}, headers=guntur.auth)
    assert first.content == body(newest_first[:2])
    second = await http.get(
        "/transactions",
        params={"limit": 2, "cursor": first.headers["X-Next-Cursor"]},
        headers=guntur.auth,
    )
    assert second.content == body(newest_first[2:])
    last = await http.get(
        "/transactions",
        params={"limit": 3, "cursor": second.headers["X-Next-Cursor"]},
        headers=guntur.auth,
    )
    assert last.content == body([])
    assert "x-next-cursor" not in last.headers
    partial = await http.get("/transactions", params={"limit": 3}, headers=guntur.auth)
    assert partial.content == body(newest_first[:3])
    rest = await http.get(
        "/transactions",
        params={"limit": 3, "cursor": partial.headers["X-Next-Cursor"]},
        headers=guntur.auth,
    )
    assert rest.content == body(newest_first[3:])
    assert "x-next-cursor" not in rest.headers

    credit = item(
        "transfer_id",
        sent["transfer_id"],
        tom,
        ("SUCCESS", "CREDIT"),
        30000,
        "Hadiah Ultah",
        (0, 30000),
        "2021-04-02 00:00:01",
    )
    tom_list = await http.get("/transactions", headers=tom.auth)
    assert tom_list.content == body([credit])


async def test_a_zone_with_daylight_saving_and_entries_before_1970(
    database_url: str, clock: FixedClock
) -> None:
    """Europe/Berlin is not one offset, so the API presents the items itself (the store renders
    only fixed-offset zones); in Asia/Jakarta an entry of 1963 (UTC+7:30 then) makes the store
    decline its page, and the API presents that page too."""
    async with _client(database_url, clock, display_timezone="Europe/Berlin") as (http, _):
        ida = await register(http, "Ida")
        await at(clock, datetime(2021, 7, 1, 10, 0, 0, 999999, tzinfo=UTC), ida)
        summer = (await ida.topup(500)).json()["result"]
        await at(clock, datetime(2021, 12, 1, 10, 0, tzinfo=UTC), ida)
        winter = (await ida.pay(200, "Kaffee")).json()["result"]
        expected = [
            item("payment_id", winter["payment_id"], ida, ("SUCCESS", "DEBIT"), 200, "Kaffee",
                 (500, 300), "2021-12-01 11:00:00"),
            item("top_up_id", summer["top_up_id"], ida, ("SUCCESS", "CREDIT"), 500, "",
                 (0, 500), "2021-07-01 12:00:00"),
        ]  # fmt: skip
        full = await http.get("/transactions", headers=ida.auth)
        assert full.content == body(expected)
        page = await http.get("/transactions", params={"limit": 1}, headers=ida.auth)
        assert page.content == body(expected[:1])
        assert page.headers["X-Next-Cursor"]

    async with _client(database_url, clock) as (http, container):
        old = await register(http, "Oma")
        await container.store.post_journal(
            topup_journal(new_id(), old.user_id, 700, datetime(1963, 6, 1, 12, tzinfo=UTC))
        )
        (entry,) = await container.store.entries(wallet_account(old.user_id))
        full = await http.get("/transactions", headers=old.auth)
        assert full.content == body(
            [item("top_up_id", entry.reference, old, ("SUCCESS", "CREDIT"), 700, "", (0, 700),
                  "1963-06-01 19:30:00")]
        )  # fmt: skip
