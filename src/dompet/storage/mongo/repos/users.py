"""People who sign in: wallet users (with their wallet account) and the dashboard's operators.
(Their sessions: ``sessions.py``; the throttles on their attempts: ``throttles.py``.)"""

from __future__ import annotations

from datetime import datetime

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from dompet.domain.errors import OperatorTaken, PhoneTaken
from dompet.domain.ledger import AccountKind, wallet_account
from dompet.domain.operators import Operator
from dompet.domain.sessions import operator_subject
from dompet.domain.users import Credentials, ProfileChanges, User
from dompet.storage.mongo.access import MongoAccess, Session
from dompet.storage.mongo.client import stamp, unstamp
from dompet.storage.mongo.documents import user_document, user_of
from dompet.storage.mongo.repos.accounts import open_account
from dompet.storage.mongo.repos.sessions import end


class Users:
    def __init__(self, access: MongoAccess) -> None:
        self._access = access
        self._db = access.db

    # -- wallet users ------------------------------------------------------------------------
    async def add_user(self, user: User, pin_hash: str) -> None:
        async def work(s: Session) -> None:
            await self._db.users.insert_one(user_document(user, pin_hash), session=s)
            await open_account(
                self._access, s, wallet_account(user.id), AccountKind.WALLET, user.created_at
            )

        try:
            await self._access.transaction(work)
        except DuplicateKeyError as exc:
            raise PhoneTaken() from exc

    async def find_credentials(self, phone_number: str) -> Credentials | None:
        async with self._access.read():
            doc = await self._db.users.find_one({"phone_number": phone_number}, {"pin_hash": 1})
        return Credentials(user_id=doc["_id"], pin_hash=doc["pin_hash"]) if doc else None

    async def get_user(self, user_id: str) -> User | None:
        async with self._access.read():
            doc = await self._db.users.find_one({"_id": user_id})
        return user_of(doc) if doc else None

    async def update_profile(
        self, user_id: str, changes: ProfileChanges, now: datetime
    ) -> User | None:
        async with self._access.write():
            doc = await self._db.users.find_one_and_update(
                {"_id": user_id},
                {"$set": {**changes.as_dict(), "updated_at": stamp(now)}},
                return_document=ReturnDocument.AFTER,
            )
        return user_of(doc) if doc else None

    # -- dashboard operators -----------------------------------------------------------------
    async def add_operator(self, operator: Operator) -> None:
        try:
            async with self._access.write():
                await self._db.operators.insert_one(
                    {
                        "_id": operator.username,
                        "password_hash": operator.password_hash,
                        "created_at": stamp(operator.created_at),
                    }
                )
        except DuplicateKeyError as exc:
            raise OperatorTaken(operator.username) from exc

    async def find_operator(self, username: str) -> Operator | None:
        async with self._access.read():
            doc = await self._db.operators.find_one({"_id": username})
        if doc is None:
            return None
        return Operator(doc["_id"], doc["password_hash"], unstamp(doc["created_at"]))

    async def remove_operator(self, username: str, now: datetime) -> bool:
        """Delete the operator and end every session of theirs, in one transaction."""

        async def work(s: Session) -> bool:
            removed = await self._db.operators.delete_one({"_id": username}, session=s)
            await end(self._db, operator_subject(username), now, session=s)
            return removed.deleted_count == 1

        return await self._access.transaction(work)
