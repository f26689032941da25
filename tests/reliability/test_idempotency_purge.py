"""Over HTTP: purging expired keys changes no answer a client gets for a live key."""

from __future__ import annotations

from dompet.domain.ledger import wallet_account
from dompet.services.idempotency_purge import purge_expired_idempotency_keys
from tests.api.wallet_client import register
from tests.conftest import fast_settings
from tests.reliability.helpers import AppContext, SettableClock

KEY = "Idempotency-Key"


async def test_a_live_key_replays_after_a_purge_and_an_expired_one_is_new(
    database_url: str,
) -> None:
    clock = SettableClock()
    # no worker: its own purge must not race this one
    settings = fast_settings(database_url, idempotency_ttl_seconds=60, worker_enabled=False)
    async with AppContext(settings, clock) as app:
        store = app.container.store
        alice = await register(app.http)
        old = await alice.post("/topup", {"amount": 100}, **{KEY: "old"})
        clock.advance(30)
        live = await alice.post("/topup", {"amount": 10}, **{KEY: "live"})
        assert (old.status_code, live.status_code) == (200, 200)
        clock.advance(31)  # "old" expired a second ago, "live" has 29 s left

        assert await purge_expired_idempotency_keys(store, clock()) == 1

        again = await alice.post("/topup", {"amount": 10}, **{KEY: "live"})
        assert (again.status_code, again.json()) == (200, live.json())
        assert await store.balance(wallet_account(alice.user_id)) == 110
        fresh = await alice.post("/topup", {"amount": 100}, **{KEY: "old"})
        assert fresh.status_code == 200
        assert fresh.json()["result"]["top_up_id"] != old.json()["result"]["top_up_id"]
        assert await store.balance(wallet_account(alice.user_id)) == 210
