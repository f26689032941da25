"""Accounts: opening one (with its owner's document), blocking one, reading its balance.

A balance is only ever changed by the journal writer (``mongo/journal.py``).
"""

from __future__ import annotations

from datetime import datetime

from dompet.domain.ledger import AccountKind
from dompet.storage.mongo.access import MongoAccess, Session
from dompet.storage.mongo.client import stamp
from dompet.storage.mongo.documents import SEQUENCES


async def open_account(
    access: MongoAccess, s: Session, account_id: str, kind: AccountKind, now: datetime
) -> None:
    """Create an empty, unblocked account in ``s``'s transaction (with its owner)."""
    # Entry sequences start above every imported one (the floor is 0 until an import).
    meta = await access.db.ledger_meta.find_one({"_id": SEQUENCES}, session=s)
    await access.db.accounts.insert_one(
        {
            "_id": account_id,
            "kind": kind.value,
            "balance": 0,
            "seq": int(meta["floor"]) if meta else 0,
            "blocked": False,
            "created_at": stamp(now),
        },
        session=s,
    )


class Accounts:
    def __init__(self, access: MongoAccess) -> None:
        self._access = access
        self._db = access.db

    async def set_account_blocked(self, account_id: str, blocked: bool) -> bool:
        async with self._access.write():
            result = await self._db.accounts.update_one(
                {"_id": account_id, "kind": {"$ne": AccountKind.SYSTEM.value}},
                {"$set": {"blocked": blocked}},
            )
        return result.matched_count == 1

    async def balance(self, account_id: str) -> int | None:
        async with self._access.read():
            doc = await self._db.accounts.find_one({"_id": account_id}, {"balance": 1})
        return int(doc["balance"]) if doc else None
