"""People who sign in: wallet users (with their wallet account), their login throttle and
used refresh tokens, and the dashboard's operators."""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from dompet.domain.errors import OperatorTaken, PhoneTaken
from dompet.domain.ledger import AccountKind, wallet_account
from dompet.domain.operators import Operator
from dompet.domain.users import Credentials, ProfileChanges, User
from dompet.storage.mongo.access import MongoAccess, Session
from dompet.storage.mongo.client import Document, stamp, unstamp
from dompet.storage.mongo.documents import NULL, user_document, user_of
from dompet.storage.mongo.repos.accounts import open_account


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

    # -- login throttling and refresh tokens -------------------------------------------------
    async def login_locked_until(self, phone_number: str) -> datetime | None:
        async with self._access.read():
            doc = await self._db.login_throttle.find_one({"_id": phone_number})
        return unstamp(doc.get("locked_until")) if doc else None

    async def record_login_failure(
        self, phone_number: str, now: datetime, max_failures: int, lock_for: timedelta
    ) -> datetime | None:
        """While a lock is active nothing is counted (a conditional $inc that does not match)."""
        unlocked: Document = {
            "_id": phone_number,
            "$or": [{"locked_until": NULL}, {"locked_until": {"$lte": stamp(now)}}],
        }

        async def work(s: Session) -> datetime | None:
            doc = await self._db.login_throttle.find_one_and_update(
                unlocked,
                {"$inc": {"failures": 1}},
                return_document=ReturnDocument.AFTER,
                session=s,
            )
            if doc is None:
                if await self._db.login_throttle.find_one({"_id": phone_number}, session=s):
                    return None  # locked: failures racing with the lock count for nothing
                doc = {"_id": phone_number, "failures": 1, "locked_until": None}
                await self._db.login_throttle.insert_one(doc, session=s)
            if doc["failures"] < max_failures:
                return None
            locked_until = now + lock_for
            await self._db.login_throttle.update_one(
                {"_id": phone_number},
                {"$set": {"failures": 0, "locked_until": stamp(locked_until)}},
                session=s,
            )
            return locked_until

        return await self._access.transaction(work)

    async def clear_login_failures(self, phone_number: str) -> None:
        async with self._access.write():
            await self._db.login_throttle.delete_one({"_id": phone_number})

    async def consume_refresh_token(self, jti: str, user_id: str, expires_at: datetime) -> bool:
        try:
            async with self._access.write():
                await self._db.used_refresh_tokens.insert_one(
                    {"_id": jti, "user_id": user_id, "expires_at": stamp(expires_at)}
                )
        except DuplicateKeyError:
            return False
        return True

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
