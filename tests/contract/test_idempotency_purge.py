"""purge_idempotency: expired keys go, live and in-flight ones stay, and answer as before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dompet.domain.errors import IdempotencyConflict
from dompet.domain.idempotency import Claimed, IdempotencyKey, ReplayJournal, ReplayResponse
from dompet.domain.ids import new_id
from dompet.domain.ledger import topup_journal
from dompet.services.idempotency_purge import purge_expired_idempotency_keys
from dompet.storage.port import LedgerStore
from tests.contract.helpers import new_user

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TTL, STALE = timedelta(hours=1), timedelta(seconds=60)
REJECTION = b'{"message":"Balance is not enough"}'


async def _claim(store: LedgerStore, scope: str, name: str, at: datetime) -> IdempotencyKey:
    key = IdempotencyKey(scope=scope, key=name, fingerprint=f"fp-{name}")
    assert isinstance(await store.claim_idempotency(key, at, TTL, STALE), Claimed)
    return key


async def test_purge_deletes_only_expired_keys(store: LedgerStore) -> None:
    user = await new_user(store)
    old, recent = T0 - 2 * TTL, T0 - TTL / 2
    # expired: one that moved money, one rejection, one abandoned claim
    old_paid = await _claim(store, user.id, "old-paid", old)
    await store.post_journal(topup_journal(new_id(), user.id, 100, old), old_paid)
    old_rejected = await _claim(store, user.id, "old-rejected", old)
    await store.answer_idempotency(old_rejected, 400, REJECTION)
    old_abandoned = await _claim(store, user.id, "old-abandoned", old)
    # live: one that moved money, one rejection, one in flight, one expiring exactly at T0
    paid = await _claim(store, user.id, "paid", recent)
    journal = topup_journal(new_id(), user.id, 100, recent)
    await store.post_journal(journal, paid)
    rejected = await _claim(store, user.id, "rejected", recent)
    await store.answer_idempotency(rejected, 400, REJECTION)
    in_flight = await _claim(store, user.id, "in-flight", T0 - timedelta(seconds=1))
    await _claim(store, user.id, "edge", T0 - TTL)

    assert await store.purge_idempotency(T0, 100) == 3
    assert await store.purge_idempotency(T0, 100) == 0  # nothing else had expired

    # a live key answers exactly as before the purge
    assert await store.claim_idempotency(paid, T0, TTL, STALE) == ReplayJournal(journal.id)
    assert await store.claim_idempotency(rejected, T0, TTL, STALE) == ReplayResponse(400, REJECTION)
    with pytest.raises(IdempotencyConflict):  # still in flight
        await store.claim_idempotency(in_flight, T0, TTL, STALE)
    other = IdempotencyKey(scope=user.id, key="edge", fingerprint="another body")
    with pytest.raises(IdempotencyConflict):  # expiring at T0 exactly: kept (reused here)
        await store.claim_idempotency(other, T0 - timedelta(microseconds=1), TTL, STALE)
    assert await store.purge_idempotency(T0 + timedelta(microseconds=1), 100) == 1  # edge
    # an expired key is free: claimed afresh, even with another body
    for key in (old_paid, old_rejected, old_abandoned):
        fresh = IdempotencyKey(scope=key.scope, key=key.key, fingerprint="a new request")
        assert isinstance(await store.claim_idempotency(fresh, T0, TTL, STALE), Claimed)


async def test_purge_respects_its_limit(store: LedgerStore) -> None:
    scope = new_id()
    for i in range(5):
        await _claim(store, scope, f"k{i}", T0 - 2 * TTL)
    live = await _claim(store, scope, "live", T0)
    await store.answer_idempotency(live, 400, REJECTION)

    assert [await store.purge_idempotency(T0, 2) for _ in range(4)] == [2, 2, 1, 0]
    assert await store.purge_idempotency(T0, 0) == 0
    assert await store.claim_idempotency(live, T0, TTL, STALE) == ReplayResponse(400, REJECTION)


async def test_the_service_purges_in_batches_until_done(store: LedgerStore) -> None:
    scope = new_id()
    for i in range(7):
        await _claim(store, scope, f"k{i}", T0 - 2 * TTL)
    live = await _claim(store, scope, "live", T0 - timedelta(minutes=1))
    await store.answer_idempotency(live, 400, REJECTION)

    assert await purge_expired_idempotency_keys(store, T0, batch=3) == 7
    assert await purge_expired_idempotency_keys(store, T0, batch=3) == 0
    assert await store.claim_idempotency(live, T0, TTL, STALE) == ReplayResponse(400, REJECTION)
