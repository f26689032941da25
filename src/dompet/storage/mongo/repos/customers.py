"""Savings ("Tabungan") customers, each opened with their savings account."""

from __future__ import annotations

from pymongo.errors import DuplicateKeyError

from dompet.domain.errors import AccountNumberTaken, NikTaken, NoHpTaken
from dompet.domain.ledger import AccountKind, savings_account
from dompet.domain.savings import Customer
from dompet.storage.mongo.access import MongoAccess, Session
from dompet.storage.mongo.documents import customer_document, customer_of
from dompet.storage.mongo.repos.accounts import open_account


class Customers:
    def __init__(self, access: MongoAccess) -> None:
        self._access = access
        self._db = access.db

    async def add_customer(self, customer: Customer) -> None:
        async def work(s: Session) -> None:
            await self._db.customers.insert_one(customer_document(customer), session=s)
            account = savings_account(customer.no_rekening)
            await open_account(self._access, s, account, AccountKind.SAVINGS, customer.created_at)

        try:
            await self._access.transaction(work)
        except DuplicateKeyError as exc:
            async with self._access.read():
                taken = [
                    doc
                    async for doc in self._db.customers.find(
                        {"$or": [{"nik": customer.nik}, {"no_hp": customer.no_hp}]},
                        {"nik": 1, "no_hp": 1},
                    )
                ]
            if any(doc["nik"] == customer.nik for doc in taken):
                raise NikTaken() from exc
            if taken:
                raise NoHpTaken() from exc
            raise AccountNumberTaken() from exc

    async def get_customer(self, no_rekening: str) -> Customer | None:
        async with self._access.read():
            doc = await self._db.customers.find_one({"no_rekening": no_rekening})
        return customer_of(doc) if doc else None
