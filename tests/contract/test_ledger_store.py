"""The storage port's contract, run against every engine (see ENGINES in tests/conftest.py)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from itertools import pairwise

import pytest

from dompet.domain.errors import (
    AccountBlocked,
    AccountNotFound,
    IdempotencyConflict,
    InsufficientFunds,
    PhoneTaken,
)
from dompet.domain.idempotency import (
    Claimed,
    IdempotencyKey,
    ReplayJournal,
    ReplayResponse,
)
from dompet.domain.ids import new_id
from dompet.domain.invariants import check
from dompet.domain.ledger import (
    EntryStatus,
    EntryType,
    JournalKind,
    SystemAccount,
    refund_journal,
    settlement_journal,
    topup_journal,
    transfer_out_journal,
    wallet_account,
)
from dompet.domain.monitoring import WorkerHeartbeat
from dompet.domain.transfers import TransferStatus
from dompet.domain.users import ProfileChanges
from dompet.storage.port import LedgerStore
from tests.contract.helpers import new_user, now, pay, pending_transfer, top_up


async def assert_invariants(store: LedgerStore) -> None:
    report = check(await store.snapshot())
    assert report.violations == []


# -- users ------------------------------------------------------------------------------------
async def test_user_round_trip_and_unique_phone(store: LedgerStore) -> None:
    user = await new_user(store)
    assert await store.get_user(user.id) == user
    credentials = await store.find_credentials(user.phone_number)
    assert credentials is not None
    assert credentials.user_id == user.id
    assert await store.balance(wallet_account(user.id)) == 0
    clash = dataclasses.replace(user, id=new_id())  # same phone, other id
    with pytest.raises(PhoneTaken):
        await store.add_user(clash, "h")
    assert await store.get_user(clash.id) is None


async def test_update_profile_changes_only_given_fields(store: LedgerStore) -> None:
    user = await new_user(store)
    later = now() + timedelta(seconds=5)
    updated = await store.update_profile(user.id, ProfileChanges(address="Jl. Baru"), later)
    assert updated is not None
    assert (updated.first_name, updated.address) == (user.first_name, "Jl. Baru")
    assert updated.phone_number == user.phone_number
    assert abs((updated.updated_at - later).total_seconds()) < 0.001
    assert await store.update_profile(new_id(), ProfileChanges(address="x"), later) is None


# -- journals ---------------------------------------------------------------------------------
async def test_topup_and_payment_write_chained_entries(store: LedgerStore) -> None:
    user = await new_user(store)
    first = await top_up(store, user.id, 500000)
    second = await pay(store, user.id, 100000, "Pulsa Telkomsel 100k")
    assert (first.balance_before, first.balance_after, first.entry_type) == (
        0,
        500000,
        EntryType.CREDIT,
    )
    assert (second.balance_before, second.balance_after, second.entry_type) == (
        500000,
        400000,
        EntryType.DEBIT,
    )
    assert second.remarks == "Pulsa Telkomsel 100k"
    assert second.sequence > first.sequence
    history = await store.entries(wallet_account(user.id))
    assert [e.journal_id for e in history] == [second.journal_id, first.journal_id]
    assert await store.balance(wallet_account(user.id)) == 400000
    await assert_invariants(store)


async def test_overdraft_is_refused_and_changes_nothing(store: LedgerStore) -> None:
    user = await new_user(store)
    await top_up(store, user.id, 1000)
    before = await store.snapshot()
    with pytest.raises(InsufficientFunds):
        await pay(store, user.id, 1001)
    assert await store.balance(wallet_account(user.id)) == 1000
    assert len(await store.entries(wallet_account(user.id))) == 1
    assert await store.snapshot() == before


async def test_unknown_and_blocked_accounts(store: LedgerStore) -> None:
    with pytest.raises(AccountNotFound):
        await top_up(store, new_id(), 10)
    user = await new_user(store)
    assert await store.set_account_blocked(wallet_account(user.id), True)
    with pytest.raises(AccountBlocked):
        await top_up(store, user.id, 10)
    assert await store.set_account_blocked(wallet_account(user.id), False)
    assert not await store.set_account_blocked(SystemAccount.TRANSIT, True)
    await top_up(store, user.id, 10)
    await assert_invariants(store)


async def test_entries_paging_and_order(store: LedgerStore) -> None:
    user = await new_user(store)
    written = [await top_up(store, user.id, n) for n in range(1, 8)]
    account = wallet_account(user.id)
    newest = await store.entries(account, limit=3)
    assert [e.amount for e in newest] == [7, 6, 5]
    older = await store.entries(account, limit=3, before=newest[-1].sequence)
    assert [e.amount for e in older] == [4, 3, 2]
    oldest = await store.entries(account, oldest_first=True, limit=2)
    assert [e.amount for e in oldest] == [1, 2]
    every = await store.entries(account)
    for newer, older_entry in pairwise(every):
        assert newer.balance_before == older_entry.balance_after
    found = await store.entry_of_journal(written[2].journal_id, account)
    assert found == written[2]
    assert await store.entry_of_journal(new_id(), account) is None


# -- transfers --------------------------------------------------------------------------------
async def test_transfer_lifecycle_is_exactly_once(store: LedgerStore) -> None:
    sender, target = await new_user(store), await new_user(store, "Tom")
    await top_up(store, sender.id, 400000)
    transfer = pending_transfer(sender.id, target.id, 30000)
    (debit,) = await store.open_transfer(
        transfer,
        transfer_out_journal(new_id(), transfer.id, sender.id, 30000, "Hadiah Ultah", now()),
    )
    assert (debit.balance_before, debit.balance_after, debit.status) == (
        400000,
        370000,
        EntryStatus.PENDING,
    )
    snapshot = await store.snapshot()
    assert snapshot.pending_transfer_total == 30000
    await assert_invariants(store)

    settle = settlement_journal(new_id(), transfer.id, target.id, 30000, "Hadiah Ultah", now())
    assert await store.close_transfer(transfer.id, TransferStatus.SUCCESS, settle, now())
    again = settlement_journal(new_id(), transfer.id, target.id, 30000, "Hadiah Ultah", now())
    assert not await store.close_transfer(transfer.id, TransferStatus.SUCCESS, again, now())
    assert await store.balance(wallet_account(target.id)) == 30000
    (credit,) = await store.entries(wallet_account(target.id))
    assert (credit.reference, credit.kind, credit.entry_type) == (
        transfer.id,
        JournalKind.TRANSFER_SETTLE,
        EntryType.CREDIT,
    )
    (sender_debit, _) = await store.entries(wallet_account(sender.id))
    assert sender_debit.status is EntryStatus.SUCCESS
    stored = await store.get_transfer(transfer.id)
    assert stored is not None
    assert stored.status is TransferStatus.SUCCESS
    assert stored.settled_at is not None
    await assert_invariants(store)


async def test_blocked_target_fails_then_refund_reaches_blocked_sender(
    store: LedgerStore,
) -> None:
    sender, target = await new_user(store), await new_user(store, "Tom")
    await top_up(store, sender.id, 5000)
    transfer = pending_transfer(sender.id, target.id, 5000)
    await store.open_transfer(
        transfer, transfer_out_journal(new_id(), transfer.id, sender.id, 5000, "x", now())
    )
    await store.set_account_blocked(wallet_account(target.id), True)
    await store.set_account_blocked(wallet_account(sender.id), True)
    settle = settlement_journal(new_id(), transfer.id, target.id, 5000, "x", now())
    with pytest.raises(AccountBlocked):
        await store.close_transfer(transfer.id, TransferStatus.SUCCESS, settle, now())
    unchanged = await store.get_transfer(transfer.id)
    assert unchanged is not None
    assert unchanged.status is TransferStatus.PENDING
    refund = refund_journal(new_id(), transfer.id, sender.id, 5000, "x", now())
    assert await store.close_transfer(transfer.id, TransferStatus.FAILED, refund, now())
    refund_entry, debit = await store.entries(wallet_account(sender.id), limit=2)
    assert (refund_entry.remarks, refund_entry.status, refund_entry.reference) == (
        "Refund: x",
        EntryStatus.SUCCESS,
        transfer.id,
    )
    assert debit.status is EntryStatus.FAILED
    assert await store.balance(wallet_account(sender.id)) == 5000
    await assert_invariants(store)


async def test_claims_lease_and_failures(store: LedgerStore) -> None:
    sender, target = await new_user(store), await new_user(store, "Tom")
    await top_up(store, sender.id, 100)
    transfers = []
    for _ in range(4):
        transfer = pending_transfer(sender.id, target.id, 10)
        await store.open_transfer(
            transfer, transfer_out_journal(new_id(), transfer.id, sender.id, 10, "", now())
        )
        transfers.append(transfer)
    lease = timedelta(seconds=30)
    first = await store.claim_due_transfers("w1", now(), lease, 3)
    second = await store.claim_due_transfers("w2", now(), lease, 10)
    assert len(first) == 3
    assert len(second) == 1
    assert {t.id for t in first}.isdisjoint({t.id for t in second})
    assert await store.claim_due_transfers("w3", now(), lease, 10) == []
    # an expired lease is claimable again
    later = now() + lease + timedelta(seconds=1)
    assert len(await store.claim_due_transfers("w3", later, lease, 10)) == 4

    failed = await store.record_settlement_failure(
        transfers[0].id, "target blocked", now() + timedelta(hours=1)
    )
    assert failed is not None
    assert (failed.attempts, failed.last_error) == (1, "target blocked")
    troubled = await store.troubled_transfers()
    assert [t.id for t in troubled] == [transfers[0].id]
    assert await store.retry_transfer_now(transfers[0].id, now())
    assert await store.release_claims("w3") == 3
    assert await store.release_claims("nobody") == 0


async def test_concurrent_claims_never_share_a_transfer(store: LedgerStore) -> None:
    sender, target = await new_user(store), await new_user(store, "Tom")
    await top_up(store, sender.id, 1000)
    for _ in range(30):
        transfer = pending_transfer(sender.id, target.id, 1)
        await store.open_transfer(
            transfer, transfer_out_journal(new_id(), transfer.id, sender.id, 1, "", now())
        )
    batches = await asyncio.gather(
        *(store.claim_due_transfers(f"w{i}", now(), timedelta(seconds=30), 4) for i in range(10))
    )
    claimed = [t.id for batch in batches for t in batch]
    assert len(claimed) == len(set(claimed)) == 30


# -- idempotency (throttles and sessions: test_sessions_and_throttles.py) -------------------------
async def test_idempotency_key_lifecycle(store: LedgerStore) -> None:
    user = await new_user(store)
    key = IdempotencyKey(scope=user.id, key="k-1", fingerprint="f1")
    ttl, stale = timedelta(hours=24), timedelta(seconds=60)
    assert isinstance(await store.claim_idempotency(key, now(), ttl, stale), Claimed)
    with pytest.raises(IdempotencyConflict):  # still in flight
        await store.claim_idempotency(key, now(), ttl, stale)
    other_body = IdempotencyKey(scope=user.id, key="k-1", fingerprint="f2")
    with pytest.raises(IdempotencyConflict):
        await store.claim_idempotency(other_body, now(), ttl, stale)
    journal = topup_journal(new_id(), user.id, 100, now())
    await store.post_journal(journal, key)
    assert await store.claim_idempotency(key, now(), ttl, stale) == ReplayJournal(journal.id)
    with pytest.raises(IdempotencyConflict):  # one key never answers two journals
        await store.post_journal(topup_journal(new_id(), user.id, 100, now()), key)
    assert await store.balance(wallet_account(user.id)) == 100
    # a rejection is replayed as recorded; an expired key is free again
    rejected = IdempotencyKey(scope=user.id, key="k-2", fingerprint="f")
    await store.claim_idempotency(rejected, now(), ttl, stale)
    await store.answer_idempotency(rejected, 400, b'{"message":"Balance is not enough"}')
    assert await store.claim_idempotency(rejected, now(), ttl, stale) == ReplayResponse(
        400, b'{"message":"Balance is not enough"}'
    )
    assert isinstance(
        await store.claim_idempotency(rejected, now() + ttl + timedelta(seconds=1), ttl, stale),
        Claimed,
    )
    # a claim abandoned by a crashed request is taken over once stale, or released
    crashed = IdempotencyKey(scope=user.id, key="k-3", fingerprint="f")
    await store.claim_idempotency(crashed, now(), ttl, stale)
    later = now() + stale + timedelta(seconds=1)
    assert isinstance(await store.claim_idempotency(crashed, later, ttl, stale), Claimed)
    await store.release_idempotency(crashed)
    assert isinstance(await store.claim_idempotency(crashed, now(), ttl, stale), Claimed)
    # keys are scoped to their caller
    assert isinstance(
        await store.claim_idempotency(
            IdempotencyKey(scope=new_id(), key="k-1", fingerprint="f9"), now(), ttl, stale
        ),
        Claimed,
    )


# -- monitoring -------------------------------------------------------------------------------
async def test_monitoring_views(store: LedgerStore) -> None:
    sender, target = await new_user(store), await new_user(store, "Tom")
    await top_up(store, sender.id, 100)
    start = now()
    settled, waiting = pending_transfer(sender.id, target.id, 10), None
    await store.open_transfer(
        settled, transfer_out_journal(new_id(), settled.id, sender.id, 10, "", now())
    )
    waiting = pending_transfer(sender.id, target.id, 20)
    await store.open_transfer(
        waiting, transfer_out_journal(new_id(), waiting.id, sender.id, 20, "", now())
    )
    await store.close_transfer(
        settled.id,
        TransferStatus.SUCCESS,
        settlement_journal(new_id(), settled.id, target.id, 10, "", now()),
        now(),
    )
    counts = await store.transfer_counts()
    assert counts == {
        TransferStatus.PENDING: 1,
        TransferStatus.SUCCESS: 1,
        TransferStatus.FAILED: 0,
    }
    oldest = await store.oldest_pending_created_at()
    assert oldest is not None
    assert abs((oldest - waiting.created_at).total_seconds()) < 0.001
    (sample,) = await store.settled_since(start)
    assert (sample.transfer_id, sample.status) == (settled.id, "SUCCESS")
    beat = WorkerHeartbeat("w1", "inprocess", start, start, settled=1, info={"pid": "1"})
    await store.record_heartbeat(beat)
    await store.record_heartbeat(
        WorkerHeartbeat("w1", "inprocess", start, now(), settled=2, info={"pid": "1"})
    )
    (stored,) = await store.heartbeats()
    assert (stored.worker_id, stored.settled, stored.info) == ("w1", 2, {"pid": "1"})


# -- concurrency ------------------------------------------------------------------------------
@pytest.mark.concurrency
async def test_parallel_payments_never_overdraw_nor_lose_updates(store: LedgerStore) -> None:
    user = await new_user(store)
    affordable, price = 40, 250
    await top_up(store, user.id, affordable * price)

    async def attempt() -> bool:
        try:
            await pay(store, user.id, price)
        except InsufficientFunds:
            return False
        return True

    outcomes = await asyncio.gather(*(attempt() for _ in range(affordable * 3)))
    assert sum(outcomes) == affordable
    assert await store.balance(wallet_account(user.id)) == 0
    assert len(await store.entries(wallet_account(user.id))) == affordable + 1
    await assert_invariants(store)


@pytest.mark.concurrency
async def test_parallel_topups_lose_no_update(store: LedgerStore) -> None:
    user = await new_user(store)
    await asyncio.gather(*(top_up(store, user.id, n) for n in range(1, 101)))
    assert await store.balance(wallet_account(user.id)) == sum(range(1, 101))
    await assert_invariants(store)
