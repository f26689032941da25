"""The savings ("Tabungan") use cases: daftar, tabung, tarik, saldo, mutasi.

Each customer has one savings account in the ledger (``savings:<no_rekening>``). Deposits and
withdrawals are journals against the teller system account, so the overdraft guard is the
store's one-statement guard like every other customer account.
"""

from __future__ import annotations

from dompet.domain.errors import (
    AccountNotFound,
    AccountNumberTaken,
    InsufficientFunds,
    SavingsInsufficientFunds,
    UnknownAccountNumber,
)
from dompet.domain.idempotency import IdempotencyKey
from dompet.domain.ids import new_id
from dompet.domain.ledger import (
    Entry,
    Journal,
    deposit_journal,
    entry_for,
    savings_account,
    withdrawal_journal,
)
from dompet.domain.money import check_amount
from dompet.domain.savings import (
    Customer,
    check_account_number,
    check_new_customer,
    new_account_number,
)
from dompet.services.ports import MONEY_KINDS, Clock, MoneyObservers
from dompet.storage.port import LedgerStore

ACCOUNT_NUMBER_ATTEMPTS = 8
"""Fresh numbers to draw when one collides (9 * 10^8 possible numbers: collisions are rare)."""


class SavingsService:
    def __init__(
        self, store: LedgerStore, clock: Clock, observers: MoneyObservers | None = None
    ) -> None:
        self._observers = observers or MoneyObservers()
        self._store = store
        self._now = clock

    async def daftar(self, nama: str, nik: str, no_hp: str) -> Customer:
        """Register a customer and open their savings account. Raises NikTaken, NoHpTaken."""
        request = check_new_customer(nama, nik, no_hp)
        for attempt in range(ACCOUNT_NUMBER_ATTEMPTS):
            customer = Customer(
                id=new_id(),
                nama=request.nama,
                nik=request.nik,
                no_hp=request.no_hp,
                no_rekening=new_account_number(),
                created_at=self._now(),
            )
            try:
                await self._store.add_customer(customer)
            except AccountNumberTaken:
                if attempt == ACCOUNT_NUMBER_ATTEMPTS - 1:
                    raise
                continue
            return customer
        raise AssertionError("unreachable")  # pragma: no cover

    async def tabung(
        self, no_rekening: str, nominal: int, idem: IdempotencyKey | None = None
    ) -> Entry:
        """Deposit; the entry's balance_after is the new saldo."""
        no_rekening = check_account_number(no_rekening)
        journal = deposit_journal(
            new_id(), no_rekening, check_amount(nominal, "nominal"), self._now()
        )
        return await self._post(no_rekening, journal, idem)

    async def tarik(
        self, no_rekening: str, nominal: int, idem: IdempotencyKey | None = None
    ) -> Entry:
        """Withdraw, never below zero (SavingsInsufficientFunds, nothing changes)."""
        no_rekening = check_account_number(no_rekening)
        journal = withdrawal_journal(
            new_id(), no_rekening, check_amount(nominal, "nominal"), self._now()
        )
        try:
            return await self._post(no_rekening, journal, idem)
        except InsufficientFunds:
            raise SavingsInsufficientFunds() from None

    async def saldo(self, no_rekening: str) -> int:
        balance = await self._store.balance(savings_account(check_account_number(no_rekening)))
        if balance is None:
            raise UnknownAccountNumber()
        return balance

    async def mutasi(self, no_rekening: str) -> list[Entry]:
        """The account's entries, oldest first."""
        account = savings_account(check_account_number(no_rekening))
        entries = await self._store.entries(account, oldest_first=True)
        if not entries and await self._store.balance(account) is None:
            raise UnknownAccountNumber()
        return entries

    async def replay(self, no_rekening: str, journal_id: str) -> Entry:
        """The account's entry of an earlier journal (an idempotent replay)."""
        entry = await self._store.entry_of_journal(journal_id, savings_account(no_rekening))
        if entry is None:  # pragma: no cover - the key and the journal commit together
            raise LookupError(journal_id)
        return entry

    async def _post(self, no_rekening: str, journal: Journal, idem: IdempotencyKey | None) -> Entry:
        account = savings_account(no_rekening)
        try:
            entries = await self._store.post_journal(journal, idem)
        except AccountNotFound:
            raise UnknownAccountNumber() from None
        entry = entry_for(entries, account)
        self._observers.money_moved(MONEY_KINDS[journal.kind], entry.amount)
        return entry
