"""A database fault at a store call becomes a 503 in the API's shape, and a retry is safe.

The store's own method is made to fail as a driver fails (a reset connection, a timeout),
before or after the write was made: the answer is a 503 with ``Retry-After`` (e-wallet
``{"message"}``, savings ``{"remark"}``), never a 500; a retry with the same Idempotency-Key
is never refused as "in flight" and never moves the money twice (the outcome of a write that
failed so is unknown to the API, so a 503 is never remembered as the key's answer). On every
engine. The whole service under real faults: test_fault_*.py.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from dompet.domain.errors import StoreUnavailable
from dompet.domain.ledger import wallet_account
from dompet.domain.transfers import TransferStatus
from dompet.storage import faults
from tests.api.wallet_client import register
from tests.conftest import fast_settings
from tests.reliability.helpers import App, AppContext

KEY = "Idempotency-Key"
_nik = itertools.count(3175000000000001)


def failing_once(
    real: Callable[..., Awaitable[Any]], error: BaseException, *, after: bool
) -> Callable[..., Awaitable[Any]]:
    """``real``, except that its first call fails with ``error`` -- before doing anything, or
    ``after`` doing it (the reply lost on the way back: the write was made)."""
    calls = 0

    async def call(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            if after:
                await real(*args, **kwargs)
            raise error
        return await real(*args, **kwargs)

    return call


@pytest.mark.parametrize("after", [False, True], ids=["not-written", "written-reply-lost"])
async def test_a_payment_whose_write_failed_is_a_503_and_its_retry_pays_once(
    app: App, monkeypatch: pytest.MonkeyPatch, after: bool
) -> None:
    alice = await register(app.http)
    assert (await alice.topup(100_000)).status_code == 200
    inner = app.container.store.inner  # type: ignore[attr-defined]
    monkeypatch.setattr(
        inner, "post_journal", failing_once(inner.post_journal, ConnectionResetError(), after=after)
    )
    first = await alice.post("/pay", {"amount": 30_000, "remarks": "pulsa"}, **{KEY: "pay-1"})
    assert first.status_code == 503, first.text
    assert first.json() == {"message": faults.UNREACHABLE}
    assert first.headers["retry-after"] == "1"
    again = await alice.post("/pay", {"amount": 30_000, "remarks": "pulsa"}, **{KEY: "pay-1"})
    assert again.status_code == 200, again.text
    payments = [t for t in await alice.transactions() if "payment_id" in t]
    assert [p["payment_id"] for p in payments] == [again.json()["result"]["payment_id"]]
    assert await app.container.store.balance(wallet_account(alice.user_id)) == 70_000
    assert (await app.reconcile()).ok


async def test_a_claim_whose_reply_was_lost_does_not_hold_the_key(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key's claim was made but its answer lost: the retry is not told "in flight" for
    IDEMPOTENCY_IN_FLIGHT_SECONDS; this process releases the claim first."""
    alice = await register(app.http)
    inner = app.container.store.inner  # type: ignore[attr-defined]
    monkeypatch.setattr(
        inner,
        "claim_idempotency",
        failing_once(inner.claim_idempotency, ConnectionResetError(), after=True),
    )
    first = await alice.post("/topup", {"amount": 5_000}, **{KEY: "top-1"})
    assert first.status_code == 503, first.text
    again = await alice.post("/topup", {"amount": 5_000}, **{KEY: "top-1"})
    assert again.status_code == 200, again.text
    assert await app.container.store.balance(wallet_account(alice.user_id)) == 5_000


async def test_an_overloaded_database_gets_no_clean_up_and_the_retry_still_runs(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await register(app.http)
    inner = app.container.store.inner  # type: ignore[attr-defined]
    released: list[object] = []
    real_release = inner.release_idempotency

    async def release(key: object) -> None:
        released.append(key)
        await real_release(key)

    monkeypatch.setattr(inner, "release_idempotency", release)
    monkeypatch.setattr(
        inner, "post_journal", failing_once(inner.post_journal, TimeoutError(), after=False)
    )
    first = await alice.post("/topup", {"amount": 5_000}, **{KEY: "top-2"})
    assert first.status_code == 503
    assert first.json() == {"message": faults.TOO_SLOW}
    assert released == []  # a slow database is not sent more work for the 503
    again = await alice.post("/topup", {"amount": 5_000}, **{KEY: "top-2"})
    assert again.status_code == 200, again.text
    assert len(released) == 1  # released by the retry, before it claimed the key again


async def test_the_savings_api_answers_503_with_a_remark(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = await app.http.post(
        "/daftar", json={"nama": "Siti", "nik": str(next(_nik)), "no_hp": "085712340001"}
    )
    assert opened.status_code == 200, opened.text
    rek = opened.json()["no_rekening"]
    inner = app.container.store.inner  # type: ignore[attr-defined]
    monkeypatch.setattr(
        inner, "post_journal", failing_once(inner.post_journal, ConnectionResetError(), after=True)
    )
    body = {"no_rekening": rek, "nominal": 10_000}
    first = await app.http.post("/tabung", json=body, headers={KEY: "tabung-1"})
    assert first.status_code == 503, first.text
    assert first.json() == {"remark": faults.UNREACHABLE}
    assert first.headers["retry-after"] == "1"
    again = await app.http.post("/tabung", json=body, headers={KEY: "tabung-1"})
    assert again.status_code == 200
    assert again.json() == {"saldo": 10_000}


async def test_reads_too(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = await register(app.http)
    opened = await app.http.post(
        "/daftar", json={"nama": "Siti", "nik": str(next(_nik)), "no_hp": "085712340002"}
    )
    rek = opened.json()["no_rekening"]
    inner = app.container.store.inner  # type: ignore[attr-defined]

    async def gone(*_: Any, **__: Any) -> Any:
        raise ConnectionRefusedError()

    for name in ("entries", "render_entries", "balance", "get_customer"):
        monkeypatch.setattr(inner, name, gone)
    history = await app.http.get("/transactions", headers=alice.auth)
    assert history.status_code == 503, history.text
    assert history.json() == {"message": faults.UNREACHABLE}
    saldo = await app.http.get(f"/saldo/{rek}")
    assert saldo.status_code == 503
    assert saldo.json() == {"remark": faults.UNREACHABLE}


async def test_healthz_says_the_database_is_unreachable_and_never_hangs(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = fast_settings(sqlite_url, db_connect_timeout_seconds=0.2)
    async with AppContext(settings) as app:
        assert (await app.http.get("/healthz")).status_code == 200
        inner = app.container.store.inner  # type: ignore[attr-defined]

        async def refused() -> None:
            raise ConnectionRefusedError()

        monkeypatch.setattr(inner, "ping", refused)
        down = await app.http.get("/healthz")
        assert down.status_code == 503
        assert down.json() == {
            "status": "unavailable",
            "database": "unreachable",
            "reason": faults.UNREACHABLE,
        }

        async def silent() -> None:
            await asyncio.sleep(30)

        monkeypatch.setattr(inner, "ping", silent)
        started = asyncio.get_running_loop().time()
        hung = await app.http.get("/healthz")
        assert asyncio.get_running_loop().time() - started < 2
        assert hung.status_code == 503
        assert hung.json()["database"] == "unreachable"
        assert "0.2 s" in hung.json()["reason"]


async def test_an_outage_does_not_spend_a_settlement_attempt(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transfer is not refunded because the database was away: its attempts stay as they were
    and it stays PENDING, for the lease or the sweep to bring back."""
    alice = await register(app.http)
    bob = await register(app.http)
    await alice.topup(50_000)
    inner = app.container.store.inner  # type: ignore[attr-defined]

    async def gone(*_: Any, **__: Any) -> Any:
        raise ConnectionResetError()

    real_close = inner.close_transfer
    monkeypatch.setattr(inner, "close_transfer", gone)
    sent = await alice.post("/transfer", {"target_user": bob.user_id, "amount": 1_000})
    assert sent.status_code == 200
    transfer = await app.container.store.get_transfer(sent.json()["result"]["transfer_id"])
    assert transfer is not None
    with pytest.raises(StoreUnavailable):
        await app.container.settlement.settle_transfer(transfer)
    still = await app.container.store.get_transfer(transfer.id)
    assert still is not None
    assert still.status is TransferStatus.PENDING
    assert still.attempts == 0
    monkeypatch.setattr(inner, "close_transfer", real_close)
    settled = await app.container.settlement.settle_transfer(still)
    assert settled.outcome.value in ("settled", "already_final")
