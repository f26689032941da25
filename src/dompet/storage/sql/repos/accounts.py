"""Accounts: opening one (with its owner's row), blocking one, reading its balance.

A balance is only ever changed by the journal writer (``storage/sql/journal``), guarded
and changed in one statement.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dompet.domain.ledger import AccountKind
from dompet.storage.sql.access import ConnectionAccess
from dompet.storage.sql.tables import accounts


async def open_account(
    conn: AsyncConnection, account_id: str, kind: AccountKind, now: datetime
) -> None:
    """Create an empty, unblocked account in ``conn``'s transaction (with its owner)."""
    await conn.execute(
        insert(accounts).values(id=account_id, kind=kind, balance=0, blocked=False, created_at=now)
    )


class Accounts:
    def __init__(self, access: ConnectionAccess) -> None:
        self._access = access

    async def set_account_blocked(self, account_id: str, blocked: bool) -> bool:
        async with self._access.write() as conn:
            result = await conn.execute(
                update(accounts)
                .where(accounts.c.id == account_id, accounts.c.kind != AccountKind.SYSTEM)
                .values(blocked=blocked)
            )
        return result.rowcount == 1

    async def balance(self, account_id: str) -> int | None:
        async with self._access.read() as conn:
            value: int | None = (
                await conn.execute(select(accounts.c.balance).where(accounts.c.id == account_id))
            ).scalar_one_or_none()
        return value
