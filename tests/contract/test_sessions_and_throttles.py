"""Issue 19's store capabilities on every engine: attempt throttles, sessions, kept secrets,
operator removal, and the balance cap."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from dompet.domain.errors import BalanceLimitExceeded
from dompet.domain.ids import new_id
from dompet.domain.invariants import check
from dompet.domain.ledger import (
    Journal,
    JournalKind,
    Posting,
    SystemAccount,
    transfer_out_journal,
    wallet_account,
)
from dompet.domain.money import BALANCE_CAP, MAX_AMOUNT
from dompet.domain.operators import Operator
from dompet.domain.sessions import SessionRecord, ThrottleRule, operator_subject
from dompet.domain.transfers import TransferStatus
from dompet.storage.port import LedgerStore
from tests.contract.helpers import new_user, now, pending_transfer, top_up

LOCK = ThrottleRule(5, timedelta(minutes=5), sliding=True)
WINDOW = ThrottleRule(3, timedelta(seconds=60))


# -- throttles ------------------------------------------------------------------------------
async def test_a_lock_takes_max_attempts_then_refuses_until_it_is_over(store: LedgerStore) -> None:
    key, t0 = "pin:0811255599", now()
    for n in range(5):
        hit = await store.take_throttle(key, t0 + timedelta(seconds=n), LOCK)
        assert hit.granted, n
    last = t0 + timedelta(seconds=4)
    for seconds in range(5, 60):  # refused, and the refusals never extend the lock
        hit = await store.take_throttle(key, t0 + timedelta(seconds=seconds), LOCK)
        assert not hit.granted
        assert abs((hit.until - (last + LOCK.period)).total_seconds()) < 0.001
    assert hit.retry_after(t0 + timedelta(seconds=59)) == 5 * 60 - 55
    after = last + LOCK.period
    for n in range(5):  # over: a fresh count of five
        assert (await store.take_throttle(key, after + timedelta(seconds=n), LOCK)).granted
    assert not (await store.take_throttle(key, after + timedelta(seconds=5), LOCK)).granted


async def test_a_lock_forgets_attempts_a_whole_period_apart(store: LedgerStore) -> None:
    key, moment = "pin:0811255598", now()
    for _ in range(20):  # four in a row, then a pause longer than the period, again and again
        for _ in range(4):
            assert (await store.take_throttle(key, moment, LOCK)).granted
        moment += LOCK.period + timedelta(seconds=1)


async def test_clearing_ends_a_lock_and_release_gives_one_attempt_back(
    store: LedgerStore,
) -> None:
    key, moment = "operator:ops", now()
    for _ in range(6):
        await store.take_throttle(key, moment, LOCK)
    assert not (await store.take_throttle(key, moment, LOCK)).granted
    await store.clear_throttle(key)
    assert (await store.take_throttle(key, moment, LOCK)).granted
    client = "login-from:10.0.0.7"
    for _ in range(3):
        assert (await store.take_throttle(client, moment, WINDOW)).granted
    await store.release_throttle(client, moment)  # the third succeeded: it does not count
    assert (await store.take_throttle(client, moment, WINDOW)).granted
    assert not (await store.take_throttle(client, moment, WINDOW)).granted
    await store.release_throttle("login-from:nobody", moment)  # no row: nothing happens
    await store.clear_throttle("login-from:nobody")


async def test_a_window_counts_from_its_first_attempt(store: LedgerStore) -> None:
    key, t0 = "register-from:10.0.0.8", now()
    for n in range(3):
        assert (await store.take_throttle(key, t0 + timedelta(seconds=20 * n), WINDOW)).granted
    refused = await store.take_throttle(key, t0 + timedelta(seconds=50), WINDOW)
    assert not refused.granted
    assert abs((refused.until - (t0 + WINDOW.period)).total_seconds()) < 0.001
    assert refused.retry_after(t0 + timedelta(seconds=50)) == 10
    assert (await store.take_throttle(key, t0 + WINDOW.period, WINDOW)).granted


async def test_the_purge_deletes_only_throttles_whose_window_is_over(store: LedgerStore) -> None:
    t0 = now()
    for n in range(7):
        await store.take_throttle(f"old-{n}", t0 - timedelta(hours=1), WINDOW)
    await store.take_throttle("live-lock", t0, LOCK)
    for _ in range(5):
        await store.take_throttle("live-lock", t0, LOCK)
    assert await store.purge_throttles(t0, 0) == 0
    assert await store.purge_throttles(t0, 5) == 5
    assert await store.purge_throttles(t0, 5) == 2
    assert await store.purge_throttles(t0, 5) == 0
    assert not (await store.take_throttle("live-lock", t0, LOCK)).granted  # still locked


@pytest.mark.concurrency
async def test_parallel_attempts_never_get_past_the_limit(store: LedgerStore) -> None:
    """The race of issue 19 at its root: 40 attempts at once, exactly 5 granted."""
    moment = now()
    hits = await asyncio.gather(
        *(store.take_throttle("pin:0811255597", moment, LOCK) for _ in range(40))
    )
    assert sum(hit.granted for hit in hits) == LOCK.limit
    windowed = await asyncio.gather(
        *(store.take_throttle("login-from:10.0.0.9", moment, WINDOW) for _ in range(30))
    )
    assert sum(hit.granted for hit in windowed) == WINDOW.limit


# -- sessions ---------------------------------------------------------------------------------
def a_session(subject: str, refresh_jti: str | None = None, **times: object) -> SessionRecord:
    moment = now()
    return SessionRecord(
        id=new_id(),
        subject=subject,
        refresh_jti=refresh_jti,
        created_at=moment,
        expires_at=times.get("expires_at", moment + timedelta(days=7)),  # type: ignore[arg-type]
    )


async def test_a_session_is_live_for_its_subject_only(store: LedgerStore) -> None:
    user = new_id()
    session = a_session(user, new_id())
    await store.open_session(session)
    assert await store.session_live(session.id, user)
    assert not await store.session_live(session.id, new_id())
    assert not await store.session_live(new_id(), user)


async def test_many_checks_at_once_each_get_their_own_answer(store: LedgerStore) -> None:
    """On PostgreSQL concurrent checks share statements (sessions.py): each still gets the
    answer for its own session and subject."""
    opened = [a_session(new_id()) for _ in range(30)]
    for session in opened:
        await store.open_session(session)
    for session in opened[::3]:
        await store.end_sessions(session.subject, now(), session.id)
    checks = [(s.id, s.subject) for s in opened] + [(s.id, new_id()) for s in opened]
    answers = await asyncio.gather(*(store.session_live(*check) for check in checks * 3))
    expected = [n % 3 != 0 for n in range(30)] + [False] * 30
    assert answers == expected * 3


async def test_rotation_takes_the_current_token_once_and_reuse_ends_the_session(
    store: LedgerStore,
) -> None:
    user, first = new_id(), new_id()
    session = a_session(user, first)
    await store.open_session(session)
    second, third, later = new_id(), new_id(), now() + timedelta(days=7)
    assert await store.rotate_session(session.id, user, first, second, later, now())
    assert await store.session_live(session.id, user)
    assert await store.rotate_session(session.id, user, second, third, later, now())
    # the first token, presented again: refused, and the whole session ends
    assert not await store.rotate_session(session.id, user, first, new_id(), later, now())
    assert not await store.session_live(session.id, user)
    assert not await store.rotate_session(session.id, user, third, new_id(), later, now())
    # another user's session id with this user's token changes nothing of theirs
    other = a_session(new_id(), new_id())
    await store.open_session(other)
    assert not await store.rotate_session(other.id, user, first, new_id(), later, now())
    assert await store.session_live(other.id, other.subject)


async def test_ending_one_session_or_every_session_of_a_subject(store: LedgerStore) -> None:
    user, bystander = new_id(), a_session(new_id(), new_id())
    phone, laptop, tablet = (a_session(user, new_id()) for _ in range(3))
    for session in (phone, laptop, tablet, bystander):
        await store.open_session(session)
    assert await store.end_sessions(user, now(), phone.id) == 1
    assert await store.end_sessions(user, now(), phone.id) == 0
    assert not await store.session_live(phone.id, user)
    assert await store.session_live(laptop.id, user)
    assert await store.end_sessions(user, now()) == 2  # the ones still live
    assert not await store.session_live(tablet.id, user)
    assert await store.session_live(bystander.id, bystander.subject)
    assert await store.end_sessions(user, now(), bystander.id) == 0  # not this user's


async def test_the_purge_deletes_only_sessions_whose_tokens_expired(store: LedgerStore) -> None:
    moment = now()
    expired = [a_session(new_id(), expires_at=moment - timedelta(seconds=1)) for _ in range(3)]
    live = a_session(new_id(), new_id())
    for session in (*expired, live):
        await store.open_session(session)
    assert await store.purge_sessions(moment, 2) == 2
    assert await store.purge_sessions(moment, 2) == 1
    assert await store.purge_sessions(moment, 2) == 0
    assert await store.session_live(live.id, live.subject)
    assert not await store.session_live(expired[0].id, expired[0].subject)


async def test_removing_an_operator_ends_their_sessions(store: LedgerStore) -> None:
    await store.add_operator(Operator("temp.ops", "$argon2id$placeholder", now()))
    await store.add_operator(Operator("other.ops", "$argon2id$placeholder", now()))
    mine = [a_session(operator_subject("temp.ops")) for _ in range(2)]
    theirs = a_session(operator_subject("other.ops"))
    for session in (*mine, theirs):
        await store.open_session(session)
    assert await store.remove_operator("temp.ops", now())
    assert await store.find_operator("temp.ops") is None
    assert not any([await store.session_live(s.id, s.subject) for s in mine])
    assert await store.session_live(theirs.id, theirs.subject)
    assert not await store.remove_operator("temp.ops", now())


@pytest.mark.concurrency
async def test_one_refresh_token_presented_twice_at_once_ends_the_session(
    store: LedgerStore,
) -> None:
    user, token = new_id(), new_id()
    session = a_session(user, token)
    await store.open_session(session)
    later = now() + timedelta(days=7)
    rotated = await asyncio.gather(
        *(store.rotate_session(session.id, user, token, new_id(), later, now()) for _ in range(8))
    )
    assert sum(rotated) <= 1
    assert not await store.session_live(session.id, user)


# -- kept secrets -------------------------------------------------------------------------------
async def test_a_secret_is_kept_once_and_every_caller_gets_that_one(store: LedgerStore) -> None:
    assert await store.keep_secret("jwt_secret", "first-" + "x" * 40, now()) == "first-" + "x" * 40
    assert await store.keep_secret("jwt_secret", "second-" + "y" * 40, now()) == "first-" + "x" * 40
    assert await store.keep_secret("other", "z" * 40, now()) == "z" * 40


@pytest.mark.concurrency
async def test_processes_racing_to_keep_a_secret_all_get_the_same(store: LedgerStore) -> None:
    kept = await asyncio.gather(
        *(store.keep_secret("racing", f"candidate-{n:02d}-" + "s" * 40, now()) for n in range(12))
    )
    assert len(set(kept)) == 1


# -- the balance cap ----------------------------------------------------------------------------
def credit_beyond_a_request(user_id: str, amount: int) -> Journal:
    """A top-up larger than any request may ask for (to get near the cap in one step)."""
    journal_id = new_id()
    return Journal(
        id=journal_id,
        kind=JournalKind.TOPUP,
        reference=journal_id,
        remarks="",
        created_at=now(),
        postings=(Posting(SystemAccount.TOPUP, -amount), Posting(wallet_account(user_id), amount)),
    )


async def test_no_credit_takes_a_balance_above_the_cap(store: LedgerStore) -> None:
    user = await new_user(store)
    await store.post_journal(credit_beyond_a_request(user.id, BALANCE_CAP - MAX_AMOUNT))
    await top_up(store, user.id, MAX_AMOUNT - 10)
    history = len(await store.entries(wallet_account(user.id)))
    with pytest.raises(BalanceLimitExceeded):
        await top_up(store, user.id, 11)
    assert await store.balance(wallet_account(user.id)) == BALANCE_CAP - 10
    assert len(await store.entries(wallet_account(user.id))) == history  # nothing written
    await top_up(store, user.id, 10)  # up to the cap itself is fine
    assert await store.balance(wallet_account(user.id)) == BALANCE_CAP
    assert check(await store.snapshot()).ok


async def test_a_settlement_over_the_cap_changes_nothing_and_can_be_refunded(
    store: LedgerStore,
) -> None:
    from dompet.domain.ledger import refund_journal, settlement_journal

    sender, target = await new_user(store), await new_user(store, "Tom")
    await top_up(store, sender.id, 500)
    await store.post_journal(credit_beyond_a_request(target.id, BALANCE_CAP))
    transfer = pending_transfer(sender.id, target.id, 100)
    await store.open_transfer(
        transfer, transfer_out_journal(new_id(), transfer.id, sender.id, 100, "", now())
    )
    credit = settlement_journal(new_id(), transfer.id, target.id, 100, "", now())
    with pytest.raises(BalanceLimitExceeded):
        await store.close_transfer(transfer.id, TransferStatus.SUCCESS, credit, now())
    found = await store.get_transfer(transfer.id)
    assert found is not None
    assert found.status is TransferStatus.PENDING
    assert await store.balance(wallet_account(target.id)) == BALANCE_CAP
    refund = refund_journal(new_id(), transfer.id, sender.id, 100, "", now())
    assert await store.close_transfer(transfer.id, TransferStatus.FAILED, refund, now())
    assert await store.balance(wallet_account(sender.id)) == 500
    assert check(await store.snapshot()).ok
