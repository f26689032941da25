"""The ledger domain, without any database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from dompet.domain.errors import InvalidInput
from dompet.domain.ids import is_uuid, new_id
from dompet.domain.invariants import LedgerSnapshot, check
from dompet.domain.ledger import (
    Journal,
    JournalKind,
    Posting,
    SystemAccount,
    payment_journal,
    refund_journal,
    settlement_journal,
    topup_journal,
    transfer_out_journal,
    wallet_account,
)
from dompet.domain.money import MAX_AMOUNT, check_amount
from dompet.domain.phone import normalize_phone
from dompet.domain.transfers import RetryPolicy

NOW = datetime(2021, 4, 1, 15, 21, 21, tzinfo=UTC)


@pytest.mark.parametrize("amount", [1, 500000, MAX_AMOUNT])
def test_valid_amounts(amount: int) -> None:
    assert check_amount(amount) == amount


@pytest.mark.parametrize("amount", [0, -5, MAX_AMOUNT + 1, True, 100.5, "100"])
def test_invalid_amounts(amount: object) -> None:
    with pytest.raises(InvalidInput):
        check_amount(amount)  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", ["0811255501", "62811255501", "+62811255501", " 0811255501 "])
def test_phone_forms_are_one_number(raw: str) -> None:
    assert normalize_phone(raw) == "0811255501"


@pytest.mark.parametrize("raw", ["", "0711255501", "081125", "+6281125550123456", "abc"])
def test_bad_phones(raw: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_phone(raw)


def test_ids_are_uuid7_and_time_ordered() -> None:
    first, second = new_id(), new_id()
    assert is_uuid(first)
    for made in (new_id() for _ in range(200)):
        parsed = uuid.UUID(made)
        assert str(parsed) == made
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
    assert first[14] == "7"
    assert first[:8] <= second[:8]
    assert not is_uuid("not-a-uuid")


def test_every_builder_balances_and_routes_through_system_accounts() -> None:
    user, other = new_id(), new_id()
    journals = [
        topup_journal(new_id(), user, 500000, NOW),
        payment_journal(new_id(), user, 100000, "Pulsa", NOW),
        transfer_out_journal(new_id(), "t1", user, 30000, "Hadiah", NOW),
        settlement_journal(new_id(), "t1", other, 30000, "Hadiah", NOW),
        refund_journal(new_id(), "t1", user, 30000, "Hadiah", NOW),
    ]
    for journal in journals:
        assert sum(p.amount for p in journal.postings) == 0
    assert journals[0].postings[0].account_id == SystemAccount.TOPUP
    assert journals[3].postings[0].account_id == SystemAccount.TRANSIT
    refund = journals[4]
    assert refund.remarks == "Refund: Hadiah"
    assert not any(p.require_active for p in refund.postings)


def test_unbalanced_journal_is_refused() -> None:
    with pytest.raises(ValueError, match="sum to zero"):
        Journal(new_id(), JournalKind.TOPUP, "r", "", NOW, (Posting("a", 5), Posting("b", -4)))
    with pytest.raises(ValueError, match="twice"):
        Journal(new_id(), JournalKind.TOPUP, "r", "", NOW, (Posting("a", 5), Posting("a", -5)))


def test_invariants_hold_and_break() -> None:
    user = wallet_account("u")
    good = LedgerSnapshot(
        customer_balances={user: 70},
        posting_sums={user: 70, SystemAccount.TOPUP: -100, SystemAccount.TRANSIT: 30},
        pending_transfer_total=30,
    )
    assert check(good).ok
    bad = LedgerSnapshot(
        customer_balances={user: -1},
        posting_sums={user: 70, SystemAccount.TOPUP: -100, SystemAccount.TRANSIT: 20},
        pending_transfer_total=30,
        broken_chains=[user],
    )
    violations = check(bad).violations
    assert len(violations) == 5  # sum, negative, mismatch, transit, chain


def test_retry_policy_backs_off_then_gives_up() -> None:
    policy = RetryPolicy(
        max_attempts=3, base_delay=timedelta(seconds=1), max_delay=timedelta(seconds=3)
    )
    assert [policy.delay_after(n).seconds for n in (1, 2, 3, 4)] == [1, 2, 3, 3]
    assert not policy.exhausted(2)
    assert policy.exhausted(3)
