"""A journal is all or nothing: a refused leg, a spent idempotency key or a closed transfer
writes nothing at all (on PostgreSQL each of these is one statement; see
storage/sql/journal/postgresql.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from dompet.domain.errors import AccountBlocked, IdempotencyConflict, InsufficientFunds
from dompet.domain.idempotency import Claimed, IdempotencyKey, ReplayJournal
from dompet.domain.ids import new_id
from dompet.domain.invariants import check
from dompet.domain.ledger import (
    EntryType,
    Journal,
    JournalKind,
    Posting,
    SystemAccount,
    payment_journal,
    settlement_journal,
    transfer_out_journal,
    wallet_account,
)
from dompet.domain.transfers import TransferStatus
from dompet.storage.port import LedgerStore
from tests.contract.helpers import new_user, now, pay, pending_transfer, top_up

TTL, STALE = timedelta(hours=24), timedelta(seconds=60)


def wallet_to_wallet(source: str, target: str, amount: int, fee: int = 0) -> Journal:
    """A journal with two customer legs (and a system leg when ``fee``)."""
    postings = [
        Posting(wallet_account(source), -(amount + fee)),
        Posting(wallet_account(target), amount),
    ]
    if fee:
        postings.append(Posting(SystemAccount.PAYMENTS, fee))
    return Journal(
        id=new_id(),
        kind=JournalKind.PAYMENT,
        reference=new_id(),
        remarks="split",
        created_at=now(),
        postings=tuple(postings),
    )


async def test_refused_payment_inserts_nothing(store: LedgerStore) -> None:
    user = await new_user(store)
    await top_up(store, user.id, 500)
    before = await store.snapshot()
    with pytest.raises(InsufficientFunds):
        await pay(store, user.id, 501)
    await store.set_account_blocked(wallet_account(user.id), True)
    with pytest.raises(AccountBlocked):
        await pay(store, user.id, 1)
    assert await store.snapshot() == before
    assert len(await store.entries(wallet_account(user.id))) == 1


async def test_two_customer_legs_move_together(store: LedgerStore) -> None:
    payer, payee = await new_user(store), await new_user(store, "Tom")
    await top_up(store, payer.id, 1000)
    debit, credit = await store.post_journal(wallet_to_wallet(payer.id, payee.id, 600, fee=10))
    assert (debit.entry_type, debit.balance_before, debit.balance_after) == (
        EntryType.DEBIT,
        1000,
        390,
    )
    assert (credit.entry_type, credit.balance_before, credit.balance_after) == (
        EntryType.CREDIT,
        0,
        600,
    )
    assert [e.sequence for e in await store.entries(wallet_account(payee.id))] == [credit.sequence]
    assert (await store.entries(wallet_account(payer.id)))[0].sequence == debit.sequence
    assert check(await store.snapshot()).violations == []


async def test_a_refused_second_leg_undoes_the_first(store: LedgerStore) -> None:
    payer, payee = await new_user(store), await new_user(store, "Tom")
    await top_up(store, payer.id, 1000)
    await store.set_account_blocked(wallet_account(payee.id), True)
    broke = await new_user(store, "Broke")
    before = await store.snapshot()
    with pytest.raises(AccountBlocked):  # the debit went through, the credit is refused
        await store.post_journal(wallet_to_wallet(payer.id, payee.id, 600))
    with pytest.raises(InsufficientFunds):  # the credit would go through, the debit not
        await store.post_journal(wallet_to_wallet(broke.id, payer.id, 1))
    assert await store.snapshot() == before
    assert await store.balance(wallet_account(payer.id)) == 1000


@pytest.mark.concurrency
async def test_a_refused_second_leg_leaves_the_journals_beside_it_alone(
    store: LedgerStore,
) -> None:
    """Concurrent with other payments (on SQLite: the same batch), a journal refused after
    its first leg changed takes nothing of the others with it."""
    payer, payee = await new_user(store), await new_user(store, "Tom")
    others = [await new_user(store, f"Other{i}") for i in range(6)]
    await top_up(store, payer.id, 1000)
    for other in others:
        await top_up(store, other.id, 100)
    await store.set_account_blocked(wallet_account(payee.id), True)

    results = await asyncio.gather(
        *(pay(store, other.id, 10) for other in others[:3]),
        store.post_journal(wallet_to_wallet(payer.id, payee.id, 600)),
        *(pay(store, other.id, 10) for other in others[3:]),
        return_exceptions=True,
    )

    assert isinstance(results[3], AccountBlocked)
    assert [r for i, r in enumerate(results) if i != 3 and isinstance(r, BaseException)] == []
    for other in others:
        assert await store.balance(wallet_account(other.id)) == 90
    assert await store.balance(wallet_account(payer.id)) == 1000
    assert check(await store.snapshot()).ok


async def test_a_spent_key_writes_no_journal(store: LedgerStore) -> None:
    user, target = await new_user(store), await new_user(store, "Tom")
    await top_up(store, user.id, 1000)
    key = IdempotencyKey(scope=user.id, key="k", fingerprint="f")
    assert isinstance(await store.claim_idempotency(key, now(), TTL, STALE), Claimed)
    (first,) = await store.post_journal(payment_journal(new_id(), user.id, 100, "", now()), key)
    before = await store.snapshot()
    with pytest.raises(IdempotencyConflict):
        await store.post_journal(payment_journal(new_id(), user.id, 100, "", now()), key)
    transfer = pending_transfer(user.id, target.id, 100)
    with pytest.raises(IdempotencyConflict):
        await store.open_transfer(
            transfer, transfer_out_journal(new_id(), transfer.id, user.id, 100, "", now()), key
        )
    never_claimed = IdempotencyKey(scope=user.id, key="other", fingerprint="f")
    with pytest.raises(IdempotencyConflict):
        await store.post_journal(payment_journal(new_id(), user.id, 100, "", now()), never_claimed)
    assert await store.get_transfer(transfer.id) is None
    assert await store.snapshot() == before
    assert await store.claim_idempotency(key, now(), TTL, STALE) == ReplayJournal(first.journal_id)


async def test_a_refused_payment_leaves_its_key_unanswered(store: LedgerStore) -> None:
    user = await new_user(store)
    key = IdempotencyKey(scope=user.id, key="k", fingerprint="f")
    await store.claim_idempotency(key, now(), TTL, STALE)
    with pytest.raises(InsufficientFunds):
        await store.post_journal(payment_journal(new_id(), user.id, 100, "", now()), key)
    with pytest.raises(IdempotencyConflict):  # still in flight: the caller answers it
        await store.claim_idempotency(key, now(), TTL, STALE)
    await store.answer_idempotency(key, 400, b"{}")
    assert await store.balance(wallet_account(user.id)) == 0


@pytest.mark.concurrency
async def test_concurrent_closes_credit_once(store: LedgerStore) -> None:
    sender, target = await new_user(store), await new_user(store, "Tom")
    await top_up(store, sender.id, 1000)
    transfer = pending_transfer(sender.id, target.id, 700)
    await store.open_transfer(
        transfer, transfer_out_journal(new_id(), transfer.id, sender.id, 700, "x", now())
    )

    async def close() -> bool:
        settle = settlement_journal(new_id(), transfer.id, target.id, 700, "x", now())
        return await store.close_transfer(transfer.id, TransferStatus.SUCCESS, settle, now())

    outcomes = await asyncio.gather(*(close() for _ in range(20)))
    assert sum(outcomes) == 1
    assert await store.balance(wallet_account(target.id)) == 700
    assert check(await store.snapshot()).violations == []
