"""Savings operations on the store and the service, on every engine, including races."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest

from dompet.domain.errors import (
    AccountNotFound,
    AccountNumberTaken,
    InsufficientFunds,
    InvalidInput,
    NikTaken,
    NoHpTaken,
    SavingsInsufficientFunds,
    UnknownAccountNumber,
)
from dompet.domain.ids import new_id
from dompet.domain.invariants import check
from dompet.domain.ledger import (
    EntryType,
    JournalKind,
    SystemAccount,
    deposit_journal,
    savings_account,
    withdrawal_journal,
)
from dompet.domain.savings import Customer, new_account_number
from dompet.services import savings as savings_module
from dompet.services.ports import utc_now
from dompet.services.savings import ACCOUNT_NUMBER_ATTEMPTS, SavingsService
from dompet.storage.port import LedgerStore

NOW = datetime(2021, 4, 1, 15, 21, 21, tzinfo=UTC)
_serial = itertools.count(1)


def customer(
    no_rekening: str | None = None, nik: str | None = None, no_hp: str | None = None
) -> Customer:
    n = next(_serial)
    return Customer(
        id=new_id(),
        nama=f"Nasabah {n}",
        nik=nik or f"{3171000000000000 + n}",
        no_hp=no_hp or f"08123{n:07d}",
        no_rekening=no_rekening or new_account_number(),
        created_at=NOW,
    )


@pytest.fixture
def service(store: LedgerStore) -> SavingsService:
    return SavingsService(store, utc_now)


async def open_account(service: SavingsService) -> str:
    n = next(_serial)
    opened = await service.daftar(f"Nasabah {n}", f"{3172000000000000 + n}", f"08124{n:07d}")
    return opened.no_rekening


async def assert_invariants(store: LedgerStore) -> None:
    report = check(await store.snapshot())
    assert report.ok, report.violations


# -- customers ---------------------------------------------------------------------------------
async def test_add_and_get_customer(store: LedgerStore) -> None:
    new = customer()
    await store.add_customer(new)
    assert await store.get_customer(new.no_rekening) == new
    assert await store.balance(savings_account(new.no_rekening)) == 0
    assert await store.get_customer(new_account_number()) is None


async def test_unique_nik_no_hp_and_no_rekening(store: LedgerStore) -> None:
    first = customer(nik="3171234567890001", no_hp="0811255501")
    await store.add_customer(first)
    with pytest.raises(NikTaken):
        await store.add_customer(customer(nik="3171234567890001"))
    with pytest.raises(NoHpTaken):
        await store.add_customer(customer(no_hp="0811255501"))
    with pytest.raises(NikTaken):  # both taken: nik is named first
        await store.add_customer(customer(nik="3171234567890001", no_hp="0811255501"))
    with pytest.raises(AccountNumberTaken):
        await store.add_customer(customer(no_rekening=first.no_rekening))
    assert set((await store.snapshot()).customer_balances) == {savings_account(first.no_rekening)}


async def test_daftar_draws_again_when_a_number_is_taken(
    store: LedgerStore, service: SavingsService, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = customer()
    await store.add_customer(taken)
    fresh = new_account_number()
    draws = iter([taken.no_rekening, taken.no_rekening, fresh])
    monkeypatch.setattr(savings_module, "new_account_number", lambda: next(draws))
    opened = await service.daftar("Siti", "3171234567890009", "+62811255509")
    assert opened.no_rekening == fresh
    assert opened.no_hp == "0811255509"
    assert await store.get_customer(fresh) == opened


async def test_daftar_gives_up_after_a_few_collisions(
    store: LedgerStore, service: SavingsService, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = customer()
    await store.add_customer(taken)
    calls = 0

    def always_taken() -> str:
        nonlocal calls
        calls += 1
        return taken.no_rekening

    monkeypatch.setattr(savings_module, "new_account_number", always_taken)
    with pytest.raises(AccountNumberTaken):
        await service.daftar("Siti", "3171234567890009", "0811255509")
    assert calls == ACCOUNT_NUMBER_ATTEMPTS


async def test_daftar_validates_before_touching_the_store(service: SavingsService) -> None:
    with pytest.raises(InvalidInput) as raised:
        await service.daftar("Siti", "123", "0811255501")
    assert raised.value.field == "nik"


# -- the ledger, directly on the store ---------------------------------------------------------
async def test_deposit_and_withdrawal_journals(store: LedgerStore) -> None:
    new = customer()
    await store.add_customer(new)
    account = savings_account(new.no_rekening)
    deposit = deposit_journal(new_id(), new.no_rekening, 1000, NOW)
    [entry] = await store.post_journal(deposit)
    assert (entry.account_id, entry.kind, entry.entry_type) == (
        account,
        JournalKind.DEPOSIT,
        EntryType.CREDIT,
    )
    assert (entry.balance_before, entry.balance_after, entry.amount) == (0, 1000, 1000)
    [out] = await store.post_journal(withdrawal_journal(new_id(), new.no_rekening, 300, NOW))
    assert (out.entry_type, out.balance_before, out.balance_after) == (EntryType.DEBIT, 1000, 700)
    with pytest.raises(InsufficientFunds):
        await store.post_journal(withdrawal_journal(new_id(), new.no_rekening, 701, NOW))
    assert await store.balance(account) == 700
    oldest_first = await store.entries(account, oldest_first=True)
    assert [e.journal_id for e in oldest_first] == [deposit.id, out.journal_id]
    assert await store.entry_of_journal(deposit.id, account) == oldest_first[0]
    snapshot = await store.snapshot()
    assert snapshot.posting_sums[SystemAccount.TELLER] == -700
    await assert_invariants(store)


async def test_unknown_account_moves_no_money(store: LedgerStore, service: SavingsService) -> None:
    unknown = new_account_number()
    with pytest.raises(AccountNotFound):
        await store.post_journal(deposit_journal(new_id(), unknown, 5, NOW))
    for operation in (service.tabung, service.tarik):
        with pytest.raises(UnknownAccountNumber):
            await operation(unknown, 5)
    with pytest.raises(UnknownAccountNumber):
        await service.saldo(unknown)
    with pytest.raises(UnknownAccountNumber):
        await service.mutasi(unknown)
    snapshot = await store.snapshot()
    assert snapshot.posting_sums.get(SystemAccount.TELLER, 0) == 0
    assert snapshot.customer_balances == {}


async def test_a_mistyped_number_is_unknown_without_a_lookup(service: SavingsService) -> None:
    no_rekening = await open_account(service)
    await service.tabung(no_rekening, 100)
    wrong_check = no_rekening[:9] + str((int(no_rekening[9]) + 3) % 10)
    for operation in (service.tabung, service.tarik):
        with pytest.raises(UnknownAccountNumber):
            await operation(wrong_check, 5)
    assert await service.saldo(no_rekening) == 100


async def test_service_tabung_tarik_saldo_mutasi(
    store: LedgerStore, service: SavingsService
) -> None:
    no_rekening = await open_account(service)
    assert (await service.tabung(no_rekening, 100)).balance_after == 100
    withdrawn = await service.tarik(no_rekening, 40)
    assert withdrawn.balance_after == 60
    with pytest.raises(SavingsInsufficientFunds):
        await service.tarik(no_rekening, 61)
    assert await service.saldo(no_rekening) == 60
    movements = await service.mutasi(no_rekening)
    assert [(e.entry_type, e.amount) for e in movements] == [
        (EntryType.CREDIT, 100),
        (EntryType.DEBIT, 40),
    ]
    assert await service.replay(no_rekening, withdrawn.journal_id) == withdrawn
    await assert_invariants(store)


@pytest.mark.parametrize("nominal", [0, -5, True, 10**12 + 1])
async def test_service_refuses_bad_nominal(service: SavingsService, nominal: int) -> None:
    no_rekening = await open_account(service)
    for operation in (service.tabung, service.tarik):
        with pytest.raises(InvalidInput) as raised:
            await operation(no_rekening, nominal)
        assert raised.value.field == "nominal"


# -- races -------------------------------------------------------------------------------------
async def test_concurrent_tarik_exactly_the_affordable_number_succeed(
    store: LedgerStore, service: SavingsService
) -> None:
    affordable, nominal, rest = 10, 1000, 7
    no_rekening = await open_account(service)
    await service.tabung(no_rekening, affordable * nominal + rest)

    async def attempt() -> int | None:
        try:
            return (await service.tarik(no_rekening, nominal)).balance_after
        except SavingsInsufficientFunds:
            return None

    results = await asyncio.gather(*(attempt() for _ in range(3 * affordable)))
    succeeded = sorted((r for r in results if r is not None), reverse=True)
    assert len(succeeded) == affordable
    assert succeeded == [rest + nominal * k for k in range(affordable - 1, -1, -1)]
    assert await service.saldo(no_rekening) == rest
    entries = await store.entries(savings_account(no_rekening), oldest_first=True)
    assert all(e.balance_after >= 0 for e in entries)
    assert len(entries) == 1 + affordable
    await assert_invariants(store)


async def test_concurrent_tabung_loses_no_update(
    store: LedgerStore, service: SavingsService
) -> None:
    no_rekening = await open_account(service)
    amounts = [1000 + i for i in range(40)]
    entries = await asyncio.gather(*(service.tabung(no_rekening, a) for a in amounts))
    assert await service.saldo(no_rekening) == sum(amounts)
    afters = sorted(e.balance_after for e in entries)
    assert afters[-1] == sum(amounts)
    assert len(set(afters)) == len(amounts)
    history = await service.mutasi(no_rekening)
    assert len(history) == len(amounts)
    for older, newer in itertools.pairwise(history):
        assert newer.balance_before == older.balance_after
    await assert_invariants(store)


async def test_concurrent_mixed_traffic_on_several_accounts(
    store: LedgerStore, service: SavingsService
) -> None:
    accounts = [await open_account(service) for _ in range(4)]
    for no_rekening in accounts:
        await service.tabung(no_rekening, 500)

    async def tarik(no_rekening: str) -> int:
        try:
            await service.tarik(no_rekening, 300)
        except SavingsInsufficientFunds:
            return 0
        return -300

    async def tabung(no_rekening: str) -> int:
        await service.tabung(no_rekening, 100)
        return 100

    operations = [op(no) for no in accounts for op in (tarik, tabung, tarik, tabung, tarik)]
    changes = await asyncio.gather(*operations)
    total = sum(changes)
    balances = [await service.saldo(no) for no in accounts]
    assert all(b >= 0 for b in balances)
    assert sum(balances) == 4 * 500 + total
    await assert_invariants(store)


async def test_concurrent_daftar_with_one_nik_opens_one_account(
    store: LedgerStore, service: SavingsService
) -> None:
    async def attempt(i: int) -> str | None:
        try:
            return (
                await service.daftar("Siti", "3171234567890001", f"0812345678{i:02d}")
            ).no_rekening
        except NikTaken:
            return None

    opened = [r for r in await asyncio.gather(*(attempt(i) for i in range(12))) if r is not None]
    assert len(opened) == 1
    assert set((await store.snapshot()).customer_balances) == {savings_account(opened[0])}
