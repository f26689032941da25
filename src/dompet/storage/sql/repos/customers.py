"""Savings ("Tabungan") customers, each opened with their savings account."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.exc import IntegrityError

from dompet.domain.errors import AccountNumberTaken, NikTaken, NoHpTaken
from dompet.domain.ledger import AccountKind, savings_account
from dompet.domain.savings import Customer
from dompet.storage.sql.access import ConnectionAccess
from dompet.storage.sql.repos.accounts import open_account
from dompet.storage.sql.tables import customers


class Customers:
    def __init__(self, access: ConnectionAccess) -> None:
        self._access = access

    async def add_customer(self, customer: Customer) -> None:
        try:
            async with self._access.write() as conn:
                await conn.execute(insert(customers).values(customer_row(customer)))
                await open_account(
                    conn,
                    savings_account(customer.no_rekening),
                    AccountKind.SAVINGS,
                    customer.created_at,
                )
        except IntegrityError as exc:
            async with self._access.read() as conn:
                taken = (
                    await conn.execute(
                        select(customers.c.nik, customers.c.no_hp).where(
                            or_(
                                customers.c.nik == customer.nik, customers.c.no_hp == customer.no_hp
                            )
                        )
                    )
                ).all()
            if any(row.nik == customer.nik for row in taken):
                raise NikTaken() from exc
            if taken:
                raise NoHpTaken() from exc
            raise AccountNumberTaken() from exc

    async def get_customer(self, no_rekening: str) -> Customer | None:
        async with self._access.read() as conn:
            row = (
                await conn.execute(select(customers).where(customers.c.no_rekening == no_rekening))
            ).first()
        return customer_of(row) if row is not None else None


def customer_row(customer: Customer) -> dict[str, Any]:
    """A customer's row (a new one, or an imported one)."""
    return {
        "id": customer.id,
        "nama": customer.nama,
        "nik": customer.nik,
        "no_hp": customer.no_hp,
        "no_rekening": customer.no_rekening,
        "created_at": customer.created_at,
    }


def customer_of(row: Any) -> Customer:
    return Customer(
        id=row.id,
        nama=row.nama,
        nik=row.nik,
        no_hp=row.no_hp,
        no_rekening=row.no_rekening,
        created_at=row.created_at,
    )
